"""What bounds a start, on moto: ECS throttling never fails a try nor spends its attempts or its
message's receives; the workload token's expiry (less TokenStartMarginSeconds) bounds every
start, and a try that cannot start in time fails naming task_queued_timeout.
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from typing import Any

import pytest

from ecs_control_plane import reconciliation, run_requests, task_changes
from ecs_control_plane.contract import RunRequest, TaskState, now_ms
from tests.functional.test_executor import (
    configure,
    encoded,
    events,
    make_executor,
    queued_requests,
    submit,
    task_events,
    workload,
)
from tests.support.aws import MockedControlPlane, mocked_control_plane
from tests.support.doubles import (
    THROTTLED,
    bodies,
    env_of,
    install_run_task,
    meanwhile,
    no_capacity,
    raising,
    record_resent_requests,
    run_request_v2,
    send,
    submission_key,
    tasks_of,
)

MARGIN_S = 30  # TokenStartMarginSeconds' default


def dead_letters(plane: MockedControlPlane) -> list[dict[str, Any]]:
    url = plane.sqs.get_queue_url(QueueName="run-requests-dlq")["QueueUrl"]
    return [
        dict(m) for m in plane.sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
    ]


class ControlPlaneClock:
    """The functions' clock for deadlines (each use case module's now_ms), moved by the test
    instead of waiting."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.offset_ms = 0
        for use_case in (run_requests, task_changes, reconciliation):
            monkeypatch.setattr(use_case, "now_ms", lambda: now_ms() + self.offset_ms)

    def advance(self, seconds: float) -> None:
        self.offset_ms += int(seconds * 1000)

    def set(self, moment_ms: int) -> None:
        self.offset_ms = moment_ms - now_ms()


def assert_failed_for_the_token(plane: MockedControlPlane, key: str, *, attempt: int) -> str:
    """The try FAILED for its token's expiry, with one failed-start alert saying so; the reason."""
    item = plane.item(key)
    reason = item.reason or ""
    assert (item.state, item.attempt) == (TaskState.FAILED, attempt)
    assert "task_queued_timeout" in reason
    assert "lost" not in reason
    assert "dead-letter" not in reason
    [alert] = plane.alerts()
    assert alert["detail"]["key"] == key
    assert "task_queued_timeout" in alert["detail"]["reason"]
    return reason


# -- throttling ----------------------------------------------------------------------------------


