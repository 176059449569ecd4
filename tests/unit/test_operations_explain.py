"""``ecscp explain``: what the operator typed, and why a try is in its state."""

from __future__ import annotations

import re
from typing import Any

import pytest
from rich.console import Console

from ecs_control_plane.contract import TaskState, TaskStateItem
from ecs_control_plane.ecs_events import EcsTask
from ecscp.operations.explain import Explanation, Target, Timeouts, parse_target, render, why
from ecscp.operations.stack import OperationsError
from tests.support.requests import task_key

NOW = 1_800_000_000_000
ARN = "arn:aws:ecs:us-east-1:123456789012:task/prod/0123456789abcdef0123456789abcdef"
TIMEOUTS = Timeouts(queued_timeout_s=900, reconcile_stale_s=300)


def item(state: TaskState, *, unchanged_s: int = 10, **fields: Any) -> TaskStateItem:
    return TaskStateItem.model_validate(
        {"key": task_key(), "owner": "scheduler-a", "state": state, "updated_at": NOW - unchanged_s * 1000}
        | fields
    )


def ecs(last_status: str, **fields: Any) -> EcsTask:
    return EcsTask.model_validate({"taskArn": ARN, "lastStatus": last_status} | fields)


def test_a_key_an_arn_and_an_id_are_each_recognised() -> None:
    assert parse_target(task_key()) == Target(key=task_key())
    assert parse_target(ARN) == Target(task=ARN)
    assert parse_target("0123456789abcdef0123456789abcdef") == Target(task="0123456789abcdef0123456789abcdef")


@pytest.mark.parametrize("text", ["ti|dag|only-three", "not a key or task", "dag.task run 1"])
def test_what_is_neither_a_key_nor_a_task_is_refused_saying_so(text: str) -> None:
    with pytest.raises(OperationsError, match="key"):
        parse_target(text)


CASES = [
    ("no item", None, None, "no item for this key"),
    ("success", item(TaskState.SUCCESS, exit_code=0), None, "succeeded"),
    (
        "failed in the container",
        item(TaskState.FAILED, exit_code=3, reason="the Airflow container exited with code 3"),
        None,
        "It failed: the Airflow container exited with code 3; exit code 3",
    ),
    (
        "failed by a stop",
        item(TaskState.FAILED, stop_requested=True, exit_code=143, stop_code="UserInitiated"),
        None,
        "A stop was requested",
    ),
    (
        "never started, alerted",
        item(TaskState.FAILED, start_failed=True, alerted=True, attempt=3, reason="CannotPullContainerError"),
        None,
        "never started, after start attempt 3: CannotPullContainerError. (the failed-start alert was sent)",
    ),
    (
        "never started, alert pending",
        item(TaskState.FAILED, start_failed=True, reason="AccessDenied"),
        None,
        "alert is not sent yet",
    ),
    ("queued, fresh", item(TaskState.QUEUED), None, "waits for run_task"),
    (
        "queued, retrying",
        item(TaskState.QUEUED, attempt=2, reason="RESOURCE:MEMORY"),
        None,
        "Start attempt 1 failed (RESOURCE:MEMORY); attempt 2 waits for its retry backoff",
    ),
    ("queued, overdue", item(TaskState.QUEUED, unchanged_s=1000), None, "run request was lost"),
    (
        "queued, token expired",
        item(TaskState.QUEUED, token_expires_at=NOW - 60_000),
        None,
        "workload token expired 1m00s ago",
    ),
    ("queued, adopted first", item(TaskState.QUEUED, awaiting_request=True), None, "adopted it before"),
    ("starting, no task yet", item(TaskState.STARTING), None, "records no ECS task yet"),
    ("starting", item(TaskState.STARTING, task_arn=ARN), ecs("PENDING"), "the task is PENDING"),
    ("running", item(TaskState.RUNNING, task_arn=ARN), ecs("RUNNING"), "container is running"),
    (
        "running, stop requested",
        item(TaskState.RUNNING, task_arn=ARN, stop_requested=True),
        ecs("RUNNING"),
        "A stop was requested; ECS has not stopped",
    ),
    (
        "running, stopped event not applied",
        item(TaskState.RUNNING, task_arn=ARN),
        ecs("STOPPED", stopCode="EssentialContainerExited"),
        "STOPPED (EssentialContainerExited), but that change is not applied yet",
    ),
    ("running, task forgotten", item(TaskState.RUNNING, task_arn=ARN), None, "ECS no longer knows its task"),
]


@pytest.mark.parametrize(("case", "the_item", "task", "expected"), CASES, ids=[c[0] for c in CASES])
def test_each_state_and_outcome_is_explained(
    case: str, the_item: TaskStateItem | None, task: EcsTask | None, expected: str
) -> None:
    assert expected in why(the_item, task, now=NOW, timeouts=TIMEOUTS)


def test_the_reconciler_timeouts_come_from_the_stack_parameters() -> None:
    # GIVEN a stack with a short queued timeout, and a try queued longer than that
    timeouts = Timeouts.of({"QueuedTimeoutSeconds": "400", "ReconcileStaleSeconds": "60"})

    # THEN it reads as lost, which the default (900 s) would not say yet
    assert "lost" in why(item(TaskState.QUEUED, unchanged_s=500), None, now=NOW, timeouts=timeouts)
    assert "lost" not in why(item(TaskState.QUEUED, unchanged_s=500), None, now=NOW, timeouts=TIMEOUTS)


def test_each_start_attempts_placement_and_the_profile_are_shown() -> None:
    failed = item(
        TaskState.FAILED,
        profile="spot",
        queue="spot",
        attempt=2,
        placements=[
            {"attempt": 1, "placement": "FARGATE_SPOT", "failure": "Capacity is unavailable at this time."},
            {"attempt": 2, "placement": "FARGATE", "fallback": True},
        ],
    )
    task = {"taskArn": ARN, "lastStatus": "STOPPED", "capacityProviderName": "FARGATE", "containers": []}
    console = Console(record=True, width=200)

    render(Explanation(failed.key, failed, task, [failed], "why"), console)

    text = console.export_text()
    assert re.search(r"^profile\s+│\s+spot\s*$", text, re.MULTILINE), text
    assert "attempt 1 on FARGATE_SPOT: Capacity is unavailable at this time." in text
    assert "attempt 2 on FARGATE (fallback)" in text
    assert "placed on FARGATE" in text
    assert re.search(r"^state\s+│\s+FAILED\s*$", text, re.MULTILINE), text
    assert Explanation(failed.key, failed, None).to_json()["item"]["placements"][1]["fallback"] is True
