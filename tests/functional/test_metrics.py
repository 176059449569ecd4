"""What the handlers publish to CloudWatch for real events: names, units, dimensions, values.

Read back from the Embedded Metric Format lines Powertools prints (``tests/support/emf.py``);
the names come from ``ecs_control_plane.metrics``, which the dashboard's test checks too.
"""

from __future__ import annotations

import json
import os

import pytest

from ecs_control_plane.contract import RunRequest
from ecs_control_plane.metrics import (
    FAILURE_CLASS,
    RECONCILE,
    RECONCILE_REPAIRS,
    RUN_REQUEST,
    SERVICE,
    START_FAILURES,
    STARTS,
    SUBMIT_TO_RUNNING,
    TASK_EVENT,
    metric_name,
)
from ecs_control_plane.results import Outcome, epoch_ms
from ecs_control_plane.retry import FailureClass
from ecs_control_plane.runtime import control_plane
from tests.support.aws import MockedControlPlane, mocked_control_plane
from tests.support.doubles import THROTTLED, Behaviour, install_run_task, no_capacity, raising, send
from tests.support.emf import named, published
from tests.support.events import load_event
from tests.support.requests import run_request, task_key

SERVICE_DIMENSION = {SERVICE: os.environ["POWERTOOLS_SERVICE_NAME"]}


