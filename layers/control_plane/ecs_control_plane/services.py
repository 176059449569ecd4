"""The control plane's use cases: handle one run request, handle one ECS task state change.

The handlers parse events and call these; these decide with the pure modules and act through
the adapters they are given.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from enum import Enum

from .contract import FailedStartDetail, RunRequest, TaskState, TaskStateItem, now_ms
from .ecs_events import Action, EcsTask, Transition, plan_transition, plan_unread_transition
from .gateways import EcsGateway, FailedStartAlerts, RunRequestQueue, RunTaskOutcome
from .log_location import TaskDefinitionLogs, TaskLogLocation
from .placements import PLACEMENT_FAILURE_LIMIT, AttemptPlacement
from .queue_profiles import describe_placement
from .readiness import FALLBACK_LAUNCH_TYPE, CheckError, ReadinessReport, check_readiness, default_placement
from .results import Outcome, ReconcileReport, Result, RetryLater, submit_to_running_ms
from .retry import FailureClass, is_capacity_failure, is_capacity_stop, transient_delay_seconds
from .run_task_call import RunTaskConfigError, build_run_task_call, stack_run_task_kwargs
from .settings import ControlPlaneSettings
from .store import ItemTooLargeError, NotApplied, StateTable

logger = logging.getLogger(__name__)


class _Plan(str, Enum):
    START = "START"
    DROP = "DROP"
    FAIL = "FAIL"
    WAIT = "WAIT"


def plan_run(item: TaskStateItem, request: RunRequest) -> tuple[_Plan, int, str]:
    """What to do with a run request whose item exists already: (plan, attempt, why)."""
    if item.is_terminal:
        return _Plan.DROP, item.attempt, f"already {item.state.value}"
    if item.stop_requested:
        return _Plan.FAIL, item.attempt, "stopped before it started"
    if item.state == TaskState.QUEUED:
        return _Plan.START, max(item.attempt, request.attempt), "queued"
    if request.attempt > item.attempt:
        # A start retry sent just before its item moved to QUEUED: look again shortly.
        return _Plan.WAIT, request.attempt, f"item still {item.state.value} at attempt {item.attempt}"
    return _Plan.DROP, item.attempt, f"duplicate: attempt {item.attempt} already {item.state.value}"


class ControlPlane:
    """Both use cases, over one set of adapters."""

    def __init__(
        self,
        settings: ControlPlaneSettings,
        table: StateTable,
        ecs: EcsGateway,
        queue: RunRequestQueue,
        alerts: FailedStartAlerts,
        *,
        region: str = "",
    ) -> None:
        self.settings = settings
        self.table = table
        self.ecs = ecs
        self.queue = queue
        self.alerts = alerts
        self.region = region
        self._fallback: tuple[str | None] | None = None
        #: Where each started task's Airflow container logs (one DescribeTaskDefinition per
        #: revision per container).
        self.task_logs = TaskDefinitionLogs(self._describe_task_definition, settings.container_name, region)

    def _describe_task_definition(self, reference: str) -> dict[str, object]:
        return self.ecs.describe_task_definition(reference)  # the gateway of now: it may be replaced

    # -- readiness --------------------------------------------------------------------------------

    def check_readiness(self) -> ReadinessReport:
        """Check the stack's settings against ECS and record the result for the executors."""
        try:
            report = check_readiness(self.settings, self.ecs, self.region)
        except CheckError as exc:  # transient: no verdict; the last one stands until the next run
            logger.warning("readiness check not made: ECS did not answer", extra={"error": str(exc)})
            raise
        self.table.record_readiness(report)
        if report.problems:
            logger.error(
                "the stack's settings cannot run tasks: fix these template parameters",
                extra={"problems": [str(p) for p in report.problems]},
            )
        self._fallback = (report.fallback_launch_type,) if not report.problems else self._fallback
        return report

    def _fallback_launch_type(self) -> str | None:
        """The launch type to send when no level chooses a placement (the provider's fallback).

        Asked of ECS once per container, and only if the settings choose no placement.
        """
        if self._fallback is None:
            placement = stack_run_task_kwargs(self.settings)
            if placement.get("launchType") or placement.get("capacityProviderStrategy"):
                self._fallback = (FALLBACK_LAUNCH_TYPE,)  # only a task's executor_config could clear it
            else:
                try:
                    self._fallback = (default_placement(self.ecs.describe_cluster(self.settings.cluster)),)
                except CheckError as exc:
                    # Send neither: ECS then applies the cluster's default strategy, if any.
                    logger.warning("cluster not described; no launch type sent", extra={"error": str(exc)})
                    return None
        return self._fallback[0]

    # -- run requests ---------------------------------------------------------------------------

    def handle_request(self, request: RunRequest, *, receive_count: int = 1) -> Result:
        if request.kind == "stop":
            return self._stop(request)
        if request.kind == "adopt":
            return self._adopt(request)
        return self._run(request, receive_count)

    def _adopt(self, request: RunRequest) -> Result:
        """A scheduler adopts a submission whose item it could not find: make it that owner's.

        Its run request may still be on the queue: the item is created QUEUED for the adopter
        (``awaiting_request``), the request starts it under the adopter when it arrives, and the
        reconciler fails it once overdue if it never does. If the request made the item first,
        the item is moved to the adopter like any other.
        """
        key, owner = request.key, request.owner
        item = self.table.claim_for_adoption(key, owner) or self.table.transfer_owner(key, owner)
        if item is None:  # expired between the two calls: nothing is left to adopt
            return Result(Outcome.DROPPED, key, "nothing to adopt")
        logger.info("submission adopted", extra={"key": key, "owner": owner, "state": item.state.value})
        return Result(Outcome.ADOPTED, key, f"adopted by {owner}", item.task_arn, item.attempt)

    def _run(self, request: RunRequest, receive_count: int) -> Result:
        key = request.key
        try:
            build_run_task_call(self.settings, request, fallback_launch_type=None)
        except RunTaskConfigError as exc:
            return self._refused(request, str(exc))
        except Exception as exc:  # noqa: BLE001 - a config no check foresaw fails its try, never the batch
            why = (
                f"the run_task call could not be built from this executor_config: {type(exc).__name__}: {exc}"
            )
            return self._refused(request, why[:2000])

        try:
            item = self.table.create_queued(
                key,
                request.owner,
                request.attempt,
                request.queue,
                request.executor_config,
                token_expires_at=request.token_expires_at,
                submitted_at=request.sent_at,
                profile=self._profile_name(request.queue),
            )
            attempt = request.attempt
            if item is None:
                existing = self.table.get(key)
                if existing is not None and existing.awaiting_request:
                    # Adopted before this request arrived: it starts under the adopting scheduler.
                    existing = self.table.claim_awaiting(
                        key,
                        request.queue,
                        request.executor_config,
                        token_expires_at=request.token_expires_at,
                        submitted_at=request.sent_at,
                        profile=self._profile_name(request.queue),
                    ) or self.table.get(key)
                if existing is None:  # expired between the two calls: the next delivery creates it
                    raise RetryLater("item vanished between create and read", 1)
                plan, attempt, why = plan_run(existing, request)
                if plan is _Plan.DROP:
                    logger.info("run request dropped", extra={"key": key, "reason": why})
                    return Result(Outcome.DUPLICATE, key, why, existing.task_arn, existing.attempt)
                if plan is _Plan.FAIL:
                    return self.fail_start(
                        key, existing.owner, why, attempt=existing.attempt, only_if_queued=True
                    )
                if plan is _Plan.WAIT:
                    raise RetryLater(why, 2)
                if attempt > existing.attempt:
                    self.table.advance_queued_attempt(key, attempt)
                item = existing
        except ItemTooLargeError as exc:
            return self._refused(request, str(exc))
        return self._start(request, item, attempt, receive_count)

    def _profile_name(self, queue: str | None) -> str | None:
        """The queue's name when it has a profile (what the item records), else None."""
        return queue if self.settings.profile_for(queue) is not None else None

    def _placement(
        self, request: RunRequest, call: dict[str, object], failure: str | None = None
    ) -> AttemptPlacement:
        """Where this start attempt was placed, for the item (and alerts, and ``explain``)."""
        profile = self.settings.profile_for(request.queue)
        fell_back = (
            request.fallback and profile is not None and bool(profile.fallback_capacity_provider_strategy)
        )
        return AttemptPlacement(
            attempt=request.attempt,
            placement=describe_placement(call),
            fallback=fell_back,
            failure=failure[:PLACEMENT_FAILURE_LIMIT] if failure else None,
        )

    def _next_on_fallback(self, queue: str | None, on_fallback: bool, capacity_failure: bool) -> bool:
        """Whether the next start attempt goes to the queue profile's fallback capacity: after a
        capacity failure, and for good once a try has fallen back."""
        profile = self.settings.profile_for(queue)
        if profile is None or not profile.fallback_capacity_provider_strategy:
            return False
        return on_fallback or capacity_failure

    def _refused(self, request: RunRequest, reason: str) -> Result:
        """No start can serve this request (its run_task call, its item): a PERMANENT start failure."""
        failed = self.fail_start(
            request.key, request.owner, reason, attempt=request.attempt, only_if_queued=True
        )
        return replace(failed, start_failure=FailureClass.PERMANENT)

    def _deadline_ms(self, item: TaskStateItem, request: RunRequest | None = None) -> int:
        """The latest time a start may begin: the workload token's expiry less the start margin.

        Requests of contract v1 carry no expiry; their tries are bounded by QueuedTimeoutSeconds.
        """
        expires = item.token_expires_at or (request.token_expires_at if request else None)
        if expires is None:
            created = item.created_at or item.updated_at
            return created + self.settings.queued_timeout_seconds * 1000
        return expires - self.settings.token_start_margin_seconds * 1000

    def _token_expired_reason(self, attempt: int, what: str) -> str:
        return (
            f"{what}, but start attempt {attempt} could not begin before the workload token expires: "
            "Airflow signs it for [scheduler] task_queued_timeout, and a container started later could "
            "not reach Airflow. Airflow's own retry (with a fresh token) takes over"
        )

    def _start(self, request: RunRequest, item: TaskStateItem, attempt: int, receive_count: int) -> Result:
        key = request.key
        owner = item.owner
        deadline = self._deadline_ms(item, request)
        if now_ms() > deadline:
            what = request.reason or "the run request waited too long"
            reason = self._token_expired_reason(attempt, what)
            return self.fail_start(key, owner, reason, attempt=attempt, only_if_queued=True)
        if attempt != request.attempt:
            request = request.model_copy(update={"attempt": attempt})
        call = build_run_task_call(
            self.settings, request, attempt, fallback_launch_type=self._fallback_launch_type()
        )
        outcome = self.ecs.run_task(call)
        if outcome.task_arn is not None:
            log = self._log_location(outcome, call, request.queue)
            return self._record_start(key, attempt, outcome.task_arn, log, self._placement(request, call))
        failed = self._run_task_failed(request, item, attempt, outcome, deadline, call=call)
        return replace(failed, start_failure=outcome.failure)

    def _run_task_failed(
        self,
        request: RunRequest,
        item: TaskStateItem,
        attempt: int,
        outcome: RunTaskOutcome,
        deadline: int,
        *,
        call: dict[str, object],
    ) -> Result:
        """RunTask started nothing: try again later, retry with the next attempt (on the queue
        profile's fallback capacity after a capacity failure), or fail the try."""
        key, owner = request.key, item.owner
        reason = outcome.reason or "unknown RunTask failure"
        if outcome.failure is FailureClass.TRANSIENT:
            return self._retry_throttled(request, item, attempt, reason, deadline)
        placement = self._placement(request, call, failure=reason)
        if outcome.failure is FailureClass.RETRY_ATTEMPT and attempt < self.settings.max_run_task_attempts:
            why = f"start attempt {attempt} of {self.settings.max_run_task_attempts} failed: {reason}"
            fallback = self._next_on_fallback(request.queue, placement.fallback, is_capacity_failure(reason))
            if fallback and not placement.fallback:
                why += "; the next attempt runs on the queue profile's fallback capacity"
            delay = self.settings.backoff_seconds(attempt)
            if now_ms() + delay * 1000 > deadline:
                reason = self._token_expired_reason(attempt + 1, why)
                return self.fail_start(
                    key, owner, reason, attempt=attempt, only_if_queued=True, placement=placement
                )
            if self.table.schedule_retry(key, attempt, why, placement=placement) is None:
                # Another invocation started (or ended) the try meanwhile: its start stands.
                logger.info("capacity retry not scheduled: the try moved on", extra={"key": key})
                why = f"not retried, the try moved on: {why}"
                return Result(Outcome.DUPLICATE, key, why, attempt=attempt)
            # A fresh message per attempt: attempts never eat into the queue's maxReceiveCount. If
            # the send fails, this message comes back and finds the item QUEUED at attempt + 1.
            retry = request.model_copy(
                update={
                    "attempt": attempt + 1,
                    "sent_at": now_ms(),
                    "reason": why,
                    "throttled": 0,
                    "fallback": fallback,
                }
            )
            self.queue.send(retry, delay_seconds=delay)
            logger.warning("start failed; retrying with backoff", extra={"key": key, "reason": why})
            return Result(Outcome.RETRY_QUEUED, key, why, attempt=attempt + 1)
        if outcome.failure is FailureClass.RETRY_ATTEMPT:
            reason = f"task failed to start after {attempt} attempt(s): {reason}"
        return self.fail_start(key, owner, reason, attempt=attempt, only_if_queued=True, placement=placement)

    def _log_location(
        self, outcome: RunTaskOutcome, call: dict[str, object], queue: str | None
    ) -> TaskLogLocation | None:
        """Where the started task's Airflow container logs: its revision's, else the call's family."""
        reference = outcome.task_definition_arn or str(call.get("taskDefinition") or "")
        container = self.settings.container_name_for(self.settings.profile_for(queue))
        return self.task_logs.location(reference, outcome.task_arn or "", container)

    def _record_start(
        self,
        key: str,
        attempt: int,
        task_arn: str,
        log: TaskLogLocation | None = None,
        placement: AttemptPlacement | None = None,
    ) -> Result:
        """Record the started task; a task the item no longer wants is stopped at once."""
        recorded = self.table.record_started(key, attempt, task_arn, log, placement)
        if recorded is None:
            current = self.table.get(key)
            if current is None or current.attempt != attempt or current.task_arn != task_arn:
                # Another invocation moved the item on (a later attempt, a stop, the try is over)
                # while RunTask ran: nobody would watch this task, so it must not run.
                why = "the control plane moved this try on while the task was starting"
                if current is not None:
                    why += f" (now {current.state.value} at attempt {current.attempt})"
                self.ecs.stop_task(self.settings.cluster, task_arn, why)
                logger.warning("started task not recorded; stopped", extra={"key": key, "task_arn": task_arn})
                return Result(Outcome.DUPLICATE, key, why, task_arn, attempt)
            recorded = current
        if recorded.stop_requested:
            self.ecs.stop_task(self.settings.cluster, task_arn, "Airflow asked to stop this task")
        logger.info("ECS task started", extra={"key": key, "attempt": attempt, "task_arn": task_arn})
        return Result(Outcome.STARTED, key, task_arn=task_arn, attempt=attempt)

    def _retry_throttled(
        self, request: RunRequest, item: TaskStateItem, attempt: int, reason: str, deadline: int
    ) -> Result:
        """Try a throttled start again later, on a fresh message: no attempt and no receive spent.

        Throttling says nothing about the request, so it must never use up the message
        (maxReceiveCount) nor a start attempt; only the token's lifetime bounds it.
        """
        key = request.key
        throttled = request.throttled + 1
        room_s = (deadline - now_ms()) // 1000
        if room_s < 1:
            what = f"ECS refused to start it {throttled} time(s) for rate or quota limits ({reason})"
            reason = self._token_expired_reason(attempt, what)
            return self.fail_start(key, item.owner, reason, attempt=attempt, only_if_queued=True)
        delay = min(transient_delay_seconds(throttled), room_s)
        retry = request.model_copy(
            update={
                "attempt": attempt,
                "throttled": throttled,
                "sent_at": now_ms(),
                "reason": f"throttled: {reason}",
            }
        )
        self.queue.send(retry, delay_seconds=delay)
        self.table.touch_queued(key, attempt)  # still being worked on: the reconciler leaves it be
        logger.warning(
            "RunTask throttled; trying again on a fresh message, no attempt spent",
            extra={"key": key, "reason": reason, "times": throttled, "delay_seconds": delay},
        )
        return Result(Outcome.THROTTLED, key, reason, attempt=attempt)

    def _stop(self, request: RunRequest) -> Result:
        key = request.key
        why = request.reason or "Airflow asked to stop this task"
        item = self.table.request_stop(key, request.owner)
        if item is None:
            current = self.table.get(key)
            if current is not None and current.owner != request.owner:
                logger.warning(
                    "stop request ignored: another scheduler owns the try",
                    extra={"key": key, "owner": current.owner, "requested_by": request.owner},
                )
                return Result(Outcome.DROPPED, key, f"owned by {current.owner}, not {request.owner}")
            return Result(Outcome.DROPPED, key, "already finished")
        if item.task_arn and item.state in (TaskState.STARTING, TaskState.RUNNING):
            if not self._is_own_task(key, item.task_arn):
                reason = f"refused to stop {item.task_arn}: it is not this control plane's task of this try"
                logger.error("stop refused", extra={"key": key, "task_arn": item.task_arn})
                return Result(Outcome.DROPPED, key, reason, item.task_arn, item.attempt)
            self.ecs.stop_task(self.settings.cluster, item.task_arn, why)
            return Result(Outcome.STOP_SENT, key, why, item.task_arn, item.attempt)
        self.table.mark_failed(key, item.owner, f"stopped before it started: {why}", create=False)
        return Result(Outcome.STOP_RECORDED, key, why, attempt=item.attempt)

    def _is_own_task(self, key: str, task_arn: str) -> bool:
        """Whether ECS says ``task_arn`` was started by this control plane for ``key``.

        The item's task ARN is not trusted blindly: whoever can write the item must not be able
        to make the control plane stop a task it never started.
        """
        described = self.ecs.describe_tasks(self.settings.cluster, [task_arn])
        task = described[0] if described else None
        return (
            task is not None
            and task.started_by == self.settings.control_plane_id
            and task.task_key(self.settings.container_name) == key
        )

    def fail_start(
        self,
        key: str,
        owner: str,
        reason: str,
        *,
        attempt: int,
        task_arn: str | None = None,
        changes: dict[str, object] | None = None,
        only_if_queued: bool = False,
        placement: AttemptPlacement | None = None,
    ) -> Result:
        """FAILED for good, then the failed-start event (once per item; re-sent if putting it failed).

        ``only_if_queued``: the decision was made by run_task without a task of its own, so it
        holds only while the item is still QUEUED with no task (or missing): a start that a
        concurrent invocation recorded meanwhile is never undone.
        """
        item = self.table.mark_failed(
            key,
            owner,
            reason,
            attempt=attempt,
            start_failed=True,
            changes=dict(changes or {}),
            only_if_queued=only_if_queued,
            placement=placement,
        )
        if item is None:
            item = self.table.get(key)
            if only_if_queued and item is not None and not item.is_terminal:
                logger.info("failure not applied: the try moved on meanwhile", extra={"key": key})
                why = f"not failed, already {item.state.value}"
                return Result(Outcome.DUPLICATE, key, why, attempt=attempt)
        logger.error("task failed to start", extra={"key": key, "attempt": attempt, "reason": reason})
        if item is not None:
            self._alert_once(item, task_arn)
        return Result(Outcome.FAILED, key, reason, task_arn, attempt)

    def fail_malformed(self, key: str, owner: str | None, reason: str) -> Result:
        """A message naming ``key`` could not be read: fail the try, unless it is already under way.

        A bad message (say, from a newer executor during a rolling upgrade) must not fail a
        task that a good message already started.
        """
        item = self.table.mark_failed(
            key, owner or "unknown", reason, attempt=1, start_failed=True, only_if_queued=True
        )
        if item is None:
            return Result(Outcome.DROPPED, key, f"{reason}; the try is already under way or over")
        self._alert_once(item)
        return Result(Outcome.FAILED, key, reason)

    def _alert_once(self, item: TaskStateItem, task_arn: str | None = None) -> bool:
        """Put the failed-start event of a try that failed to start, unless it went out already."""
        if item.state is not TaskState.FAILED or not item.start_failed or item.alerted:
            return False
        self.alerts.publish(
            FailedStartDetail.build(
                key=item.key,
                owner=item.owner,
                attempt=item.attempt,
                reason=item.reason or "failed to start",
                cluster=self.settings.cluster,
                control_plane=self.settings.control_plane_id,
                task_arn=task_arn or item.task_arn,
                profile=item.profile,
                placements=item.placements,
            )
        )
        self.table.mark_alerted(item.key)
        return True

    # -- ECS task state changes -----------------------------------------------------------------

    def handle_task_change(self, task: EcsTask) -> Result:
        """Apply one ECS event: in the common case one conditional write and no read.

        The write checks what was presumed of the item; when that does not hold (a late or
        repeated event, an unknown key, a stop requested) the refused write returns the item,
        and the event is decided from it as it would have been from a read. A task that never
        started needs the item to retry it: that case reads first.
        """
        container = self.settings.container_name
        key = task.task_key(container)
        if not key:
            logger.info("ECS task without a task key ignored", extra={"task_arn": task.task_arn})
            return Result(Outcome.IGNORED, "", "no task key in the container environment", task.task_arn)
        unread = plan_unread_transition(task, container_name=container)
        if unread is None:
            return self._decide_task_change(key, task, self.table.get(key))
        plan, presumed = unread
        written = self.table.apply_progress(
            key,
            presumed.attempt,
            plan.state,
            plan.changes,
            exit_code=plan.exit_code,
            reason=plan.reason,
            from_states=presumed.states,
            unless_stop_requested=presumed.no_stop_requested,
        )
        if isinstance(written, NotApplied):
            return self._decide_task_change(key, task, written.current)
        return self._applied(key, task, plan, written)

    def _decide_task_change(self, key: str, task: EcsTask, item: TaskStateItem | None) -> Result:
        """Decide the event from the item as it is (read, or returned by a refused write)."""
        container = self.settings.container_name
        plan = plan_transition(
            item, task, container_name=container, max_attempts=self.settings.max_run_task_attempts
        )
        if plan.action is Action.IGNORE or item is None:
            if item is not None:
                self._alert_once(item)  # a redelivered event after a failed PutEvents
            logger.info(
                "ECS event ignored", extra={"key": key, "reason": plan.reason, "version": task.version}
            )
            return Result(Outcome.IGNORED, key, plan.reason, task.task_arn)
        assert plan.state is not None  # every non-IGNORE plan names a state

        if plan.action in (Action.GIVE_UP, Action.RETRY_START):
            # ECS stopped the task before it ran: a failed start attempt, of the class retried.
            failed = self._failed_in_ecs(item, task, plan)
            if failed.outcome is Outcome.IGNORED:  # another delivery of the event handled it
                return failed
            return replace(failed, start_failure=FailureClass.RETRY_ATTEMPT)

        applied = self.table.apply_progress(
            key, item.attempt, plan.state, plan.changes, exit_code=plan.exit_code, reason=plan.reason
        )
        if isinstance(applied, NotApplied):
            return Result(Outcome.IGNORED, key, "stale: a newer event was applied first", task.task_arn)
        return self._applied(key, task, plan, applied)

    def _failed_in_ecs(self, item: TaskStateItem, task: EcsTask, plan: Transition) -> Result:
        """The task stopped before it ran: the next attempt, or FAILED after the last one."""
        if plan.action is Action.GIVE_UP:
            return self.fail_start(
                item.key,
                item.owner,
                plan.reason or "failed to start",
                attempt=item.attempt,
                task_arn=task.task_arn,
                changes=plan.changes,
            )
        return self._retry_start(item, task, plan.reason or "failed to start")

    def _applied(self, key: str, task: EcsTask, plan: Transition, applied: TaskStateItem) -> Result:
        logger.info(
            "task state applied",
            extra={
                "key": key,
                "state": applied.state.value,
                "ecs_status": task.last_status,
                "version": task.version,
            },
        )
        latency = submit_to_running_ms(applied, task.started_at)
        return Result(
            Outcome.APPLIED, key, plan.reason, task.task_arn, applied.attempt, submit_to_running_ms=latency
        )

    def _retry_start(self, item: TaskStateItem, task: EcsTask, reason: str) -> Result:
        """Re-enqueue the try with attempt + 1 after ECS stopped it before it ran."""
        delay = self.settings.backoff_seconds(item.attempt)
        if now_ms() + delay * 1000 > self._deadline_ms(item):
            return self.fail_start(
                item.key,
                item.owner,
                self._token_expired_reason(item.attempt + 1, reason),
                attempt=item.attempt,
                task_arn=task.task_arn,
                changes={"stop_code": task.stop_code, "stopped_reason": task.stopped_reason},
            )
        container = self.settings.container_name
        override = task.container_override(container)
        command = override.command if override else None
        if not command:  # events may omit overrides: ECS still has them
            described = self.ecs.describe_tasks(self.settings.cluster, [task.task_arn])
            found = described[0].container_override(container) if described else None
            command = found.command if found else None
        if not command:
            return self.fail_start(
                item.key,
                item.owner,
                f"{reason}; cannot retry: the task's command is unknown",
                attempt=item.attempt,
                task_arn=task.task_arn,
            )
        fallback = self._next_on_fallback(
            item.queue, item.on_fallback, is_capacity_stop(task.stop_code, task.stopped_reason)
        )
        if fallback and not item.on_fallback:
            reason += "; the next attempt runs on the queue profile's fallback capacity"
        retry = RunRequest(
            kind="run",
            key=item.key,
            owner=item.owner,
            command=command,
            queue=item.queue,
            executor_config=item.executor_config,
            attempt=item.attempt + 1,
            reason=reason,
            token_expires_at=item.token_expires_at,
            fallback=fallback,
        )
        # Send first: a retry message without its QUEUED item waits (plan_run); an item moved to
        # QUEUED with no message would wait forever.
        self.queue.send(retry, delay_seconds=delay)
        moved = self.table.schedule_retry(
            item.key,
            item.attempt,
            reason,
            {"stop_code": task.stop_code, "stopped_reason": task.stopped_reason},
            failed_task_arn=task.task_arn,
        )
        if moved is None:
            return Result(Outcome.IGNORED, item.key, "another event moved the item first", task.task_arn)
        logger.warning(
            "start failed; re-enqueued",
            extra={"key": item.key, "attempt": item.attempt + 1, "reason": reason},
        )
        return Result(Outcome.RETRY_QUEUED, item.key, reason, task.task_arn, item.attempt + 1)

    # -- reconciliation -------------------------------------------------------------------------

    def reconcile(self) -> ReconcileReport:
        """Repair what lost events left behind, through the same update path as the events.

        Looks only at items in flight that have not moved for ``reconcile_stale_seconds``: ECS
        is asked about their tasks (DescribeTasks, 100 a call); a try whose run request never
        produced a task within ``queued_timeout_seconds`` fails with an alert; an alert whose
        PutEvents failed is sent again; ECS tasks of this control plane that no item claims are
        stopped, so a try never runs twice. One item's failure never stops the others.
        """
        settings = self.settings
        now = now_ms()
        report = ReconcileReport()
        stale = list(self.table.stale_active(now - settings.reconcile_stale_seconds * 1000))
        report.examined = len(stale)
        in_flight = [i for i in stale if not i.is_terminal]
        arns = [i.task_arn for i in in_flight if i.task_arn]
        described: dict[str, EcsTask] = {}
        try:
            described = {t.task_arn: t for t in self.ecs.describe_tasks(settings.cluster, arns)}
        except Exception:
            logger.exception("DescribeTasks failed during reconciliation")
            report.errors += 1
            arns = []
        queued_cutoff = now - settings.queued_timeout_seconds * 1000
        for item in stale:
            try:
                self._reconcile_item(item, described, bool(arns), queued_cutoff, report)
            except Exception:
                logger.exception("reconciling an item failed", extra={"key": item.key})
                report.errors += 1
        try:
            report.orphans_stopped = self._stop_orphans()
        except Exception:
            logger.exception("the orphan sweep failed")
            report.errors += 1
        try:
            report.settings_problems = len(self.check_readiness().problems)
        except Exception:
            logger.exception("the readiness check failed")
            report.errors += 1
        logger.info("reconciled", extra=report.__dict__)
        return report

    def _reconcile_item(
        self,
        item: TaskStateItem,
        described: dict[str, EcsTask],
        described_ok: bool,
        queued_cutoff: int,
        report: ReconcileReport,
    ) -> None:
        if item.is_terminal:
            report.alerts_resent += int(self._alert_once(item))
            return
        if item.task_arn:
            if not described_ok:
                return
            task = described.get(item.task_arn)
            if task is None:
                reason = f"ECS no longer knows task {item.task_arn}; its state changes were lost"
                if self.table.mark_failed(item.key, item.owner, reason, create=False) is not None:
                    report.lost += 1
                return
            if self.handle_task_change(task).outcome is not Outcome.IGNORED:
                report.repaired += 1
            return
        if item.state is not TaskState.QUEUED:
            return
        expired = item.token_expires_at is not None and now_ms() > item.token_expires_at
        if item.awaiting_request and item.updated_at < queued_cutoff:
            reason = (
                f"adopted by {item.owner}, but its run request did not arrive within "
                f"{self.settings.queued_timeout_seconds} s (look in the run-request dead-letter queue)"
            )
        elif expired:
            reason = self._token_expired_reason(item.attempt, "no ECS task was started for it")
        elif item.updated_at < queued_cutoff:
            reason = (
                f"no ECS task was started within {self.settings.queued_timeout_seconds} s: "
                "the run request was lost (look in the run-request dead-letter queue)"
            )
        else:
            return
        failed = self.table.mark_failed(
            item.key,
            item.owner,
            reason,
            create=False,
            start_failed=True,
            only_if_queued=True,
            expect_updated_at=item.updated_at,
        )
        if failed is not None:
            self._alert_once(failed)
            report.timed_out += 1

    def _stop_orphans(self) -> int:
        container = self.settings.container_name
        arns = self.ecs.running_task_arns(self.settings.cluster, self.settings.control_plane_id)
        tasks = [
            t
            for t in self.ecs.describe_tasks(self.settings.cluster, arns)
            if t.desired_status in (None, "RUNNING")
        ]
        keys = [key for key in (t.task_key(container) for t in tasks) if key]
        unreadable: set[str] = set()
        items = {
            item.key: item for item in self.table.batch_get(keys, consistent=True, unreadable=unreadable)
        }
        stopped = 0
        for task in tasks:
            key = task.task_key(container)
            item = items.get(key or "")
            attempt = task.attempt(container)
            if key in unreadable:
                # An item the sweep cannot read is not "no item": its task is left running.
                logger.error(
                    "orphan sweep: the task's state item is not a valid item; task left alone",
                    extra={"task_arn": task.task_arn, "key": key},
                )
                continue
            if key is None:
                why = "it carries no task key"
            elif item is None:
                why = "no item knows its task key"
            elif item.is_terminal:
                why = f"its try is already {item.state.value}"
            elif attempt is not None and attempt < item.attempt:
                why = f"it ran attempt {attempt}, the try is at attempt {item.attempt}"
            elif attempt == item.attempt and item.task_arn and item.task_arn != task.task_arn:
                why = f"{item.task_arn} runs this attempt"
            else:
                continue
            logger.warning(
                "stopping orphan ECS task", extra={"task_arn": task.task_arn, "key": key, "why": why}
            )
            try:
                self.ecs.stop_task(
                    self.settings.cluster, task.task_arn, f"orphan of the control plane: {why}"
                )
            except (
                Exception
            ):  # one refused stop (an untagged task from before an upgrade) never ends the sweep
                logger.exception("could not stop orphan ECS task", extra={"task_arn": task.task_arn})
                continue
            stopped += 1
        return stopped
