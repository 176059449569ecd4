"""Handling one run request: run (create the item, start the ECS task), stop, or adopt a try.

A start that RunTask refuses is retried here too (throttled, or with the next attempt); what
decides a request whose item exists already is ``plan_run``.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from enum import Enum

from .contract import RunRequest, TaskState, TaskStateItem, now_ms
from .gateways import RunTaskOutcome
from .log_location import TaskLogLocation
from .placements import AttemptPlacement
from .plane_base import PlaneBase
from .results import Outcome, Result, RetryLater
from .retry import FailureClass, is_capacity_failure, transient_delay_seconds
from .run_task_call import RunTaskConfigError, build_run_task_call
from .store import ItemTooLargeError

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


class RunRequests(PlaneBase):
    """The run-request use case (the ``run_task`` function's)."""

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

    def _refused(self, request: RunRequest, reason: str) -> Result:
        """No start can serve this request (its run_task call, its item): a PERMANENT start failure."""
        # The queue and its profile too: the item may not exist yet, and its alert names them.
        queue: dict[str, object] = {"queue": request.queue, "profile": self._profile_name(request.queue)}
        failed = self.fail_start(
            request.key, request.owner, reason, attempt=request.attempt, only_if_queued=True, changes=queue
        )
        return replace(failed, start_failure=FailureClass.PERMANENT)

    def _start(self, request: RunRequest, item: TaskStateItem, attempt: int, receive_count: int) -> Result:
        key = request.key
        owner = item.owner
        deadline = self._deadline_ms(item, request)
        if now_ms() > deadline:
            what = request.reason or "the run request waited too long"
            reason = self._token_expired_reason(attempt, what)
            return self.fail_start(key, owner, reason, attempt=attempt, only_if_queued=True)
        # The retry that scheduled this attempt put it on the fallback, whichever message starts it.
        fallback = request.fallback or (item.attempt_on_fallback and item.attempt == attempt)
        if attempt != request.attempt or fallback != request.fallback:
            request = request.model_copy(update={"attempt": attempt, "fallback": fallback})
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
            scheduled = self.table.schedule_retry(
                key, attempt, why, placement=placement, next_on_fallback=fallback
            )
            if scheduled is None:
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
