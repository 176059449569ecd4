"""Which state items a sync should act on (pure: no boto3, no Airflow).

The fast path reads the owner index for items written after a watermark. Timestamps come from
the writers' clocks (Lambda functions), so the watermark follows the newest ``updated_at`` seen
rather than the scheduler's clock, and each read reaches back ``overlap_ms`` to catch writes
that landed with slightly older timestamps. The overlap makes reads return items seen before;
``accept`` drops those by (key, state, updated_at). A slower safety net re-reads every tracked
key by primary key every ``full_resync_interval_ms``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from ecs_control_plane.contract import TaskStateItem

_Seen = tuple[str, str, int]


@dataclass
class ChangeFeed:
    """Watermark, de-duplication and safety-net timing of the executor's reads of the table."""

    overlap_ms: int
    full_resync_interval_ms: int
    #: Newest ``updated_at`` accepted so far; the first read starts from the executor's start.
    watermark_ms: int = 0
    last_full_resync_ms: int | None = None
    _seen: dict[_Seen, int] = field(default_factory=dict, repr=False)

    @classmethod
    def starting_at(cls, start_ms: int, overlap_ms: int, full_resync_interval_ms: int) -> ChangeFeed:
        return cls(
            overlap_ms=max(0, overlap_ms),
            full_resync_interval_ms=max(0, full_resync_interval_ms),
            watermark_ms=start_ms,
        )

    def since_ms(self) -> int:
        """Lower bound (exclusive) for the next incremental read."""
        return max(0, self.watermark_ms - self.overlap_ms)

    def accept(self, items: Iterable[TaskStateItem]) -> list[TaskStateItem]:
        """The items not accepted before, oldest first; advances the watermark.

        Used for both paths, so an item the safety net found is not reported again when the
        incremental read returns it (and the other way round).
        """
        fresh: list[TaskStateItem] = []
        for item in sorted(items, key=lambda i: i.updated_at):
            seen = (item.key, item.state.value, item.updated_at)
            if seen in self._seen:
                continue
            self._seen[seen] = item.updated_at
            fresh.append(item)
        return fresh

    def advance(self, items: Iterable[TaskStateItem]) -> None:
        """Move the watermark to the newest ``updated_at`` an incremental read returned."""
        newest = max((item.updated_at for item in items), default=self.watermark_ms)
        self.watermark_ms = max(self.watermark_ms, newest)
        self._forget_older_than(self.since_ms())

    def _forget_older_than(self, bound_ms: int) -> None:
        # Items at or below the read bound are never returned by the index again; the safety net
        # may still return an old one, which is harmless: its state was already acted on and the
        # executor no longer tracks a finished key.
        for seen in [s for s, updated in self._seen.items() if updated <= bound_ms]:
            del self._seen[seen]

    def full_resync_due(self, now_ms: int) -> bool:
        if self.last_full_resync_ms is None:
            return True
        return now_ms - self.last_full_resync_ms >= self.full_resync_interval_ms

    def full_resync_done(self, now_ms: int) -> None:
        self.last_full_resync_ms = now_ms

    @property
    def remembered(self) -> int:
        """How many (key, state, updated_at) triples are kept for de-duplication."""
        return len(self._seen)


def overdue_without_item(
    sent_at_ms: Mapping[str, int], found: Iterable[str], now_ms: int, grace_ms: int
) -> list[str]:
    """Keys sent more than ``grace_ms`` ago for which the table has no item."""
    present = set(found)
    return sorted(key for key, sent in sent_at_ms.items() if key not in present and now_ms - sent > grace_ms)
