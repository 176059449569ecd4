"""What a heartbeat costs the executor in DynamoDB: a bounded number of calls, and no parsing of
what did not change, whatever the backlog (moto, real run_task and task_state handlers)."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from airflow.utils.state import TaskInstanceState

from ecs_control_plane import store as store_module
from ecs_control_plane.contract import ACTIVE_SHARDS
from ecs_control_plane.store import KeysRead, Page
from executor_client import EcsControlPlaneExecutor
from executor_client import config as cfg
from executor_client import executor as executor_module
from tests.functional.test_executor import configure, encoded, events, make_executor, submit, workload
from tests.support.aws import MockedControlPlane

#: What the issue allows a heartbeat: one change-feed call and one safety-net call.
MAX_DYNAMODB_CALLS = 2


@pytest.fixture
def plane(control_plane_aws: MockedControlPlane, monkeypatch: pytest.MonkeyPatch) -> MockedControlPlane:
    configure(monkeypatch, control_plane_aws)
    return control_plane_aws


@contextmanager
def dynamodb_calls(executor: EcsControlPlaneExecutor) -> Iterator[Counter[str]]:
    """Count the executor's DynamoDB calls by operation while the block runs."""
    calls: Counter[str] = Counter()

    def count(model: Any, **_: Any) -> None:
        calls[model.name] += 1

    events_ = executor.clients.table._client.meta.events
    events_.register("before-call.dynamodb", count, unique_id="count-calls")
    try:
        yield calls
    finally:
        events_.unregister("before-call.dynamodb", unique_id="count-calls")


def started(executor: EcsControlPlaneExecutor, plane: MockedControlPlane, n: int) -> list[Any]:
    """``n`` tasks submitted, started by run_task, RUNNING as far as the executor knows."""
    works = [workload(f"t{i:02}") for i in range(n)]
    submit(executor, *works)
    plane.deliver(max_batches=n)
    for work in works:
        plane.apply(plane.ecs_event(plane.task_for(encoded(work.ti.key)), "RUNNING"))
    events(executor)
    executor.get_event_buffer()
    return works


def sync_until(executor: EcsControlPlaneExecutor, done: Any, max_syncs: int = 60) -> list[int]:
    """Sync until ``done()``; the DynamoDB calls each sync made."""
    per_sync = []
    for _ in range(max_syncs):
        with dynamodb_calls(executor) as calls:
            executor.sync()
        per_sync.append(sum(calls.values()))
        if done():
            return per_sync
    raise AssertionError(f"not done after {max_syncs} syncs: {per_sync}")


def test_the_safety_net_finds_what_the_feed_missed_in_one_call_a_heartbeat(
    plane: MockedControlPlane, monkeypatch: pytest.MonkeyPatch
):
    # GIVEN 12 running tasks, small safety-net pages, and a change feed that returns nothing
    monkeypatch.setattr(executor_module, "ACTIVE_PAGE_LIMIT", 4)
    executor = make_executor()
    works = started(executor, plane, 12)
    monkeypatch.setattr(executor.clients.table, "changes_page", lambda owner, since, **_: Page([]))
    # WHEN half of them finish (the feed misses it) and a pass of the safety net runs
    for work in works[:6]:
        plane.run_to_exit(encoded(work.ti.key), 0)
    executor.safety_net.restart()
    per_sync = sync_until(executor, lambda: not executor.safety_net.in_progress)
    # THEN every finished task is reported, the others still run, and no sync made more than
    # the feed's call and one of the safety net's
    buffer = executor.get_event_buffer()
    assert {k for k, (state, _) in buffer.items() if state == TaskInstanceState.SUCCESS} == {
        w.ti.key for w in works[:6]
    }
    assert set(executor.tracked) == {encoded(w.ti.key) for w in works[6:]}
    assert max(per_sync) <= MAX_DYNAMODB_CALLS
    # AND it took several heartbeats: more than one page of each shard, then the keys not found
    assert len(per_sync) > 4


def test_versions_already_applied_are_read_again_but_not_parsed(
    plane: MockedControlPlane, monkeypatch: pytest.MonkeyPatch
):
    # GIVEN a long overlap, so that each read returns the items of the last one again
    monkeypatch.setenv(cfg.env_name(cfg.SYNC_OVERLAP_SECONDS), "600")
    executor = make_executor()
    started(executor, plane, 5)
    parsed: list[str] = []
    returned: list[str] = []
    original_parse, original_page = store_module.ItemVersion.parse, executor.clients.table.changes_page

    def counting_parse(version: store_module.ItemVersion) -> Any:
        parsed.append(version.key)
        return original_parse(version)

    def counting_page(*args: Any, **kwargs: Any) -> Page:
        page = original_page(*args, **kwargs)
        returned.extend(v.key for v in page.items)
        return page

    monkeypatch.setattr(store_module.ItemVersion, "parse", counting_parse)
    monkeypatch.setattr(executor.clients.table, "changes_page", counting_page)
    # WHEN the executor syncs twice with nothing changed
    executor.sync()
    executor.sync()
    # THEN the reads returned the 5 items each time, and none was deserialized
    assert len(returned) == 10
    assert parsed == []
    # AND one that changes is parsed once, however often it is read again
    one = sorted(executor.tracked)[0]
    plane.run_to_exit(one, 0)
    executor.sync()
    executor.sync()
    assert parsed == [one]


