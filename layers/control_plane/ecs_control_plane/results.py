"""What the control plane's use cases report to their handlers (pure).

The handlers answer with these and publish them as metrics (:mod:`.metrics`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import Enum

from .contract import TaskState, TaskStateItem
from .retry import FailureClass


class RetryLater(Exception):  # noqa: N818 - it is a signal, not an error
    """Leave the message on the queue and look at it again after ``delay_seconds``."""

    def __init__(self, reason: str, delay_seconds: int) -> None:
        super().__init__(reason)
        self.reason = reason
        self.delay_seconds = delay_seconds


class Outcome(str, Enum):
    STARTED = "STARTED"
    DUPLICATE = "DUPLICATE"
    DROPPED = "DROPPED"
    FAILED = "FAILED"
    STOP_SENT = "STOP_SENT"
    STOP_RECORDED = "STOP_RECORDED"
    ADOPTED = "ADOPTED"
    APPLIED = "APPLIED"
    IGNORED = "IGNORED"
    RETRY_QUEUED = "RETRY_QUEUED"
    THROTTLED = "THROTTLED"


@dataclass(frozen=True)
class Result:
    outcome: Outcome
    key: str
    reason: str | None = None
    task_arn: str | None = None
    attempt: int | None = None
    #: The class of the start that failed here (a RunTask call that started nothing, a run_task
    #: call that could not be built, an ECS task that stopped before it ran); None if none did.
    start_failure: FailureClass | None = None
    #: Set when this ECS event moved the try to RUNNING: milliseconds from its submission.
    submit_to_running_ms: int | None = None


@dataclass
class ReconcileReport:
    """What one reconciler run found and did."""

    examined: int = 0
    repaired: int = 0
    lost: int = 0
    timed_out: int = 0
    orphans_stopped: int = 0
    alerts_resent: int = 0
    #: Problems the readiness check found in the stack's settings (0: it can run tasks).
    settings_problems: int = 0
    errors: int = 0


def submit_to_running_ms(applied: TaskStateItem, started_at: object) -> int | None:
    """Milliseconds from the try's submission to ECS's RUNNING, if this write moved it to RUNNING.

    ``applied`` is the item as the write left it (``previous_state`` written by the same write),
    so a repeated RUNNING event, or one for a try RUNNING already, measures nothing.
    ``started_at`` is the task's ``startedAt``: when ECS says it moved to RUNNING, not when the
    event reached us. The two clocks (scheduler and ECS) may differ slightly: never below 0.
    """
    running = epoch_ms(started_at)
    if (
        applied.state is not TaskState.RUNNING
        or applied.previous_state in (None, TaskState.RUNNING)
        or applied.submitted_at is None
        or running is None
    ):
        return None
    return max(0, running - applied.submitted_at)


def epoch_ms(value: object) -> int | None:
    """An ECS timestamp in epoch ms: ISO 8601 in events, a datetime from DescribeTasks."""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            return None
    if isinstance(value, datetime) and value.tzinfo is not None:
        return int(value.timestamp() * 1000)
    return None