def test_throttled_start_goes_back_on_a_fresh_message_spending_no_receive_and_no_attempt(
    control_plane_aws: MockedControlPlane, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN ECS throttles the first RunTask call of a try
    plane = control_plane_aws
    ecs = install_run_task(monkeypatch).then(THROTTLED)
    resent = record_resent_requests(monkeypatch)
    key = submission_key()
    send(plane, run_request_v2(key))
    messages = plane.receive()

    # WHEN run_task handles the message
    response = plane.invoke_run_task(plane.sqs_event(messages))

    # THEN the message is done with, and a fresh one for the same attempt waits a jittered delay
    assert response == {"batchItemFailures": []}
    [(retry, delay)] = resent.sent
    assert (retry.key, retry.attempt, retry.throttled) == (key, 1, 1)
    assert (retry.reason or "").startswith("throttled: ThrottlingException")
    assert 1 <= delay <= 2
    item = plane.item(key)
    assert (item.state, item.attempt) == (TaskState.QUEUED, 1)

    # AND the fresh message is received for the first time and starts attempt 1, same token
    plane.sqs.delete_message(QueueUrl=plane.queue_url, ReceiptHandle=messages[0]["ReceiptHandle"])
    [fresh] = plane.receive()
    assert fresh["Attributes"]["ApproximateReceiveCount"] == "1"
    plane.invoke_run_task(plane.sqs_event([fresh]))
    [task] = tasks_of(plane, key)
    assert env_of(task)["ECSCP_ATTEMPT"] == "1"
    assert len(set(ecs.tokens_for(key))) == 1
    assert plane.item(key).state == TaskState.STARTING
    assert plane.alerts() == []


def test_start_throttled_more_often_than_max_receive_count_still_starts(
    control_plane_aws: MockedControlPlane, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN ECS throttles a start 15 times in a row (the queue's maxReceiveCount is 10)
    plane = control_plane_aws
    ecs = install_run_task(monkeypatch).then(*[THROTTLED] * 15)
    resent = record_resent_requests(monkeypatch)
    key = submission_key()
    send(plane, run_request_v2(key))

    # WHEN every message is delivered as it comes back
    for _ in range(16):
        plane.deliver(max_batches=1)

    # THEN the 16th call started the task, at attempt 1, with the token of every earlier call
    [task] = tasks_of(plane, key)
    assert len(ecs.calls) == 16
    assert len(set(ecs.tokens_for(key))) == 1
    assert env_of(task)["ECSCP_ATTEMPT"] == "1"
    item = plane.item(key)
    assert (item.state, item.attempt, item.task_arn) == (TaskState.STARTING, 1, task["taskArn"])
    # AND each retry waited a full-jitter backoff that grows up to 60 s; nothing went to the DLQ
    assert [r.throttled for r, _ in resent.sent] == list(range(1, 16))
    assert all(1 <= delay <= min(60, 2**n) for n, delay in enumerate(resent.delays, start=1))
    assert len(set(resent.delays)) > 1
    assert dead_letters(plane) == []
    assert plane.alerts() == []


@pytest.mark.parametrize(
    ("code", "message"),
    [
        ("ClientException", "Tasks provisioning capacity limit exceeded."),
        (
            "InvalidParameterException",
            "Error retrieving security group information for [sg-0123456789abcdef0]: Request limit exceeded.",
        ),
    ],
    ids=["provisioning-quota", "ec2-request-limit"],
)
def test_rate_and_quota_limits_reported_as_client_errors_are_throttling(
    control_plane_aws: MockedControlPlane, monkeypatch: pytest.MonkeyPatch, code: str, message: str
) -> None:
    # GIVEN ECS refuses the first start with one of its rate or quota limit messages
    plane = control_plane_aws
    install_run_task(monkeypatch).then(raising(code, message))
    record_resent_requests(monkeypatch)
    key = submission_key()
    send(plane, run_request_v2(key))

    # WHEN the request and its fresh message are delivered
    plane.deliver(max_batches=1)
    retried = [RunRequest.model_validate(b) for b in bodies(plane)]
    plane.deliver()

    # THEN it was tried again as throttling (no attempt spent, no alert) and started
    assert [(r.attempt, r.throttled) for r in retried] == [(1, 1)]
    item = plane.item(key)
    assert (item.state, item.attempt) == (TaskState.STARTING, 1)
    assert plane.alerts() == []


@pytest.mark.parametrize(
    ("code", "message"),
    [
        ("ClientException", "TaskDefinition is inactive"),
        (
            "InvalidParameterException",
            "Error retrieving security group information for [sg-0123456789abcdef0]: "
            "The security group 'sg-0123456789abcdef0' does not exist",
        ),
    ],
    ids=["client-exception", "invalid-parameter"],
)
def test_client_errors_with_other_messages_fail_at_once(
    control_plane_aws: MockedControlPlane, monkeypatch: pytest.MonkeyPatch, code: str, message: str
) -> None:
    # GIVEN ECS refuses the start as bad input, under the same error codes
    plane = control_plane_aws
    install_run_task(monkeypatch).then(raising(code, message))
    key = submission_key()
    send(plane, run_request_v2(key))

    # WHEN the request is delivered
    plane.deliver()

    # THEN the try FAILED at its first attempt, with the reason and one alert, and is not retried
    item = plane.item(key)
    assert (item.state, item.attempt) == (TaskState.FAILED, 1)
    assert message in (item.reason or "")
    assert [a["detail"]["key"] for a in plane.alerts()] == [key]
    assert bodies(plane) == []


def test_throttled_try_is_kept_alive_against_the_queued_timeout(
    control_plane_aws: MockedControlPlane, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a try ECS has been throttling for longer than QueuedTimeoutSeconds (its token lives on)
    plane = control_plane_aws
    install_run_task(monkeypatch).then(THROTTLED, THROTTLED)
    record_resent_requests(monkeypatch)
    key = submission_key()
    send(plane, run_request_v2(key, token_ttl_s=7200))
    plane.deliver(max_batches=1)
    plane.age(key, 3600)
    plane.deliver(max_batches=1)  # throttled once more

    # WHEN the reconciler runs
    report = plane.reconcile()

    # THEN the try is not taken for one whose run request was lost
    assert report["timed_out"] == 0
    item = plane.item(key)
    assert (item.state, item.attempt) == (TaskState.QUEUED, 1)
    assert plane.alerts() == []


def test_sustained_throttling_past_the_token_lifetime_fails_naming_task_queued_timeout(
    control_plane_aws: MockedControlPlane, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN ECS throttles every start of a try whose token allows starts for 200 s more, and
    # 45 s pass between two of its RunTask calls
    plane = control_plane_aws
    clock = ControlPlaneClock(monkeypatch)
    ecs = install_run_task(monkeypatch).then(*[meanwhile(lambda: clock.advance(45), answer=THROTTLED)] * 20)
    record_resent_requests(monkeypatch)
    key = submission_key()
    send(plane, run_request_v2(key, token_ttl_s=MARGIN_S + 200))

    # WHEN the fresh messages keep being delivered
    for _ in range(20):
        if plane.item(key) is not None and plane.item(key).is_terminal:
            break
        plane.deliver(max_batches=1)

    # THEN the try FAILED for its token, not as lost, without spending an attempt
    assert len(ecs.calls) >= 2
    assert_failed_for_the_token(plane, key, attempt=1)
    assert tasks_of(plane, key) == []
    assert bodies(plane) == []


def test_throttled_start_with_less_than_a_second_left_fails_at_once(
    control_plane_aws: MockedControlPlane, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a RunTask call that ECS throttles when the token allows starts for under a second more
    plane = control_plane_aws
    clock = ControlPlaneClock(monkeypatch)
    request = run_request_v2(submission_key(), token_ttl_s=MARGIN_S + 60)
    start_deadline = (request.token_expires_at or 0) - MARGIN_S * 1000
    install_run_task(monkeypatch).then(meanwhile(lambda: clock.set(start_deadline - 400), answer=THROTTLED))
    resent = record_resent_requests(monkeypatch)
    send(plane, request)

    # WHEN run_task handles it
    plane.deliver(max_batches=1)

    # THEN the try fails at once (no retry that could only begin too late), naming the limit
    assert resent.sent == []
    reason = assert_failed_for_the_token(plane, request.key, attempt=1)
    assert "rate or quota limits" in reason


# -- the workload token bounds every start -------------------------------------------------------


def test_first_start_after_the_token_expired_fails_naming_task_queued_timeout(
    control_plane_aws: MockedControlPlane, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a run request whose token expires within TokenStartMarginSeconds
    plane = control_plane_aws
    ecs = install_run_task(monkeypatch)
    key = submission_key()
    send(plane, run_request_v2(key, token_ttl_s=MARGIN_S - 20))

    # WHEN it is delivered
    plane.deliver()

    # THEN no ECS task is started and the try fails for its token
    assert ecs.calls == []
    assert_failed_for_the_token(plane, key, attempt=1)


@pytest.mark.parametrize(("margin_s", "starts"), [(30, True), (120, False)])
def test_token_start_margin_decides_how_close_to_its_expiry_a_start_may_begin(
    monkeypatch: pytest.MonkeyPatch, margin_s: int, starts: bool
) -> None:
    with mocked_control_plane(monkeypatch, ECSCP_TOKEN_START_MARGIN_SECONDS=str(margin_s)) as plane:
        # GIVEN a run request whose token expires in a minute
        key = submission_key()
        send(plane, run_request_v2(key, token_ttl_s=60))

        # WHEN it is delivered
        plane.deliver()

        # THEN it starts only if the minute is more than the margin
        assert plane.item(key).state == (TaskState.STARTING if starts else TaskState.FAILED)
        assert len(tasks_of(plane, key)) == int(starts)


def test_capacity_retry_whose_backoff_ends_past_the_token_fails_at_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with mocked_control_plane(monkeypatch, ECSCP_START_RETRY_BASE_SECONDS="60") as plane:
        # GIVEN a try ECS has no capacity for, whose token allows starts for 20 s more (< the backoff)
        ecs = install_run_task(monkeypatch).then(no_capacity())
        key = submission_key()
        send(plane, run_request_v2(key, token_ttl_s=MARGIN_S + 20))

        # WHEN it is delivered
        plane.deliver()

        # THEN it fails now instead of waiting for a retry that could only begin too late
        assert len(ecs.calls) == 1
        reason = assert_failed_for_the_token(plane, key, attempt=1)
        assert "RESOURCE:MEMORY" in reason
        assert "start attempt 2" in reason
        assert bodies(plane) == []


def test_capacity_retry_arriving_after_the_token_expired_fails(
    control_plane_aws: MockedControlPlane, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a try ECS had no capacity for, whose retry message arrives after the token's start limit
    plane = control_plane_aws
    clock = ControlPlaneClock(monkeypatch)
    ecs = install_run_task(monkeypatch).then(no_capacity())
    request = run_request_v2(submission_key(), token_ttl_s=MARGIN_S + 60)
    send(plane, request)
    plane.deliver(max_batches=1)
    assert (plane.item(request.key).state, plane.item(request.key).attempt) == (TaskState.QUEUED, 2)
    clock.set((request.token_expires_at or 0) - MARGIN_S * 1000 + 100)

    # WHEN the retry is delivered
    plane.deliver()

    # THEN attempt 2 is never started: the try fails for its token
    assert len(ecs.calls) == 1
    assert_failed_for_the_token(plane, request.key, attempt=2)
    assert tasks_of(plane, request.key) == []


def test_task_failed_to_start_retry_past_the_token_fails_naming_task_queued_timeout(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with mocked_control_plane(monkeypatch, ECSCP_START_RETRY_BASE_SECONDS="60") as plane:
        # GIVEN a started try whose token allows starts for 20 s more (less than the retry backoff)
        key = submission_key()
        send(plane, run_request_v2(key, token_ttl_s=MARGIN_S + 20))
        plane.deliver()

        # WHEN ECS reports that its task failed to start
        plane.fail_to_start(key, "CannotPullContainerError: pull access denied")

        # THEN no retry is queued: the try fails for its token, with ECS's reason
        reason = assert_failed_for_the_token(plane, key, attempt=1)
        assert "CannotPullContainerError" in reason
        assert "start attempt 2" in reason
        assert bodies(plane) == []


def test_reconciler_fails_a_queued_try_whose_token_expired(control_plane_aws: MockedControlPlane) -> None:
    # GIVEN a QUEUED try without a task whose token expired, not yet overdue for QueuedTimeoutSeconds
    plane = control_plane_aws
    key = submission_key()
    plane.table.create_queued(key, "scheduler-a", 1, "default", {}, token_expires_at=now_ms() - 1000)
    plane.age(key, 400)

    # WHEN the reconciler runs
    report = plane.reconcile()

    # THEN it fails the try for its token
    assert report["timed_out"] == 1
    assert_failed_for_the_token(plane, key, attempt=1)


# -- the executor sends the token's expiry -------------------------------------------------------


def unsigned_jwt(exp: float) -> str:
    """A workload token as Airflow signs it (the signature is not checked by the control plane)."""

    def part(claims: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()

    header = part({"alg": "HS512", "typ": "JWT"})
    payload = part({"sub": str(uuid.uuid4()), "aud": "urn:airflow.apache.org:task", "exp": int(exp)})
    return f"{header}.{payload}.c2lnbmF0dXJl"


@pytest.fixture
def executor_plane(
    control_plane_aws: MockedControlPlane, monkeypatch: pytest.MonkeyPatch
) -> MockedControlPlane:
    configure(monkeypatch, control_plane_aws)
    return control_plane_aws


def test_executor_sends_the_expiry_of_the_workload_token(executor_plane: MockedControlPlane) -> None:
    # GIVEN a workload whose token expires in 20 minutes
    exp = time.time() + 1200
    work = workload("bounded").model_copy(update={"token": unsigned_jwt(exp)})

    # WHEN the executor sends it
    submit(make_executor(), work)

    # THEN the run request carries the token's exp claim, in ms
    [request] = queued_requests(executor_plane)
    assert request.token_expires_at == int(exp) * 1000


def test_executor_without_a_readable_token_expiry_sends_task_queued_timeout_from_now(
    executor_plane: MockedControlPlane, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN [scheduler] task_queued_timeout = 777 s and a token without a readable exp claim
    monkeypatch.setenv("AIRFLOW__SCHEDULER__TASK_QUEUED_TIMEOUT", "777")
    executor = make_executor()
    before = now_ms()

    # WHEN the executor sends the workload
    submit(executor, workload("bounded"))

    # THEN the expiry is queueing time + task_queued_timeout
    [request] = queued_requests(executor_plane)
    assert before + 777_000 <= (request.token_expires_at or 0) <= now_ms() + 777_000


def test_workload_whose_token_expired_fails_and_airflow_is_told_why(
    executor_plane: MockedControlPlane,
) -> None:
    # GIVEN a workload whose token expired a minute ago (it waited in the scheduler too long)
    plane = executor_plane
    executor = make_executor()
    work = workload("too_late").model_copy(update={"token": unsigned_jwt(time.time() - 60)})
    submit(executor, work)

    # WHEN the control plane gets it and the executor syncs
    plane.deliver()
    buffered = events(executor)

    # THEN no ECS task ran; Airflow hears FAILED, and the task's log names the timeout
    assert tasks_of(plane, encoded(work.ti.key)) == []
    assert buffered[work.ti.key][0] == "failed"
    [(event, extra)] = task_events(executor)
    assert event == "ecs control plane task failed"
    assert "task_queued_timeout" in extra
