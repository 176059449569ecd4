"""The executor's read logic: watermark, overlap, de-duplication, safety-net timing (pure)."""

from __future__ import annotations

import pytest

from ecs_control_plane.contract import TaskState, TaskStateItem
from executor_client.change_feed import ChangeFeed, overdue_without_item

START = 1_000_000


def item(key: str, state: TaskState, updated_at: int) -> TaskStateItem:
    return TaskStateItem(key=key, owner="scheduler-a", state=state, updated_at=updated_at)


def feed(overlap_ms: int = 30_000, interval_ms: int = 60_000) -> ChangeFeed:
    return ChangeFeed.starting_at(START, overlap_ms=overlap_ms, full_resync_interval_ms=interval_ms)


def test_first_read_reaches_back_the_overlap_from_the_start():
    # GIVEN a feed created at START with a 30 s overlap
    # WHEN / THEN the first read starts 30 s before START
    assert feed().since_ms() == START - 30_000


def test_watermark_follows_the_newest_item_seen():
    # GIVEN a feed
    f = feed()
    # WHEN a read returns items up to START + 5 s
    f.advance([item("a", TaskState.RUNNING, START + 1_000), item("b", TaskState.QUEUED, START + 5_000)])
    # THEN the next read starts one overlap before that
    assert f.since_ms() == START + 5_000 - 30_000


def test_watermark_never_moves_backwards():
    # GIVEN a feed that has seen START + 5 s
    f = feed()
    f.advance([item("a", TaskState.RUNNING, START + 5_000)])
    # WHEN a later read only returns older items (they fell into the overlap)
    f.advance([item("b", TaskState.RUNNING, START + 1_000)])
    # THEN the watermark stays
    assert f.watermark_ms == START + 5_000


def test_empty_read_keeps_the_watermark():
    f = feed()
    f.advance([])
    assert f.watermark_ms == START


def test_item_returned_again_by_the_overlap_is_reported_once():
    # GIVEN an item accepted by one read
    f = feed()
    running = item("a", TaskState.RUNNING, START + 1_000)
    assert f.accept([running]) == [running]
    f.advance([running])
    # WHEN the next read returns it again (inside the overlap)
    again = f.accept([item("a", TaskState.RUNNING, START + 1_000)])
    # THEN it is not reported a second time
    assert again == []


def test_new_state_of_a_known_key_is_reported():
    # GIVEN a key seen RUNNING
    f = feed()
    f.accept([item("a", TaskState.RUNNING, START + 1_000)])
    # WHEN it is read again as SUCCESS
    fresh = f.accept([item("a", TaskState.SUCCESS, START + 2_000)])
    # THEN the change is reported
    assert [(i.key, i.state) for i in fresh] == [("a", TaskState.SUCCESS)]


def test_same_state_rewritten_later_is_reported_again():
    # GIVEN a key seen QUEUED (attempt 1)
    f = feed()
    f.accept([item("a", TaskState.QUEUED, START + 1_000)])
    # WHEN it is written QUEUED again (a start retry: attempt 2) with a newer timestamp
    fresh = f.accept([item("a", TaskState.QUEUED, START + 9_000)])
    # THEN that write counts as new
    assert len(fresh) == 1


def test_accepted_items_come_oldest_first():
    f = feed()
    fresh = f.accept(
        [item("b", TaskState.SUCCESS, START + 3_000), item("a", TaskState.RUNNING, START + 1_000)]
    )
    assert [i.key for i in fresh] == ["a", "b"]


def test_duplicates_within_one_read_are_reported_once():
    f = feed()
    same = item("a", TaskState.RUNNING, START + 1_000)
    assert len(f.accept([same, item("a", TaskState.RUNNING, START + 1_000)])) == 1


def test_memory_is_bounded_to_the_overlap_window():
    # GIVEN many items accepted long ago
    f = feed(overlap_ms=1_000)
    old = [item(f"k{i}", TaskState.RUNNING, START + i) for i in range(100)]
    f.accept(old)
    f.advance(old)
    # WHEN the watermark moves well past them
    recent = [item("new", TaskState.RUNNING, START + 50_000)]
    f.accept(recent)
    f.advance(recent)
    # THEN only what the next read can still return is remembered
    assert f.remembered == 1


@pytest.mark.parametrize(
    ("last_ms", "now_ms", "due"),
    [
        (None, START, True),  # never done: due at once
        (START, START + 59_999, False),
        (START, START + 60_000, True),
        (START, START + 600_000, True),
    ],
)
def test_full_resync_is_due_every_interval(last_ms, now_ms, due):
    # GIVEN a 60 s safety-net interval, last run at last_ms
    f = feed(interval_ms=60_000)
    if last_ms is not None:
        f.full_resync_done(last_ms)
    # WHEN / THEN
    assert f.full_resync_due(now_ms) is due


def test_full_resync_done_restarts_the_interval():
    f = feed(interval_ms=60_000)
    f.full_resync_done(START)
    f.full_resync_done(START + 60_000)
    assert not f.full_resync_due(START + 90_000)


def test_negative_settings_are_clamped():
    f = ChangeFeed.starting_at(START, overlap_ms=-5, full_resync_interval_ms=-1)
    assert f.since_ms() == START
    assert f.full_resync_due(START)


def test_overdue_lists_keys_without_item_past_the_grace():
    # GIVEN three sent keys: one has an item, one is recent, one is old
    sent = {"has-item": START, "recent": START + 250_000, "old": START}
    # WHEN checked 300.001 s after START with a 300 s grace
    overdue = overdue_without_item(sent, found=["has-item"], now_ms=START + 300_001, grace_ms=300_000)
    # THEN only the old key without an item is overdue
    assert overdue == ["old"]
