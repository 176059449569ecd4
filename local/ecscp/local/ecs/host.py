"""The local ECS container host: runs the tasks RunTask starts in moto, as Fargate would.

It reacts to RunTask and StopTask (the notices moto's ECS queues, :mod:`.backend`, which the
host long-polls: it never lists or describes tasks) and to its containers' exits. A task's Airflow
container is the one whose override carries the task key (the queue profile's container), else
the configured ``container_name``. For each task it records PENDING (pulling), RUNNING (the
override's command runs, with the task definition's environment under the override's,
:mod:`.containers`; the image is never run) and STOPPED, each change once, as a
:class:`~.records.TaskStateRecord` that moto applies and turns into the ``ECS Task State Change``
event. PROVISIONING and the desired-STOPPED change are moto's own, as on AWS.

StopTask stops the container's process group with SIGTERM, then SIGKILL after the grace period;
the task ends with ``stopCode`` UserInitiated and the container's exit code.

Fault injection, in the container override's environment: ``ECSCP_LOCAL_FAIL_STARTS=<n>`` fails
the first ``n`` starts of that task key as ECS does when it cannot pull the image (PENDING, then
STOPPED with ``stopCode`` TaskFailedToStart, no ``startedAt``, no exit code);
``ECSCP_LOCAL_SPOT_UNAVAILABLE=<n>`` stops its first ``n`` starts placed on FARGATE_SPOT as when
Fargate reclaims Spot capacity (``stopCode`` SpotInterruption, "Your Spot Task was interrupted.",
no ``startedAt``); starts on other capacity run as usual.

At most ``max_concurrent`` containers run at once; the others wait in PENDING, as tasks wait
for capacity on a busy cluster. The workload command is never logged (it carries a token).

Logs: each container's output goes to ``tasks/<n>/container.log`` and, if its task definition
gives it ``awslogs`` (the notice says), to that stream as it runs (:mod:`.awslogs`, batched, about
a second behind); its last lines are sent before the task is recorded STOPPED.
"""

from __future__ import annotations

import collections
import logging
import queue
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from ecs_control_plane.contract import ATTEMPT_ENV, TASK_KEY_ENV
from ecs_control_plane.log_location import awslogs_location
from ecscp.local.endpoint import PrivatePath
from ecscp.local.processes import signal_group, terminate_tree

from .awslogs import AwsLogsDriver
from .containers import (
    ContainerStartError,
    container_environment,
    exit_code_of,
    start_container,
    write_identity,
)
from .profiles import SPOT
from .records import NOTICES, NOTICES_PATH, RECORDS, RECORDS_PATH, ContainerState, TaskNotice, TaskStateRecord
from .task import LocalTask

if TYPE_CHECKING:
    from .records import ContainerOverride

logger = logging.getLogger(__name__)

FAIL_STARTS_ENV = "ECSCP_LOCAL_FAIL_STARTS"
INJECTED_PULL_ERROR = (
    "CannotPullContainerError: pull image manifest has been retried 1 time(s): failed to resolve ref "
    "{image}: not found (injected by ECSCP_LOCAL_FAIL_STARTS)"
)
SPOT_UNAVAILABLE_ENV = "ECSCP_LOCAL_SPOT_UNAVAILABLE"
#: ECS's stoppedReason for a Fargate Spot task whose capacity was reclaimed.
SPOT_INTERRUPTED = "Your Spot Task was interrupted."
ESSENTIAL_EXITED = "Essential container in task exited"
#: How long one notices request waits in moto for the next RunTask or StopTask.
NOTICE_WAIT_SECONDS = 5.0
#: How long an exited container's output may take to end (a child still holding it open).
OUTPUT_DRAIN_SECONDS = 5.0


@dataclass(frozen=True)
class _Exited:
    task: LocalTask
    returncode: int


