"""Retry classification and the mapping of ECS task events to task states."""

from __future__ import annotations

from typing import Any

import pytest

from ecs_control_plane.contract import TaskState, TaskStateItem
from ecs_control_plane.ecs_events import Action, EcsTask, plan_transition, plan_unread_transition
from ecs_control_plane.retry import (
    TRANSIENT_BACKOFF_CAP_SECONDS,
    FailureClass,
    classify_api_error,
    classify_run_task_failure,
    transient_delay_seconds,
)
from ecs_control_plane.services import _Plan, plan_run
from tests.support.events import load_event
from tests.support.requests import run_request, task_key

KEY = task_key()
ARN = "arn:aws:ecs:us-east-1:123456789012:task/airflow-cluster/0123456789abcdef"


@pytest.mark.parametrize(
    ("code", "status", "expected"),
    [
        ("ThrottlingException", 400, FailureClass.TRANSIENT),
        ("ServerException", 500, FailureClass.TRANSIENT),
        ("SomethingNew", 503, FailureClass.TRANSIENT),
        ("SomethingNew", 429, FailureClass.TRANSIENT),
        ("LimitExceededException", 400, FailureClass.RETRY_ATTEMPT),
        ("InvalidParameterException", 400, FailureClass.PERMANENT),
        ("ClusterNotFoundException", 400, FailureClass.PERMANENT),
        ("AccessDeniedException", 400, FailureClass.PERMANENT),
        ("ClientException", 400, FailureClass.PERMANENT),
        # an unknown code is treated like an unknown failures[] reason: another attempt, bounded
        ("SomethingNew", 400, FailureClass.RETRY_ATTEMPT),
        # the function's credentials refused: retried without spending an attempt (as the provider)
        ("InvalidClientTokenId", 403, FailureClass.TRANSIENT),
        ("UnrecognizedClientException", 400, FailureClass.TRANSIENT),
        ("ExpiredToken", 400, FailureClass.TRANSIENT),
        ("ExpiredTokenException", 400, FailureClass.TRANSIENT),
    ],
)
def test_classify_api_error(code: str, status: int, expected: FailureClass) -> None:
    assert classify_api_error(code, status) is expected


@pytest.mark.parametrize(
    ("code", "message", "expected"),
    [
        # The per-cluster quota on tasks in PROVISIONING: clears as tasks move on.
        ("ClientException", "Tasks provisioning capacity limit exceeded.", FailureClass.TRANSIENT),
        # EC2 throttling ECS while it resolves the task's security groups.
        (
            "InvalidParameterException",
            "Error retrieving security group information for [sg-0123456789abcdef0]: "
            "Request limit exceeded. (Service: AmazonEC2; Status Code: 503; "
            "Error Code: RequestLimitExceeded)",
            FailureClass.TRANSIENT,
        ),
        ("ClientException", "Rate exceeded", FailureClass.TRANSIENT),
        # The same codes for bad input stay permanent.
        ("ClientException", "Unable to assume the service linked role.", FailureClass.PERMANENT),
        (
            "InvalidParameterException",
            "No Container Instances were found in your cluster.",
            FailureClass.PERMANENT,
        ),
        (
            "InvalidParameterException",
            "Task definition does not support launch_type FARGATE.",
            FailureClass.PERMANENT,
        ),
        # A rate-limit word under an unambiguous code does not change it.
        ("AccessDeniedException", "Request limit exceeded", FailureClass.PERMANENT),
    ],
)
def test_rate_and_quota_limits_under_client_error_codes_are_told_apart_by_message(
    code: str, message: str, expected: FailureClass
) -> None:
    assert classify_api_error(code, 400, message) is expected


