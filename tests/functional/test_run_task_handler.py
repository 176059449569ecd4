"""The run_task function on moto: starts, retries, refusals, stops, bad input."""

from __future__ import annotations

import json
from typing import Any

import pytest
from botocore.exceptions import ClientError

from ecs_control_plane.contract import TaskState
from ecs_control_plane.runtime import control_plane
from tests.support.aws import MockedControlPlane, mocked_control_plane
from tests.support.requests import SECRET_TOKEN, run_request, stop_request, task_key


def send(plane: MockedControlPlane, *requests: Any) -> None:
    for request in requests:
        body = request if isinstance(request, str) else request.model_dump_json()
        plane.sqs.send_message(QueueUrl=plane.queue_url, MessageBody=body)


def fake_run_task(monkeypatch: pytest.MonkeyPatch, behaviour: Any) -> list[dict[str, Any]]:
    """Replace ECS RunTask with ``behaviour(kwargs)``; returns the list of calls made."""
    calls: list[dict[str, Any]] = []
    client = control_plane().ecs._client

    def run_task(**kwargs: Any) -> Any:
        calls.append(kwargs)
        return behaviour(kwargs)

    monkeypatch.setattr(client, "run_task", run_task)
    return calls


def throttled(_: dict[str, Any]) -> Any:
    raise ClientError(
        {
            "Error": {"Code": "ThrottlingException", "Message": "Rate exceeded"},
            "ResponseMetadata": {"HTTPStatusCode": 400},
        },
        "RunTask",
    )


def no_capacity(_: dict[str, Any]) -> Any:
    return {
        "tasks": [],
        "failures": [{"arn": "arn:aws:ecs:::container-instance/x", "reason": "RESOURCE:MEMORY"}],
    }


def test_run_request_starts_one_ecs_task_and_records_it(control_plane_aws: MockedControlPlane) -> None:
    # GIVEN a run request on the queue
    plane = control_plane_aws
    key = task_key()
    send(plane, run_request(key))

    # WHEN the function consumes it
    responses = plane.deliver()

    # THEN one ECS task runs the workload, tagged with the key, and the item is STARTING
    assert responses == [{"batchItemFailures": []}]
    task = plane.task_for(key)
    override = task["overrides"]["containerOverrides"][0]
    env = {e["name"]: e["value"] for e in override["environment"]}
    assert override["name"] == "airflow"
    assert override["command"][:3] == ["python", "-m", "airflow.sdk.execution_time.execute_workload"]
    assert env["ECSCP_TASK_KEY"] == key
    assert env["ECSCP_ATTEMPT"] == "1"
    assert env["AIRFLOW_IS_EXECUTOR_CONTAINER"] == "true"
    assert task["startedBy"] == "ecscp-test-stack"
    item = plane.item(key)
    assert item.state == TaskState.STARTING
    assert item.task_arn == task["taskArn"]
    assert item.attempt == 1


def test_redelivered_run_request_starts_one_task(control_plane_aws: MockedControlPlane) -> None:
    # GIVEN a run request that SQS delivers twice (at-least-once delivery)
    plane = control_plane_aws
    key = task_key()
    send(plane, run_request(key), run_request(key))

    # WHEN both copies are processed
    plane.deliver()

    # THEN exactly one ECS task was started for the try
    assert len([t for t in plane.tasks() if key in json.dumps(t["overrides"])]) == 1
    assert plane.item(key).state == TaskState.STARTING


