"""moto's side of the local ECS: what ECS itself does around a task, inside the moto server.

ECS records a task's state and emits an ``ECS Task State Change`` event for each change; the
container agent on the host reports what the container did. Here moto's RunTask and StopTask
(patched in :mod:`ecscp.local.moto_patches.ecs_task_lifecycle` and
:mod:`~ecscp.local.moto_patches.ecs_stop_task`) call :data:`BACKEND`, which

- emits the task's event (PROVISIONING at RunTask; desired STOPPED at StopTask) and queues a
  :class:`~ecscp.local.ecs.records.TaskNotice` for the local ECS host (:mod:`.host`), which
  long-polls them: the host reacts to RunTask and StopTask, it never lists or describes tasks;
- applies each :class:`~ecscp.local.ecs.records.TaskStateRecord` the host posts to moto's task
  and emits the event from it (:mod:`.events`): each state is recorded once, and DescribeTasks
  and the events are two views of that record.

Where it departs from AWS: events are emitted synchronously, in order, exactly once per change
(EventBridge is at least once and unordered); notices are kept until the host reads past them.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterable
from datetime import datetime, timezone
from typing import Any
from urllib.parse import parse_qs

from pydantic import ValidationError

from .events import put_state_change
from .records import (
    NOTICES,
    NOTICES_PATH,
    RECORDS,
    RECORDS_PATH,
    ContainerOverride,
    TaskNotice,
    TaskStateRecord,
)

#: Longest a notices request waits for the next notice.
MAX_WAIT_SECONDS = 30.0
_TIMES = ("pull_started_at", "pull_stopped_at", "started_at", "stopped_at")


def _time(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, tz=timezone.utc)


def _definition_containers(task: Any) -> list[dict[str, Any]]:
    """The container definitions of the revision ``task`` runs (moto's own record)."""
    try:
        definition = task._backend.describe_task_definition(task.task_definition_arn)
    except Exception:  # noqa: BLE001 - no definition is no reason to lose the notice
        return []
    return list(definition.container_definitions)


def _log_configurations(containers: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Each container's ``logConfiguration``, by container name."""
    return {
        str(c.get("name")): dict(c["logConfiguration"])
        for c in containers
        if isinstance(c.get("logConfiguration"), dict)
    }


def _environments(containers: list[dict[str, Any]]) -> dict[str, dict[str, str]]:
    """Each container's ``environment``, by container name: ECS passes it, under the override's."""
    return {
        str(c.get("name")): {str(e["name"]): str(e.get("value", "")) for e in c.get("environment") or []}
        for c in containers
    }


class LocalEcsBackend:
    """The tasks RunTask created, the notices for the host, and the records applied to them."""

    def __init__(self) -> None:
        #: Held while a task changes (a record, a StopTask), so that each change is whole.
        self.lock = threading.RLock()
        self._changed = threading.Condition(self.lock)
        self.reset()

    def reset(self) -> None:
        """Forget every task and notice (moto's state was reset)."""
        with self.lock:
            self._notices: list[TaskNotice] = []
            self._seq = 0
            self._tasks: dict[str, Any] = {}

    # -- from moto's ECS (patched RunTask / StopTask) -------------------------------------------

    def task_created(self, task: Any) -> None:
        """RunTask created ``task`` (PROVISIONING): its first event, and a notice for the host."""
        with self.lock:
            self._tasks[task.task_arn] = task
            put_state_change(task)
            self._notify(task, "run")

    def stop_requested(self, task: Any) -> None:
        """StopTask set ``task``'s desired status to STOPPED: its event, and a notice."""
        with self.lock:
            put_state_change(task)
            self._notify(task, "stop")

    def _notify(self, task: Any, kind: str) -> None:
        self._seq += 1
        overrides = (task.overrides or {}).get("containerOverrides") or []
        created = getattr(task, "created_at", None)  # set by the lifecycle patch
        containers = _definition_containers(task) if kind == "run" else []
        self._notices.append(
            TaskNotice(
                seq=self._seq,
                kind=kind,
                task_arn=task.task_arn,
                cluster_arn=task.cluster_arn,
                task_definition_arn=task.task_definition_arn or "",
                started_by=task.started_by or "",
                created_at=created.timestamp() if created else time.time(),
                image=next((c.image for c in task.containers if getattr(c, "image", None)), ""),
                overrides=[
                    ContainerOverride(
                        name=o.get("name", ""),
                        command=list(o.get("command") or []),
                        environment={e["name"]: e.get("value", "") for e in o.get("environment") or []},
                    )
                    for o in overrides
                ],
                stopped_reason=task.stopped_reason or "",
                log_configurations=_log_configurations(containers),
                environments=_environments(containers),
                capacity_provider=getattr(task, "capacity_provider_name", None) or "",
            )
        )
        self._changed.notify_all()

    # -- from the host --------------------------------------------------------------------------

    def notices(self, after: int, wait_seconds: float) -> list[TaskNotice]:
        """The notices after ``after`` (those up to it are dropped: the host has them), waiting
        up to ``wait_seconds`` for one."""
        deadline = time.monotonic() + min(max(wait_seconds, 0.0), MAX_WAIT_SECONDS)
        with self._changed:
            self._notices = [n for n in self._notices if n.seq > after]
            while not self._notices and (remaining := deadline - time.monotonic()) > 0:
                self._changed.wait(remaining)
            return list(self._notices)

    def apply(self, record: TaskStateRecord) -> None:
        """Make moto's task say what the host recorded, then emit its event."""
        with self.lock:
            task = self._tasks.get(record.task_arn)
            if task is None:
                raise LookupError(f"no running task {record.task_arn} (unknown, or already STOPPED)")
            # A StopTask moto took before this record wins over the record's code and reason.
            stop_requested = task.desired_status == "STOPPED"
            task._status = record.last_status  # moto's state machine is pinned: only records move it
            if not getattr(task, "connectivity", None):
                task.connectivity, task.connectivity_at = "CONNECTED", _time(time.time())
            for name in _TIMES:
                value = getattr(record, name)
                if value is not None:
                    setattr(task, name, _time(value))
            if record.last_status == "STOPPED":
                task.desired_status = "STOPPED"
                task.execution_stopped_at = task.stopped_at
                if not getattr(task, "stopping_at", None):
                    task.stopping_at = _time(record.stopping_at or time.time())
                if not (stop_requested and task.stop_code):
                    task.stop_code = record.stop_code
                if not (stop_requested and task.stopped_reason):
                    task.stopped_reason = record.stopped_reason or ""
                del self._tasks[task.task_arn]
            for container in task.containers:
                container.last_status = record.container.last_status
                container.exitCode = record.container.exit_code
                container.reason = record.container.reason
            task.version = int(getattr(task, "version", 1)) + 1
            put_state_change(task)


#: The one backend of this moto process.
BACKEND = LocalEcsBackend()


def _respond(start_response: Callable[..., Any], status: str, payload: Any) -> list[bytes]:
    data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(data)))])
    return [data]


def with_host_endpoints(moto_app: Callable[..., Iterable[bytes]]) -> Callable[..., Iterable[bytes]]:
    """A WSGI application serving the host's two private paths and passing the rest to moto."""

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        path, method = environ.get("PATH_INFO"), environ.get("REQUEST_METHOD")
        if path == NOTICES_PATH and method == "GET":
            query = parse_qs(environ.get("QUERY_STRING", ""))
            try:
                after = int(query.get("after", ["0"])[0])
                wait = float(query.get("wait", ["0"])[0])
            except ValueError as exc:
                return _respond(start_response, "400 Bad Request", {"error": str(exc)})
            return _respond(start_response, "200 OK", NOTICES.dump_json(BACKEND.notices(after, wait)))
        if path == RECORDS_PATH and method == "POST":
            length = int(environ.get("CONTENT_LENGTH") or 0)
            try:
                records = RECORDS.validate_json(environ["wsgi.input"].read(length))
                for record in records:
                    BACKEND.apply(record)
            except (LookupError, ValidationError) as exc:
                return _respond(start_response, "400 Bad Request", {"error": str(exc)})
            return _respond(start_response, "200 OK", {"applied": len(records)})
        return moto_app(environ, start_response)

    return app
