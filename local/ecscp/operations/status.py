"""``ecscp status``: the tries in flight, by state, oldest first.

Read through the sparse active index the reconciler and the executor's safety net read (only
items in flight carry ``active_shard``; four partitions), so the cost follows the tries in flight,
never the table's size: no Scan. The index projects ``updated_at``, not ``created_at``: a try's
age here is the time since its item last changed, which is what tells a stuck try from a busy one.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from rich.console import Console
from rich.table import Table

from ecs_control_plane.contract import ACTIVE_STATES, TaskState, TaskStateItem, now_ms
from ecs_control_plane.table_reads import StateTableReads
from ecscp.local.timestamps import iso_millis

from .stack import ControlPlaneStack

#: An ``updated_at`` bound above any item's (epoch ms, in the year 5138).
EVERY_UPDATE = 10**14
#: States in the order a try goes through them.
STATE_ORDER = (TaskState.QUEUED, TaskState.STARTING, TaskState.RUNNING)


def duration(ms: int) -> str:
    """A short human duration: ``45s``, ``3m05s``, ``2h10m``, ``3d04h``."""
    seconds = max(0, ms // 1000)
    if seconds < 60:
        return f"{seconds}s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m{seconds:02d}s"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours}h{minutes:02d}m"
    days, hours = divmod(hours, 24)
    return f"{days}d{hours:02d}h"


def task_id(task_arn: str | None) -> str:
    """The ECS task id of an ARN (its last part); empty for none."""
    return task_arn.rsplit("/", 1)[-1] if task_arn else ""


@dataclass(frozen=True)
class InFlightTry:
    """One row of the status table."""

    key: str
    owner: str
    state: TaskState
    attempt: int
    task_id: str
    updated_at: int
    #: Time since the item last changed (ms).
    age_ms: int
    note: str

    def to_json(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "owner": self.owner,
            "state": self.state.value,
            "attempt": self.attempt,
            "task_id": self.task_id or None,
            "updated_at": iso_millis(self.updated_at / 1000),
            "age_seconds": self.age_ms // 1000,
            "note": self.note or None,
        }


@dataclass(frozen=True)
class StatusReport:
    """The tries in flight of one control plane: counts by state and the oldest ones."""

    control_plane: str
    by_state: dict[TaskState, int]
    #: Oldest first, at most the limit asked for.
    tries: list[InFlightTry]

    @property
    def in_flight(self) -> int:
        return sum(self.by_state.values())

    def to_json(self) -> dict[str, Any]:
        return {
            "control_plane": self.control_plane,
            "in_flight": self.in_flight,
            "by_state": {state.value: self.by_state[state] for state in STATE_ORDER},
            "tries": [t.to_json() for t in self.tries],
            "shown": len(self.tries),
        }


def _note(item: TaskStateItem) -> str:
    if item.awaiting_request:
        return "adopted before its run request arrived"
    return item.reason or ""


def status_report(
    control_plane: str, items: Iterable[TaskStateItem], *, now: int, limit: int | None = None
) -> StatusReport:
    """Count the tries in flight by state and list them oldest (least recently changed) first."""
    active = [i for i in items if i.state in ACTIVE_STATES]
    counts = Counter(i.state for i in active)
    oldest = sorted(active, key=lambda i: (i.updated_at, i.key))
    rows = [
        InFlightTry(
            key=i.key,
            owner=i.owner,
            state=i.state,
            attempt=i.attempt,
            task_id=task_id(i.task_arn),
            updated_at=i.updated_at,
            age_ms=max(0, now - i.updated_at),  # an item written by a clock ahead of ours
            note=_note(i),
        )
        for i in (oldest if limit is None else oldest[:limit])
    ]
    return StatusReport(control_plane, {s: counts.get(s, 0) for s in STATE_ORDER}, rows)


def current_status(stack: ControlPlaneStack, limit: int | None = None) -> StatusReport:
    """The stack's tries in flight, as of now."""
    items = read_in_flight(stack.state_table())
    return status_report(stack.output("ControlPlaneId"), items, now=now_ms(), limit=limit)


def read_in_flight(table: StateTableReads) -> list[TaskStateItem]:
    """Every item of the active index (all owners), each of its partitions read to the end."""
    # Every item of the index, whatever its updated_at: not "changed before now", which would leave
    # out an item written by a clock ahead of this machine's (the functions' clocks are not ours).
    return list(table.stale_active(EVERY_UPDATE))


def render(report: StatusReport, console: Console) -> None:
    counts = "  ".join(f"{s.value} {report.by_state[s]}" for s in STATE_ORDER)
    console.print(f"[bold]{report.control_plane}[/]: {report.in_flight} tries in flight  ({counts})")
    if not report.tries:
        return
    table = Table(show_edge=False, pad_edge=False)
    for column in ("key", "state", "attempt", "ECS task", "unchanged for", "owner", "reason"):
        table.add_column(column, overflow="fold")
    for row in report.tries:
        table.add_row(
            row.key, row.state.value, str(row.attempt), row.task_id, duration(row.age_ms), row.owner, row.note
        )
    console.print(table)
    if len(report.tries) < report.in_flight:
        console.print(f"(the {len(report.tries)} oldest of {report.in_flight}; --limit shows more)")
