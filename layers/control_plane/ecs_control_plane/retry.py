"""Classifying what went wrong when starting an ECS task (pure)."""

from __future__ import annotations

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
        "UnrecognizedClientException",
        "InvalidClientTokenId",
    }
)

#: Reasons in RunTask's ``failures[]`` that mean "no room right now".
_CAPACITY_REASON_PREFIXES = ("RESOURCE:", "AGENT", "Capacity is unavailable", "CAPACITY")
#: Reasons that no retry will fix.
_PERMANENT_REASONS = ("MISSING", "INACTIVE", "ATTRIBUTE")


def classify_api_error(code: str, http_status: int | None = None) -> FailureClass:
    """Classify an ECS API error by its code, falling back to the HTTP status."""
    if code in _TRANSIENT_CODES:
        return FailureClass.TRANSIENT
    if code in _RETRY_ATTEMPT_CODES:
        return FailureClass.RETRY_ATTEMPT
    if code in _PERMANENT_CODES:
        return FailureClass.PERMANENT
    if http_status is not None and (http_status >= 500 or http_status == 429):
        return FailureClass.TRANSIENT
    return FailureClass.PERMANENT


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


#: Longest visibility backoff for a throttled RunTask call.
TRANSIENT_BACKOFF_CAP_SECONDS = 300


def transient_delay_seconds(
    receive_count: int, base: int = 5, cap: int = TRANSIENT_BACKOFF_CAP_SECONDS
) -> int:
    """Visibility backoff for transient errors, growing with the number of deliveries."""
    return int(min(cap, base * 2 ** max(0, receive_count - 1)))
