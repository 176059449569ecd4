"""``EcsControlPlaneExecutor``: hands Airflow workloads to the ECS control plane.

The scheduler loop does two cheap things: on each heartbeat it sends the buffered run requests
to SQS (ten per call) and reads from the state table only the items that changed for its owner.
Starting, retrying and watching ECS tasks happens in the control plane's Lambda functions.
"""

from __future__ import annotations

import os
import socket
import time
import uuid
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow.executors.base_executor import BaseExecutor
from airflow.models.taskinstancekey import TaskInstanceKey
from airflow.sdk.exceptions import AirflowException
from botocore.exceptions import BotoCoreError, ClientError

from ecs_control_plane.contract import OWNER_INDEX, RunRequest, TaskKey, TaskState, TaskStateItem, now_ms
from ecs_control_plane.run_task_call import RunTaskConfigError, check_run_task_overrides

from . import config as cfg
from .aws import ControlPlaneClients, is_credential_error, make_clients, mentions_credential_error
from .change_feed import ChangeFeed, overdue_without_item

if TYPE_CHECKING:
    from airflow.models.taskinstance import TaskInstance

#: Airflow's key of one workload (TaskInstanceKey, or CallbackKey on Airflow >= 3.3).
AirflowKey = Any

_ExecuteCallback: type[Any] | None
try:  # ExecuteCallback exists from Airflow 3.3 on.
    from airflow.executors.workloads.callback import ExecuteCallback as _ExecuteCallback
except ImportError:  # pragma: no cover - older Airflow
    _ExecuteCallback = None
SUPPORTS_CALLBACKS = _ExecuteCallback is not None

WORKLOAD_MODULE = "airflow.sdk.execution_time.execute_workload"
END_POLL_SECONDS = 5.0
RECONNECT_BACKOFF_CAP_SECONDS = 120.0
OWNER_MAX_CHARS = 200


def workload_command(workload: Any) -> list[str]:
    """The container command for a workload, as the provider's ECS executor builds it."""
    return ["python", "-m", WORKLOAD_MODULE, "--json-string", workload.model_dump_json()]


def task_key_for(key: AirflowKey) -> TaskKey:
    """The contract's task key for an Airflow workload key (TaskInstanceKey or CallbackKey)."""
    if isinstance(key, TaskInstanceKey):
        return TaskKey(
            dag_id=key.dag_id,
            task_id=key.task_id,
            run_id=key.run_id,
            map_index=key.map_index,
            try_number=key.try_number,
        )
    callback_id = getattr(key, "id", None)
    if callback_id is None:
        raise TypeError(f"cannot make a task key from {type(key).__name__}")
    return TaskKey.for_callback(str(callback_id))


def default_owner(job_id: object | None) -> str:
    """Unique per executor instance: host, process, scheduler job (when known), random suffix."""
    job = f"-job{job_id}" if job_id is not None else ""
    return f"{socket.gethostname()}-{os.getpid()}{job}-{uuid.uuid4().hex[:8]}"[-OWNER_MAX_CHARS:]