def test_a_backlog_is_read_one_page_a_heartbeat(plane: MockedControlPlane, monkeypatch: pytest.MonkeyPatch):
    # GIVEN change-feed pages of 2 items and 7 tasks that all finish at once
    monkeypatch.setattr(executor_module, "CHANGES_PAGE_LIMIT", 2)
    executor = make_executor()
    works = started(executor, plane, 7)
    for work in works:
        plane.run_to_exit(encoded(work.ti.key), 0)
    executor.safety_net.idle(executor_module.now_ms())  # the feed's work only
    # WHEN the executor syncs until every outcome is in
    per_sync = sync_until(executor, lambda: not executor.tracked)
    # THEN it took a heartbeat per page, never more than one feed call a heartbeat, and all 7
    # successes were reported once each
    assert len(per_sync) >= 4
    assert max(per_sync) == 1
    assert (
        sorted(state for state, _ in executor.get_event_buffer().values()) == [TaskInstanceState.SUCCESS] * 7
    )


def test_keys_left_unprocessed_wait_for_the_next_heartbeat(
    plane: MockedControlPlane, monkeypatch: pytest.MonkeyPatch
):
    # GIVEN a finished task the feed missed, and DynamoDB leaving every key unprocessed once
    executor = make_executor()
    (work,) = started(executor, plane, 1)
    key = encoded(work.ti.key)
    monkeypatch.setattr(executor.clients.table, "changes_page", lambda owner, since, **_: Page([]))
    plane.run_to_exit(key, 0)
    original = executor.clients.table.read_keys
    throttled = [True]

    def read_keys(keys: list[str], **kwargs: Any) -> KeysRead:
        if throttled.pop() if throttled else False:
            return KeysRead([], list(keys))
        return original(keys, **kwargs)

    monkeypatch.setattr(executor.clients.table, "read_keys", read_keys)
    executor.safety_net.restart()
    # WHEN the safety net runs
    per_sync = sync_until(executor, lambda: not executor.tracked)
    # THEN the unprocessed read was not retried within its heartbeat; the next one read it
    assert max(per_sync) <= MAX_DYNAMODB_CALLS
    assert executor.get_event_buffer()[work.ti.key][0] == TaskInstanceState.SUCCESS
    assert throttled == []


def test_the_safety_net_reads_only_this_owners_items_in_flight(plane: MockedControlPlane):
    # GIVEN two executors of different owners with a running task each
    a, b = make_executor("scheduler-a"), make_executor("scheduler-b")
    (work_a,) = started(a, plane, 1)
    submit(b, workload("other"))
    plane.deliver()
    # WHEN scheduler-a reads every shard of the active index
    found = [
        version.key
        for shard in range(ACTIVE_SHARDS)
        for version in a.clients.table.active_page(shard, "scheduler-a").items
    ]
    # THEN it gets its own task only
    assert found == [encoded(work_a.ti.key)]


def test_batch_get_gives_up_on_keys_left_unprocessed_after_a_few_calls(plane: MockedControlPlane):
    # GIVEN a table whose BatchGetItem leaves every key unprocessed
    class Throttled:
        calls = 0

        def batch_get_item(self, RequestItems: dict[str, Any]) -> dict[str, Any]:  # noqa: N803 - boto3 names
            self.calls += 1
            return {"Responses": {}, "UnprocessedKeys": RequestItems}

    client = Throttled()
    table = store_module.StateTable(client, "t")  # type: ignore[arg-type]
    # WHEN many keys are read
    with pytest.raises(store_module.UnprocessedKeysError) as raised:
        table.batch_get(["a", "b"])
    # THEN it stops after a bounded number of calls and says which keys were not read
    assert client.calls == store_module.BATCH_GET_ATTEMPTS
    assert raised.value.keys == ["a", "b"]


def test_a_change_the_feed_missed_on_a_task_in_flight_is_read_by_key(
    plane: MockedControlPlane, monkeypatch: pytest.MonkeyPatch
):
    # GIVEN two running tasks, and a feed that returns nothing from now on
    executor = make_executor()
    first, second = started(executor, plane, 2)
    monkeypatch.setattr(executor.clients.table, "changes_page", lambda owner, since, **_: Page([]))
    # WHEN one of them changes (a newer ECS event) and the feed's bound moves past it without
    # returning it (it read newer changes of other tasks; this one was late in the index)
    changed, recent = encoded(first.ti.key), encoded(second.ti.key)
    plane.apply(plane.ecs_event(plane.task_for(changed), "RUNNING", version=9))
    time.sleep(0.01)
    executor.feed.watermark_ms = executor_module.now_ms() + executor.feed.overlap_ms
    time.sleep(0.01)
    # AND the other changes after that bound (the feed's next read returns it: no read by key)
    plane.apply(plane.ecs_event(plane.task_for(recent), "RUNNING", version=9))
    read_by_key: list[str] = []
    original = executor.clients.table.read_keys

    def spying(keys: list[str], **kwargs: Any) -> KeysRead:
        read_by_key.extend(keys)
        return original(keys, **kwargs)

    monkeypatch.setattr(executor.clients.table, "read_keys", spying)
    executor.safety_net.restart()
    sync_until(executor, lambda: not executor.safety_net.in_progress)
    # THEN the safety net read the missed one by key and applied it, and only that one
    assert read_by_key == [changed]
    item = plane.item(changed)
    assert not executor.feed.is_new(changed, item.updated_at, item.state.value)
    assert recent in executor.tracked
