"""The local ECS container host: runs the tasks started in moto as local processes.

For every task that the control plane starts in the local cluster, it plays what ECS and
Fargate do: it moves the task through PROVISIONING -> PENDING -> RUNNING -> STOPPED, runs the
Airflow container's command (the task's ``command`` override) as a process in its own process
group with the override's environment, and emits an ``ECS Task State Change`` event for every
change, shaped like the real one (increasing ``version``, ``stopCode``, container exit code).
moto's copy of the task is moved along through the local endpoint's task-update path, so
DescribeTasks always agrees with the events.

StopTask (``desiredStatus`` STOPPED) stops the process group with SIGTERM, then SIGKILL after a
grace period, and ends with ``stopCode`` UserInitiated.

Fault injection: ``ECSCP_LOCAL_FAIL_STARTS=<n>`` in the container overrides' environment makes
the first ``n`` starts of that task key fail as ECS fails them when it cannot pull the image:
PROVISIONING, PENDING, then STOPPED with ``stopCode`` TaskFailedToStart, no ``startedAt`` and
no container exit code.

At most ``max_concurrent`` containers run at once; the others wait in PENDING, as tasks wait
for capacity on a busy cluster. The workload command is never logged (it carries a token).
"""

from __future__ import annotations

import collections
import contextlib
import http.client
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import IO, Any
from urllib.parse import urlsplit

from ecs_control_plane.contract import ATTEMPT_ENV, TASK_KEY_ENV

from .endpoint import aws_client
from .moto_patches.ecs_task_lifecycle import TASK_UPDATE_PATH
from .processes import host_environment, terminate_tree
from .timestamps import iso_millis

logger = logging.getLogger(__name__)

FAIL_STARTS_ENV = "ECSCP_LOCAL_FAIL_STARTS"
INJECTED_PULL_ERROR = (
    "CannotPullContainerError: pull image manifest has been retried 1 time(s): failed to resolve ref "
    "{image}: not found (injected by ECSCP_LOCAL_FAIL_STARTS)"
)
ESSENTIAL_EXITED = "Essential container in task exited"
DETAIL_TYPE = "ECS Task State Change"
#: Every this many polls the host lists stopped tasks too (ListTasks is a scan in moto).
FULL_SCAN_EVERY_TICKS = 25


def exit_code_of(returncode: int) -> int:
    """A process return code as a container exit code (killed by signal N -> 128 + N)."""
    return 128 - returncode if returncode < 0 else returncode


@dataclass
class LocalTask:
    """One ECS task as the local container host sees it."""

    number: int
    arn: str
    key: str | None
    attempt: int | None
    base: dict[str, Any]
    command: list[str] = field(repr=False)
    environment: dict[str, str] = field(repr=False)
    fail_start: bool = False
    last_status: str = "PROVISIONING"
    desired_status: str = "RUNNING"
    version: int = 1
    created_at: float = field(default_factory=time.time)
    pull_started_at: float | None = None
    pull_stopped_at: float | None = None
    started_at: float | None = None
    stopping_at: float | None = None
    stopped_at: float | None = None
    stop_code: str | None = None
    stopped_reason: str | None = None
    exit_code: int | None = None
    container_status: str = "PENDING"
    container_reason: str | None = None
    process: subprocess.Popen[bytes] | None = None
    log_file: IO[bytes] | None = None
    stop_deadline: float | None = None
    killed: bool = False

    def record(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "attempt": self.attempt,
            "task_arn": self.arn,
            "last_status": self.last_status,
            "exit_code": self.exit_code,
            "stop_code": self.stop_code,
            "stopped_reason": self.stopped_reason,
            "created_at": self.created_at,
            "started_at": self.started_at,
            "stopped_at": self.stopped_at,
        }


