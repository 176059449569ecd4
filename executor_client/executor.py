"""``EcsControlPlaneExecutor``: hands Airflow workloads to the ECS control plane.

The scheduler loop does two cheap things: on each heartbeat it sends the buffered run requests
to SQS (ten per call) and reads from the state table only the items that changed for its owner.
Starting, retrying and watching ECS tasks happens in the control plane's Lambda functions.
"""

from __future__ import annotations

import functools
import os
import socket
import time
import uuid
from collections import Counter
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from airflow.executors.base_executor import BaseExecutor
from airflow.sdk.exceptions import AirflowException

from ecs_control_plane.contract import (
    RunRequest,
    TaskKey,
    TaskState,
    TaskStateItem,
    is_submission_id,
    now_ms,
)
from ecs_control_plane.executor_config import check_executor_config
from ecs_control_plane.store import ItemVersion, StateTable

from . import adoption, task_instances
from . import config as cfg
from .adoption import AdoptionMixin
from .aws import (
    ControlPlaneClients,
    is_credential_error,
    make_clients,
    mentions_credential_error,
)
from .change_feed import ChangeFeed
from .health import HealthCheckMixin
from .metrics import ExecutorMetrics
from .safety_net import ActivePage, PassResult, ReadKeys, SafetyNet, SentKeys, overdue_without_item
from .task_logs import TaskLogs
from .workloads import (
    CALLBACKS_NOT_RUNNABLE_REASON,
    PRE_ASSIGNED_IDS,
    SUPPORTS_CALLBACKS,
    AirflowKey,
    WorkloadKind,
    is_task_instance_key,
    key_of_workload,
    kind_of,
    task_key_for,
    token_expiry_ms,
    workload_command,
)

if TYPE_CHECKING:
    from airflow.models.taskinstance import TaskInstance

END_POLL_SECONDS = 5.0
RECONNECT_BACKOFF_CAP_SECONDS = 120.0
OWNER_MAX_CHARS = 200
#: Items one change-feed call reads at most: bounds a heartbeat's parsing when a backlog builds up
#: (the rest is read on the next heartbeats).
CHANGES_PAGE_LIMIT = 1000
#: Active-index items one safety-net call reads at most (every owner's count).
ACTIVE_PAGE_LIMIT = 500
#: A safety-net pass longer than its interval is logged at most this often.
SLOW_PASS_WARNING_MS = 600_000


def new_submission_id() -> str:
    return uuid.uuid4().hex


def default_owner(job_id: object | None, team_name: str | None = None) -> str:
    """Unique per executor instance: team (if any), host, process, scheduler job (when known), suffix."""
    team = f"{team_name}-" if team_name else ""
    job = f"-job{job_id}" if job_id is not None else ""
    return f"{team}{socket.gethostname()}-{os.getpid()}{job}-{uuid.uuid4().hex[:8]}"[-OWNER_MAX_CHARS:]


