"""The safety net under the change feed, one call a heartbeat (pure: no boto3, no Airflow).

The change feed misses a write that became visible more than its overlap after a newer one.
Every ``interval_ms`` a pass re-checks every tracked key without a full pass over the keys:

1. it reads the active index (items still in flight), one page a heartbeat, shard after shard,
   keeping this owner's key, ``updated_at`` and state only: a tracked key found there with the
   version applied is in flight and unchanged;
2. a tracked key the index did not return has finished, moved to another owner or has no item
   yet, and one whose version there is newer than the one applied was missed by the feed:
   those few are read by key, up to 100 a call, one call a heartbeat, and applied.

So a pass costs about ``in flight / page size`` calls instead of ``tracked / 100``, and no
heartbeat makes more than one. Keys DynamoDB leaves unprocessed go back to the end of the pass
(back-pressure, not a retry loop). The next pass starts so that a key is re-checked about every
``interval_ms`` even when a pass takes a while; a pass longer than the interval is reported.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ecs_control_plane.contract import ACTIVE_SHARDS
from ecs_control_plane.store import BATCH_GET_LIMIT


@dataclass(frozen=True)
class ActivePage:
    """Read one page of one active-index shard (from ``cursor``)."""

    shard: int
    cursor: dict[str, Any] | None


@dataclass(frozen=True)
class ReadKeys:
    """Read these keys from the table (at most 100)."""

    keys: list[str]


Step = ActivePage | ReadKeys


class SentKeys(Mapping[str, int]):
    """The tracked keys whose run request was sent, and when: a view of the executor's two maps.

    ``next_step`` reads it every heartbeat but copies it only when a pass starts, so a heartbeat
    costs O(changes) at any number of tracked keys, not a copy of every key.
    """

    def __init__(self, tracked: Mapping[str, Any], sent_at: Mapping[str, int]) -> None:
        self._tracked = tracked
        self._sent_at = sent_at

    def __getitem__(self, key: str) -> int:
        if key not in self._tracked:
            raise KeyError(key)
        return self._sent_at[key]

    def __contains__(self, key: object) -> bool:
        return key in self._sent_at and key in self._tracked

    def __iter__(self) -> Iterator[str]:
        return (key for key in self._sent_at if key in self._tracked)

    def __len__(self) -> int:
        return sum(1 for _ in self)

    def __bool__(self) -> bool:
        return next(iter(self), None) is not None


@dataclass
class _Pass:
    started_ms: int
    #: The keys this pass re-checks: tracked and sent when it started, and when they were sent.
    sent: dict[str, int]
    shard: int = 0
    cursor: dict[str, Any] | None = None
    in_flight: set[str] = field(default_factory=set)
    #: Keys the index holds with a version the feed missed.
    missed: list[str] = field(default_factory=list)
    #: Keys to read by key, once the index is done (None until then).
    to_read: list[str] | None = None


@dataclass(frozen=True)
class PassResult:
    """What a finished pass found, for the executor to report."""

    started_ms: int
    duration_ms: int
    #: Keys read by key that have no item, with when their run request was sent.
    without_item: dict[str, int]
    calls: int


@dataclass
class SafetyNet:
    interval_ms: int
    shards: int = ACTIVE_SHARDS
    #: When the last pass started and how long it took (None: no pass yet).
    last_started_ms: int | None = None
    last_duration_ms: int = 0
    _pass: _Pass | None = None
    _calls: int = 0
    #: Found no item in the pass in progress.
    _without_item: dict[str, int] = field(default_factory=dict)

    @classmethod
    def every(cls, interval_ms: int) -> SafetyNet:
        return cls(interval_ms=max(0, interval_ms))

    @property
    def in_progress(self) -> bool:
        return self._pass is not None

    def restart(self) -> None:
        """Make a new pass start on the next step (the pass in progress, if any, is dropped)."""
        self._pass = None
        self.last_started_ms = None

    def idle(self, now_ms: int) -> None:
        """Nothing is tracked: drop any pass; the interval counts from when there is work again."""
        self._pass = None
        self.last_started_ms = now_ms
        self.last_duration_ms = 0

    def next_step(self, now_ms: int, sent: Mapping[str, int]) -> Step | PassResult | None:
        """The call to make on this heartbeat, if any; ``sent`` is every tracked, sent key.

        A PassResult when the pass in progress has nothing left to read.
        """
        if self._pass is None:
            if not self._due(now_ms) or not sent:
                return None
            self._pass = _Pass(started_ms=now_ms, sent=dict(sent))
            self._calls = 0
            self._without_item = {}
        current = self._pass
        if current.to_read is None:
            return ActivePage(current.shard, current.cursor)
        # Only keys still tracked: one that finished through the feed meanwhile needs no read.
        current.to_read = [key for key in current.to_read if key in sent]
        if current.to_read:
            return ReadKeys(current.to_read[:BATCH_GET_LIMIT])
        return self.finish(now_ms)

    def _due(self, now_ms: int) -> bool:
        if self.last_started_ms is None:
            return True
        # Start early by the last pass's length, so the gap between two checks of a key stays
        # about one interval.
        return now_ms - self.last_started_ms >= max(0, self.interval_ms - self.last_duration_ms)

    def active_page_read(
        self, keys: Iterable[str], cursor: dict[str, Any] | None, missed: Iterable[str] = ()
    ) -> None:
        """Record one index page: the keys it holds, and those of them to read by key."""
        current = self._require()
        self._calls += 1
        current.in_flight.update(keys)
        current.missed.extend(missed)
        current.cursor = cursor or None
        if current.cursor is None:
            current.shard += 1
            if current.shard >= self.shards:
                absent = [key for key in current.sent if key not in current.in_flight]
                current.to_read = list(dict.fromkeys([*current.missed, *absent]))

    def keys_read(
        self, requested: Sequence[str], found: Iterable[str], unprocessed: Sequence[str], now_ms: int
    ) -> PassResult | None:
        """Record one read by key; the pass's result once nothing is left to read."""
        current = self._require()
        self._calls += 1
        asked, present, left = set(requested), set(found), list(unprocessed)
        for key in asked - present - set(left):
            self._without_item[key] = current.sent[key]
        rest = [key for key in (current.to_read or []) if key not in asked]
        current.to_read = rest + [key for key in left if key in asked]
        return None if current.to_read else self.finish(now_ms)

    def finish(self, now_ms: int) -> PassResult:
        """End the pass in progress (everything it had to read is read, or nothing is left tracked)."""
        current = self._require()
        self._pass = None
        self.last_started_ms = current.started_ms
        self.last_duration_ms = now_ms - current.started_ms
        return PassResult(current.started_ms, self.last_duration_ms, dict(self._without_item), self._calls)

    def _require(self) -> _Pass:
        if self._pass is None:
            raise RuntimeError("no safety-net pass in progress")
        return self._pass


def overdue_without_item(sent_at_ms: Mapping[str, int], now_ms: int, grace_ms: int) -> list[str]:
    """Keys sent more than ``grace_ms`` ago (among those found without an item)."""
    return sorted(key for key, sent in sent_at_ms.items() if now_ms - sent > grace_ms)