class EcsRunner:
    """Plays ECS for the local cluster; runs in a thread of the stack's process."""

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
        poll_seconds: float = 0.2,
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
        self.poll_seconds = poll_seconds
        self._ecs = aws_client("ecs", endpoint_url, region)
        self._events = aws_client("events", endpoint_url, region)
        self._ec2 = aws_client("ec2", endpoint_url, region)
        self._definitions: dict[str, dict[str, Any]] = {}
        self._zones: dict[str, str] = {}
        self._moto_api = _TaskUpdateClient(endpoint_url)
        self._lock = threading.Lock()
        self._tasks: dict[str, LocalTask] = {}
        self._pending: collections.deque[LocalTask] = collections.deque()
        self._starts: collections.Counter[str] = collections.Counter()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._account = ""
        self._ticks = 0
        self._outbox: list[dict[str, Any]] = []
        self._first_number = 1
        self.error: BaseException | None = None

    # -- public ---------------------------------------------------------------------------------

    def start(self) -> None:
        self.tasks_dir.mkdir(parents=True, exist_ok=True)
        # A reused state directory keeps the earlier runs' task directories; number after them.
        self._first_number = 1 + max(
            (int(d.name) for d in self.tasks_dir.iterdir() if d.name.isdigit()), default=0
        )
        self._thread = threading.Thread(target=self._run, name="ecscp-local-ecs", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop polling and kill every container process tree; idempotent."""
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=30)
        with self._lock:
            running = [t for t in self._tasks.values() if t.process is not None and t.process.poll() is None]
        for task in running:
            assert task.process is not None
            terminate_tree(task.process.pid, grace_seconds=3)
        with self._lock:
            for task in self._tasks.values():
                if task.process is not None:
                    task.process.poll()
                if task.log_file is not None and not task.log_file.closed:
                    task.log_file.close()
        self._moto_api.close()

    def start_attempts(self) -> dict[str, int]:
        with self._lock:
            return dict(self._starts)

    def task_records(self) -> list[dict[str, Any]]:
        with self._lock:
            return [t.record() for t in sorted(self._tasks.values(), key=lambda t: t.number)]

    def process_ids(self) -> list[int]:
        with self._lock:
            return [t.process.pid for t in self._tasks.values() if t.process is not None]

    # -- loop -----------------------------------------------------------------------------------

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._tick()
            except Exception as exc:  # keep the host alive; say why in the log
                logger.exception("local ECS runner step failed")
                self.error = exc
            self._stop.wait(self.poll_seconds)

    def _tick(self) -> None:
        self._ticks += 1
        try:
            # New tasks want to run; a task stopped before the host saw it is found by the full scan.
            everything = self._ticks % FULL_SCAN_EVERY_TICKS == 0
            listed = self._discover(everything=everything)
            # Between full scans, a task the host runs that ListTasks no longer shows as desired
            # RUNNING had StopTask called: only those are described (not every active task).
            self._follow_stop_requests(running=None if everything else listed)
            self._reap()
            self._launch()
        finally:
            self._flush_events()

    def _discover(self, *, everything: bool) -> set[str]:
        """Admit the tasks the host has not seen yet; return the ARNs ListTasks returned."""
        kwargs: dict[str, Any] = {"cluster": self.cluster}
        if not everything:
            kwargs["desiredStatus"] = "RUNNING"
        if self.started_by:
            kwargs["startedBy"] = self.started_by
        arns: list[str] = []
        for page in self._ecs.get_paginator("list_tasks").paginate(**kwargs):
            arns.extend(page.get("taskArns", []))
        new = [a for a in arns if a not in self._tasks]
        for start in range(0, len(new), 100):
            described = self._ecs.describe_tasks(cluster=self.cluster, tasks=new[start : start + 100])
            for raw in described.get("tasks", []):
                self._admit(raw)
        return set(arns)

    def _admit(self, raw: dict[str, Any]) -> None:
        override: dict[str, Any] = next(
            (
                c
                for c in (raw.get("overrides") or {}).get("containerOverrides", [])
                if c.get("name") == self.container_name
            ),
            {},
        )
        environment = {kv["name"]: kv.get("value", "") for kv in override.get("environment", [])}
        key = environment.get(TASK_KEY_ENV)
        attempt_text = environment.get(ATTEMPT_ENV, "")
        self._account = raw["taskArn"].split(":")[4]
        base = self._static_fields(raw)
        with self._lock:
            task = LocalTask(
                number=self._first_number + len(self._tasks),
                arn=raw["taskArn"],
                key=key,
                attempt=int(attempt_text) if attempt_text.isdigit() else None,
                base=base,
                command=list(override.get("command") or []),
                environment=environment,
                version=int(raw.get("version") or 1),
            )
            created = raw.get("createdAt")
            if isinstance(created, datetime):
                task.created_at = created.timestamp()
            stopped_already = raw.get("lastStatus") == "STOPPED" or raw.get("desiredStatus") == "STOPPED"
            if stopped_already:
                # Stopped before the host saw it: nothing to run, but say how it ended.
                task.desired_status = "STOPPED"
                task.stop_code = raw.get("stopCode") or "UserInitiated"
                task.stopped_reason = raw.get("stoppedReason") or "Task stopped by user"
            self._tasks[task.arn] = task
            self._starts[key or task.arn] += 1
            fail_budget = _int(environment.get(FAIL_STARTS_ENV))
            task.fail_start = self._starts[key or task.arn] <= fail_budget
        if stopped_already:
            self._emit(task)
            self._finish(task, exit_code=None)
            return
        logger.info("ECS task %s admitted (key %s, attempt %s)", task.arn, key, task.attempt)
        self._emit(task)  # PROVISIONING, as created
        self._transition(task, last_status="PENDING", pull_started_at=time.time())
        if task.fail_start:
            image = next((c.get("image") for c in task.base.get("containers", [])), "image")
            task.container_reason = INJECTED_PULL_ERROR.format(image=image)
            self._end(task, stop_code="TaskFailedToStart", reason=task.container_reason, exit_code=None)
            return
        with self._lock:
            self._pending.append(task)

    def _follow_stop_requests(self, *, running: set[str] | None) -> None:
        """Stop the tasks StopTask was called for; ``running``: ARNs listed as desired RUNNING."""
        with self._lock:
            active = [
                t.arn
                for t in self._tasks.values()
                if t.last_status != "STOPPED"
                and t.stop_deadline is None
                and (running is None or t.arn not in running)
            ]
        for start in range(0, len(active), 100):
            described = self._ecs.describe_tasks(cluster=self.cluster, tasks=active[start : start + 100])
            for raw in described.get("tasks", []):
                if raw.get("desiredStatus") != "STOPPED":
                    continue
                task = self._tasks[raw["taskArn"]]
                task.version = max(task.version, int(raw.get("version") or 0))
                task.desired_status = "STOPPED"
                task.stopping_at = time.time()
                task.stop_code = "UserInitiated"
                task.stopped_reason = raw.get("stoppedReason") or "Task stopped by user"
                with self._lock:
                    queued = task in self._pending
                    if queued:
                        self._pending.remove(task)
                if queued or task.process is None:
                    self._end(task, stop_code="UserInitiated", reason=task.stopped_reason, exit_code=None)
                    continue
                logger.info("ECS task %s: StopTask, stopping its container", task.arn)
                self._emit(task)  # RUNNING, desired STOPPED
                task.stop_deadline = time.time() + self.stop_grace_seconds
                _signal_group(task.process.pid, signal.SIGTERM)

    def _reap(self) -> None:
        with self._lock:
            running = [
                t for t in self._tasks.values() if t.process is not None and t.last_status == "RUNNING"
            ]
        for task in running:
            assert task.process is not None
            code = task.process.poll()
            if code is None:
                if task.stop_deadline is not None and time.time() >= task.stop_deadline and not task.killed:
                    task.killed = True
                    terminate_tree(task.process.pid, grace_seconds=0)
                continue
            if task.stop_deadline is not None:
                self._end(
                    task, stop_code="UserInitiated", reason=task.stopped_reason, exit_code=exit_code_of(code)
                )
            else:
                self._end(
                    task,
                    stop_code="EssentialContainerExited",
                    reason=ESSENTIAL_EXITED,
                    exit_code=exit_code_of(code),
                )

    def _launch(self) -> None:
        while True:
            with self._lock:
                running = sum(
                    1 for t in self._tasks.values() if t.process is not None and t.last_status == "RUNNING"
                )
                if running >= self.max_concurrent or not self._pending:
                    return
                task = self._pending.popleft()
            self._spawn(task)

    def _static_fields(self, raw: dict[str, Any]) -> dict[str, Any]:
        """The parts of a task that do not change over its life, as an event detail carries them."""
        keep = (
            "attachments",
            "clusterArn",
            "taskArn",
            "taskDefinitionArn",
            "group",
            "launchType",
            "platformVersion",
            "startedBy",
            "overrides",
            "cpu",
            "memory",
            "tags",
            "availabilityZone",
            "capacityProviderName",
        )
        base = {k: raw[k] for k in keep if raw.get(k) not in (None, "", [])}
        base.setdefault("overrides", {"containerOverrides": []})
        # moto leaves out what ECS reports from the task definition and the subnet.
        definition = self._definition(str(raw.get("taskDefinitionArn", "")))
        for name in ("cpu", "memory"):
            if definition.get(name) and name not in base:
                base[name] = definition[name]
        zone = self._zone(raw)
        if zone:
            base["availabilityZone"] = zone
        base["containers"] = [
            {
                k: c[k]
                for k in ("containerArn", "name", "image", "taskArn", "cpu", "memory", "networkInterfaces")
                if k in c
            }
            for c in raw.get("containers", [])
        ]
        base["connectivity"] = "CONNECTED"
        return json.loads(json.dumps(base, default=str))  # type: ignore[no-any-return]

    def _definition(self, arn: str) -> dict[str, Any]:
        if arn and arn not in self._definitions:
            described = self._ecs.describe_task_definition(taskDefinition=arn)["taskDefinition"]
            self._definitions[arn] = dict(described)
        return self._definitions.get(arn, {})

    def _zone(self, raw: dict[str, Any]) -> str | None:
        details = [d for a in raw.get("attachments", []) for d in a.get("details", [])]
        subnet = next((d["value"] for d in details if d.get("name") == "subnetId"), None)
        if subnet and subnet not in self._zones:
            subnets = self._ec2.describe_subnets(SubnetIds=[subnet]).get("Subnets", [])
            self._zones[subnet] = subnets[0]["AvailabilityZone"] if subnets else ""
        return self._zones.get(subnet or "") or None

    # -- one task -------------------------------------------------------------------------------

    def _spawn(self, task: LocalTask) -> None:
        workdir = self.tasks_dir / str(task.number)
        workdir.mkdir(parents=True, exist_ok=True)
        task.pull_stopped_at = time.time()
        if not task.command:
            task.container_reason = "CannotStartContainerError: the task has no command override"
            self._end(task, stop_code="TaskFailedToStart", reason=task.container_reason, exit_code=None)
            return
        task.log_file = (workdir / "container.log").open("ab")
        (workdir / "task.json").write_text(
            json.dumps({"task_arn": task.arn, "key": task.key, "attempt": task.attempt}, indent=1)
        )
        try:
            task.process = subprocess.Popen(
                task.command,
                cwd=workdir,
                env=self._container_env(task),
                stdin=subprocess.DEVNULL,
                stdout=task.log_file,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        except OSError as exc:
            task.container_reason = f"CannotStartContainerError: {type(exc).__name__}: {exc.strerror}"
            self._end(task, stop_code="TaskFailedToStart", reason=task.container_reason, exit_code=None)
            return
        task.container_status = "RUNNING"
        self._transition(task, last_status="RUNNING", started_at=time.time())

    def _container_env(self, task: LocalTask) -> dict[str, str]:
        bin_dir = str(Path(sys.executable).parent)
        env = host_environment()
        env["PATH"] = os.pathsep.join([bin_dir, os.environ.get("PATH", os.defpath)])
        env.update(
            {
                "AWS_EXECUTION_ENV": "AWS_ECS_FARGATE",
                "AWS_REGION": self.region,
                "AWS_DEFAULT_REGION": self.region,
            }
        )
        env.update(self.task_env)
        env.update(task.environment)
        return env

    def _transition(self, task: LocalTask, *, last_status: str, **times: float) -> None:
        for name, value in times.items():
            setattr(task, name, value)
        task.last_status = last_status
        task.version += 1
        self._sync(task)
        self._emit(task)

    def _end(self, task: LocalTask, *, stop_code: str, reason: str | None, exit_code: int | None) -> None:
        now = time.time()
        task.desired_status = "STOPPED"
        task.stopping_at = task.stopping_at or now
        task.stop_code = stop_code
        task.stopped_reason = reason
        task.container_status = "STOPPED"
        self._finish(task, exit_code=exit_code)

    def _finish(self, task: LocalTask, *, exit_code: int | None) -> None:
        task.exit_code = exit_code
        task.container_status = "STOPPED"
        if task.log_file is not None:
            task.log_file.close()
        self._transition(task, last_status="STOPPED", stopped_at=time.time())
        logger.info("ECS task %s stopped (%s, exit code %s)", task.arn, task.stop_code, exit_code)

    def _sync(self, task: LocalTask) -> None:
        """Make moto's copy of the task say what the host did."""
        body = {
            "account": self._account,
            "region": self.region,
            "cluster": self.cluster,
            "taskArn": task.arn,
            "task": {
                "last_status": task.last_status,
                "desired_status": task.desired_status,
                "version": task.version,
                "stop_code": task.stop_code,
                "stopped_reason": task.stopped_reason or "",
                "created_at": task.created_at,
                "pull_started_at": task.pull_started_at,
                "pull_stopped_at": task.pull_stopped_at,
                "started_at": task.started_at,
                "stopping_at": task.stopping_at,
                "stopped_at": task.stopped_at,
                "execution_stopped_at": task.stopped_at,
            },
            "container": {
                "last_status": task.container_status,
                "exit_code": task.exit_code,
                "reason": task.container_reason,
            },
        }
        self._moto_api.post(body)

    def _emit(self, task: LocalTask) -> None:
        detail = dict(task.base)
        detail.update(
            {
                "lastStatus": task.last_status,
                "desiredStatus": task.desired_status,
                "version": task.version,
                "createdAt": iso_millis(task.created_at),
                "updatedAt": iso_millis(time.time()),
            }
        )
        for name, value in (
            ("pullStartedAt", task.pull_started_at),
            ("pullStoppedAt", task.pull_stopped_at),
            ("startedAt", task.started_at),
            ("stoppingAt", task.stopping_at),
            ("stoppedAt", task.stopped_at),
            ("executionStoppedAt", task.stopped_at),
        ):
            if value is not None:
                detail[name] = iso_millis(value)
        if task.stop_code:
            detail["stopCode"] = task.stop_code
        if task.stopped_reason:
            detail["stoppedReason"] = task.stopped_reason
        containers = []
        for container in task.base.get("containers", []):
            entry = dict(container, lastStatus=task.container_status)
            if task.exit_code is not None:
                entry["exitCode"] = task.exit_code
            if task.container_reason:
                entry["reason"] = task.container_reason
            containers.append(entry)
        detail["containers"] = containers
        self._outbox.append(
            {
                "Source": "aws.ecs",
                "DetailType": DETAIL_TYPE,
                "Detail": json.dumps(detail, default=str),
                "Resources": [task.arn],
            }
        )

    def _flush_events(self) -> None:
        """Put the step's events, in order, ten to a PutEvents call (one call per event was most
        of the host's load on moto)."""
        while self._outbox:
            entries, self._outbox = self._outbox[:10], self._outbox[10:]
            response = self._events.put_events(Entries=entries)
            if response.get("FailedEntryCount"):
                raise RuntimeError(f"ECS events not accepted: {response['Entries']}")


def _int(value: str | None) -> int:
    try:
        return int(value or 0)
    except ValueError:
        return 0


def _signal_group(pid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(os.getpgid(pid), signum)


class _TaskUpdateClient:
    """A kept-alive connection to the local endpoint's task-update path."""

    def __init__(self, endpoint_url: str) -> None:
        parts = urlsplit(endpoint_url)
        self._host = parts.hostname or "127.0.0.1"
        self._port = parts.port or 80
        self._connection: http.client.HTTPConnection | None = None

    def post(self, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        for retry in (False, True):
            if self._connection is None:
                self._connection = http.client.HTTPConnection(self._host, self._port, timeout=30)
            try:
                self._connection.request(
                    "POST", TASK_UPDATE_PATH, body=data, headers={"Content-Type": "application/json"}
                )
                response = self._connection.getresponse()
                text = response.read().decode(errors="replace")
            except (OSError, http.client.HTTPException):
                self.close()
                if retry:
                    raise
                continue
            if response.status != 200:
                raise RuntimeError(f"task update refused ({response.status}): {text}")
            return

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None