class EcsControlPlaneExecutor(HealthCheckMixin, AdoptionMixin, BaseExecutor):
    """Runs each Airflow task in its own ECS task, through the serverless control plane.

    ``execute_async`` only buffers; ``sync`` sends the buffer and applies the state changes of
    this executor's own tasks. Neither lets an exception reach the scheduler.
    """

    supports_callbacks: bool = SUPPORTS_CALLBACKS
    #: Each team's executor reads its own settings (``self.conf``) and so its own stack or owner.
    supports_multi_team: bool = True
    #: Connection tests must answer within ~60 s; an ECS task takes about that long to start.
    supports_connection_test: bool = False
    #: Task workloads stay keyed by TaskInstanceKey: the contract's task key is made from it, and a
    #: task instance's UUID alone names no try. (No supported release keys by UUID.)
    supports_task_instance_uuid: bool = False
    #: Airflow >= 3.2: have the scheduler assign each queueing its id (see PRE_ASSIGNED_IDS).
    pre_assigns_external_executor_id: ClassVar[bool] = True

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
        self.owner = self._configured_owner or default_owner(getattr(self, "job_id", None), self.team_name)
        self.missing_item_grace_ms = self._get_int(cfg.MISSING_ITEM_GRACE_SECONDS) * 1000
        self.max_send_attempts = max(1, self._get_int(cfg.MAX_SEND_ATTEMPTS))
        self.end_timeout_seconds = max(0, self._get_int(cfg.END_TIMEOUT_SECONDS))
        self.feed = ChangeFeed.starting_at(
            now_ms(), overlap_ms=self._get_int(cfg.SYNC_OVERLAP_SECONDS) * 1000
        )
        self.safety_net = SafetyNet.every(self._get_int(cfg.FULL_RESYNC_INTERVAL_SECONDS) * 1000)
        self._slow_pass_warned_at: int | None = None

        #: encoded task key (one submission) -> Airflow key, for every submission this executor
        #: reports; and the current submission of each Airflow key (Airflow hands the same try
        #: over again for reschedule pokes, resumes after a deferral and requeues).
        self.tracked: dict[str, AirflowKey] = {}
        self._current: dict[AirflowKey, str] = {}
        #: Adopted submissions whose item could not be moved to this owner yet (DynamoDB errors):
        #: encoded key -> whether a missing item may be claimed. Retried on every sync. A task
        #: instance with no known submission is tracked under its try's key until it is found.
        self._pending_adoption: dict[str, bool] = {}
        #: Submissions this executor asked the control plane to move to it, and when: their items
        #: still name the old owner until run_task has handled the adopt request.
        self._adopting: dict[str, int] = {}
        self.task_queued_timeout = self._task_queued_timeout()
        #: Requests not yet accepted by SQS, in order; and how many sends each has failed.
        self._outbox: dict[tuple[str, str], RunRequest] = {}
        self._send_failures: dict[tuple[str, str], int] = {}
        #: When each tracked key's run request was accepted by SQS (or the key was adopted).
        self._sent_at: dict[str, int] = {}
        #: The ECS task ARN last logged, per key.
        self._reported_arn: dict[str, str] = {}
        self._overdue_reported: set[str] = set()
        #: The last state known of each tracked key ("submitted" until its item is read), and how
        #: many keys are in each: the ``tries`` gauge.
        self._state_of: dict[str, str] = {}
        self._state_counts: Counter[str] = Counter()
        self.metrics = ExecutorMetrics(self.team_name)

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

    def _name(self) -> str:
        """The executor's name in messages: its class, and its team if it has one."""
        team = f" of team {self.team_name!r}" if self.team_name else ""
        return f"{type(self).__name__}{team}"

    def _env(self, key: str) -> str:
        """The environment variable that sets ``key`` for this executor (its team's, if any)."""
        return cfg.env_name(key, self.team_name)

    def _get_int(self, key: str) -> int:
        raw = self._get(key)
        try:
            return int(raw if raw is not None else str(cfg.DEFAULTS[key]))
        except ValueError as exc:
            raise AirflowException(f"{self._env(key)} must be an integer, not {raw!r}") from exc

    @staticmethod
    def _task_queued_timeout() -> float:
        """``[scheduler] task_queued_timeout``: how long Airflow signs a workload token for."""
        from airflow.configuration import conf  # noqa: PLC0415 - the global config, not self.conf

        try:
            return conf.getfloat("scheduler", "task_queued_timeout", fallback=600.0)
        except (ValueError, TypeError):
            return 600.0

    def _require_settings(self) -> None:
        required = ((cfg.QUEUE_URL, self.queue_url), (cfg.STATE_TABLE, self.state_table))
        missing = [self._env(key) for key, value in required if not value]
        if missing:
            raise AirflowException(
                f"{self._name()} is not configured: set {' and '.join(missing)} "
                f"([{cfg.section_name(self.team_name)}] in airflow.cfg) to the control plane stack's outputs"
                + (f" for team {self.team_name!r}" if self.team_name else "")
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
                team_name=self.team_name,
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
            self.owner = default_owner(getattr(self, "job_id", None), self.team_name)
        self._require_settings()
        self.log.info("%s starting as owner %s", self._name(), self.owner)
        if self.check_health_on_startup:
            self.check_health()

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
        if not is_task_instance_key(ti_key):  # a callback: Airflow 3.2's Log() takes task instances only
            self.log.debug("No audit-log record for %s (%s): %s", ti_key, event, extra)
            return
        before = len(self._task_event_logs)
        super().log_task_event(event=event, extra=extra, ti_key=ti_key)
        if len(self._task_event_logs) > before:
            self._event_log_refs.append(self._task_event_logs[-1])

    def _release_saved_event_logs(self) -> None:
        pending = {id(record) for record in self._task_event_logs}
        self._event_log_refs = [record for record in self._event_log_refs if id(record) in pending]

    # -- submitting -----------------------------------------------------------------------------

    def _process_workloads(self, workload_items: Sequence[Any]) -> None:
        """Hand each workload over: out of the queued set, into the send buffer, into running.

        A workload this executor cannot run is failed alone, with the reason; none raises into
        the scheduler's heartbeat (see workloads.py for what each Airflow release sends).
        """
        for workload in workload_items:
            try:
                self._process_workload(workload)
            except Exception as exc:  # noqa: BLE001 - one bad workload must not stop the heartbeat
                self._refuse_workload(workload, f"could not be handed over: {type(exc).__name__}: {exc}")

    def _process_workload(self, workload: Any) -> None:
        kind = kind_of(workload)
        key: AirflowKey
        if kind is WorkloadKind.TASK:
            key = self._key_of(workload.ti)
            self.queued_tasks.pop(key, None)
            accepted = self.execute_async(
                key=key,
                command=[workload],
                queue=workload.ti.queue,
                executor_config=workload.ti.executor_config or {},
            )
        elif kind is WorkloadKind.CALLBACK:
            key = workload.callback.key
            self.queued_callbacks.pop(key, None)
            accepted = self.execute_async(key=key, command=[workload], queue=None)
        elif kind is WorkloadKind.CALLBACK_NOT_RUNNABLE:
            self._refuse_workload(workload, CALLBACKS_NOT_RUNNABLE_REASON)
            return
        else:
            why = f"{type(self).__name__} cannot run {type(workload).__name__} workloads"
            self._refuse_workload(workload, why)
            return
        if accepted:
            self.running.add(key)

    def _refuse_workload(self, workload: Any, reason: str) -> None:
        """Take a workload out of Airflow's queues and report it failed (where Airflow takes a report)."""
        key = self._queued_key(workload)
        self.log.error("%s workload %s refused: %s", type(workload).__name__, key, reason)
        self.metrics.tasks_refused()
        if key is None:
            return
        for queued in ("queued_tasks", "queued_callbacks", "queued_connection_tests"):
            pending = getattr(self, queued, None)
            if isinstance(pending, dict):
                pending.pop(key, None)
        if kind_of(workload) is WorkloadKind.UNSUPPORTED and not is_task_instance_key(key):
            # No event Airflow would act on: a connection test is failed by the scheduler's reaper.
            self.running.discard(key)
            return
        self.log_task_event(event="ecs control plane task refused", extra=reason, ti_key=key)
        self.fail(key, None if is_task_instance_key(key) else reason)

    def _queued_key(self, workload: Any) -> AirflowKey | None:
        """The key Airflow queued ``workload`` under: found by identity in its queues first, since
        the workload's own key may be what cannot be read."""
        for queued in ("queued_tasks", "queued_callbacks", "queued_connection_tests"):
            pending = getattr(self, queued, None)
            if isinstance(pending, dict):
                for key, value in pending.items():
                    if value is workload:
                        return key
        return key_of_workload(workload)

    def execute_async(
        self,
        key: AirflowKey,
        command: Sequence[Any],
        queue: str | None = None,
        executor_config: Any = None,
    ) -> bool:
        """Buffer a run request for a new submission of ``key`` (sent on the next sync).

        Every call is a new submission: Airflow hands the same try over again for reschedule
        pokes, resumes after a deferral and requeues, and each must start its own ECS task. From
        now on only this submission's outcome is reported for ``key``. A bad executor_config is
        refused at once and the task failed with the reason; nothing here raises.

        Returns whether the workload was accepted.
        """
        is_workload = len(command) == 1 and not isinstance(command[0], str)
        workload = command[0] if is_workload else None
        try:
            base = task_key_for(key)
            encoded = base.with_submission(self._submission_for(key, workload)).encode()
            parts = workload_command(workload) if is_workload else command
            config = executor_config or {}
            # Structure, types and what is never allowed; the stack's policy is checked by run_task.
            check_executor_config(config, self.container_name, policy=None)
            request = RunRequest(
                kind="run",
                key=encoded,
                owner=self.owner,
                command=[str(p) for p in parts],
                queue=queue,
                executor_config=dict(config),
                attempt=1,
                token_expires_at=token_expiry_ms(workload, self.task_queued_timeout),
            )
        except Exception as exc:  # noqa: BLE001 - any bad input fails this task alone, never the heartbeat
            reason = f"refused before sending: {exc}"
            self.log.error("Task %s failed: %s", key, reason)
            self.log_task_event(event="ecs control plane task refused", extra=reason, ti_key=key)
            self.metrics.tasks_refused()
            self.fail(key, None if is_task_instance_key(key) else reason)  # a callback keeps the why
            return False
        previous = self._current.get(key)
        if previous is not None and previous != encoded:
            # The earlier submission is over as far as Airflow is concerned: its events and
            # outcome must never be reported for this one.
            self.log.info("Task %s submitted again as %s; no longer reporting %s", key, encoded, previous)
            self._forget(previous)
        self._track(encoded, key)
        self._outbox[("run", encoded)] = request
        return True

    def _submission_for(self, key: AirflowKey, workload: Any) -> str:
        """The id of this submission: the one the scheduler pre-assigned, else a fresh one."""
        assigned = getattr(getattr(workload, "ti", None), "external_executor_id", None)
        current = self._current.get(key)
        if (
            PRE_ASSIGNED_IDS
            and is_submission_id(assigned)
            and (current is None or TaskKey.parse(current).submission != assigned)
        ):
            return str(assigned)
        return new_submission_id()

    def current_submission(self, key: AirflowKey) -> str | None:
        """The encoded task key of the submission of ``key`` this executor reports, if any."""
        return self._current.get(key)

    def _track(self, encoded: str, key: AirflowKey) -> None:
        self.tracked[encoded] = key
        self._current[key] = encoded
        if encoded not in self._state_of:
            self._set_state(encoded, "submitted")

    def _set_state(self, encoded: str, state: str | None) -> None:
        """Record the last known state of a tracked key (None: no longer tracked)."""
        previous = self._state_of.pop(encoded, None)
        if previous is not None:
            self._state_counts[previous] -= 1
        if state is not None:
            self._state_of[encoded] = state
            self._state_counts[state] += 1

    def _forget(self, encoded: str) -> None:
        """Stop reporting a submission; a run request of it still unsent is still sent."""
        key = self.tracked.pop(encoded, None)
        if key is not None and self._current.get(key) == encoded:
            del self._current[key]
        self._sent_at.pop(encoded, None)
        self._set_state(encoded, None)
        self.feed.forget(encoded)
        self._reported_arn.pop(encoded, None)
        self._overdue_reported.discard(encoded)
        self._pending_adoption.pop(encoded, None)
        self._adopting.pop(encoded, None)

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
        refused = {(r.kind, r.key): why for r, why in result.refused}
        self._count_sends(pending, failed, refused)
        sent_at = now_ms()
        for slot in pending:
            if slot in failed:
                continue
            self._outbox.pop(slot, None)
            self._send_failures.pop(slot, None)
            airflow_key = self.tracked.get(slot[1])
            if slot in refused:
                self._refused(slot, refused[slot])
            elif slot[0] == "run" and airflow_key is not None:
                self._sent_at[slot[1]] = sent_at
                # Airflow stores the submission as the task instance's external_executor_id, so
                # that a scheduler adopting it finds its item (Airflow >= 3.2 pre-assigns it).
                self.running_state(airflow_key, TaskKey.parse(slot[1]).submission or None)
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
            if kind in ("run", "adopt") and airflow_key is not None:
                self.log_task_event(event="ecs control plane send failure", extra=reason, ti_key=airflow_key)
                self._untrack(encoded)
                self.fail(airflow_key)

    def _count_sends(
        self, pending: dict[tuple[str, str], RunRequest], failed: dict[Any, str], refused: dict[Any, str]
    ) -> None:
        accepted = (slot for slot in pending if slot not in failed and slot not in refused)
        for kind, count in Counter(kind for kind, _ in accepted).items():
            self.metrics.requests_sent(kind, count)
        for kind, count in Counter(k for k, _ in failed).items():
            self.metrics.send_failures(kind, count)
        for kind, count in Counter(k for k, _ in refused).items():
            self.metrics.requests_refused(kind, count)

    def _refused(self, slot: tuple[str, str], why: str) -> None:
        """SQS will never take this request: fail its task now, with the reason."""
        kind, encoded = slot
        self.log.error("Task %s: %s request refused by SQS: %s", encoded, kind, why)
        airflow_key = self.tracked.get(encoded)
        if kind in ("run", "adopt") and airflow_key is not None:
            reason = f"{kind} request refused by the control plane queue: {why}"
            self.log_task_event(event="ecs control plane task refused", extra=reason, ti_key=airflow_key)
            self._untrack(encoded)
            self.fail(airflow_key)

    # -- syncing --------------------------------------------------------------------------------

    def sync(self) -> None:
        started = time.perf_counter()
        try:
            self._release_saved_event_logs()
            if not self._ready():
                return
            self._retry_pending_adoptions()  # first: the adopt requests it makes go out with this flush
            self._flush()
            if self._clients is None:  # the flush found the credentials expired
                return
            self._read_changes()
            self._reconnect_attempts = 0
            self.metrics.sync_duration((time.perf_counter() - started) * 1000)
            self.metrics.tries_by_state(self._state_counts)
        except Exception as exc:
            # Nothing may reach the scheduler loop; the next heartbeat tries again.
            self.sync_failures += 1
            self.metrics.sync_failed()
            if is_credential_error(exc):
                self._credentials_lost(exc)
            else:
                self.log.exception("Failed to sync %s (failure %d)", type(self).__name__, self.sync_failures)

    def _read_changes(self) -> None:
        """At most two DynamoDB calls: one page of the change feed, one step of the safety net."""
        table = self.clients.table
        page = table.changes_page(
            self.owner, self.feed.since_ms(), cursor=self.feed.cursor, limit=CHANGES_PAGE_LIMIT
        )
        self.metrics.items_read(len(page.items), "changes")
        self._apply_versions(page.items)
        self.feed.page_read((v.updated_at for v in page.items), page.cursor)
        self._safety_net_step(table)

    def _safety_net_step(self, table: StateTable) -> None:
        """One call of the safety net, when a pass is due or in progress (see safety_net.py)."""
        now = now_ms()
        if not self.tracked:
            self.safety_net.idle(now)
            return
        # A view: a pass copies it as it starts (applying a finished item below untracks its key).
        step = self.safety_net.next_step(now, SentKeys(self.tracked, self._sent_at))
        if isinstance(step, ActivePage):
            page = table.active_page(step.shard, self.owner, cursor=step.cursor, limit=ACTIVE_PAGE_LIMIT)
            self.metrics.items_read(len(page.items), "safety_net")
            # A version newer than the one applied, at or under the feed's bound, was missed by it
            # (a newer one is the feed's next read): read by key with the rest.
            bound = self.feed.since_ms()
            missed = [
                v.key
                for v in page.items
                if v.key in self.tracked
                and v.updated_at <= bound
                and self.feed.is_new(v.key, v.updated_at, v.state)
            ]
            self.safety_net.active_page_read((v.key for v in page.items), page.cursor, missed)
        elif isinstance(step, ReadKeys):
            read = table.read_keys(step.keys)
            self.metrics.items_read(len(read.items), "safety_net")
            self._apply_versions(read.items)
            result = self.safety_net.keys_read(step.keys, (v.key for v in read.items), read.unprocessed, now)
            if result is not None:
                self._pass_done(result, now)
        elif isinstance(step, PassResult):
            self._pass_done(step, now)

    def _pass_done(self, result: PassResult, now: int) -> None:
        interval = self.safety_net.interval_ms
        if result.duration_ms > interval and (
            self._slow_pass_warned_at is None or now - self._slow_pass_warned_at > SLOW_PASS_WARNING_MS
        ):
            self._slow_pass_warned_at = now
            self.log.warning(
                "The safety net took %.0f s (%d calls, one a heartbeat) to re-check %d tracked tasks, "
                "more than %s = %d s: each task is re-checked about every %.0f s instead",
                result.duration_ms / 1000,
                result.calls,
                len(self.tracked),
                self._env(cfg.FULL_RESYNC_INTERVAL_SECONDS),
                interval // 1000,
                result.duration_ms / 1000,
            )
        for key in overdue_without_item(result.without_item, now, self.missing_item_grace_ms):
            if key in self._overdue_reported or key not in self.tracked:
                continue
            self._overdue_reported.add(key)
            waited = (now - result.without_item[key]) // 1000
            why = (
                f"no state item {waited} s after the run request was sent: the control plane has not "
                "received it yet (check the run_task function and the dead-letter queue); Airflow's "
                "[scheduler] task_queued_timeout decides when the task fails"
            )
            self.log.warning("Task %s: %s", key, why)
            self.log_task_event(
                event="ecs control plane task not started", extra=why, ti_key=self.tracked[key]
            )

    def _apply_versions(self, versions: Sequence[ItemVersion]) -> None:
        """Apply the versions of tracked keys not applied yet; only those are deserialized."""
        fresh = [
            v for v in versions if v.key in self.tracked and self.feed.is_new(v.key, v.updated_at, v.state)
        ]
        items = [item for item in (v.parse() for v in fresh) if item is not None]
        if items:
            self._apply_all(sorted(items, key=lambda item: item.updated_at))

    def _apply_all(self, items: Sequence[TaskStateItem]) -> None:
        """Apply items in order, having first asked Airflow which finished tries it moved on."""
        finished = [
            self.tracked[item.key]
            for item in items
            if item.is_terminal and item.key in self.tracked and item.owner == self.owner
        ]
        moved_on = task_instances.moved_on(finished, self.log)
        for item in items:
            self._apply(item, moved_on)

    def _apply(
        self, item: TaskStateItem, moved_on: set[AirflowKey] | frozenset[AirflowKey] = frozenset()
    ) -> None:
        """Report one item's state to Airflow, if it is the current submission of a task of ours."""
        airflow_key = self.tracked.get(item.key)
        if airflow_key is None or item.key in self._pending_adoption:
            return
        if item.owner != self.owner and item.key in self._adopting:
            # Adopted here, and the control plane has not moved it yet: keep it, ask again if slow.
            if now_ms() - self._adopting[item.key] > adoption.ADOPT_RESEND_MS:
                self.log.warning(
                    "Task %s is still owned by %s; asking again to adopt it", item.key, item.owner
                )
                self._request_adoption(item.key)
            return
        self._adopting.pop(item.key, None)
        if item.owner != self.owner:
            # Another scheduler adopted it: it reports the outcome now.
            self.log.info("Task %s is now owned by %s; no longer tracked here", item.key, item.owner)
            self._untrack(item.key)
            self.running.discard(airflow_key)
            return
        self.feed.applied(item.key, item.updated_at, item.state.value)
        if item.is_terminal and airflow_key in moved_on:
            self.log.info(
                "Task %s %s after Airflow moved the try on (next poke or resume): not reported",
                item.key,
                item.state.value,
            )
            self._untrack(item.key)
            self.running.discard(airflow_key)
        elif item.state is TaskState.SUCCESS:
            self._untrack(item.key)
            self.metrics.tries_ended("success")
            self.success(airflow_key, item.task_arn)
        elif item.state is TaskState.FAILED:
            reason = _failure_reason(item)
            self.log.error("Task %s failed: %s", item.key, reason)
            self.log_task_event(event="ecs control plane task failed", extra=reason, ti_key=airflow_key)
            self._untrack(item.key)
            self.metrics.tries_ended("failed")
            # A callback's info becomes its output in Airflow's callback table: say why.
            self.fail(airflow_key, item.task_arn if is_task_instance_key(airflow_key) else reason)
        else:
            self._set_state(item.key, item.state.value)
        if not item.is_terminal and item.task_arn and self._reported_arn.get(item.key) != item.task_arn:
            self._reported_arn[item.key] = item.task_arn
            self.log.info(
                "Task %s runs as ECS task %s (start attempt %d)", item.key, item.task_arn, item.attempt
            )

    def _untrack(self, encoded: str) -> None:
        self._forget(encoded)
        for kind in ("run", "stop", "adopt"):
            self._send_failures.pop((kind, encoded), None)
        self._outbox.pop(("run", encoded), None)
        self._outbox.pop(("adopt", encoded), None)

    # -- stopping -------------------------------------------------------------------------------

    def revoke_task(self, *, ti: TaskInstance) -> None:
        """Ask the control plane to stop the task's current submission, and forget it. Never raises."""
        key = self._key_of(ti)
        try:
            encoded = self._current.get(key)
            if encoded is None:
                external = getattr(ti, "external_executor_id", None)
                submission = str(external) if is_submission_id(external) else ""
                encoded = task_key_for(key).with_submission(submission).encode()
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

    def get_task_log(self, ti: TaskInstance, try_number: int) -> tuple[list[str], list[str]]:
        """The try's ECS container logs for Airflow's log view (``read_task_logs``); never raises."""
        return self._task_logs.read(ti, try_number)

    @functools.cached_property
    def _task_logs(self) -> TaskLogs:
        return TaskLogs.for_executor(self)


def _failure_reason(item: TaskStateItem) -> str:
    return f"{item.outcome()}; task {item.task_arn}" if item.task_arn else item.outcome()
