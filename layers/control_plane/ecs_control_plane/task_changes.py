"""Handling one ECS task state change: apply it to its item, or retry a start ECS stopped.

The decision is ``ecs_events.plan_transition``; this applies it through one conditional write
and, for a task that stopped before it ran, re-enqueues the try with the next attempt.
"""

from __future__ import annotations

import logging
from dataclasses import replace

from .contract import RunRequest, TaskStateItem, now_ms
from .ecs_events import Action, EcsTask, Transition, plan_transition, plan_unread_transition
from .plane_base import PlaneBase
from .results import Outcome, Result, submit_to_running_ms
from .retry import FailureClass, is_capacity_stop
from .store import NotApplied

logger = logging.getLogger(__name__)


class TaskChanges(PlaneBase):
    """The ECS task state change use case (the ``task_state`` function's)."""

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
            item.queue, item.attempt_on_fallback, is_capacity_stop(task.stop_code, task.stopped_reason)
        )
        if fallback and not item.attempt_on_fallback:
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
            next_on_fallback=fallback,
        )
        if moved is None:
            return Result(Outcome.IGNORED, item.key, "another event moved the item first", task.task_arn)
        logger.warning(
            "start failed; re-enqueued",
            extra={"key": item.key, "attempt": item.attempt + 1, "reason": reason},
        )
        return Result(Outcome.RETRY_QUEUED, item.key, reason, task.task_arn, item.attempt + 1)
