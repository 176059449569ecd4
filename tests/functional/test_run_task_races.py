"""run_task on moto when something else happens while RunTask is in flight.

Concurrent delivery of one record to two invocations, an ECS event, a stop request or another
attempt overtaking RunTask, an invocation dying after RunTask: each must end with one ECS task
per start attempt of a submission, the item recording it, and no duplicate alert.
"""

from __future__ import annotations

from typing import Any

import pytest

from ecs_control_plane.contract import TaskState
from tests.support.aws import MockedControlPlane, mocked_control_plane
from tests.support.doubles import (
    acknowledge,
    after_start,
    another_invocation,
    bodies,
    crash_after_start,
    desired_status,
    install_run_task,
    meanwhile,
    no_capacity,
    raising,
    run_request_v2,
    run_task_to_exit,
    send,
    stop_task_now,
    submission_key,
    tasks_of,
)


def first_invocation(plane: MockedControlPlane, messages: list[dict[str, Any]]) -> dict[str, Any]:
    response = plane.invoke_run_task(plane.sqs_event(messages))
    acknowledge(plane, messages, response)
    return response


def test_same_record_delivered_to_two_invocations_starts_one_task(
    control_plane_aws: MockedControlPlane, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN one run request that SQS hands to two invocations at once: the second one handles it
    # completely while the first one's RunTask call is in flight
    plane = control_plane_aws
    ecs = install_run_task(monkeypatch)
    key = submission_key()
    send(plane, run_request_v2(key))
    messages = plane.receive()
    second: dict[str, Any] = {}
    ecs.then(meanwhile(lambda: second.update(another_invocation(plane, messages))))

    # WHEN the first invocation finishes too
    first = first_invocation(plane, messages)

    # THEN both succeeded with the same client token: one ECS task, recorded once, still running
    assert first == second == {"batchItemFailures": []}
    [task] = tasks_of(plane, key)
    assert len(ecs.calls) == 2
    assert len(set(ecs.tokens_for(key))) == 1
    item = plane.item(key)
    assert (item.state, item.attempt, item.task_arn) == (TaskState.STARTING, 1, task["taskArn"])
    assert desired_status(plane, task["taskArn"]) == "RUNNING"
    assert plane.alerts() == []
    assert bodies(plane) == []


def test_same_record_failing_in_two_invocations_alerts_once(
    control_plane_aws: MockedControlPlane, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN one run request handled by two invocations at once, and ECS refusing it both times
    plane = control_plane_aws
    ecs = install_run_task(monkeypatch)
    key = submission_key()
    send(plane, run_request_v2(key))
    messages = plane.receive()
    refused = raising("InvalidParameterException", "Task definition does not support launch_type FARGATE.")
    second: dict[str, Any] = {}
    ecs.then(meanwhile(lambda: second.update(another_invocation(plane, messages)), answer=refused), refused)

    # WHEN both invocations are done
    first = first_invocation(plane, messages)

    # THEN the try failed at its first attempt with one failed-start event, not two
    assert first == second == {"batchItemFailures": []}
    item = plane.item(key)
    assert (item.state, item.attempt, item.alerted) == (TaskState.FAILED, 1, True)
    assert "does not support launch_type" in (item.reason or "")
    assert [a["detail"]["key"] for a in plane.alerts()] == [key]
    assert tasks_of(plane, key) == []


@pytest.mark.parametrize("max_attempts", [3, 1], ids=["capacity-retry", "capacity-at-the-last-attempt"])
def test_capacity_failure_in_one_invocation_never_undoes_the_others_start(
    monkeypatch: pytest.MonkeyPatch, max_attempts: int
) -> None:
    with mocked_control_plane(monkeypatch, max_attempts=max_attempts) as plane:
        # GIVEN one run request handled by two invocations at once: the second starts the task
        # and records it while ECS answers the first one's call with "no capacity" (with a retry
        # left, or at the last attempt)
        ecs = install_run_task(monkeypatch)
        key = submission_key()
        send(plane, run_request_v2(key))
        messages = plane.receive()
        ecs.then(meanwhile(lambda: another_invocation(plane, messages), answer=no_capacity()))

        # WHEN the first invocation is done and whatever it queued is delivered
        first_invocation(plane, messages)
        plane.deliver()

        # THEN the started task stays the try's only task, at attempt 1, recorded and running
        item = plane.item(key)
        assert (item.state, item.attempt) == (TaskState.STARTING, 1)
        assert [t["taskArn"] for t in tasks_of(plane, key)] == [item.task_arn]
        assert desired_status(plane, str(item.task_arn)) == "RUNNING"
        assert plane.alerts() == []


def test_task_started_for_an_attempt_the_item_moved_past_is_stopped_at_once(
    control_plane_aws: MockedControlPlane, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN one run request handled by two invocations at once: the second finds no capacity and
    # moves the try to attempt 2 while ECS starts the first one's attempt-1 task
    plane = control_plane_aws
    ecs = install_run_task(monkeypatch)
    key = submission_key()
    send(plane, run_request_v2(key))
    messages = plane.receive()
    ecs.then(meanwhile(lambda: another_invocation(plane, messages)), no_capacity())

    # WHEN the first invocation is done
    first_invocation(plane, messages)

    # THEN the attempt-1 task nobody will watch is stopped at once, and the item waits for attempt 2
    [stale] = tasks_of(plane, key)
    assert desired_status(plane, stale["taskArn"]) == "STOPPED"
    item = plane.item(key)
    assert (item.state, item.attempt, item.task_arn) == (TaskState.QUEUED, 2, None)

    # AND attempt 2 starts its own task, which the item records
    plane.deliver()
    second = next(t for t in tasks_of(plane, key) if t["taskArn"] != stale["taskArn"])
    item = plane.item(key)
    assert (item.state, item.attempt, item.task_arn) == (TaskState.STARTING, 2, second["taskArn"])
    assert desired_status(plane, second["taskArn"]) == "RUNNING"
    assert plane.alerts() == []


def test_stop_that_overtakes_run_task_still_stops_the_task(
    control_plane_aws: MockedControlPlane, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a run request whose stop request is handled while its RunTask call is in flight
    plane = control_plane_aws
    ecs = install_run_task(monkeypatch)
    key = submission_key()
    send(plane, run_request_v2(key))
    ecs.then(meanwhile(lambda: stop_task_now(plane, key)))

    # WHEN RunTask returns the started task
    assert plane.deliver() == [{"batchItemFailures": []}]

    # THEN that task is stopped at once and the try ends as stopped (no failed-start alert)
    [task] = tasks_of(plane, key)
    assert desired_status(plane, task["taskArn"]) == "STOPPED"
    item = plane.item(key)
    assert item.state == TaskState.FAILED
    assert item.stop_requested
    assert "stopped before it started" in (item.reason or "")
    # AND the task's own STOPPED event changes nothing
    plane.apply(plane.ecs_event(task, "STOPPED", stop_code="UserInitiated", started=False))
    assert plane.item(key).state == TaskState.FAILED
    assert plane.alerts() == []
    assert bodies(plane) == []


def test_event_that_arrives_before_run_task_recorded_the_arn_still_applies(
    control_plane_aws: MockedControlPlane, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN ECS's RUNNING event for a new task is applied before run_task has recorded its ARN
    plane = control_plane_aws
    ecs = install_run_task(monkeypatch)
    key = submission_key()
    send(plane, run_request_v2(key))
    ecs.then(after_start(lambda task: plane.apply(plane.ecs_event(task, "RUNNING"))))

    # WHEN run_task records the start afterwards
    assert plane.deliver() == [{"batchItemFailures": []}]

    # THEN the item stays RUNNING with that task (not moved back to STARTING), which keeps running
    [task] = tasks_of(plane, key)
    item = plane.item(key)
    assert (item.state, item.task_arn) == (TaskState.RUNNING, task["taskArn"])
    assert item.ecs_last_status == "RUNNING"
    assert desired_status(plane, task["taskArn"]) == "RUNNING"
    # AND where its container logs is recorded all the same
    assert item.log_stream == f"ecs/airflow/{task['taskArn'].rsplit('/', 1)[-1]}"
    # AND its exit decides the try
    plane.apply(plane.ecs_event(task, "STOPPED", exit_code=0))
    assert plane.item(key).state == TaskState.SUCCESS


def test_task_that_ended_before_run_task_recorded_it_keeps_its_outcome(
    control_plane_aws: MockedControlPlane, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a task whose whole life (PROVISIONING .. STOPPED with exit 1) is applied before
    # run_task records its start
    plane = control_plane_aws
    ecs = install_run_task(monkeypatch)
    key = submission_key()
    send(plane, run_request_v2(key))
    ecs.then(after_start(lambda task: run_task_to_exit(plane, task, 1)))

    # WHEN run_task records the start afterwards
    assert plane.deliver() == [{"batchItemFailures": []}]

    # THEN the try keeps its outcome, and run_task asked ECS for nothing more
    [task] = tasks_of(plane, key)
    item = plane.item(key)
    assert (item.state, item.exit_code, item.task_arn) == (TaskState.FAILED, 1, task["taskArn"])
    assert desired_status(plane, task["taskArn"]) == "RUNNING"  # moto: nobody called StopTask
    assert plane.alerts() == []


def test_invocation_that_died_after_run_task_is_redelivered_to_the_same_task(
    control_plane_aws: MockedControlPlane, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN an invocation that dies after ECS started the task but before recording it
    plane = control_plane_aws
    ecs = install_run_task(monkeypatch)
    key = submission_key()
    send(plane, run_request_v2(key))
    ecs.then(crash_after_start)

    # WHEN SQS delivers the message again
    responses = plane.deliver(visibility_timeout=0)

    # THEN the second delivery got the same task from ECS (same client token) and recorded it
    assert len(responses[0]["batchItemFailures"]) == 1
    assert responses[-1] == {"batchItemFailures": []}
    [task] = tasks_of(plane, key)
    assert len(ecs.calls) == 2
    assert len(set(ecs.tokens_for(key))) == 1
    item = plane.item(key)
    assert (item.state, item.attempt, item.task_arn) == (TaskState.STARTING, 1, task["taskArn"])
    assert desired_status(plane, task["taskArn"]) == "RUNNING"
