"""The safety net's schedule: one call a heartbeat, every tracked key re-checked each pass (pure)."""

from __future__ import annotations

import pytest

from executor_client.safety_net import (
    ActivePage,
    PassResult,
    ReadKeys,
    SafetyNet,
    SentKeys,
    overdue_without_item,
)

START = 1_000_000
CURSOR = {"key": {"S": "k"}}


def net(shards: int = 2, interval_ms: int = 60_000) -> SafetyNet:
    return SafetyNet(interval_ms=interval_ms, shards=shards)


def read_index(n: SafetyNet, sent: dict[str, int], in_flight: set[str], now: int = START) -> None:
    """Read every shard in one page each, reporting ``in_flight`` on the first."""
    for shard in range(n.shards):
        step = n.next_step(now, sent)
        assert step == ActivePage(shard, None)
        n.active_page_read(in_flight if shard == 0 else set(), None)


def test_first_pass_reads_each_shard_page_by_page_then_the_keys_not_found():
    # GIVEN three tracked keys, of which the index holds two
    n = net()
    sent = {"a": START, "b": START, "c": START}
    # WHEN a shard's first page has a cursor
    assert n.next_step(START, sent) == ActivePage(0, None)
    n.active_page_read({"a"}, CURSOR)
    # THEN the next step goes on from it, then the next shard
    assert n.next_step(START, sent) == ActivePage(0, CURSOR)
    n.active_page_read({"b"}, None)
    assert n.next_step(START, sent) == ActivePage(1, None)
    n.active_page_read(set(), None)
    # AND only the key the index did not hold is read by key
    assert n.next_step(START, sent) == ReadKeys(["c"])


def test_keys_are_read_100_a_call_and_unprocessed_ones_come_back_last():
    n = net(shards=1)
    sent = {f"k{i:03}": START for i in range(150)}
    read_index(n, sent, set())
    first = n.next_step(START, sent)
    assert isinstance(first, ReadKeys)
    assert first.keys == [f"k{i:03}" for i in range(100)]
    # WHEN DynamoDB leaves k000 unprocessed
    assert n.keys_read(first.keys, first.keys[1:], ["k000"], START) is None
    # THEN the rest is read next, then k000 again
    second = n.next_step(START, sent)
    assert isinstance(second, ReadKeys)
    assert second.keys == [*(f"k{i:03}" for i in range(100, 150)), "k000"]


def test_a_pass_reports_the_keys_without_an_item_and_its_calls():
    n = net(shards=1)
    sent = {"a": START - 5, "b": START - 7}
    read_index(n, sent, set())
    step = n.next_step(START, sent)
    assert isinstance(step, ReadKeys)
    result = n.keys_read(step.keys, ["a"], [], START + 10)
    assert result == PassResult(started_ms=START, duration_ms=10, without_item={"b": START - 7}, calls=2)
    assert not n.in_progress


def test_a_key_that_finished_meanwhile_is_not_read():
    # GIVEN a pass whose index read did not find "a"
    n = net(shards=1)
    read_index(n, {"a": START}, set())
    # WHEN "a" is no longer tracked (the feed applied its end)
    step = n.next_step(START + 1, {})
    # THEN the pass ends without a read
    assert isinstance(step, PassResult)
    assert step.calls == 1


def test_the_next_pass_starts_an_interval_after_the_last_minus_its_length():
    n = net(shards=1, interval_ms=60_000)
    sent = {"a": START}
    read_index(n, sent, {"a"})
    assert isinstance(n.next_step(START + 10_000, sent), PassResult)  # a 10 s pass
    assert n.next_step(START + 49_999, sent) is None
    assert n.next_step(START + 50_000, sent) == ActivePage(0, None)


def test_nothing_tracked_restarts_the_clock():
    n = net()
    n.idle(START)
    assert n.next_step(START + 59_999, {"a": START}) is None
    assert n.next_step(START + 60_000, {"a": START}) == ActivePage(0, None)


def test_restart_starts_a_pass_on_the_next_step():
    n = net()
    n.idle(START)
    n.restart()
    assert n.next_step(START, {"a": START}) == ActivePage(0, None)


def test_no_pass_without_keys():
    assert net().next_step(START, {}) is None


def test_keys_overdue_are_those_sent_before_the_grace():
    assert overdue_without_item({"old": START - 301, "new": START - 10}, START, 300) == ["old"]


def test_keys_the_index_holds_with_a_missed_version_are_read_by_key_too():
    # GIVEN two tracked keys in flight, of which the feed missed a change of "b"
    n = net(shards=1)
    sent = {"a": START, "b": START}
    assert n.next_step(START, sent) == ActivePage(0, None)
    n.active_page_read({"a", "b"}, None, missed=["b"])
    # THEN only "b" is read by key
    assert n.next_step(START, sent) == ReadKeys(["b"])


def test_sent_keys_is_a_view_of_the_tracked_keys_that_were_sent() -> None:
    tracked = {"a": 1, "b": 2, "c": 3}
    sent_at = {"a": 10, "c": 30, "gone": 40}
    view = SentKeys(tracked, sent_at)
    assert dict(view) == {"a": 10, "c": 30}
    assert "a" in view
    assert "gone" not in view
    assert "b" not in view
    assert len(view) == 2
    assert bool(view)
    with pytest.raises(KeyError):
        view["b"]
    # a view: what the executor changes after, it shows
    del tracked["a"]
    assert dict(view) == {"c": 30}
    assert not SentKeys({"b": 2}, sent_at)
