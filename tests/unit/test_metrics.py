"""The pure parts of the metrics: their names, and when a write measures submit-to-RUNNING."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from ecs_control_plane.contract import TaskState, TaskStateItem
from ecs_control_plane.metrics import RECONCILE, RUN_REQUEST, TASK_EVENT, metric_name
from ecs_control_plane.results import Outcome, ReconcileReport, epoch_ms, submit_to_running_ms

STARTED_AT = "2026-11-25T10:00:40.412Z"
STARTED_MS = 1_795_600_840_412


def item(
    state: TaskState, previous: TaskState | None, submitted_at: int | None = STARTED_MS - 30_000
) -> TaskStateItem:
    return TaskStateItem(key="k", owner="o", state=state, previous_state=previous, submitted_at=submitted_at)


@pytest.mark.parametrize(
    ("applied", "expected"),
    [
        (item(TaskState.RUNNING, TaskState.STARTING), 30_000),
        (item(TaskState.RUNNING, TaskState.QUEUED), 30_000),  # RUNNING overtook run_task's own write
        (item(TaskState.RUNNING, TaskState.RUNNING), None),  # a repeated RUNNING event
        (item(TaskState.RUNNING, None), None),  # not written by an ECS event
        (item(TaskState.STARTING, TaskState.QUEUED), None),
        (item(TaskState.SUCCESS, TaskState.STARTING), None),  # STOPPED overtook RUNNING: not measured
        (item(TaskState.RUNNING, TaskState.STARTING, submitted_at=None), None),  # made before this version
        (item(TaskState.RUNNING, TaskState.STARTING, submitted_at=STARTED_MS + 5), 0),  # clocks apart
    ],
    ids=["first", "before-run-task", "repeated", "unknown", "starting", "finished", "no-submission", "skew"],
)
def test_only_the_write_that_moves_a_try_to_running_measures_its_latency(
    applied: TaskStateItem, expected: int | None
) -> None:
    assert submit_to_running_ms(applied, STARTED_AT) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (STARTED_AT, STARTED_MS),  # an ECS event's startedAt
        (datetime(2026, 11, 25, 10, 0, 40, 412_000, tzinfo=UTC), STARTED_MS),  # DescribeTasks (botocore)
        ("2026-11-25T10:00:40.412+01:00", STARTED_MS - 3_600_000),
        (datetime(2026, 11, 25, 10, 0, 40), None),  # no zone: which clock is unknown
        ("yesterday", None),
        (None, None),  # a RUNNING event without startedAt
        (STARTED_MS, None),
    ],
)
def test_ecs_timestamps_read_as_epoch_milliseconds(value: object, expected: int | None) -> None:
    assert epoch_ms(value) == expected


def test_metric_names_follow_the_outcomes_and_report_fields() -> None:
    assert metric_name(RUN_REQUEST, Outcome.STARTED.value) == "RunRequestStarted"
    assert metric_name(RUN_REQUEST, Outcome.STOP_SENT.value) == "RunRequestStopSent"
    assert metric_name(TASK_EVENT, Outcome.RETRY_QUEUED.value) == "TaskEventRetryQueued"
    assert [metric_name(RECONCILE, f) for f in ReconcileReport().__dict__][:4] == [
        "ReconcileExamined",
        "ReconcileRepaired",
        "ReconcileLost",
        "ReconcileTimedOut",
    ]
