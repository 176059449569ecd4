"""The task_state function on moto: ordering, duplicates, exit codes, start retries."""

from __future__ import annotations

import json

import pytest

from ecs_control_plane.contract import TaskState
from tests.support.aws import MockedControlPlane, aws_calls, mocked_control_plane
from tests.support.requests import run_request, stop_request, task_key


def started(plane: MockedControlPlane, key: str) -> dict:
    plane.sqs.send_message(QueueUrl=plane.queue_url, MessageBody=run_request(key).model_dump_json())
    plane.deliver()
    return plane.task_for(key)


@pytest.mark.parametrize(
    ("order", "expected"),
    [
        (["PROVISIONING", "PENDING", "RUNNING", "STOPPED"], TaskState.SUCCESS),
        (["STOPPED", "RUNNING", "PENDING", "PROVISIONING"], TaskState.SUCCESS),
        (["RUNNING", "PROVISIONING", "RUNNING", "STOPPED", "STOPPED", "PENDING"], TaskState.SUCCESS),
        (["PROVISIONING", "RUNNING", "RUNNING", "PENDING"], TaskState.RUNNING),
    ],
    ids=["in-order", "reversed", "duplicated-and-shuffled", "late-pending"],
)
def test_events_out_of_order_and_twice_end_in_the_right_state(
    control_plane_aws: MockedControlPlane, order: list[str], expected: TaskState
) -> None:
    # GIVEN a started task and its events, versioned as ECS versions them
    plane = control_plane_aws
    key = task_key()
    task = started(plane, key)
    version = {"PROVISIONING": 1, "PENDING": 2, "RUNNING": 3, "STOPPED": 5}
    events = {
        status: plane.ecs_event(
            task, status, version=version[status], exit_code=0 if status == "STOPPED" else None
        )
        for status in version
    }

    # WHEN they arrive in the given order, some twice
    for status in order:
        plane.apply(events[status])

    # THEN the item ends in the state of the newest event, and terminal states stay terminal
    item = plane.item(key)
    assert item.state == expected
    assert item.ecs_version == max(version[s] for s in order)


def test_nonzero_exit_code_fails_the_task_with_the_reason(control_plane_aws: MockedControlPlane) -> None:
    # GIVEN a started task
    plane = control_plane_aws
    key = task_key()
    task = started(plane, key)

    # WHEN its Airflow container exits with 1
    plane.apply(plane.ecs_event(task, "RUNNING"))
    plane.apply(
        plane.ecs_event(task, "STOPPED", exit_code=1, stopped_reason="Essential container in task exited")
    )

    # THEN the try is FAILED, with the exit code and a reason a person can read
    item = plane.item(key)
    assert item.state == TaskState.FAILED
    assert item.exit_code == 1
    assert "exited with code 1" in (item.reason or "")
    assert plane.alerts() == []  # it ran: Airflow's own retries take over, no start alert


def test_running_event_before_run_task_recorded_the_arn_still_applies(
    control_plane_aws: MockedControlPlane,
) -> None:
    # GIVEN a task whose RUNNING event overtakes run_task's own write (item still QUEUED, no ARN)
    plane = control_plane_aws
    key = task_key()
    task = started(plane, key)
    plane.dynamodb.update_item(
        TableName=plane.table_name,
        Key={"key": {"S": key}},
        UpdateExpression="SET #s = :q REMOVE task_arn",
        ExpressionAttributeNames={"#s": "state"},
        ExpressionAttributeValues={":q": {"S": "QUEUED"}},
    )

    # WHEN the event arrives
    plane.apply(plane.ecs_event(task, "RUNNING"))

    # THEN the key carried in the container environment finds the item
    item = plane.item(key)
    assert item.state == TaskState.RUNNING
    assert item.task_arn == task["taskArn"]


def test_failed_start_is_retried_with_the_next_attempt_then_succeeds(
    control_plane_aws: MockedControlPlane,
) -> None:
    # GIVEN a task that ECS could not start (image pull failed)
    plane = control_plane_aws
    key = task_key()
    first = started(plane, key)
    plane.fail_to_start(key)

    # THEN the try is QUEUED again at attempt 2 and a run request for attempt 2 is on the queue
    item = plane.item(key)
    assert item.state == TaskState.QUEUED
    assert item.attempt == 2
    assert "CannotPullContainerError" in (item.reason or "")

    # WHEN the retry is consumed and the new task runs to exit 0
    plane.deliver()
    second = plane.task_for(key)
    assert second["taskArn"] != first["taskArn"]
    plane.run_to_exit(key, 0)

    # THEN the try succeeded on attempt 2; late events of the first task change nothing
    plane.apply(plane.ecs_event(first, "STOPPED", version=99, exit_code=1))
    item = plane.item(key)
    assert item.state == TaskState.SUCCESS
    assert item.attempt == 2
    assert item.task_arn == second["taskArn"]
    assert plane.alerts() == []


