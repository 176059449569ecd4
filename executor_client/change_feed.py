"""Where the executor's read of the owner index stands, and which item versions it applied (pure).

Each heartbeat reads one page of the owner index: items of this owner written after a lower
bound. Timestamps come from the writers' clocks (Lambda functions), so the bound follows the
newest ``updated_at`` seen rather than the scheduler's clock, and each read reaches back
``overlap_ms`` to catch writes that became visible after a newer one (write latency, index lag,
clock skew). A read with more than one page goes on from its cursor on the next heartbeat, so a
backlog costs one call a heartbeat instead of a loop; items written meanwhile sort after the
cursor and are caught up with.

The overlap makes reads return versions applied before. ``is_new`` tells them apart from the
raw key, ``updated_at`` and state, before anything is deserialized: an unchanged item costs its
share of the call and nothing else. Writes later than the overlap are the safety net's
(``safety_net.py``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any


@dataclass
class ChangeFeed:
    overlap_ms: int
    #: Newest ``updated_at`` seen by a finished read; the first read starts from the executor's start.
    watermark_ms: int = 0
    #: Where the read in progress goes on from (None: the next read starts anew).
    cursor: dict[str, Any] | None = None
    _since_ms: int | None = None
    _newest_ms: int = 0
    #: Per tracked key, the (updated_at, state) last applied.
    _applied: dict[str, tuple[int, str]] = field(default_factory=dict, repr=False)

    @classmethod
    def starting_at(cls, start_ms: int, overlap_ms: int) -> ChangeFeed:
        return cls(overlap_ms=max(0, overlap_ms), watermark_ms=start_ms)

    def since_ms(self) -> int:
        """Lower bound (exclusive) of the read in progress; fixed until that read is done."""
        if self._since_ms is None:
            self._since_ms = max(0, self.watermark_ms - self.overlap_ms)
        return self._since_ms

    def page_read(self, updated: Iterable[int], cursor: dict[str, Any] | None) -> None:
        """Record one page: go on from ``cursor``, or, with none, end the read at the newest item seen."""
        self._newest_ms = max(self._newest_ms, max(updated, default=0))
        self.cursor = cursor or None
        if self.cursor is None:
            self.watermark_ms = max(self.watermark_ms, self._newest_ms)
            self._since_ms = None

    def is_new(self, key: str, updated_at: int, state: str) -> bool:
        """Whether this version of ``key`` is newer than the one applied (states only move forward)."""
        applied = self._applied.get(key)
        if applied is None:
            return True
        return updated_at > applied[0] or (updated_at == applied[0] and state != applied[1])

    def applied(self, key: str, updated_at: int, state: str) -> None:
        self._applied[key] = (updated_at, state)

    def forget(self, key: str) -> None:
        self._applied.pop(key, None)

    @property
    def remembered(self) -> int:
        """How many keys have an applied version recorded (one per tracked key at most)."""
        return len(self._applied)
