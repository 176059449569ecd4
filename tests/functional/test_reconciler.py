"""The reconciler function on moto: lost events, lost run requests, orphan tasks."""

from __future__ import annotations

import pytest

from ecs_control_plane.contract import TaskState
from ecs_control_plane.runtime import control_plane
from tests.support.aws import CLUSTER, CONTROL_PLANE_ID, MockedControlPlane, mocked_control_plane
from tests.support.requests import run_request, task_key


def start(plane: MockedControlPlane, key: str) -> str:
    plane.sqs.send_message(QueueUrl=plane.queue_url, MessageBody=run_request(key).model_dump_json())
    plane.deliver()
    arn = plane.item(key).task_arn
    assert arn
    return str(arn)


def test_task_whose_stop_event_was_lost_is_finished_from_describe_tasks(
    control_plane_aws: MockedControlPlane,
) -> None:
    # GIVEN a started task that stopped, but whose events never arrived
    plane = control_plane_aws
    key = task_key()
    arn = start(plane, key)
    plane.ecs.stop_task(cluster=CLUSTER, task=arn, reason="Essential container in task exited")
    plane.age(key, 3600)

    # WHEN the reconciler runs
    report = plane.reconcile()

    # THEN it learns the outcome from ECS and applies it through the normal path
    assert report["examined"] == 1
    assert report["repaired"] == 1
    assert plane.item(key).state in (TaskState.SUCCESS, TaskState.FAILED)


def test_fresh_items_are_left_alone(control_plane_aws: MockedControlPlane) -> None:
    # GIVEN a task that started a moment ago
    plane = control_plane_aws
    key = task_key()
    start(plane, key)

    # WHEN the reconciler runs
    report = plane.reconcile()

    # THEN it does not even look at it
    assert report["examined"] == 0
    assert plane.item(key).state == TaskState.STARTING


def test_task_unknown_to_ecs_is_failed_as_lost(control_plane_aws: MockedControlPlane) -> None:
    # GIVEN an item whose ECS task no longer exists
    plane = control_plane_aws
    key = task_key()
    start(plane, key)
    plane.dynamodb.update_item(
        TableName=plane.table_name,
        Key={"key": {"S": key}},
        UpdateExpression="SET task_arn = :a",
        ExpressionAttributeValues={":a": {"S": f"arn:aws:ecs:us-east-1:123456789012:task/{CLUSTER}/gone"}},
    )
    plane.age(key, 3600)

    # WHEN the reconciler runs
    report = plane.reconcile()

    # THEN the try fails with a reason saying the state changes were lost
    assert report["lost"] == 1
    item = plane.item(key)
    assert item.state == TaskState.FAILED
    assert "lost" in (item.reason or "")


def test_run_request_lost_before_any_task_started_times_out_with_an_alert(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with mocked_control_plane(monkeypatch, ECSCP_QUEUED_TIMEOUT_SECONDS="700") as plane:
        # GIVEN a try that has been QUEUED for an hour with no ECS task (its message went to the DLQ)
        key = task_key("stuck")
        plane.table.create_queued(key, "scheduler-a", 1, "default", {})
        plane.age(key, 3600)

        # WHEN the reconciler runs
        report = plane.reconcile()

        # THEN the try fails, saying where to look, and the failed-start alert goes out
        assert report["timed_out"] == 1
        item = plane.item(key)
        assert item.state == TaskState.FAILED
        assert "dead-letter" in (item.reason or "")
        assert [a["detail"]["task_id"] for a in plane.alerts()] == ["stuck"]


def test_orphan_tasks_of_the_control_plane_are_stopped(control_plane_aws: MockedControlPlane) -> None:
    # GIVEN a try that already finished, and a second ECS task still running it (e.g. a duplicate start)
    plane = control_plane_aws
    key = task_key()
    first = start(plane, key)
    plane.run_to_exit(key, 0)
    plane.ecs.stop_task(cluster=CLUSTER, task=first, reason="exited")  # what ECS did to send those events
    subnet = plane.env["ECSCP_SUBNETS"]
    orphan = plane.ecs.run_task(
        cluster=CLUSTER,
        taskDefinition="airflow",
        launchType="FARGATE",
        startedBy=CONTROL_PLANE_ID,
        networkConfiguration={
            "awsvpcConfiguration": {
                "subnets": [subnet],
                "securityGroups": [plane.env["ECSCP_SECURITY_GROUPS"]],
            }
        },
        overrides={
            "containerOverrides": [
                {"name": "airflow", "environment": [{"name": "ECSCP_TASK_KEY", "value": key}]}
            ]
        },
    )["tasks"][0]["taskArn"]
    # ... and a task somebody else started in the same cluster
    other = plane.ecs.run_task(
        cluster=CLUSTER,
        taskDefinition="airflow",
        launchType="FARGATE",
        startedBy="someone-else",
        networkConfiguration={
            "awsvpcConfiguration": {
                "subnets": [subnet],
                "securityGroups": [plane.env["ECSCP_SECURITY_GROUPS"]],
            }
        },
    )["tasks"][0]["taskArn"]

    # WHEN the reconciler runs
    report = plane.reconcile()

    # THEN only the control plane's orphan is stopped
    assert report["orphans_stopped"] == 1
    desired = {t["taskArn"]: t["desiredStatus"] for t in plane.tasks()}
    assert desired[orphan] == "STOPPED"
    assert desired[other] == "RUNNING"
    assert plane.item(key).state == TaskState.SUCCESS


def test_one_failing_call_does_not_stop_the_rest_of_the_run(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with mocked_control_plane(monkeypatch, ECSCP_QUEUED_TIMEOUT_SECONDS="700") as plane:
        # GIVEN DescribeTasks fails, a stale running try, and a try whose run request was lost
        running = task_key("running")
        start(plane, running)
        plane.age(running, 3600)
        key = task_key("stuck")
        plane.table.create_queued(key, "scheduler-a", 1, "default", {})
        plane.age(key, 3600)
        ecs_client = control_plane().ecs._client

        def broken(**_: object) -> object:
            raise RuntimeError("DescribeTasks is down")

        monkeypatch.setattr(ecs_client, "describe_tasks", broken)

        # WHEN the reconciler runs
        report = plane.reconcile()

        # THEN the failure is counted and the lost request is still handled
        assert report["errors"] >= 1
        assert report["timed_out"] == 1
        assert plane.item(key).state == TaskState.FAILED


def test_task_of_an_earlier_attempt_is_stopped_as_orphan(control_plane_aws: MockedControlPlane) -> None:
    # GIVEN a try at attempt 2 and a task of its attempt 1 that ECS still runs
    plane = control_plane_aws
    key = task_key()
    first = start(plane, key)
    plane.dynamodb.update_item(
        TableName=plane.table_name,
        Key={"key": {"S": key}},
        UpdateExpression="SET attempt = :two REMOVE task_arn",
        ExpressionAttributeValues={":two": {"N": "2"}},
    )

    # WHEN the reconciler runs
    report = plane.reconcile()

    # THEN the attempt-1 task is stopped
    assert report["orphans_stopped"] == 1
    assert {t["taskArn"]: t["desiredStatus"] for t in plane.tasks()}[first] == "STOPPED"
