"""Times as AWS writes them: ISO 8601 in UTC with a ``Z``."""

from __future__ import annotations

from datetime import datetime, timezone


def iso_millis(epoch: float | None) -> str | None:
    """With milliseconds, as ECS writes task times in its events (None stays None)."""
    if epoch is None:
        return None
    return (
        datetime.fromtimestamp(epoch, tz=timezone.utc)
        .isoformat(timespec="milliseconds")
        .replace("+00:00", "Z")
    )


def iso_seconds(epoch: float) -> str:
    """To the second, as EventBridge writes an event's ``time`` and Lambda its log lines."""
    return datetime.fromtimestamp(epoch, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
