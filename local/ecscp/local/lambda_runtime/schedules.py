"""EventBridge schedule expressions, ``rate(...)`` and ``cron(...)``, for local schedules (pure).

Cron is EventBridge's six fields (minutes, hours, day of month, month, day of week, year; UTC),
evaluated by croniter with ``*``, ``?``, lists, ranges, steps, names, ``L``, ``W`` and ``#``.
Where EventBridge's fields differ from croniter's they are mapped first: EventBridge counts the
days of the week 1-7 = SUN-SAT (croniter 0-6), writes the month's last Friday ``6L`` (croniter
``L5``) and the week's last day ``L``; a range of one value (``5-5``) is that value (croniter
reads it as the whole cycle); and croniter's seven fields have seconds before the year (0).

As EventBridge does, exactly one of day of month and day of week must be ``?``. Departs from
AWS: years after 2099 (croniter's last) and ``LW`` are not supported; such a schedule is
reported, not run. A schedule with no run in the next 50 years never runs.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timezone

from croniter import CroniterBadDateError, croniter

_RATE = re.compile(r"^rate\(\s*(\d+)\s+(minute|minutes|hour|hours|day|days)\s*\)$")
_RATE_SECONDS = {"minute": 60, "hour": 3600, "day": 86400}
_CRON = re.compile(r"^cron\((.+)\)$")
_WEEKDAYS = ("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT")
#: ``a-a`` or ``a-a/n``: a range of one value.
_ONE_VALUE_RANGE = re.compile(r"^(\w+)-\1(/\d+)?$", re.IGNORECASE)
#: croniter's hashed (``H``) and random (``R``) values, which EventBridge does not have.
_NOT_EVENTBRIDGE = re.compile(r"^[HR](\(.*\))?(/\d+)?$", re.IGNORECASE)


class UnsupportedSchedule(ValueError):  # noqa: N818 - a kind of ValueError, named for its reader
    """A schedule expression the local stack cannot run."""


def rate_seconds(expression: str) -> int | None:
    """Seconds between runs of a ``rate(N unit)`` schedule; None for anything else."""
    match = _RATE.match(expression.strip())
    if not match:
        return None
    return int(match.group(1)) * _RATE_SECONDS[match.group(2).rstrip("s")]


def _one_value_ranges(field: str) -> str:
    """The field with each range of one value (``5-5``) written as that value."""
    return ",".join(_ONE_VALUE_RANGE.sub(r"\1", part) for part in field.split(","))


def _weekday(text: str) -> str:
    """One EventBridge day of week (1-7 or SUN-SAT) as croniter's number (0-6 = SUN-SAT)."""
    name = text.upper()
    if name in _WEEKDAYS:
        return str(_WEEKDAYS.index(name))
    if not text.isdigit() or not 1 <= int(text) <= 7:
        raise UnsupportedSchedule(f"not a day of week: {text!r}")
    return str(int(text) - 1)


def _day_of_week(field: str) -> str:
    """EventBridge's day-of-week field in croniter's terms."""
    parts = []
    for part in field.split(","):
        if part in ("*", "?"):
            parts.append(part)
        elif part.upper() == "L":  # the last day of the week
            parts.append(_weekday("SAT"))
        elif part.upper().endswith("L"):  # the month's last such day
            parts.append("L" + _weekday(part[:-1]))
        elif "#" in part:  # the month's nth such day
            day, _, nth = part.partition("#")
            parts.append(f"{_weekday(day)}#{nth}")
        else:
            values, slash, step = part.partition("/")
            bounds = [v if v == "*" else _weekday(v) for v in values.split("-")]
            parts.append("-".join(bounds) + slash + step)
    return ",".join(parts)


@dataclass(frozen=True)
class Cron:
    """An EventBridge cron expression and the croniter expression that evaluates it."""

    expression: str
    croniter_expression: str

    @classmethod
    def parse(cls, expression: str) -> Cron:
        match = _CRON.match(expression.strip())
        if not match:
            raise UnsupportedSchedule(f"not a cron expression: {expression!r}")
        fields = match.group(1).split()
        if len(fields) != 6:
            raise UnsupportedSchedule(f"{expression!r}: cron needs six fields")
        if any(_NOT_EVENTBRIDGE.match(field) for field in fields):
            raise UnsupportedSchedule(f"{expression!r}: H and R are not EventBridge cron values")
        minutes, hours, day, month, weekday, year = (_one_value_ranges(field) for field in fields)
        if (day == "?") == (weekday == "?"):
            raise UnsupportedSchedule(f"{expression!r}: one of day of month and day of week must be ?")
        evaluated = " ".join((minutes, hours, day, month, _day_of_week(weekday), "0", year))
        try:
            croniter(evaluated)
        except ValueError as exc:
            raise UnsupportedSchedule(f"{expression!r} cannot run locally (croniter: {exc})") from exc
        return cls(expression, evaluated)

    def next_after(self, epoch: float) -> float | None:
        """The first whole minute after ``epoch`` (UTC) that the expression selects."""
        start = datetime.fromtimestamp(epoch, tz=timezone.utc)
        try:
            return float(croniter(self.croniter_expression, start).get_next(float))
        except CroniterBadDateError:  # no run in croniter's horizon (50 years)
            return None


def next_run(expression: str, after: float) -> float | None:
    """When a ``rate`` or ``cron`` schedule next fires after ``after`` (epoch seconds)."""
    every = rate_seconds(expression)
    if every is not None:
        return after + every
    return Cron.parse(expression).next_after(after)


def check_schedule(expression: str) -> None:
    """Raise UnsupportedSchedule if the local stack cannot run ``expression``."""
    if rate_seconds(expression) is None:
        Cron.parse(expression)