def test_start_failing_every_attempt_ends_failed_with_one_alert(monkeypatch: pytest.MonkeyPatch) -> None:
    with mocked_control_plane(monkeypatch, max_attempts=2) as plane:
        # GIVEN a task that never manages to start
        key = task_key("never_starts")
        started(plane, key)

        # WHEN every attempt fails to start
        plane.fail_to_start(key)
        plane.deliver()
        plane.fail_to_start(key)

        # THEN the try is FAILED after MaxRunTaskAttempts with one failed-start event naming it
        item = plane.item(key)
        assert item.state == TaskState.FAILED
        assert item.attempt == 2
        alerts = plane.alerts()
        assert len(alerts) == 1
        detail = alerts[0]["detail"]
        assert detail["task_id"] == "never_starts"
        assert detail["attempt"] == 2
        assert "CannotPullContainerError" in detail["reason"]
        assert len([t for t in plane.tasks() if key in json.dumps(t["overrides"])]) == 2


def test_duplicate_failed_start_event_queues_one_retry(control_plane_aws: MockedControlPlane) -> None:
    # GIVEN a failed start whose STOPPED event EventBridge delivers twice
    plane = control_plane_aws
    key = task_key()
    task = started(plane, key)
    stopped = plane.ecs_event(
        task, "STOPPED", stop_code="TaskFailedToStart", stopped_reason="boom", started=False
    )

    # WHEN both copies are applied
    plane.apply(stopped)
    plane.apply(stopped)

    # THEN one retry is scheduled (attempt 2), and the second copy is ignored
    assert plane.item(key).attempt == 2
    plane.deliver()
    assert len([t for t in plane.tasks() if key in json.dumps(t["overrides"])]) == 2


def test_event_for_a_task_without_a_key_is_ignored(control_plane_aws: MockedControlPlane) -> None:
    # GIVEN an ECS task of ours whose overrides carry no task key
    plane = control_plane_aws
    key = task_key()
    task = started(plane, key)
    task["overrides"] = {"containerOverrides": []}

    # WHEN its event arrives
    result = plane.apply(plane.ecs_event(task, "RUNNING"))

    # THEN nothing changes
    assert result["outcome"] == "IGNORED"
    assert plane.item(key).state == TaskState.STARTING


def test_stopped_by_request_after_running_fails_the_task(control_plane_aws: MockedControlPlane) -> None:
    # GIVEN a running task that was stopped on request (no exit code)
    plane = control_plane_aws
    key = task_key()
    task = started(plane, key)
    plane.apply(plane.ecs_event(task, "RUNNING"))

    # WHEN ECS reports it STOPPED by the user
    plane.apply(plane.ecs_event(task, "STOPPED", stop_code="UserInitiated", stopped_reason="Airflow asked"))

    # THEN it is FAILED (not retried: it had started)
    item = plane.item(key)
    assert item.state == TaskState.FAILED
    assert "Airflow asked" in (item.reason or "")
    assert item.attempt == 1


def test_task_stopped_on_request_before_it_ran_is_not_a_failed_start(
    control_plane_aws: MockedControlPlane,
) -> None:
    # GIVEN a task Airflow revoked while ECS was still provisioning it
    plane = control_plane_aws
    key = task_key()
    task = started(plane, key)
    plane.apply(plane.ecs_event(task, "PROVISIONING"))

    # WHEN ECS reports it stopped by the user, before it ever started
    plane.apply(
        plane.ecs_event(task, "STOPPED", stop_code="UserInitiated", stopped_reason="revoked", started=False)
    )

    # THEN the try is FAILED as stopped: no retry, no attempt spent, no alert
    item = plane.item(key)
    assert item.state == TaskState.FAILED
    assert item.attempt == 1
    assert "revoked" in (item.reason or "")
    assert plane.receive() == []
    assert plane.alerts() == []


def dynamodb_calls(calls: dict[str, int]) -> dict[str, int]:
    return {op: n for op, n in calls.items() if op.startswith("dynamodb.")}


def test_event_moving_the_try_forward_is_one_conditional_write_and_no_read(
    control_plane_aws: MockedControlPlane,
) -> None:
    # GIVEN a started task
    plane = control_plane_aws
    key = task_key()
    task = started(plane, key)

    for status, exit_code, expected in [
        ("PROVISIONING", None, TaskState.STARTING),
        ("RUNNING", None, TaskState.RUNNING),
        ("DEACTIVATING", None, TaskState.RUNNING),
        ("STOPPED", 0, TaskState.SUCCESS),
    ]:
        # WHEN each of its events arrives in order
        with aws_calls() as calls:
            result = plane.apply(plane.ecs_event(task, status, exit_code=exit_code))

        # THEN each is applied with one UpdateItem, and nothing read first
        assert result["outcome"] == "APPLIED", status
        assert dynamodb_calls(calls) == {"dynamodb.UpdateItem": 1}, status
        assert plane.item(key).state == expected


