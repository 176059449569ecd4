"""``ecscp status``: what the report counts, orders and shows."""

from __future__ import annotations

from ecs_control_plane.contract import TaskState, TaskStateItem
from ecscp.operations.status import duration, status_report
from tests.support.requests import task_key

NOW = 1_800_000_000_000


def item(name: str, state: TaskState, *, unchanged_s: int, **fields: object) -> TaskStateItem:
    return TaskStateItem.model_validate(
        {
            "key": task_key(name),
            "owner": "scheduler-a",
            "state": state,
            "updated_at": NOW - unchanged_s * 1000,
        }
        | fields
    )


def test_tries_in_flight_are_counted_by_state_and_listed_oldest_first() -> None:
    # GIVEN tries in every state, one of them finished
    items = [
        item("running", TaskState.RUNNING, unchanged_s=30, task_arn="arn:aws:ecs:us-east-1:1:task/c/abc"),
        item("queued", TaskState.QUEUED, unchanged_s=600),
        item("starting", TaskState.STARTING, unchanged_s=90),
        item("done", TaskState.SUCCESS, unchanged_s=900),
    ]

    # WHEN the report is made
    report = status_report("ecscp-prod", items, now=NOW)

    # THEN the finished try is left out, the others are counted and the oldest comes first
    assert report.by_state == {TaskState.QUEUED: 1, TaskState.STARTING: 1, TaskState.RUNNING: 1}
    assert [t.key for t in report.tries] == [task_key("queued"), task_key("starting"), task_key("running")]
    assert report.tries[0].age_ms == 600_000
    assert report.tries[2].task_id == "abc"


def test_limit_keeps_the_oldest_tries_and_the_full_counts() -> None:
    # GIVEN three queued tries
    items = [item(f"t{i}", TaskState.QUEUED, unchanged_s=10 * i) for i in range(3)]

    # WHEN at most two are asked for
    report = status_report("ecscp-prod", items, now=NOW, limit=2)

    # THEN the two oldest are shown, and all three counted
    assert [t.key for t in report.tries] == [task_key("t2"), task_key("t1")]
    assert report.in_flight == 3
    assert report.to_json()["shown"] == 2


def test_json_report_names_states_and_notes_an_adoption_waiting_for_its_request() -> None:
    # GIVEN a try adopted before its run request arrived
    items = [item("adopted", TaskState.QUEUED, unchanged_s=5, awaiting_request=True)]

    # WHEN the report is printed as JSON
    document = status_report("ecscp-prod", items, now=NOW).to_json()

    # THEN it is one document with the counts, the row and the note
    assert document["by_state"] == {"QUEUED": 1, "STARTING": 0, "RUNNING": 0}
    assert document["tries"][0]["state"] == "QUEUED"
    assert document["tries"][0]["age_seconds"] == 5
    assert document["tries"][0]["owner"] == "scheduler-a"
    assert "adopted" in document["tries"][0]["note"]


def test_durations_read_at_a_glance() -> None:
    assert [duration(ms) for ms in (4_000, 185_000, 7_800_000, 273_600_000)] == [
        "4s",
        "3m05s",
        "2h10m",
        "3d04h",
    ]


def test_a_try_changed_by_a_clock_ahead_of_ours_is_unchanged_for_no_time_not_a_negative_one() -> None:
    report = status_report("ecscp-prod", [item("ahead", TaskState.RUNNING, unchanged_s=-60)], now=NOW)
    assert report.to_json()["tries"][0]["age_seconds"] == 0
