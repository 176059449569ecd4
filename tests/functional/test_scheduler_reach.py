"""What a scheduler (or whoever can write the state table) can make the control plane do."""

from __future__ import annotations

import pytest

from ecs_control_plane.contract import TaskState
from tests.support.aws import CLUSTER, MockedControlPlane
from tests.support.requests import run_request, stop_request, task_key


def start(plane: MockedControlPlane, key: str, owner: str = "scheduler-a") -> str:
    plane.sqs.send_message(
        QueueUrl=plane.queue_url, MessageBody=run_request(key, owner=owner).model_dump_json()
    )
    plane.deliver()
    arn = plane.item(key).task_arn
    assert arn
    return str(arn)


def status(plane: MockedControlPlane, arn: str) -> str:
    [task] = plane.ecs.describe_tasks(cluster=CLUSTER, tasks=[arn])["tasks"]
    return str(task["desiredStatus"])


def test_a_stop_from_another_scheduler_never_stops_the_owners_task(
    control_plane_aws: MockedControlPlane,
) -> None:
    # GIVEN a task of scheduler A
    plane = control_plane_aws
    key = task_key()
    arn = start(plane, key, owner="scheduler-a")
    # WHEN scheduler B sends a stop request for it
    plane.sqs.send_message(
        QueueUrl=plane.queue_url, MessageBody=stop_request(key, owner="scheduler-b").model_dump_json()
    )
    plane.deliver()
    # THEN the task keeps running and the item is untouched
    assert status(plane, arn) == "RUNNING"
    item = plane.item(key)
    assert not item.stop_requested
    assert item.state == TaskState.STARTING
    # AND its owner's stop still works
    plane.sqs.send_message(
        QueueUrl=plane.queue_url, MessageBody=stop_request(key, owner="scheduler-a").model_dump_json()
    )
    plane.deliver()
    assert status(plane, arn) == "STOPPED"


def test_a_forged_task_arn_never_makes_run_task_stop_a_foreign_task(
    control_plane_aws: MockedControlPlane,
) -> None:
    # GIVEN an ECS task the control plane never started, and an item rewritten to claim it
    plane = control_plane_aws
    key = task_key()
    start(plane, key)
    started = plane.ecs.run_task(
        cluster=CLUSTER,
        taskDefinition="airflow",
        startedBy="someone-else",
        launchType="FARGATE",
        networkConfiguration={
            "awsvpcConfiguration": {
                "subnets": [plane.env["ECSCP_SUBNETS"]],
                "securityGroups": plane.env["ECSCP_SECURITY_GROUPS"].split(","),
            }
        },
    )
    foreign = started["tasks"][0]["taskArn"]
    plane.dynamodb.update_item(
        TableName=plane.table_name,
        Key={"key": {"S": key}},
        UpdateExpression="SET task_arn = :a",
        ExpressionAttributeValues={":a": {"S": foreign}},
    )
    # WHEN the item's owner asks to stop the try
    plane.sqs.send_message(QueueUrl=plane.queue_url, MessageBody=stop_request(key).model_dump_json())
    plane.deliver()
    # THEN the foreign task is not stopped
    assert status(plane, foreign) == "RUNNING"


@pytest.mark.parametrize(
    "bad",
    [
        {"state": {"S": "BOGUS"}},
        {"attempt": {"S": "not a number"}},
        {"owner": {"N": "1"}, "executor_config": {"S": "{not json"}},
    ],
    ids=["unknown-state", "bad-attempt", "bad-config"],
)
def test_one_malformed_item_never_stops_the_reconciler(
    control_plane_aws: MockedControlPlane, bad: dict[str, dict[str, str]]
) -> None:
    # GIVEN a stale item whose task stopped without its events, and a malformed item beside it
    plane = control_plane_aws
    key = task_key("good")
    arn = start(plane, key)
    plane.ecs.stop_task(cluster=CLUSTER, task=arn, reason="Essential container in task exited")
    plane.age(key, 3600)
    raw = {
        "key": {"S": task_key("bad")},
        "owner": {"S": "scheduler-a"},
        "state": {"S": "QUEUED"},
        "attempt": {"N": "1"},
        "active_shard": {"S": "A0"},
        "updated_at": {"N": "1"},
        **bad,
    }
    plane.dynamodb.put_item(TableName=plane.table_name, Item=raw)
    # WHEN the reconciler runs
    report = plane.reconcile()
    # THEN the good item is still repaired; the bad one is skipped (and logged), not fatal
    assert report["repaired"] == 1
    assert plane.item(key).state in (TaskState.SUCCESS, TaskState.FAILED)


def test_an_unreadable_item_is_not_no_item_the_orphan_sweep_leaves_its_task_running(
    control_plane_aws: MockedControlPlane,
) -> None:
    # GIVEN a running try whose item was damaged (its owner removed, by hand or by a bug)
    plane = control_plane_aws
    key = task_key("damaged")
    arn = start(plane, key)
    plane.dynamodb.update_item(
        TableName=plane.table_name, Key={"key": {"S": key}}, UpdateExpression="REMOVE #o",
        ExpressionAttributeNames={"#o": "owner"},
    )  # fmt: skip
    # WHEN the reconciler sweeps for orphan tasks
    report = plane.reconcile()
    # THEN the task is not taken for an orphan (no item knows it) and keeps running
    assert report["orphans_stopped"] == 0
    assert status(plane, arn) == "RUNNING"
