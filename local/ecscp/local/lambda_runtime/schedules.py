"""EventBridge schedule expressions, ``rate(...)`` and ``cron(...)``, for local schedules (pure).

Cron follows EventBridge's six fields (minutes, hours, day of month, month, day of week,
year; UTC; day of week 1-7 = SUN-SAT) with ``*``, ``?``, lists, ranges, steps and names. The
``L``, ``W`` and ``#`` forms are not supported: such a schedule is reported, not run.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

_RATE = re.compile(r"^rate\(\s*(\d+)\s+(minute|minutes|hour|hours|day|days)\s*\)$")
_RATE_SECONDS = {"minute": 60, "hour": 3600, "day": 86400}
_CRON = re.compile(r"^cron\((.+)\)$")
_MONTHS = {
    name: number
    for number, name in enumerate(
        ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"), start=1
    )
}
_DAYS = {
    name: number for number, name in enumerate(("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"), start=1)
}
#: (low, high, names) of the six fields.
_FIELDS: tuple[tuple[int, int, dict[str, int]], ...] = (
    (0, 59, {}),
    (0, 23, {}),
    (1, 31, {}),
    (1, 12, _MONTHS),
    (1, 7, _DAYS),
    (1970, 2199, {}),
)
_HORIZON = timedelta(days=366 * 4 + 1)


class UnsupportedSchedule(ValueError):  # noqa: N818 - a kind of ValueError, named for its reader
    """A schedule expression the local stack cannot run."""


def rate_seconds(expression: str) -> int | None:
    """Seconds between runs of a ``rate(N unit)`` schedule; None for anything else."""
    match = _RATE.match(expression.strip())
    if not match:
        return None
    return int(match.group(1)) * _RATE_SECONDS[match.group(2).rstrip("s")]


def _values(text: str, low: int, high: int, names: dict[str, int]) -> frozenset[int] | None:
    """The values one cron field allows; None for ``*`` and ``?`` (anything)."""
    if text in ("*", "?"):
        return None
    allowed: set[int] = set()
    for part in text.split(","):
        if any(mark in part for mark in ("L", "W", "#")) and part.upper() not in names:
            raise UnsupportedSchedule(f"cron field {text!r}: L, W and # are not supported locally")
        base, _, step_text = part.partition("/")
        step = int(step_text) if step_text else 1
        if base == "*":
            start, end = low, high
        elif "-" in base:
            first, _, last = base.partition("-")
            start, end = _number(first, names), _number(last, names)
        else:
            start = _number(base, names)
            end = high if step_text else start
        if not (low <= start <= high and low <= end <= high) or step < 1:
            raise UnsupportedSchedule(f"cron field {text!r} is out of range {low}-{high}")
        allowed.update(range(start, end + 1, step))
    return frozenset(allowed)


def _number(text: str, names: dict[str, int]) -> int:
    upper = text.strip().upper()
    if upper in names:
        return names[upper]
    try:
        return int(upper)
    except ValueError as exc:
        raise UnsupportedSchedule(f"not a cron value: {text!r}") from exc


@dataclass(frozen=True)
class Cron:
    """A parsed EventBridge cron expression."""

    minutes: frozenset[int] | None
    hours: frozenset[int] | None
    days: frozenset[int] | None
    months: frozenset[int] | None
    weekdays: frozenset[int] | None
    years: frozenset[int] | None

    @classmethod
    def parse(cls, expression: str) -> Cron:
        match = _CRON.match(expression.strip())
        if not match:
            raise UnsupportedSchedule(f"not a cron expression: {expression!r}")
        fields = match.group(1).split()
        if len(fields) != 6:
            raise UnsupportedSchedule(f"{expression!r}: cron needs six fields")
        values = [
            _values(text, low, high, names) for text, (low, high, names) in zip(fields, _FIELDS, strict=True)
        ]
        return cls(*values)

    def _day_matches(self, moment: datetime) -> bool:
        weekday = (moment.isoweekday() % 7) + 1  # SUN=1 ... SAT=7
        return (
            (self.years is None or moment.year in self.years)
            and (self.months is None or moment.month in self.months)
            and (self.days is None or moment.day in self.days)
            and (self.weekdays is None or weekday in self.weekdays)
        )

    def next_after(self, epoch: float) -> float | None:
        """The first whole minute after ``epoch`` (UTC) that the expression selects."""
        moment = datetime.fromtimestamp(epoch, tz=timezone.utc).replace(second=0, microsecond=0)
        moment += timedelta(minutes=1)
        end = moment + _HORIZON
        while moment < end:
            if not self._day_matches(moment):
                moment = (moment + timedelta(days=1)).replace(hour=0, minute=0)
                continue
            if (self.hours is None or moment.hour in self.hours) and (
                self.minutes is None or moment.minute in self.minutes
            ):
                return moment.timestamp()
            moment += timedelta(minutes=1)
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