@pytest.mark.parametrize(
    ("case", "expected_state"),
    [("duplicate", TaskState.RUNNING), ("late", TaskState.RUNNING), ("finished", TaskState.SUCCESS)],
)
def test_stale_event_is_refused_by_its_one_write_and_changes_nothing(
    control_plane_aws: MockedControlPlane, case: str, expected_state: TaskState
) -> None:
    # GIVEN a task whose item has seen RUNNING (version 3), and then for "finished" STOPPED
    plane = control_plane_aws
    key = task_key()
    task = started(plane, key)
    running = plane.ecs_event(task, "RUNNING", version=3)
    plane.apply(running)
    stale = {
        "duplicate": running,
        "late": plane.ecs_event(task, "PENDING", version=2),
        "finished": plane.ecs_event(task, "RUNNING", version=4),
    }[case]
    if case == "finished":
        plane.apply(plane.ecs_event(task, "STOPPED", version=5, exit_code=0))
    before = plane.item(key)

    # WHEN a repeated, older, or after-the-end event arrives
    with aws_calls() as calls:
        result = plane.apply(stale)

    # THEN the refused write alone decides it (it returns the item): no read, no second write
    assert result["outcome"] == "IGNORED"
    assert dynamodb_calls(calls) == {"dynamodb.UpdateItem": 1}
    after = plane.item(key)
    assert after.state == expected_state
    assert after.ecs_version == before.ecs_version
    assert after.updated_at == before.updated_at


def test_event_for_an_unknown_key_creates_no_item(control_plane_aws: MockedControlPlane) -> None:
    # GIVEN an ECS task whose item is gone (expired, or never made)
    plane = control_plane_aws
    key = task_key()
    task = started(plane, key)
    plane.dynamodb.delete_item(TableName=plane.table_name, Key={"key": {"S": key}})

    # WHEN its event arrives
    with aws_calls() as calls:
        result = plane.apply(plane.ecs_event(task, "RUNNING"))

    # THEN it is ignored after one refused write, and no item appears
    assert result["outcome"] == "IGNORED"
    assert dynamodb_calls(calls) == {"dynamodb.UpdateItem": 1}
    assert plane.item(key) is None


def test_starting_event_newer_than_a_running_item_keeps_it_running(
    control_plane_aws: MockedControlPlane,
) -> None:
    # GIVEN an item RUNNING at version 3 (its RUNNING event came first)
    plane = control_plane_aws
    key = task_key()
    task = started(plane, key)
    plane.apply(plane.ecs_event(task, "RUNNING", version=3))

    # WHEN a PENDING event with a newer version arrives
    with aws_calls() as calls:
        result = plane.apply(plane.ecs_event(task, "PENDING", version=4))

    # THEN the refused write returns the item, and a second write applies the version, RUNNING kept
    assert result["outcome"] == "APPLIED"
    assert dynamodb_calls(calls) == {"dynamodb.UpdateItem": 2}
    item = plane.item(key)
    assert item.state == TaskState.RUNNING
    assert item.ecs_version == 4


def test_exit_zero_after_a_requested_stop_fails_the_try(control_plane_aws: MockedControlPlane) -> None:
    # GIVEN a running task whose stop Airflow requested
    plane = control_plane_aws
    key = task_key()
    task = started(plane, key)
    plane.apply(plane.ecs_event(task, "RUNNING"))
    plane.sqs.send_message(QueueUrl=plane.queue_url, MessageBody=stop_request(key).model_dump_json())
    plane.deliver()

    # WHEN it stops with exit code 0 (the command finished as the stop came)
    with aws_calls() as calls:
        result = plane.apply(
            plane.ecs_event(task, "STOPPED", exit_code=0, stop_code="EssentialContainerExited")
        )

    # THEN the write that presumed no stop is refused, and the try ends FAILED as stopped
    assert result["outcome"] == "APPLIED"
    assert dynamodb_calls(calls) == {"dynamodb.UpdateItem": 2}
    item = plane.item(key)
    assert item.state == TaskState.FAILED
    assert (item.reason or "").startswith("stopped")


def test_failed_start_reads_the_item_it_retries(control_plane_aws: MockedControlPlane) -> None:
    # GIVEN a task that ECS could not start
    plane = control_plane_aws
    key = task_key()
    task = started(plane, key)
    plane.apply(plane.ecs_event(task, "PROVISIONING"))
    stopped = plane.ecs_event(
        task, "STOPPED", stop_code="TaskFailedToStart", stopped_reason="pull access denied", started=False
    )

    # WHEN its STOPPED event arrives
    with aws_calls() as calls:
        result = plane.apply(stopped)

    # THEN the retry is built from the item it read: one GetItem, then the write to QUEUED
    assert result["outcome"] == "RETRY_QUEUED"
    assert dynamodb_calls(calls) == {"dynamodb.GetItem": 1, "dynamodb.UpdateItem": 1}
    assert plane.item(key).attempt == 2