class EcsControlPlaneExecutor(BaseExecutor):
    """Runs each Airflow task in its own ECS task, through the serverless control plane.

    ``execute_async`` only buffers; ``sync`` sends the buffer and applies the state changes of
    this executor's own tasks. Neither lets an exception reach the scheduler.
    """

    supports_callbacks: bool = SUPPORTS_CALLBACKS
    supports_task_instance_uuid: bool = hasattr(BaseExecutor, "get_task_key")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.queue_url = self._get(cfg.QUEUE_URL)
        self.state_table = self._get(cfg.STATE_TABLE)
        self.region_name = self._get(cfg.REGION_NAME)
        self.conn_id = self._get(cfg.CONN_ID)
        self.container_name = self._get(cfg.CONTAINER_NAME) or "airflow"
        self.check_health_on_startup = self.conf.getboolean(
            cfg.SECTION,
            cfg.CHECK_HEALTH_ON_STARTUP,
            fallback=cfg.DEFAULTS[cfg.CHECK_HEALTH_ON_STARTUP] == "True",
        )
        self._configured_owner = self._get(cfg.OWNER_ID)
        self.owner = self._configured_owner or default_owner(getattr(self, "job_id", None))
        self.missing_item_grace_ms = self._get_int(cfg.MISSING_ITEM_GRACE_SECONDS) * 1000
        self.max_send_attempts = max(1, self._get_int(cfg.MAX_SEND_ATTEMPTS))
        self.end_timeout_seconds = max(0, self._get_int(cfg.END_TIMEOUT_SECONDS))
        self.feed = ChangeFeed.starting_at(
            now_ms(),
            overlap_ms=self._get_int(cfg.SYNC_OVERLAP_SECONDS) * 1000,
            full_resync_interval_ms=self._get_int(cfg.FULL_RESYNC_INTERVAL_SECONDS) * 1000,
        )

        #: encoded task key -> Airflow key, for every task this executor is responsible for.
        self.tracked: dict[str, AirflowKey] = {}
        #: Requests not yet accepted by SQS, in order; and how many sends each has failed.
        self._outbox: dict[tuple[str, str], RunRequest] = {}
        self._send_failures: dict[tuple[str, str], int] = {}
        #: When each tracked key's run request was accepted by SQS (or the key was adopted).
        self._sent_at: dict[str, int] = {}
        #: The ECS task ARN last reported through running_state, per key.
        self._reported_arn: dict[str, str] = {}
        self._overdue_reported: set[str] = set()

        #: Strong references to the audit-log records we queued, kept until the scheduler took them
        #: (see log_task_event).
        self._event_log_refs: list[Any] = []

        self._clients: ControlPlaneClients | None = None
        self._reconnect_attempts = 0
        self._next_reconnect_at = 0.0
        self.sync_failures = 0

    # -- configuration --------------------------------------------------------------------------

    def _get(self, key: str) -> str | None:
        value = self.conf.get(cfg.SECTION, key, fallback=cfg.DEFAULTS[key])
        return (value.strip() or None) if isinstance(value, str) else None

    def _get_int(self, key: str) -> int:
        raw = self._get(key)
        try:
            return int(raw if raw is not None else str(cfg.DEFAULTS[key]))
        except ValueError as exc:
            raise AirflowException(f"{cfg.env_name(key)} must be an integer, not {raw!r}") from exc

    def _require_settings(self) -> None:
        required = ((cfg.QUEUE_URL, self.queue_url), (cfg.STATE_TABLE, self.state_table))
        missing = [cfg.env_name(key) for key, value in required if not value]
        if missing:
            raise AirflowException(
                f"{type(self).__name__} is not configured: set {' and '.join(missing)} "
                f"([{cfg.SECTION}] in airflow.cfg) to the control plane stack's outputs"
            )

    # -- clients --------------------------------------------------------------------------------

    @property
    def clients(self) -> ControlPlaneClients:
        if self._clients is None:
            self._require_settings()
            self._clients = make_clients(
                queue_url=self.queue_url or "",
                state_table=self.state_table or "",
                conn_id=self.conn_id,
                region_name=self.region_name,
            )
        return self._clients

    def _credentials_lost(self, exc: BaseException | str) -> None:
        """Drop the clients; they are made again (new credentials) after a growing pause."""
        self._clients = None
        delay = min(RECONNECT_BACKOFF_CAP_SECONDS, 2.0**self._reconnect_attempts - 1)
        self._reconnect_attempts += 1
        self._next_reconnect_at = time.monotonic() + delay
        self.log.warning("AWS credentials are missing or expired (%s); reconnecting in %.0f s", exc, delay)

    def _ready(self) -> bool:
        if self._clients is not None:
            return True
        if time.monotonic() < self._next_reconnect_at:
            return False
        _ = self.clients
        return True

    # -- lifecycle ------------------------------------------------------------------------------

    def start(self) -> None:
        """Fix the owner (the scheduler's job id is known now) and check the stack is reachable."""
        if not self._configured_owner and not self.tracked and not self._outbox:
            self.owner = default_owner(getattr(self, "job_id", None))
        self._require_settings()
        self.log.info("%s starting as owner %s", type(self).__name__, self.owner)
        if self.check_health_on_startup:
            self.check_health()

    def check_health(self) -> None:
        """Raise AirflowException naming what is unreachable and which setting to fix."""
        problems: list[str] = []
        try:
            clients = self.clients
        except (ClientError, BotoCoreError) as exc:
            raise AirflowException(
                f"cannot create AWS clients from connection {self.conn_id!r} "
                f"({cfg.env_name(cfg.CONN_ID)}, {cfg.env_name(cfg.REGION_NAME)}): {exc}"
            ) from exc
        try:
            clients.queue.attributes()
        except (ClientError, BotoCoreError) as exc:
            problems.append(
                f"queue {self.queue_url!r} is not reachable ({_describe(exc)}): "
                f"check {cfg.env_name(cfg.QUEUE_URL)}"
            )
        try:
            table = clients.table.describe()
        except (ClientError, BotoCoreError) as exc:
            problems.append(
                f"table {self.state_table!r} is not reachable ({_describe(exc)}): "
                f"check {cfg.env_name(cfg.STATE_TABLE)}"
            )
        else:
            indexes = {i.get("IndexName") for i in table.get("GlobalSecondaryIndexes", [])}
            if OWNER_INDEX not in indexes:
                problems.append(
                    f"table {self.state_table!r} has no index {OWNER_INDEX!r}: "
                    f"{cfg.env_name(cfg.STATE_TABLE)} must name the stack's state table"
                )
        if problems:
            raise AirflowException(
                f"{type(self).__name__} health check failed (region {self.region_name or 'from connection'}, "
                f"connection {self.conn_id!r}): " + "; ".join(problems)
            )
        self.log.info("%s health check succeeded", type(self).__name__)

    def _key_of(self, ti: Any) -> AirflowKey:
        """Airflow's workload key for a task instance (its UUID on Airflow versions keyed by it)."""
        if self.supports_task_instance_uuid:
            return getattr(self, "get_task_key")(ti)  # noqa: B009 - absent on Airflow 3.3
        return ti.key

    def log_task_event(self, *, event: str, extra: str, ti_key: AirflowKey) -> None:
        """Queue an audit-log record for the task, and keep it alive until the scheduler saves it.

        Airflow 3.3's scheduler saves these with ``bulk_save_objects`` over a generator that pops
        them from the deque; SQLAlchemy's instance state only holds a weak reference, so a record
        nobody else references is collected mid-save and written empty (``NOT NULL constraint
        failed: log.event``). Holding a reference until the next heartbeat avoids that.
        """
        before = len(self._task_event_logs)
        super().log_task_event(event=event, extra=extra, ti_key=ti_key)
        if len(self._task_event_logs) > before:
            self._event_log_refs.append(self._task_event_logs[-1])

    def _release_saved_event_logs(self) -> None:
        pending = {id(record) for record in self._task_event_logs}
        self._event_log_refs = [record for record in self._event_log_refs if id(record) in pending]

    # -- submitting -----------------------------------------------------------------------------

    def _process_workloads(self, workload_items: Sequence[Any]) -> None:
        """Hand each workload over: out of the queued set, into the send buffer, into running."""
        from airflow.executors import workloads as wl  # noqa: PLC0415 - Airflow imports it lazily too

        for workload in workload_items:
            key: AirflowKey
            if isinstance(workload, wl.ExecuteTask):
                key = self._key_of(workload.ti)
                self.queued_tasks.pop(key, None)
                accepted = self.execute_async(
                    key=key,
                    command=[workload],
                    queue=workload.ti.queue,
                    executor_config=workload.ti.executor_config or {},
                )
            elif _ExecuteCallback is not None and isinstance(workload, _ExecuteCallback):
                key = workload.callback.key
                self.queued_callbacks.pop(key, None)
                accepted = self.execute_async(key=key, command=[workload], queue=None)
            else:
                raise RuntimeError(f"{type(self).__name__} cannot handle workloads of type {type(workload)}")
            if accepted:
                self.running.add(key)

    def execute_async(
        self,
        key: AirflowKey,
        command: Sequence[Any],
        queue: str | None = None,
        executor_config: Any = None,
    ) -> bool:
        """Buffer a run request (sent on the next sync); refuse a bad executor_config at once.

        Returns whether the workload was accepted; a refused one is already reported failed.
        """
        is_workload = len(command) == 1 and not isinstance(command[0], str)
        parts = workload_command(command[0]) if is_workload else command
        config = executor_config or {}
        encoded = task_key_for(key).encode()
        try:
            check_run_task_overrides(config, self.container_name, "executor_config")
            request = RunRequest(
                kind="run",
                key=encoded,
                owner=self.owner,
                command=[str(p) for p in parts],
                queue=queue,
                executor_config=dict(config),
                attempt=1,
            )
        except (RunTaskConfigError, ValueError) as exc:
            reason = f"refused before sending: {exc}"
            self.log.error("Task %s failed: %s", encoded, reason)
            self.log_task_event(event="ecs control plane task refused", extra=reason, ti_key=key)
            self.fail(key)
            return False
        self.tracked[encoded] = key
        self._outbox[("run", encoded)] = request
        return True

    def _send_stop(self, encoded: str, reason: str) -> None:
        """Buffer a stop request, or just drop the run request if it was never sent."""
        if self._outbox.pop(("run", encoded), None) is not None:
            self._send_failures.pop(("run", encoded), None)
            return
        stop = RunRequest(kind="stop", key=encoded, owner=self.owner, reason=reason)
        self._outbox[("stop", encoded)] = stop

    def _flush(self) -> None:
        """Send the buffer; what fails stays for the next heartbeat, up to max_send_attempts."""
        if not self._outbox:
            return
        pending = dict(self._outbox)
        result = self.clients.queue.send_batch(list(pending.values()))
        failed = {(r.kind, r.key): why for r, why in result.failed}
        sent_at = now_ms()
        for slot in pending:
            if slot not in failed:
                self._outbox.pop(slot, None)
                self._send_failures.pop(slot, None)
                if slot[0] == "run" and slot[1] in self.tracked:
                    self._sent_at[slot[1]] = sent_at
        if not failed:
            return
        if any(mentions_credential_error(why) for why in failed.values()):
            self._credentials_lost(next(iter(failed.values())))
            return
        for slot, why in failed.items():
            count = self._send_failures.get(slot, 0) + 1
            self._send_failures[slot] = count
            kind, encoded = slot
            if count < self.max_send_attempts:
                self.log.warning(
                    "Could not send %s request for %s (try %d of %d), retrying next heartbeat: %s",
                    kind,
                    encoded,
                    count,
                    self.max_send_attempts,
                    why,
                )
                continue
            self._outbox.pop(slot, None)
            self._send_failures.pop(slot, None)
            reason = f"{kind} request could not be sent to the control plane queue after {count} tries: {why}"
            self.log.error("Task %s: %s", encoded, reason)
            airflow_key = self.tracked.get(encoded)
            if kind == "run" and airflow_key is not None:
                self.log_task_event(event="ecs control plane send failure", extra=reason, ti_key=airflow_key)
                self._untrack(encoded)
                self.fail(airflow_key)

    # -- syncing --------------------------------------------------------------------------------

    def sync(self) -> None:
        try:
            self._release_saved_event_logs()
            if not self._ready():
                return
            self._flush()
            if self._clients is None:  # the flush found the credentials expired
                return
            self._read_changes()
            self._reconnect_attempts = 0
        except Exception as exc:
            # Nothing may reach the scheduler loop; the next heartbeat tries again.
            self.sync_failures += 1
            if is_credential_error(exc):
                self._credentials_lost(exc)
            else:
                self.log.exception("Failed to sync %s (failure %d)", type(self).__name__, self.sync_failures)

    def _read_changes(self) -> None:
        table = self.clients.table
        changed = list(table.changed_since(self.owner, self.feed.since_ms()))
        for item in self.feed.accept(changed):
            self._apply(item)
        self.feed.advance(changed)

        now = now_ms()
        if self.tracked and self.feed.full_resync_due(now):
            self._full_resync(now)
        elif not self.tracked:
            self.feed.full_resync_done(now)

    def _full_resync(self, now: int) -> None:
        """Safety net: read every tracked key that has been sent, whatever the index said."""
        # Snapshot first: applying a finished item below untracks its key.
        sent = {k: self._sent_at[k] for k in self.tracked if k in self._sent_at}
        items = self.clients.table.batch_get(sent)
        self.feed.accept(items)
        for item in items:  # _apply is idempotent: whatever the fast path missed is acted on here
            self._apply(item)
        self.feed.full_resync_done(now)
        found = {item.key for item in items}
        for key in overdue_without_item(sent, found, now, self.missing_item_grace_ms):
            if key in self._overdue_reported:
                continue
            self._overdue_reported.add(key)
            waited = (now - sent[key]) // 1000
            why = (
                f"no state item {waited} s after the run request was sent: the control plane has not "
                "received it yet (check the run_task function and the dead-letter queue); Airflow's "
                "[scheduler] task_queued_timeout decides when the task fails"
            )
            self.log.warning("Task %s: %s", key, why)
            self.log_task_event(
                event="ecs control plane task not started", extra=why, ti_key=self.tracked[key]
            )

    def _apply(self, item: TaskStateItem) -> None:
        """Report one item's state to Airflow, if it is ours."""
        airflow_key = self.tracked.get(item.key)
        if airflow_key is None:
            return
        if item.owner != self.owner:
            # Another scheduler adopted it: it reports the outcome now.
            self.log.info("Task %s is now owned by %s; no longer tracked here", item.key, item.owner)
            self._untrack(item.key)
            self.running.discard(airflow_key)
            return
        if item.state is TaskState.SUCCESS:
            self._untrack(item.key)
            self.success(airflow_key, item.task_arn)
        elif item.state is TaskState.FAILED:
            reason = _failure_reason(item)
            self.log.error("Task %s failed: %s", item.key, reason)
            self.log_task_event(event="ecs control plane task failed", extra=reason, ti_key=airflow_key)
            self._untrack(item.key)
            self.fail(airflow_key, item.task_arn)
        elif item.task_arn and self._reported_arn.get(item.key) != item.task_arn:
            # STARTING or RUNNING with a (new) ECS task: Airflow records it as external executor id.
            self._reported_arn[item.key] = item.task_arn
            self.running_state(airflow_key, item.task_arn)

    def _untrack(self, encoded: str) -> None:
        self.tracked.pop(encoded, None)
        self._sent_at.pop(encoded, None)
        self._reported_arn.pop(encoded, None)
        self._overdue_reported.discard(encoded)
        for kind in ("run", "stop"):
            self._send_failures.pop((kind, encoded), None)
        self._outbox.pop(("run", encoded), None)

    # -- adoption -------------------------------------------------------------------------------

    def try_adopt_task_instances(self, tis: Sequence[TaskInstance]) -> Sequence[TaskInstance]:
        """Take over the control plane items of tasks whose scheduler died; the rest are reset."""
        not_adopted: list[TaskInstance] = []
        adopted: list[str] = []
        for ti in tis:
            key = self._key_of(ti)
            encoded = task_key_for(key).encode()
            try:
                item = self.clients.table.transfer_owner(encoded, self.owner)
            except (ClientError, BotoCoreError) as exc:
                self.log.warning("Could not adopt %s: %s", encoded, _describe(exc))
                item = None
            if item is None:  # no item, or already finished: the scheduler resets the task
                not_adopted.append(ti)
                continue
            self.tracked[encoded] = key
            self._sent_at[encoded] = now_ms()
            self.running.add(key)
            if ti.external_executor_id and ti.external_executor_id == item.task_arn:
                self._reported_arn[encoded] = item.task_arn
            adopted.append(f"{encoded} ({item.state.value}, {item.task_arn or 'no ECS task yet'})")
        if adopted:
            self.log.info(
                "Adopted %d task(s) as owner %s:\n\t%s", len(adopted), self.owner, "\n\t".join(adopted)
            )
        return not_adopted

    # -- stopping -------------------------------------------------------------------------------

    def revoke_task(self, *, ti: TaskInstance) -> None:
        """Ask the control plane to stop the task's ECS task, and forget it. Never raises."""
        key = self._key_of(ti)
        try:
            encoded = task_key_for(key).encode()
            self._send_stop(encoded, "revoked by the Airflow scheduler")
            self._untrack(encoded)
            self.running.discard(key)
            self.queued_tasks.pop(key, None)
            self.sync_outbox()
        except Exception:
            self.log.exception("Failed to revoke %s", key)

    def sync_outbox(self) -> None:
        """Send buffered requests now (never raises; what fails is retried on the next heartbeat)."""
        try:
            if self._ready():
                self._flush()
        except Exception as exc:
            if is_credential_error(exc):
                self._credentials_lost(exc)
            else:
                self.log.exception("Failed to send buffered requests")

    def terminate(self) -> None:
        """SIGTERM: ask the control plane to stop every tracked task, without waiting."""
        try:
            for encoded in list(self.tracked):
                self._send_stop(encoded, "the Airflow scheduler was terminated")
            self.sync_outbox()
        except Exception:
            self.log.exception("Failed to terminate %s", type(self).__name__)

    def end(self) -> None:
        """Send what is buffered, then wait for tracked tasks, at most end_timeout_seconds.

        Tasks still running afterwards keep running; the next scheduler adopts them.
        """
        try:
            deadline = time.monotonic() + self.end_timeout_seconds
            while True:
                self.sync()
                if not self.tracked:
                    return
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    self.log.warning(
                        "%s ended with %d task(s) still in flight (they keep running and can be adopted): %s",
                        type(self).__name__,
                        len(self.tracked),
                        ", ".join(sorted(self.tracked)[:20]),
                    )
                    return
                time.sleep(min(END_POLL_SECONDS, remaining))
        except Exception:
            self.log.exception("Failed to end %s", type(self).__name__)


def _failure_reason(item: TaskStateItem) -> str:
    parts = [item.reason or "the ECS task failed"]
    if item.exit_code is not None:
        parts.append(f"exit code {item.exit_code}")
    if item.stop_code:
        parts.append(f"stop code {item.stop_code}")
    if item.stopped_reason and item.stopped_reason not in parts[0]:
        parts.append(f"ECS: {item.stopped_reason}")
    if item.task_arn:
        parts.append(f"task {item.task_arn}")
    return "; ".join(parts)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        return f"{error.get('Code', 'Error')}: {error.get('Message', '')}".strip()
    return f"{type(exc).__name__}: {exc}"
