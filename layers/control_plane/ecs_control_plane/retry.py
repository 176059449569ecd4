"""Classifying what went wrong when starting an ECS task, and how long to wait (pure)."""

from __future__ import annotations

import random
from enum import Enum


class FailureClass(str, Enum):
    """What to do about a failed start."""

    #: ECS is busy or briefly broken: try again later without spending a start attempt.
    TRANSIENT = "TRANSIENT"
    #: No capacity or agent right now: retry with backoff, spending an attempt.
    RETRY_ATTEMPT = "RETRY_ATTEMPT"
    #: The request itself is wrong (bad parameters, no cluster, no permission): fail now.
    PERMANENT = "PERMANENT"


_TRANSIENT_CODES = frozenset(
    {
        "ThrottlingException",
        "Throttling",
        "ThrottledException",
        "TooManyRequestsException",
        "RequestLimitExceeded",
        "RequestThrottled",
        "ServerException",
        "ServiceUnavailable",
        "ServiceUnavailableException",
        "InternalFailure",
        "InternalError",
        "InternalServerError",
        "RequestTimeout",
        "RequestTimeoutException",
        "ExpiredTokenException",
        "ExpiredToken",
        # The function's own credentials (its execution role's session) were refused: new ones
        # come with the next invocation. The provider's executor retries these too.
        "InvalidClientTokenId",
        "UnrecognizedClientException",
        "RequestExpired",
        "InvalidSignatureException",
    }
)
_RETRY_ATTEMPT_CODES = frozenset({"LimitExceededException"})
_PERMANENT_CODES = frozenset(
    {
        "AccessDeniedException",
        "AccessDenied",
        "ClientException",
        "InvalidParameterException",
        "ClusterNotFoundException",
        "PlatformUnknownException",
        "PlatformTaskDefinitionIncompatibilityException",
        "UnsupportedFeatureException",
        "BlockedException",
        "ValidationException",
    }
)

#: Reasons in RunTask's ``failures[]`` that mean "no room right now".
_CAPACITY_REASON_PREFIXES = ("RESOURCE:", "AGENT", "Capacity is unavailable", "CAPACITY")
#: Reasons that no retry will fix.
_PERMANENT_REASONS = ("MISSING", "INACTIVE", "ATTRIBUTE")


#: Codes ECS also uses for rate and quota limits; the message tells those apart from bad input.
_AMBIGUOUS_CODES = frozenset({"ClientException", "InvalidParameterException", "LimitExceededException"})
#: Messages of rate and quota limits, lower case. "Tasks provisioning capacity limit exceeded."
#: is the per-cluster quota on tasks in PROVISIONING (500); "Request limit exceeded" is EC2
#: throttling ECS while it resolves security groups or subnets.
_RATE_LIMIT_MESSAGES = (
    "provisioning capacity limit exceeded",
    "request limit exceeded",
    "requestlimitexceeded",
    "rate exceeded",
    "throttl",
    "too many requests",
)


def is_rate_limit_message(message: str) -> bool:
    text = (message or "").lower()
    return any(marker in text for marker in _RATE_LIMIT_MESSAGES)


def classify_api_error(code: str, http_status: int | None = None, message: str = "") -> FailureClass:
    """Classify an ECS API error by its code (and its message where the code is ambiguous).

    A rate or quota limit is never the request's fault: it spends no start attempt and is
    tried again with jittered backoff, bounded by the workload token's lifetime.
    """
    if code in _AMBIGUOUS_CODES and is_rate_limit_message(message):
        return FailureClass.TRANSIENT
    if code in _TRANSIENT_CODES:
        return FailureClass.TRANSIENT
    if code in _RETRY_ATTEMPT_CODES:
        return FailureClass.RETRY_ATTEMPT
    if code in _PERMANENT_CODES:
        return FailureClass.PERMANENT
    if http_status is not None and (http_status >= 500 or http_status == 429):
        return FailureClass.TRANSIENT
    # An error code nobody has seen yet gets the benefit of the doubt, as an unknown failures[]
    # reason does: another start attempt, bounded by MaxRunTaskAttempts and the token's lifetime.
    return FailureClass.RETRY_ATTEMPT


def classify_run_task_failure(reason: str) -> FailureClass:
    """Classify one entry of RunTask's ``failures[]`` by its ``reason``.

    Capacity and agent failures are worth another attempt; a missing or inactive resource or
    an unsatisfiable placement attribute is not. Unknown reasons get the benefit of the doubt:
    they are retried, bounded by ``MaxRunTaskAttempts``.
    """
    text = (reason or "").strip()
    if text.upper().startswith(_PERMANENT_REASONS):
        return FailureClass.PERMANENT
    if text.startswith(_CAPACITY_REASON_PREFIXES):
        return FailureClass.RETRY_ATTEMPT
    return FailureClass.RETRY_ATTEMPT


#: Texts of "no capacity of this kind right now", lower case: RunTask's failures[] reasons
#: (``RESOURCE:CPU``, ``RESOURCE:MEMORY``, ``RESOURCE:ENI``...) and Fargate's "Capacity is
#: unavailable at this time. Please try again later or in a different availability zone".
_CAPACITY_MARKERS = ("capacity is unavailable", "insufficient capacity", "no spot capacity")
#: The stop code of a task Fargate Spot (or an EC2 Spot instance) took back.
SPOT_INTERRUPTION = "SpotInterruption"


def is_capacity_failure(reason: str | None) -> bool:
    """Whether a start failed for want of capacity of the kind asked for: another capacity
    provider strategy (a queue profile's fallback) may well succeed where a retry would not."""
    text = (reason or "").strip()
    return text.upper().startswith("RESOURCE:") or any(marker in text.lower() for marker in _CAPACITY_MARKERS)


def is_capacity_stop(stop_code: str | None, stopped_reason: str | None) -> bool:
    """Whether ECS stopped a task that never started for want of capacity (Spot took it back)."""
    return stop_code == SPOT_INTERRUPTION or is_capacity_failure(stopped_reason)


#: Longest wait before a throttled start is tried again (a fresh message's delay).
TRANSIENT_BACKOFF_CAP_SECONDS = 60


def transient_delay_seconds(
    times_throttled: int,
    base: int = 2,
    cap: int = TRANSIENT_BACKOFF_CAP_SECONDS,
    rng: random.Random | None = None,
) -> int:
    """Delay before a throttled start is tried again: exponential with full jitter, in seconds.

    Full jitter spreads a burst of throttled starts over the whole window, so they come back at
    the rate ECS allows instead of all together (a fixed backoff makes them collide again).
    """
    ceiling = int(min(cap, base * 2 ** max(0, times_throttled - 1)))
    return (rng or random).randint(1, max(1, ceiling))
