"""Reconciliation: repair what lost events and lost requests left behind, on a schedule.

It repairs through the task-change path (``TaskChanges``), so a lost event is applied exactly as
a delivered one would have been; it also fails overdue tries and stops orphan ECS tasks.
"""

from __future__ import annotations

import logging

from .contract import TaskState, TaskStateItem, now_ms
from .ecs_events import EcsTask
from .results import Outcome, ReconcileReport
from .task_changes import TaskChanges

logger = logging.getLogger(__name__)


class Reconciliation(TaskChanges):
    """The reconciliation use case (the ``reconciler`` function's)."""

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