class EcsHost:
    """Plays the Fargate side of ECS for one local cluster; two threads of the stack's process."""

    def __init__(
        self,
        *,
        endpoint_url: str,
        region: str,
        cluster: str,
        container_name: str,
        state_dir: Path,
        task_env: dict[str, str],
        started_by: str | None = None,
        max_concurrent: int = 8,
        stop_grace_seconds: float = 10.0,
    ) -> None:
        self.endpoint_url = endpoint_url
        self.region = region
        self.cluster = cluster
        self.container_name = container_name
        self.tasks_dir = state_dir / "tasks"
        self.task_env = dict(task_env)
        self.started_by = started_by
        self.max_concurrent = max(1, max_concurrent)
        self.stop_grace_seconds = stop_grace_seconds
        self.error: BaseException | None = None
        #: Notices and container exits, in arrival order; None only wakes the loop (at stop).
        self._inbox: queue.Queue[TaskNotice | _Exited | None] = queue.Queue()
        self._outbox: list[TaskStateRecord] = []
        self._lock = threading.Lock()
        self._tasks: dict[str, LocalTask] = {}
        self._pending: collections.deque[LocalTask] = collections.deque()
        self._starts: collections.Counter[str] = collections.Counter()
        self._spot_starts: collections.Counter[str] = collections.Counter()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._first_number = 1
        self.awslogs = AwsLogsDriver(endpoint_url)

    # -- public ---------------------------------------------------------------------------------

    def start(self) -> None:
        self.tasks_dir.mkdir(parents=True, exist_ok=True)
        # A reused state directory keeps the earlier runs' task directories; number after them.
        self._first_number = 1 + max(
            (int(d.name) for d in self.tasks_dir.iterdir() if d.name.isdigit()), default=0
        )
        for target, name in ((self._listen, "ecscp-local-ecs-notices"), (self._run, "ecscp-local-ecs")):
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)
        self.awslogs.start()

    def stop(self) -> None:
        """Stop reacting and kill every container's process tree; idempotent."""
        self._stop.set()
        self._inbox.put_nowait(None)
        for thread in self._threads:
            if thread is not threading.current_thread():
                thread.join(timeout=30 if thread.name == "ecscp-local-ecs" else 0.2)
        with self._lock:
            running = [t for t in self._tasks.values() if t.process is not None and t.process.poll() is None]
        for task in running:
            terminate_tree(task.process.pid, grace_seconds=3)
        with self._lock:
            outputs = [t.output for t in self._tasks.values() if t.output is not None]
        for output in outputs:
            output.wait(timeout=1)
        self.awslogs.stop()

    def start_attempts(self) -> dict[str, int]:
        with self._lock:
            return dict(self._starts)

    def task_records(self) -> list[dict[str, Any]]:
        with self._lock:
            return [t.summary() for t in sorted(self._tasks.values(), key=lambda t: t.number)]

    def process_ids(self) -> list[int]:
        with self._lock:
            return [t.process.pid for t in self._tasks.values() if t.process is not None]

    # -- threads --------------------------------------------------------------------------------

    def _listen(self) -> None:
        """Long-poll moto for RunTask/StopTask notices and hand them to :meth:`_run`, in order."""
        channel = PrivatePath(self.endpoint_url, timeout=NOTICE_WAIT_SECONDS + 30)
        after = 0
        while not self._stop.is_set():
            query = urlencode({"after": after, "wait": NOTICE_WAIT_SECONDS})
            try:
                notices = NOTICES.validate_json(channel.request("GET", f"{NOTICES_PATH}?{query}"))
            except Exception as exc:  # noqa: BLE001 - moto going away at shutdown, or a bug: say it, retry
                if self._stop.is_set():
                    break
                logger.warning("local ECS host: reading notices failed: %s", exc)
                self.error = exc
                self._stop.wait(0.5)
                continue
            for notice in notices:
                self._inbox.put(notice)
                after = notice.seq
        channel.close()

    def _run(self) -> None:
        """Handle notices and container exits as they come; post the records they make."""
        channel = PrivatePath(self.endpoint_url)
        while not self._stop.is_set():
            try:
                try:
                    self._handle(self._inbox.get(timeout=self._seconds_to_next_deadline()))
                    while True:  # everything that arrived meanwhile, then one post
                        self._handle(self._inbox.get_nowait())
                except queue.Empty:
                    pass
                self._kill_overdue()
                self._launch()
            except Exception as exc:  # keep the host alive; say why in the log
                logger.exception("local ECS host step failed")
                self.error = exc
            finally:
                if self._outbox:
                    records, self._outbox = self._outbox, []
                    try:
                        channel.request("POST", RECORDS_PATH, RECORDS.dump_json(records))
                    except Exception as exc:
                        logger.exception("local ECS host: moto refused %d task state record(s)", len(records))
                        self.error = exc
        channel.close()

    def _seconds_to_next_deadline(self) -> float:
        deadlines = [t.stop_deadline for t in self._tasks.values() if t.stop_deadline and not t.killed]
        return max(0.0, min(deadlines) - time.time()) if deadlines else 1.0

    def _handle(self, item: TaskNotice | _Exited | None) -> None:
        if item is None:
            return
        if isinstance(item, _Exited):
            self._exited(item.task, item.returncode)
        elif item.kind == "run":
            self._admit(item)
        else:
            self._stop_requested(item)

    # -- one task -------------------------------------------------------------------------------

    def _mine(self, notice: TaskNotice) -> bool:
        cluster = notice.cluster_arn
        in_cluster = cluster == self.cluster or cluster.endswith(f":cluster/{self.cluster}")
        return in_cluster and (not self.started_by or notice.started_by == self.started_by)

    def _admit(self, notice: TaskNotice) -> None:
        if not self._mine(notice) or notice.task_arn in self._tasks:
            return
        override = _airflow_override(notice, self.container_name)
        container = override.name if override else self.container_name
        # As ECS: the task definition's environment, then the override's over it.
        environment = notice.environments.get(container, {}) | (override.environment if override else {})
        key = environment.get(TASK_KEY_ENV)
        attempt_text = environment.get(ATTEMPT_ENV, "")
        logs = notice.log_configurations.get(container)
        with self._lock:
            task = LocalTask(
                number=self._first_number + len(self._tasks),
                arn=notice.task_arn,
                cluster_arn=notice.cluster_arn,
                task_definition_arn=notice.task_definition_arn,
                container_name=container,
                capacity_provider=notice.capacity_provider or None,
                key=key,
                attempt=int(attempt_text) if attempt_text.isdigit() else None,
                created_at=notice.created_at,
                image=notice.image or "image",
                command=list(override.command) if override else [],
                environment=environment,
                log_location=awslogs_location(logs, container, notice.task_arn, self.region),
            )
            self._tasks[task.arn] = task
            self._starts[key or task.arn] += 1
            task.fail_start = self._starts[key or task.arn] <= _int(environment.get(FAIL_STARTS_ENV))
            if task.capacity_provider == SPOT:
                self._spot_starts[key or task.arn] += 1
                spot_unavailable = _int(environment.get(SPOT_UNAVAILABLE_ENV))
                task.spot_interrupted = self._spot_starts[key or task.arn] <= spot_unavailable
        write_identity(self.tasks_dir / str(task.number), task.identity())
        placed = f"container {container}, capacity provider {task.capacity_provider}"
        logger.info("ECS task %s admitted (key %s, attempt %s, %s)", task.arn, key, task.attempt, placed)
        if task.spot_interrupted:  # reclaimed before its image was pulled
            self._record(task, "PENDING")
            self._end(task, "SpotInterruption", SPOT_INTERRUPTED)
            return
        self._record(task, "PENDING", pull_started_at=time.time())
        if task.fail_start:
            reason = INJECTED_PULL_ERROR.format(image=task.image)
            self._end(task, "TaskFailedToStart", reason, container_reason=reason)
            return
        self._pending.append(task)

    def _stop_requested(self, notice: TaskNotice) -> None:
        task = self._tasks.get(notice.task_arn)
        if task is None or task.last_status == "STOPPED" or task.stop_deadline is not None:
            return
        task.stopped_reason = notice.stopped_reason or "Task stopped by user"
        task.stopping_at = time.time()
        if task.process is None:  # still waiting for capacity: it never runs
            if task in self._pending:
                self._pending.remove(task)
            self._end(task, "UserInitiated", task.stopped_reason)
            return
        logger.info("ECS task %s: StopTask, stopping its container", task.arn)
        task.stop_deadline = time.time() + self.stop_grace_seconds
        signal_group(task.process.pid)

    def _exited(self, task: LocalTask, returncode: int) -> None:
        if task.last_status == "STOPPED":
            return
        if task.stop_deadline is not None:
            self._end(task, "UserInitiated", task.stopped_reason, exit_code=exit_code_of(returncode))
        else:
            self._end(task, "EssentialContainerExited", ESSENTIAL_EXITED, exit_code=exit_code_of(returncode))

    def _kill_overdue(self) -> None:
        now = time.time()
        for task in list(self._tasks.values()):
            overdue = task.stop_deadline is not None and not task.killed and now >= task.stop_deadline
            if overdue and task.process is not None and task.process.poll() is None:
                task.killed = True
                terminate_tree(task.process.pid, grace_seconds=0)

    def _launch(self) -> None:
        running = sum(1 for t in self._tasks.values() if t.last_status == "RUNNING")
        while running < self.max_concurrent and self._pending:
            if self._spawn(self._pending.popleft()):
                running += 1

    def _spawn(self, task: LocalTask) -> bool:
        now = time.time()
        location = task.log_location
        try:
            task.process, task.output = start_container(
                self.tasks_dir / str(task.number),
                task.command,
                container_environment(self.region, self.task_env, task.environment),
                sink=self.awslogs.open(location) if location else None,
                on_output_end=(lambda: self.awslogs.close(location)) if location else lambda: None,
            )
        except ContainerStartError as exc:
            self._end(task, "TaskFailedToStart", str(exc), container_reason=str(exc), pull_stopped_at=now)
            return False
        task.started_at = now
        self._record(task, "RUNNING", pull_stopped_at=now, started_at=now)
        name = f"ecscp-local-container-{task.number}"
        threading.Thread(target=self._watch, args=(task,), name=name, daemon=True).start()
        return True

    def _watch(self, task: LocalTask) -> None:
        """Wait for the container's exit, then for its output (log file and stream complete)."""
        returncode = task.process.wait()
        if task.output is not None:
            task.output.wait(OUTPUT_DRAIN_SECONDS)
        self._inbox.put(_Exited(task, returncode))

    def _end(
        self,
        task: LocalTask,
        stop_code: str,
        reason: str | None,
        *,
        exit_code: int | None = None,
        container_reason: str | None = None,
        pull_stopped_at: float | None = None,
    ) -> None:
        task.stop_code, task.stopped_reason, task.exit_code = stop_code, reason, exit_code
        task.stopped_at = time.time()
        self._record(
            task,
            "STOPPED",
            container=ContainerState(last_status="STOPPED", exit_code=exit_code, reason=container_reason),
            stop_code=stop_code,
            stopped_reason=reason,
            stopping_at=task.stopping_at or task.stopped_at,
            stopped_at=task.stopped_at,
            pull_stopped_at=pull_stopped_at,
        )
        logger.info("ECS task %s stopped (%s, exit code %s)", task.arn, stop_code, exit_code)

    def _record(
        self, task: LocalTask, last_status: str, container: ContainerState | None = None, **fields: Any
    ) -> None:
        """The one record of this change; moto applies it and emits its event."""
        with self._lock:
            task.last_status = last_status
        self._outbox.append(
            TaskStateRecord(
                task_arn=task.arn,
                last_status=last_status,
                container=container or ContainerState(last_status=last_status),
                **fields,
            )
        )


def _airflow_override(notice: TaskNotice, container_name: str) -> ContainerOverride | None:
    """The override of the task's Airflow container: the one carrying the task key (the queue
    profile's container), else the configured container's; None if neither is there."""
    keyed = next((o for o in notice.overrides if TASK_KEY_ENV in o.environment), None)
    return keyed or next((o for o in notice.overrides if o.name == container_name), None)


def _int(value: str | None) -> int:
    try:
        return int(value or 0)
    except ValueError:
        return 0