def test_throttle_backoff_is_jittered_within_a_growing_capped_window() -> None:
    import random  # noqa: PLC0415

    rng = random.Random(7)
    for times in range(1, 12):
        ceiling = min(TRANSIENT_BACKOFF_CAP_SECONDS, 2 * 2 ** (times - 1))
        delays = {transient_delay_seconds(times, rng=rng) for _ in range(200)}
        assert min(delays) >= 1
        assert max(delays) <= ceiling
        if ceiling >= 4:  # spread over the window, not one fixed value
            assert len(delays) > 2


@pytest.mark.parametrize(
    ("reason", "expected"),
    [
        ("RESOURCE:MEMORY", FailureClass.RETRY_ATTEMPT),
        ("RESOURCE:CPU", FailureClass.RETRY_ATTEMPT),
        ("RESOURCE:ENI", FailureClass.RETRY_ATTEMPT),
        ("AGENT", FailureClass.RETRY_ATTEMPT),
        (
            "Capacity is unavailable at this time. Please try again later or in a different zone",
            FailureClass.RETRY_ATTEMPT,
        ),
        ("MISSING", FailureClass.PERMANENT),
        ("INACTIVE", FailureClass.PERMANENT),
        ("ATTRIBUTE", FailureClass.PERMANENT),
        ("a reason nobody has seen yet", FailureClass.RETRY_ATTEMPT),
    ],
)
def test_classify_run_task_failure(reason: str, expected: FailureClass) -> None:
    assert classify_run_task_failure(reason) is expected


def item(state: TaskState = TaskState.STARTING, **fields: Any) -> TaskStateItem:
    return TaskStateItem(key=KEY, owner="o", state=state, **({"attempt": 1, "task_arn": ARN} | fields))


def task(
    status: str, version: int, *, exit_code: int | None = None, attempt: int = 1, **detail: Any
) -> EcsTask:
    containers: list[dict[str, Any]] = [{"name": "airflow", "lastStatus": status}]
    if exit_code is not None:
        containers[0]["exitCode"] = exit_code
    body = {
        "taskArn": ARN,
        "lastStatus": status,
        "version": version,
        "containers": containers,
        "overrides": {
            "containerOverrides": [
                {
                    "name": "airflow",
                    "environment": [
                        {"name": "ECSCP_TASK_KEY", "value": KEY},
                        {"name": "ECSCP_ATTEMPT", "value": str(attempt)},
                    ],
                }
            ]
        },
    }
    if status in ("RUNNING", "STOPPED") and detail.pop("started", True):
        body["startedAt"] = "2026-11-25T10:00:00Z"
    return EcsTask.model_validate(body | detail)


def plan(current: TaskStateItem | None, event: EcsTask, max_attempts: int = 3) -> Any:
    return plan_transition(current, event, container_name="airflow", max_attempts=max_attempts)


@pytest.mark.parametrize(
    ("current", "event", "action", "state"),
    [
        (item(TaskState.QUEUED, task_arn=None), task("PROVISIONING", 1), Action.PROGRESS, TaskState.STARTING),
        (item(), task("PENDING", 2), Action.PROGRESS, TaskState.STARTING),
        (item(), task("RUNNING", 3), Action.PROGRESS, TaskState.RUNNING),
        (item(TaskState.RUNNING, ecs_version=3), task("PENDING", 4), Action.PROGRESS, TaskState.RUNNING),
        (item(TaskState.RUNNING, ecs_version=3), task("DEACTIVATING", 4), Action.PROGRESS, TaskState.RUNNING),
        (item(TaskState.RUNNING), task("STOPPED", 5, exit_code=0), Action.FINISH, TaskState.SUCCESS),
        (item(TaskState.RUNNING), task("STOPPED", 5, exit_code=1), Action.FINISH, TaskState.FAILED),
        (
            item(TaskState.RUNNING),
            task("STOPPED", 5, stopCode="SpotInterruption"),
            Action.FINISH,
            TaskState.FAILED,
        ),
        (
            item(),
            task("STOPPED", 5, stopCode="TaskFailedToStart", started=False),
            Action.RETRY_START,
            TaskState.QUEUED,
        ),
        (item(), task("STOPPED", 5, started=False), Action.RETRY_START, TaskState.QUEUED),
        (
            item(attempt=3),
            task("STOPPED", 5, attempt=3, stopCode="TaskFailedToStart", started=False),
            Action.GIVE_UP,
            TaskState.FAILED,
        ),
    ],
    ids=[
        "provisioning",
        "pending",
        "running",
        "late-pending",
        "deactivating",
        "exit-0",
        "exit-1",
        "no-exit-code",
        "failed-to-start",
        "stopped-never-started",
        "last-attempt",
    ],
)
def test_plan_transition_maps_ecs_status_to_state(
    current: TaskStateItem, event: EcsTask, action: Action, state: TaskState
) -> None:
    result = plan(current, event)
    assert (result.action, result.state) == (action, state)


