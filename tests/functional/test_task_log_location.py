"""run_task records where each ECS task it starts logs: the awslogs stream of its container."""

from __future__ import annotations

from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from ecs_control_plane.contract import TaskState
from ecs_control_plane.log_location import task_id_of
from ecs_control_plane.runtime import control_plane
from tests.support.aws import CONTAINER, LOG_GROUP, LOG_STREAM_PREFIX, REGION, MockedControlPlane, aws_calls
from tests.support.requests import run_request, task_key


def send(plane: MockedControlPlane, *requests: Any) -> None:
    for request in requests:
        plane.sqs.send_message(QueueUrl=plane.queue_url, MessageBody=request.model_dump_json())


def test_started_task_records_its_containers_log_stream(control_plane_aws: MockedControlPlane) -> None:
    # GIVEN a task definition whose Airflow container logs with awslogs (group, prefix, region)
    plane = control_plane_aws
    key = task_key()
    send(plane, run_request(key))

    # WHEN run_task starts the task
    plane.deliver()

    # THEN the item says where the container logs: <prefix>/<container>/<task id> in that group
    item = plane.item(key)
    assert item.state == TaskState.STARTING
    assert item.task_arn is not None
    assert (item.log_group, item.log_stream, item.log_region) == (
        LOG_GROUP,
        f"{LOG_STREAM_PREFIX}/{CONTAINER}/{task_id_of(item.task_arn)}",
        REGION,
    )


def test_each_revision_is_described_once_however_many_tasks_it_runs(
    control_plane_aws: MockedControlPlane,
) -> None:
    # GIVEN five run requests for the same task definition
    plane = control_plane_aws
    keys = [task_key(task_id=f"t{i}") for i in range(5)]
    send(plane, *(run_request(key) for key in keys))

    # WHEN one warm run_task container starts them all
    with aws_calls() as calls:
        plane.deliver()

    # THEN ECS was asked about the task definition once (0.2 calls per record), and each task's
    # stream was recorded in the same UpdateItem that records its start
    assert calls["ecs.RunTask"] == 5
    assert calls["ecs.DescribeTaskDefinition"] == 1
    assert calls["dynamodb.UpdateItem"] == 10  # create_queued + record_started, per request
    streams = {plane.item(key).log_stream for key in keys}
    assert len(streams) == 5
    assert None not in streams


def test_a_task_definition_without_awslogs_records_no_stream(control_plane_aws: MockedControlPlane) -> None:
    # GIVEN the family's latest revision logs with another driver
    plane = control_plane_aws
    boto3.client("ecs", region_name=REGION).register_task_definition(
        family="airflow",
        networkMode="awsvpc",
        requiresCompatibilities=["FARGATE"],
        cpu="512",
        memory="1024",
        containerDefinitions=[
            {
                "name": CONTAINER,
                "image": "apache/airflow:3.3.2",
                "memory": 1024,
                "logConfiguration": {"logDriver": "json-file"},
            }
        ],
    )
    key = task_key()
    send(plane, run_request(key))

    # WHEN run_task starts a task
    plane.deliver()

    # THEN the task started, and its item names no stream
    item = plane.item(key)
    assert item.state == TaskState.STARTING
    assert (item.log_group, item.log_stream, item.log_region) == (None, None, None)


def test_a_refused_describe_never_fails_the_start(
    control_plane_aws: MockedControlPlane, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN ECS refuses DescribeTaskDefinition to run_task
    plane = control_plane_aws
    client = control_plane().ecs._client
    asked: list[str] = []

    def refused(**kwargs: Any) -> Any:
        asked.append(kwargs["taskDefinition"])
        error = {"Error": {"Code": "AccessDeniedException", "Message": "not authorized"}}
        raise ClientError(error, "DescribeTaskDefinition")

    monkeypatch.setattr(client, "describe_task_definition", refused)
    keys = [task_key(task_id="a"), task_key(task_id="b")]
    send(plane, *(run_request(key) for key in keys))

    # WHEN run_task starts the tasks
    plane.deliver()

    # THEN both started with no stream recorded, and ECS was not asked again for the second
    assert [plane.item(key).state for key in keys] == [TaskState.STARTING, TaskState.STARTING]
    assert [plane.item(key).log_stream for key in keys] == [None, None]
    assert len(asked) == 1


def test_a_start_retry_forgets_the_failed_tasks_stream_and_records_the_new_one(
    control_plane_aws: MockedControlPlane,
) -> None:
    # GIVEN a task whose first start failed (TaskFailedToStart) and is retried
    plane = control_plane_aws
    key = task_key()
    send(plane, run_request(key))
    plane.deliver()
    first = plane.item(key)
    plane.fail_to_start(key)

    # THEN while it waits for its next attempt, the item names no stream
    waiting = plane.item(key)
    assert (waiting.state, waiting.attempt) == (TaskState.QUEUED, 2)
    assert (waiting.log_group, waiting.log_stream, waiting.log_region) == (None, None, None)

    # WHEN the second attempt starts
    plane.deliver()

    # THEN the item names the new task's stream
    second = plane.item(key)
    assert second.state == TaskState.STARTING
    assert second.task_arn != first.task_arn
    assert second.task_arn is not None
    assert second.log_stream == f"{LOG_STREAM_PREFIX}/{CONTAINER}/{task_id_of(second.task_arn)}"