def test_sample_batch_counts_one_start_per_started_task(
    control_plane_aws: MockedControlPlane, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN the sample batch: three run requests, a stop request, a record that is not JSON
    plane = control_plane_aws
    event = load_event("sqs_run_requests")
    capsys.readouterr()

    # WHEN run_task handles it
    plane.invoke_run_task(event)

    # THEN each started task counts once, in the functions' namespace with the service dimension
    starts = named(capsys.readouterr().out, STARTS)
    assert [(m.value, m.unit, m.dimensions) for m in starts] == [(1.0, "Count", SERVICE_DIMENSION)] * 3
    assert {m.namespace for m in starts} == {os.environ["POWERTOOLS_METRICS_NAMESPACE"]}
    # AND each item keeps when the executor submitted it, where the submit-to-RUNNING latency starts
    sent = {
        r.key: r.sent_at for r in (RunRequest.model_validate_json(x["body"]) for x in _json_records(event))
    }
    started = [k for k in sent if plane.item(k).task_arn]
    assert len(started) == 3
    assert {plane.item(k).submitted_at for k in started} == {sent[k] for k in started}


def _json_records(event: dict) -> list[dict]:
    records = []
    for record in event["Records"]:
        try:
            body = json.loads(record["body"])
        except ValueError:
            continue
        if body["kind"] == "run":
            records.append(record)
    return records


@pytest.mark.parametrize(
    ("answer", "failure", "outcome"),
    [
        (THROTTLED, FailureClass.TRANSIENT, Outcome.THROTTLED),
        (no_capacity(), FailureClass.RETRY_ATTEMPT, Outcome.RETRY_QUEUED),
        (raising("ClusterNotFoundException", "Cluster not found."), FailureClass.PERMANENT, Outcome.FAILED),
    ],
    ids=["throttled", "no-capacity", "no-cluster"],
)
def test_failed_run_task_call_counts_a_start_failure_of_its_class(
    control_plane_aws: MockedControlPlane,
    *,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    answer: Behaviour,
    failure: FailureClass,
    outcome: Outcome,
) -> None:
    # GIVEN a run request whose RunTask call ECS answers without a task
    plane = control_plane_aws
    install_run_task(monkeypatch).then(answer)
    send(plane, run_request(task_key()))
    capsys.readouterr()

    # WHEN run_task handles it
    plane.deliver(max_batches=1)

    # THEN one start failure is published, its class a dimension next to the service
    out = capsys.readouterr().out
    failures = named(out, START_FAILURES)
    assert [(m.value, m.unit, m.dimensions) for m in failures] == [
        (1.0, "Count", {**SERVICE_DIMENSION, FAILURE_CLASS: failure.value})
    ]
    assert failures[0].namespace == os.environ["POWERTOOLS_METRICS_NAMESPACE"]
    # AND the request's outcome is counted as before, without the class (its alarms stay as they are)
    counted = named(out, metric_name(RUN_REQUEST, outcome.value))
    assert [(m.value, m.dimensions) for m in counted] == [(1.0, SERVICE_DIMENSION)]
    assert named(out, STARTS) == []


def test_refused_executor_config_counts_a_permanent_start_failure(
    control_plane_aws: MockedControlPlane, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a run request whose executor_config the control plane refuses
    plane = control_plane_aws
    send(plane, run_request(task_key(), executor_config={"name": "x"}))
    capsys.readouterr()

    # WHEN run_task handles it
    plane.deliver(max_batches=1)

    # THEN it is a PERMANENT start failure: no RunTask call can ever serve it
    failures = named(capsys.readouterr().out, START_FAILURES)
    assert [m.dimensions[FAILURE_CLASS] for m in failures] == [FailureClass.PERMANENT.value]


def test_first_running_event_publishes_the_submit_to_running_latency(
    control_plane_aws: MockedControlPlane, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a try the executor submitted 12.345 s before ECS says its task started running
    plane = control_plane_aws
    key = task_key()
    running_at = "2026-11-25T10:00:00.000Z"  # the startedAt of plane.ecs_event
    submitted = (epoch_ms(running_at) or 0) - 12_345
    send(plane, run_request(key, sent_at=submitted))
    plane.deliver()
    task = plane.task_for(key)
    plane.apply(plane.ecs_event(task, "PROVISIONING"))
    capsys.readouterr()

    # WHEN its RUNNING event arrives
    plane.apply(plane.ecs_event(task, "RUNNING"))

    # THEN the latency is published once, in milliseconds, with the service dimension
    latency = named(capsys.readouterr().out, SUBMIT_TO_RUNNING)
    assert [(m.value, m.unit, m.dimensions) for m in latency] == [(12_345, "Milliseconds", SERVICE_DIMENSION)]

    # AND later events of the running task (ECS sends RUNNING again, e.g. as it is stopped) add none
    plane.apply(plane.ecs_event(task, "RUNNING"))
    plane.apply(plane.ecs_event(task, "STOPPED", exit_code=0))
    assert named(capsys.readouterr().out, SUBMIT_TO_RUNNING) == []


def test_sample_running_event_measures_from_the_submission_to_ecs_started_at(
    control_plane_aws: MockedControlPlane, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN the sample task's item, made from the sample run request (sent_at 10:00:05.123)
    plane = control_plane_aws
    request = RunRequest.model_validate_json(load_event("sqs_run_requests")["Records"][0]["body"])
    plane.table.create_queued(request.key, request.owner, 1, "default", {}, submitted_at=request.sent_at)
    plane.apply(load_event("ecs_task_provisioning"))
    capsys.readouterr()

    # WHEN the sample RUNNING event arrives (startedAt 10:00:40.412; the event's time is 10:00:40)
    plane.apply(load_event("ecs_task_running"))

    # THEN the latency runs to ECS's startedAt, not to the event's time nor to the function's clock
    latency = named(capsys.readouterr().out, SUBMIT_TO_RUNNING)
    assert [m.value for m in latency] == [35_289]


@pytest.mark.parametrize(
    ("max_attempts", "outcome"), [(3, Outcome.RETRY_QUEUED), (1, Outcome.FAILED)], ids=["retried", "last"]
)
def test_task_that_failed_to_start_counts_one_retry_attempt_start_failure(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], max_attempts: int, outcome: Outcome
) -> None:
    with mocked_control_plane(monkeypatch, max_attempts=max_attempts) as plane:
        # GIVEN the sample task, provisioning at attempt 1
        key = RunRequest.model_validate_json(load_event("sqs_run_requests")["Records"][0]["body"]).key
        plane.table.create_queued(key, "scheduler-a", 1, "default", {})
        plane.apply(load_event("ecs_task_provisioning"))
        capsys.readouterr()

        # WHEN ECS reports it could not pull the image, and EventBridge delivers that twice
        plane.apply(load_event("ecs_task_failed_to_start"))
        plane.apply(load_event("ecs_task_failed_to_start"))

        # THEN one start failure of the class that is retried, whether or not attempts are left
        out = capsys.readouterr().out
        failures = named(out, START_FAILURES)
        assert [(m.value, m.dimensions) for m in failures] == [
            (1.0, {**SERVICE_DIMENSION, FAILURE_CLASS: FailureClass.RETRY_ATTEMPT.value})
        ]
        assert [m.value for m in named(out, metric_name(TASK_EVENT, outcome.value))] == [1.0]


def test_failed_start_a_concurrent_delivery_handled_first_is_not_counted_again(
    control_plane_aws: MockedControlPlane, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN the sample task provisioning, and another delivery of its failure that moves the item
    # back to QUEUED just before this one does
    plane = control_plane_aws
    key = RunRequest.model_validate_json(load_event("sqs_run_requests")["Records"][0]["body"]).key
    plane.table.create_queued(key, "scheduler-a", 1, "default", {})
    plane.apply(load_event("ecs_task_provisioning"))
    monkeypatch.setattr(control_plane().table, "schedule_retry", lambda *_, **__: None)
    capsys.readouterr()

    # WHEN this delivery finds the item moved on
    response = plane.apply(load_event("ecs_task_failed_to_start"))

    # THEN it counts no start failure: the delivery that moved the item counted it
    assert response["outcome"] == Outcome.IGNORED.value
    assert named(capsys.readouterr().out, START_FAILURES) == []


def test_run_request_of_a_submission_adopted_first_records_when_it_was_submitted(
    control_plane_aws: MockedControlPlane,
) -> None:
    # GIVEN a submission another scheduler adopted before its run request arrived
    plane = control_plane_aws
    key = task_key()
    send(plane, RunRequest(kind="adopt", key=key, owner="scheduler-b", reason="adopted by a new scheduler"))
    plane.deliver()

    # WHEN its run request arrives
    send(plane, run_request(key, sent_at=1_795_600_805_123))
    plane.deliver()

    # THEN the adopter's item starts the task and keeps the submission's time
    item = plane.item(key)
    assert (item.owner, item.submitted_at) == ("scheduler-b", 1_795_600_805_123)
    assert item.task_arn


def test_reconciler_publishes_every_repair_count_each_run(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with mocked_control_plane(monkeypatch, ECSCP_QUEUED_TIMEOUT_SECONDS="700") as plane:
        # GIVEN a try QUEUED for an hour without an ECS task (its run request was lost)
        key = task_key("stuck")
        plane.table.create_queued(key, "scheduler-a", 1, "default", {})
        plane.age(key, 3600)
        capsys.readouterr()

        # WHEN the reconciler runs
        plane.reconcile()

        # THEN every repair count is published, the timed-out try as 1 and the others as 0
        values = {m.name: m.value for m in published(capsys.readouterr().out) if m.name.startswith(RECONCILE)}
        assert {name: values[name] for name in RECONCILE_REPAIRS} == {
            name: 1.0 if name == metric_name(RECONCILE, "timed_out") else 0.0 for name in RECONCILE_REPAIRS
        }