@pytest.mark.parametrize(
    ("current", "event", "why"),
    [
        (None, task("RUNNING", 3), "no item"),
        (item(TaskState.SUCCESS), task("RUNNING", 9), "already SUCCESS"),
        (item(TaskState.RUNNING, ecs_version=5), task("RUNNING", 5), "not newer"),
        (item(TaskState.RUNNING, ecs_version=5), task("PENDING", 2), "not newer"),
        (item(attempt=2), task("STOPPED", 9, exit_code=1, attempt=1), "attempt 1"),
        (item(task_arn=ARN + "-other"), task("RUNNING", 3), "another ECS task"),
    ],
    ids=["unknown", "terminal", "duplicate", "older", "old-attempt", "other-task"],
)
def test_plan_transition_ignores_stale_duplicate_and_foreign_events(
    current: TaskStateItem | None, event: EcsTask, why: str
) -> None:
    result = plan(current, event)
    assert result.action is Action.IGNORE
    assert why in (result.reason or "")


UNREAD_EVENTS = {
    "provisioning": task("PROVISIONING", 4),
    "running": task("RUNNING", 4),
    "deactivating": task("DEACTIVATING", 4),
    "exit-0": task("STOPPED", 4, exit_code=0),
    "exit-1": task("STOPPED", 4, exit_code=1, stoppedReason="Essential container in task exited"),
    "no-exit-code": task("STOPPED", 4, stopCode="SpotInterruption"),
    "user-stop": task("STOPPED", 4, exit_code=143, stopCode="UserInitiated", stoppedReason="revoked"),
}


@pytest.mark.parametrize("name", UNREAD_EVENTS)
def test_unread_plan_is_what_the_item_would_decide_whenever_its_presumption_holds(name: str) -> None:
    # GIVEN an event decided without its item
    event = UNREAD_EVENTS[name]
    planned = plan_unread_transition(event, container_name="airflow")
    assert planned is not None
    unread, presumed = planned

    for state in presumed.states:
        # WHEN the item is as presumed: in flight at the event's attempt, at an older version
        current = item(state, ecs_version=3, attempt=presumed.attempt)

        # THEN deciding from the item gives the same transition (None: the item's state kept)
        read = plan(current, event)
        assert (read.action, read.reason, read.exit_code, read.changes) == (
            unread.action,
            unread.reason,
            unread.exit_code,
            unread.changes,
        ), state
        assert read.state == (unread.state or current.state), state


def test_unread_plan_presumes_no_stop_only_where_a_stop_changes_the_outcome() -> None:
    # GIVEN an item whose stop was requested
    stopping = item(TaskState.RUNNING, stop_requested=True)
    exit_0 = task("STOPPED", 4, exit_code=0)

    # THEN the unread plan for exit 0 (SUCCESS) presumes no stop, and the item decides FAILED
    planned = plan_unread_transition(exit_0, container_name="airflow")
    assert planned is not None
    assert planned[1].no_stop_requested
    assert plan(stopping, exit_0).state is TaskState.FAILED


