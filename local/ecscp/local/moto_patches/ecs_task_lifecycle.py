"""moto's ECS tasks start RUNNING with exit code 0 and advance one state per DescribeTasks.

moto creates a task RUNNING, its containers with exit code 0, and (as released) moves it one
state further on each DescribeTasks. On AWS a task starts in PROVISIONING with ``version`` 1
and ``createdAt``, its containers have no exit code until they exit, and the agent moves it
on. The control plane sees the difference: it takes a RUNNING task for started and a stopped
one with exit code 0 for a success, and the reconciler compares DescribeTasks with the events.

Patched: tasks start PROVISIONING, containers PENDING without an exit code and named after
the task, and moto's state machine is pinned, so a task changes state only when the local ECS
host says so, through a private endpoint (:data:`TASK_UPDATE_PATH`, :func:`update_task`).
"""

# moto is imported lazily: the parent process imports this module only for its names.
# ruff: noqa: PLC0415

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from datetime import datetime, timezone
from typing import Any

from ._replace import replace

#: Private endpoint the local ECS host uses to move a task through its lifecycle in moto.
TASK_UPDATE_PATH = "/_ecscp/ecs/task"
#: Pins moto's ECS task state machine: tasks change state only when the host says so.
PINNED_TRANSITION = {"progression": "manual", "times": 10**12}

_TASK_FIELDS = frozenset(
    {
        "last_status",
        "desired_status",
        "version",
        "stop_code",
        "stopped_reason",
        "connectivity",
        "health_status",
    }
)
_TASK_TIME_FIELDS = frozenset(
    {
        "created_at",
        "started_at",
        "stopping_at",
        "stopped_at",
        "pull_started_at",
        "pull_stopped_at",
        "execution_stopped_at",
        "connectivity_at",
    }
)
_CONTAINER_FIELDS = frozenset({"last_status", "exit_code", "reason"})


def now() -> datetime:
    return datetime.now(timezone.utc)


def find_task(backend: Any, cluster_name: str, task_str: str) -> Any:
    """The task of a cluster named by ARN (or, failing that, by task id); None if there is none."""
    tasks: dict[str, Any] = backend.tasks.get(cluster_name) or {}
    if task_str in tasks:
        return tasks[task_str]
    task_id = task_str.rsplit("/", maxsplit=1)[-1]
    return next((t for arn, t in tasks.items() if arn.split("/")[-1] == task_id), None)


def apply() -> None:
    from moto.ecs import models as ecs_models
    from moto.moto_api import state_manager

    state_manager.set_transition(model_name="ecs::task", transition=PINNED_TRANSITION)

    def make_init(task_init: Callable[..., None]) -> Callable[..., None]:
        def init(self: Any, *args: Any, **kwargs: Any) -> None:
            task_init(self, *args, **kwargs)
            self._status = "PROVISIONING"
            self.version = 1
            self.created_at = now()
            self.stop_code = None
            for container in self.containers:
                # moto names containers after the task definition; ECS after the task.
                container.task_arn = self.task_arn
                container.container_arn = (
                    f"arn:aws:ecs:{self.region_name}:{self._account_id}:container/"
                    f"{self.cluster_name}/{self.id}/{container.container_arn.rsplit('/', 1)[-1]}"
                )
                container.exitCode = None
                container.last_status = "PENDING"

        return init

    replace(ecs_models.Task, "__init__", __name__, make_init)


def _to_time(value: Any) -> datetime | None:
    if value is None:
        return None
    return datetime.fromtimestamp(float(value), tz=timezone.utc)


def update_task(body: dict[str, Any]) -> dict[str, Any]:
    """Apply one lifecycle step the local ECS host decided to a task in moto."""
    from moto.ecs.models import ecs_backends

    backend = ecs_backends[body["account"]][body["region"]]
    cluster = backend._get_cluster(body["cluster"])
    task = find_task(backend, cluster.name, body["taskArn"])
    if task is None:
        raise LookupError(f"no task {body['taskArn']} in cluster {cluster.name}")
    stop_requested = task.desired_status == "STOPPED"
    for name, value in (body.get("task") or {}).items():
        if stop_requested and name in ("desired_status", "stop_code", "stopped_reason", "stopping_at"):
            # A StopTask that arrived after the host's last look wins over what it writes now.
            if name != "desired_status" and value:
                setattr(task, name, _to_time(value) if name == "stopping_at" else value)
            continue
        if name == "version":
            task.version = max(int(value), int(getattr(task, "version", 0)))
        elif name == "last_status":
            task._status = value
        elif name in _TASK_FIELDS:
            setattr(task, name, value)
        elif name in _TASK_TIME_FIELDS:
            setattr(task, name, _to_time(value))
        else:
            raise ValueError(f"unknown task field {name!r}")
    for container in task.containers:
        for name, value in (body.get("container") or {}).items():
            if name not in _CONTAINER_FIELDS:
                raise ValueError(f"unknown container field {name!r}")
            setattr(container, "exitCode" if name == "exit_code" else name, value)
    return {"taskArn": task.task_arn, "lastStatus": task.last_status, "version": task.version}


def with_task_update_endpoint(
    moto_app: Callable[..., Iterable[bytes]],
) -> Callable[..., Iterable[bytes]]:
    """A WSGI application serving :data:`TASK_UPDATE_PATH` and passing the rest to ``moto_app``."""

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if environ.get("PATH_INFO") == TASK_UPDATE_PATH and environ.get("REQUEST_METHOD") == "POST":
            length = int(environ.get("CONTENT_LENGTH") or 0)
            try:
                result = update_task(json.loads(environ["wsgi.input"].read(length)))
                status, payload = "200 OK", result
            except (LookupError, ValueError, KeyError) as exc:
                status, payload = "400 Bad Request", {"error": str(exc)}
            data = json.dumps(payload).encode()
            start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(data)))])
            return [data]
        return moto_app(environ, start_response)

    return app
