"""The sample events in events/ (the `sam local invoke -e` inputs) through the real handlers."""

from __future__ import annotations

import json

import pytest

from ecs_control_plane.contract import RunRequest, TaskState
from ecs_control_plane.ecs_events import EcsTask
from tests.support.aws import MockedControlPlane
from tests.support.events import load_event


def sample_task(name: str) -> EcsTask:
    return EcsTask.model_validate(load_event(name)["detail"])


def test_sample_sqs_batch_starts_the_good_requests_and_fails_only_the_malformed_one(
    control_plane_aws: MockedControlPlane,
) -> None:
    # GIVEN the sample batch: three run requests, one stop request, one record that is not JSON
    plane = control_plane_aws
    event = load_event("sqs_run_requests")
    bodies = {r["messageId"]: r["body"] for r in event["Records"]}
    malformed = [mid for mid, body in bodies.items() if not body.lstrip().startswith("{") or _not_json(body)]

    # WHEN the run_task function gets it
    response = plane.invoke_run_task(event)

    # THEN only the malformed record is reported for redelivery (and the DLQ after maxReceiveCount)
    assert [f["itemIdentifier"] for f in response["batchItemFailures"]] == malformed
    requests = [RunRequest.model_validate_json(b) for mid, b in bodies.items() if mid not in malformed]
    for request in requests:
        item = plane.item(request.key)
        if request.kind == "run":
            assert item.state == TaskState.STARTING, request.key
            assert item.task_arn
        else:  # the stop request overtook its run request
            assert item.state == TaskState.FAILED
            assert item.stop_requested
    assert len(plane.tasks()) == sum(1 for r in requests if r.kind == "run")


def _not_json(body: str) -> bool:
    try:
        json.loads(body)
    except ValueError:
        return True
    return False


def test_sample_malformed_request_with_readable_key_fails_its_item(
    control_plane_aws: MockedControlPlane,
) -> None:
    # GIVEN a message that names a task but is not a valid run request (attempt 0)
    plane = control_plane_aws
    event = load_event("sqs_run_request_malformed_with_key")
    key = json.loads(event["Records"][0]["body"])["key"]

    # WHEN it is processed
    response = plane.invoke_run_task(event)

    # THEN the record fails alone and the item says why, so the scheduler learns of it
    assert len(response["batchItemFailures"]) == 1
    item = plane.item(key)
    assert item.state == TaskState.FAILED
    assert "attempt" in (item.reason or "")
    assert plane.tasks() == []


@pytest.mark.parametrize(
    ("sequence", "state", "exit_code"),
    [
        (["ecs_task_provisioning", "ecs_task_running", "ecs_task_stopped_exit0"], TaskState.SUCCESS, 0),
        (["ecs_task_provisioning", "ecs_task_running", "ecs_task_stopped_exit1"], TaskState.FAILED, 1),
        (["ecs_task_stopped_exit0", "ecs_task_running", "ecs_task_provisioning"], TaskState.SUCCESS, 0),
    ],
    ids=["exit-0", "exit-1", "reversed"],
)
def test_sample_ecs_events_drive_the_item_to_its_end(
    control_plane_aws: MockedControlPlane, sequence: list[str], state: TaskState, exit_code: int
) -> None:
    # GIVEN the item run_task wrote for the sample task (QUEUED, its ARN not yet recorded)
    plane = control_plane_aws
    key = sample_task(sequence[0]).task_key("airflow")
    assert key
    plane.table.create_queued(key, "scheduler-a", 1, "default", {})

    # WHEN the sample events arrive
    for name in sequence:
        plane.apply(load_event(name))

    # THEN the item ends where the Airflow container's exit code says
    item = plane.item(key)
    assert item.state == state
    assert item.exit_code == exit_code
    assert item.task_arn == sample_task(sequence[0]).task_arn


def test_sample_failed_to_start_event_requeues_the_next_attempt(
    control_plane_aws: MockedControlPlane,
) -> None:
    # GIVEN the sample task, started at attempt 1
    plane = control_plane_aws
    failed = sample_task("ecs_task_failed_to_start")
    key = failed.task_key("airflow")
    assert key
    plane.table.create_queued(key, "scheduler-a", 1, "default", {})
    plane.apply(load_event("ecs_task_provisioning"))

    # WHEN ECS reports it could not pull the image
    plane.apply(load_event("ecs_task_failed_to_start"))

    # THEN the try waits for attempt 2, and attempt 2's run request carries the same command
    item = plane.item(key)
    assert item.state == TaskState.QUEUED
    assert item.attempt == 2
    assert "CannotPullContainerError" in (item.reason or "")
    messages = plane.receive()
    assert len(messages) == 1
    retry = RunRequest.model_validate_json(messages[0]["Body"])
    assert (retry.key, retry.attempt) == (key, 2)
    override = failed.container_override("airflow")
    assert override
    assert retry.command == override.command