def _without_attempt(event: EcsTask) -> EcsTask:
    """The event of a task started without ECSCP_ATTEMPT in its environment."""
    override = event.overrides.containerOverrides[0]
    kept = [kv for kv in override.environment if kv.name != "ECSCP_ATTEMPT"]
    overrides = event.overrides.model_copy(
        update={"containerOverrides": [override.model_copy(update={"environment": kept})]}
    )
    return event.model_copy(update={"overrides": overrides})


@pytest.mark.parametrize(
    "event",
    [task("STOPPED", 5, stopCode="TaskFailedToStart", started=False), _without_attempt(task("RUNNING", 3))],
    ids=["failed-to-start", "no-attempt"],
)
def test_events_that_need_the_item_are_not_planned_unread(event: EcsTask) -> None:
    assert plan_unread_transition(event, container_name="airflow") is None


def test_exit_code_reason_names_the_container_and_ecs_reason() -> None:
    result = plan(
        item(TaskState.RUNNING), task("STOPPED", 5, exit_code=137, stoppedReason="OutOfMemoryError")
    )
    assert result.reason == "container 'airflow' exited with code 137 (OutOfMemoryError)"


@pytest.mark.parametrize(
    ("current", "attempt", "expected"),
    [
        (item(TaskState.QUEUED, task_arn=None), 1, (_Plan.START, 1)),
        (item(TaskState.QUEUED, task_arn=None, attempt=2), 1, (_Plan.START, 2)),
        (item(TaskState.QUEUED, task_arn=None), 2, (_Plan.START, 2)),
        (item(TaskState.STARTING), 1, (_Plan.DROP, 1)),
        (item(TaskState.RUNNING), 2, (_Plan.WAIT, 2)),
        (item(TaskState.SUCCESS), 1, (_Plan.DROP, 1)),
        (item(TaskState.QUEUED, task_arn=None, stop_requested=True), 1, (_Plan.FAIL, 1)),
    ],
    ids=[
        "new",
        "retry-in-progress",
        "retry-message",
        "duplicate",
        "retry-before-item-moved",
        "finished",
        "stopped",
    ],
)
def test_plan_run_for_an_existing_item(
    current: TaskStateItem, attempt: int, expected: tuple[_Plan, int]
) -> None:
    planned, planned_attempt, _ = plan_run(current, run_request(KEY, attempt=attempt))
    assert (planned, planned_attempt) == expected


@pytest.mark.parametrize(
    ("name", "status", "exit_code"),
    [
        ("ecs_task_provisioning", "PROVISIONING", None),
        ("ecs_task_running", "RUNNING", None),
        ("ecs_task_stopped_exit0", "STOPPED", 0),
        ("ecs_task_stopped_exit1", "STOPPED", 1),
        ("ecs_task_failed_to_start", "STOPPED", None),
    ],
)
def test_sample_events_parse_into_ecs_tasks(name: str, status: str, exit_code: int | None) -> None:
    parsed = EcsTask.model_validate(load_event(name)["detail"])
    assert parsed.last_status == status
    assert parsed.exit_code("airflow") == exit_code
    assert parsed.task_key("airflow")
    assert parsed.attempt("airflow") == 1


def test_botocore_parameter_validation_errors_are_permanent() -> None:
    # GIVEN an ECS client that refuses the call's shape before sending it (an int where a str goes)
    from botocore.exceptions import ParamValidationError  # noqa: PLC0415

    from ecs_control_plane.gateways import EcsGateway  # noqa: PLC0415

    class Refusing:
        def run_task(self, **_: Any) -> Any:
            raise ParamValidationError(report="Invalid type for parameter overrides.cpu, value: 1024")

    # WHEN the gateway calls RunTask
    outcome = EcsGateway(Refusing()).run_task({"cluster": "c"})  # type: ignore[arg-type]
    # THEN the start fails for good (retrying for 20 minutes cannot fix it), with botocore's reason
    assert outcome.failure is FailureClass.PERMANENT
    assert "overrides.cpu" in (outcome.reason or "")
