"""What the control plane's use cases report to their handlers (pure).

The handlers answer with these and publish them as metrics (:mod:`.metrics`).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


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