def test_throttled_run_task_spends_no_attempt(
    control_plane_aws: MockedControlPlane, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN ECS throttles RunTask
    plane = control_plane_aws
    calls = fake_run_task(monkeypatch, throttled)
    key = task_key()
    send(plane, run_request(key))

    # WHEN the request is processed
    responses = plane.deliver(max_batches=1)

    # THEN the record is done with (no receive spent), a fresh message waits out a jittered
    # backoff, the attempt is not spent and nothing failed
    assert responses[0]["batchItemFailures"] == []
    assert len(calls) == 1
    item = plane.item(key)
    assert item.state == TaskState.QUEUED
    assert item.attempt == 1
    attrs = plane.sqs.get_queue_attributes(QueueUrl=plane.queue_url, AttributeNames=["All"])["Attributes"]
    assert attrs["ApproximateNumberOfMessagesDelayed"] == "1"  # the retry, not the old message
    assert attrs["ApproximateNumberOfMessagesNotVisible"] == "0"
    assert plane.alerts() == []


def test_capacity_failure_retries_then_fails_with_event(monkeypatch: pytest.MonkeyPatch) -> None:
    with mocked_control_plane(monkeypatch, max_attempts=3) as plane:
        # GIVEN ECS has no capacity, every time
        calls = fake_run_task(monkeypatch, no_capacity)
        key = task_key("transform")
        send(plane, run_request(key))

        # WHEN the request is retried until the attempts run out (backoff is 0 s here)
        for _ in range(5):
            plane.deliver(max_batches=1)

        # THEN RunTask was tried MaxRunTaskAttempts times with a distinct client token each
        assert [c["clientToken"] for c in calls] == list(dict.fromkeys(c["clientToken"] for c in calls))
        assert len(calls) == 3
        item = plane.item(key)
        assert item.state == TaskState.FAILED
        assert item.attempt == 3
        assert "RESOURCE:MEMORY" in (item.reason or "")
        # AND one failed-start event names the task
        alerts = plane.alerts()
        assert len(alerts) == 1
        assert alerts[0]["detail-type"] == "Airflow Task Start Failed"
        assert alerts[0]["detail"]["task_id"] == "transform"
        assert alerts[0]["detail"]["attempt"] == 3
        assert "RESOURCE:MEMORY" in alerts[0]["detail"]["reason"]


def test_capacity_failure_then_success_starts_on_second_attempt(
    control_plane_aws: MockedControlPlane, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN ECS has no capacity on the first call only
    plane = control_plane_aws
    real_run_task = control_plane().ecs._client.run_task
    outcomes = iter([no_capacity])

    def first_no_capacity_then_real(kwargs: dict[str, Any]) -> Any:
        behaviour = next(outcomes, None)
        return behaviour(kwargs) if behaviour else real_run_task(**kwargs)

    calls = fake_run_task(monkeypatch, first_no_capacity_then_real)
    key = task_key()
    send(plane, run_request(key))

    # WHEN the message comes back after its backoff
    plane.deliver(max_batches=1)
    plane.deliver(max_batches=1)

    # THEN the second attempt started a task
    assert len(calls) == 2
    item = plane.item(key)
    assert item.state == TaskState.STARTING
    assert item.attempt == 2
    assert plane.alerts() == []


@pytest.mark.parametrize(
    ("executor_config", "expected"),
    [
        (
            {"overrides": {"containerOverrides": [{"name": "airflow", "command": ["sh", "-c", "evil"]}]}},
            "command",
        ),
        (
            {"overrides": {"containerOverrides": [{"name": "sidecar", "memory": 512}]}},
            "only the Airflow container 'airflow' may be overridden",
        ),
        ({"name": "other"}, "may not set 'name'"),
        ({"cluster": "someone-elses"}, "may not set 'cluster'"),
    ],
    ids=["command", "container-name", "top-level-name", "cluster"],
)
def test_executor_config_overriding_what_the_control_plane_owns_is_refused(
    control_plane_aws: MockedControlPlane, executor_config: dict[str, Any], expected: str
) -> None:
    # GIVEN a task whose executor_config tries to replace the command or the container
    plane = control_plane_aws
    key = task_key()
    send(plane, run_request(key, executor_config=executor_config))

    # WHEN it is processed
    responses = plane.deliver()

    # THEN no ECS task starts, the item is FAILED with a reason naming the problem, and an alert is put
    assert responses == [{"batchItemFailures": []}]
    assert plane.tasks() == []
    item = plane.item(key)
    assert item.state == TaskState.FAILED
    assert expected in (item.reason or "")
    assert [a["detail"]["key"] for a in plane.alerts()] == [key]


def test_overrides_larger_than_ecs_accepts_fail_with_a_clear_reason(
    control_plane_aws: MockedControlPlane,
) -> None:
    # GIVEN an executor_config environment that makes the overrides exceed 8 KiB
    plane = control_plane_aws
    key = task_key()
    big_env = [{"name": f"VAR_{i}", "value": "x" * 100} for i in range(100)]
    send(
        plane,
        run_request(
            key,
            executor_config={
                "overrides": {"containerOverrides": [{"name": "airflow", "environment": big_env}]}
            },
        ),
    )

    # WHEN it is processed
    plane.deliver()

    # THEN it fails for good, saying why, instead of crashing the batch
    item = plane.item(key)
    assert item.state == TaskState.FAILED
    assert "8192" in (item.reason or "")
    assert plane.tasks() == []


def test_missing_cluster_fails_at_once_with_event(monkeypatch: pytest.MonkeyPatch) -> None:
    with mocked_control_plane(monkeypatch, ECSCP_CLUSTER="no-such-cluster") as plane:
        # GIVEN the configured cluster does not exist
        key = task_key()
        send(plane, run_request(key))

        # WHEN the request is processed
        responses = plane.deliver()

        # THEN the try is FAILED at the first attempt, with the failed-start event, not retried
        assert responses == [{"batchItemFailures": []}]
        item = plane.item(key)
        assert item.state == TaskState.FAILED
        assert item.attempt == 1
        assert "ClusterNotFoundException" in (item.reason or "")
        assert len(plane.alerts()) == 1


def test_one_malformed_record_leaves_the_others_processed(control_plane_aws: MockedControlPlane) -> None:
    # GIVEN a batch with two good requests, one that is not JSON and one with a readable key but a bad field
    plane = control_plane_aws
    good_a, good_b, bad_key = task_key("a"), task_key("b"), task_key("c")
    send(
        plane,
        run_request(good_a),
        "{not json",
        json.dumps(
            {
                "version": 1,
                "kind": "run",
                "key": bad_key,
                "owner": "scheduler-a",
                "command": ["x"],
                "attempt": 0,
            }
        ),
        run_request(good_b),
    )

    # WHEN one batch is processed
    messages = plane.receive()
    assert len(messages) == 4
    response = plane.invoke_run_task(plane.sqs_event(messages))

    # THEN only the two bad records are reported as failures
    failed_bodies = {
        m["Body"]
        for m in messages
        if m["MessageId"] in {f["itemIdentifier"] for f in response["batchItemFailures"]}
    }
    assert len(failed_bodies) == 2
    assert "{not json" in failed_bodies
    # AND the good ones started, and the readable bad one is FAILED with the reason
    assert plane.item(good_a).state == TaskState.STARTING
    assert plane.item(good_b).state == TaskState.STARTING
    bad = plane.item(bad_key)
    assert bad.state == TaskState.FAILED
    assert "attempt" in (bad.reason or "")


def test_workload_token_never_reaches_the_table_or_logs(
    control_plane_aws: MockedControlPlane, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN requests whose command carries the workload token, one refused, one started
    plane = control_plane_aws
    started, refused = task_key("a"), task_key("b")
    send(plane, run_request(started), run_request(refused, executor_config={"name": "x"}))

    # WHEN they are processed and the started task runs to the end
    plane.deliver()
    plane.run_to_exit(started, 0)

    # THEN no item holds the token, and nothing logged it
    assert plane.item(started).state == TaskState.SUCCESS
    assert SECRET_TOKEN not in json.dumps(plane.raw_items())
    out = capsys.readouterr()
    assert SECRET_TOKEN not in out.out + out.err


def test_stop_before_start_drops_the_late_run_request(control_plane_aws: MockedControlPlane) -> None:
    # GIVEN a stop request that overtakes its run request
    plane = control_plane_aws
    key = task_key()
    send(plane, stop_request(key))
    plane.deliver()

    # WHEN the run request arrives afterwards
    send(plane, run_request(key))
    plane.deliver()

    # THEN no ECS task is started and the try is FAILED as stopped
    assert plane.tasks() == []
    item = plane.item(key)
    assert item.state == TaskState.FAILED
    assert "stopped before it started" in (item.reason or "")


def test_stop_after_start_stops_the_ecs_task(control_plane_aws: MockedControlPlane) -> None:
    # GIVEN a running task
    plane = control_plane_aws
    key = task_key()
    send(plane, run_request(key))
    plane.deliver()
    arn = plane.item(key).task_arn

    # WHEN the executor asks to stop it
    send(plane, stop_request(key))
    plane.deliver()

    # THEN ECS is asked to stop that task; the item ends when ECS reports STOPPED
    task = next(t for t in plane.tasks() if t["taskArn"] == arn)
    assert task["desiredStatus"] == "STOPPED"
    item = plane.item(key)
    assert item.stop_requested
    assert item.state == TaskState.STARTING


def test_token_reused_with_other_parameters_records_the_task_ecs_names(
    control_plane_aws: MockedControlPlane, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN ECS answers a redelivered start with ConflictException naming the task it started
    plane = control_plane_aws
    arn = "arn:aws:ecs:us-east-1:123456789012:task/airflow-cluster/started-before"

    def conflict(_: dict[str, Any]) -> Any:
        raise ClientError(
            {
                "Error": {"Code": "ConflictException", "Message": "clientToken reused"},
                "resourceIds": [arn],
                "ResponseMetadata": {"HTTPStatusCode": 400},
            },
            "RunTask",
        )

    fake_run_task(monkeypatch, conflict)
    key = task_key()
    send(plane, run_request(key))

    # WHEN it is processed
    plane.deliver()

    # THEN the try is STARTING with that task, not FAILED
    item = plane.item(key)
    assert item.state == TaskState.STARTING
    assert item.task_arn == arn
    assert plane.alerts() == []


def test_alert_that_failed_to_go_out_is_sent_when_the_message_comes_back(
    control_plane_aws: MockedControlPlane, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a refused request whose failed-start event cannot be put the first time
    plane = control_plane_aws
    events_client = control_plane().alerts._client
    real_put_events = events_client.put_events
    failures = iter([True])

    def flaky_put_events(**kwargs: Any) -> Any:
        if next(failures, False):
            raise ClientError({"Error": {"Code": "InternalException", "Message": "try again"}}, "PutEvents")
        return real_put_events(**kwargs)

    monkeypatch.setattr(events_client, "put_events", flaky_put_events)
    key = task_key()
    send(plane, run_request(key, executor_config={"cluster": "x"}))

    # WHEN the first delivery fails on PutEvents and the message is delivered again
    first = plane.deliver(max_batches=1, visibility_timeout=0)
    plane.deliver()

    # THEN the try is FAILED and exactly one alert went out
    assert len(first[0]["batchItemFailures"]) == 1
    item = plane.item(key)
    assert item.state == TaskState.FAILED
    assert item.alerted
    assert len(plane.alerts()) == 1


def test_malformed_message_never_fails_a_try_already_under_way(control_plane_aws: MockedControlPlane) -> None:
    # GIVEN a started try, then a message for the same key that this contract cannot read
    plane = control_plane_aws
    key = task_key()
    send(plane, run_request(key))
    plane.deliver()
    send(
        plane, json.dumps({"version": 2, "kind": "run", "key": key, "owner": "scheduler-a", "command": ["x"]})
    )

    # WHEN it is processed
    plane.deliver(max_batches=1)

    # THEN the started try is untouched
    assert plane.item(key).state == TaskState.STARTING


def test_items_in_flight_never_expire_and_finished_ones_do(control_plane_aws: MockedControlPlane) -> None:
    # GIVEN a started try
    plane = control_plane_aws
    key = task_key()
    send(plane, run_request(key))
    plane.deliver()

    # THEN while it runs its item has no TTL (a long task must not lose its item) ...
    assert plane.item(key).expires_at is None
    # ... and once it is over the TTL clock starts
    plane.run_to_exit(key, 0)
    assert plane.item(key).expires_at is not None
