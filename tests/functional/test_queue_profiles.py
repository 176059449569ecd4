"""Queue profiles on moto: a queue's task definition and container, Spot fallback, refusals, readiness."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest

from ecs_control_plane.contract import RunRequest, TaskState
from ecs_control_plane.runtime import control_plane
from tests.functional.test_run_task_handler import fake_run_task, send
from tests.support.aws import CLUSTER, REGION, MockedControlPlane, mocked_control_plane
from tests.support.queue_profiles import ON_DEMAND, SPOT
from tests.support.requests import run_request, task_key

PROFILES = {
    "large": {
        "taskDefinition": "airflow-large",
        "containerName": "worker",
        "memory": "4096",
        "allowedExecutorConfig": ["overrides.memory"],
    },
    "spot": {
        "taskDefinition": "airflow",
        "capacityProviderStrategy": SPOT,
        "fallbackCapacityProviderStrategy": ON_DEMAND,
    },
}


@pytest.fixture
def plane(monkeypatch: pytest.MonkeyPatch) -> Iterator[MockedControlPlane]:
    with mocked_control_plane(
        monkeypatch,
        max_attempts=3,
        ECSCP_QUEUE_PROFILES=json.dumps(PROFILES),
        ECSCP_QUEUE_PROFILE_TASK_DEFINITION_FAMILIES="airflow-large",
    ) as plane:
        ecs = boto3.client("ecs", region_name=REGION)
        ecs.put_cluster_capacity_providers(
            cluster=CLUSTER, capacityProviders=["FARGATE", "FARGATE_SPOT"], defaultCapacityProviderStrategy=[]
        )
        ecs.register_task_definition(
            family="airflow-large",
            networkMode="awsvpc",
            requiresCompatibilities=["FARGATE"],
            cpu="1024",
            memory="4096",
            containerDefinitions=[{"name": "worker", "image": "airflow", "essential": True, "memory": 4096}],
        )
        yield plane


def capacity_unavailable(_: dict[str, Any]) -> Any:
    reason = (
        "Capacity is unavailable at this time. Please try again later or in a different availability zone"
    )
    return {"tasks": [], "failures": [{"arn": "arn:aws:ecs:::task", "reason": reason}]}


def real_run_task() -> Any:
    real = control_plane().ecs._client.run_task
    return lambda kwargs: real(**kwargs)


def spot_then_real(first: int = 1) -> Any:
    """RunTask with no Spot capacity for the first ``first`` calls on FARGATE_SPOT, real after."""
    real = control_plane().ecs._client.run_task
    refused = {"n": 0}

    def behaviour(kwargs: dict[str, Any]) -> Any:
        on_spot = any(
            i["capacityProvider"] == "FARGATE_SPOT" for i in kwargs.get("capacityProviderStrategy", [])
        )
        if on_spot and refused["n"] < first:
            refused["n"] += 1
            return capacity_unavailable(kwargs)
        return real(**kwargs)

    return behaviour


def placements(plane: MockedControlPlane, key: str) -> list[tuple[int, str, bool]]:
    return [(p.attempt, p.placement, p.fallback) for p in plane.item(key).placements]


def test_a_task_of_a_profiled_queue_runs_the_profiles_task_definition_and_container(
    plane: MockedControlPlane,
) -> None:
    key = task_key("big")
    send(plane, run_request(key, queue="large", executor_config={"overrides": {"memory": "8192"}}))

    plane.deliver()

    task = plane.task_for(key)
    assert task["taskDefinitionArn"].split("/")[-1].startswith("airflow-large:")
    (worker,) = [c for c in task["overrides"]["containerOverrides"] if c["name"] == "worker"]
    assert worker["command"]
    item = plane.item(key)
    assert item.state == TaskState.STARTING
    assert item.profile == "large"
    assert placements(plane, key) == [(1, "launch type FARGATE", False)]
    # AND its events are read from the profile's container: the try runs to its end
    plane.run_to_exit(key, 0, container_name="worker")
    assert plane.item(key).state == TaskState.SUCCESS


def test_a_queue_without_profile_runs_as_before(plane: MockedControlPlane) -> None:
    key = task_key("plain")
    send(plane, run_request(key, queue="default"))
    plane.deliver()
    task = plane.task_for(key)
    assert task["taskDefinitionArn"].split("/")[-1].startswith("airflow:")
    item = plane.item(key)
    assert item.profile is None
    assert placements(plane, key) == [(1, "launch type FARGATE", False)]


def test_no_spot_capacity_at_runtask_retries_on_the_fallback_and_starts(
    plane: MockedControlPlane, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = fake_run_task(monkeypatch, spot_then_real())
    key = task_key("spot")
    send(plane, run_request(key, queue="spot"))

    plane.deliver(max_batches=1)
    plane.deliver(max_batches=1)

    assert [c["capacityProviderStrategy"] for c in calls] == [SPOT, ON_DEMAND]
    item = plane.item(key)
    assert item.state == TaskState.STARTING
    assert item.attempt == 2
    assert placements(plane, key) == [(1, "FARGATE_SPOT", False), (2, "FARGATE", True)]
    assert "Capacity is unavailable" in (item.placements[0].failure or "")
    assert plane.alerts() == []


def test_a_spot_interruption_before_the_container_started_retries_on_the_fallback(
    plane: MockedControlPlane, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = fake_run_task(monkeypatch, real_run_task())
    key = task_key("interrupted")
    send(plane, run_request(key, queue="spot"))
    plane.deliver(max_batches=1)
    first = plane.task_for(key)

    # WHEN Spot takes the capacity back before the container started
    plane.apply(plane.ecs_event(first, "PROVISIONING"))
    plane.apply(
        plane.ecs_event(
            first,
            "STOPPED",
            stop_code="SpotInterruption",
            stopped_reason="Your Spot Task was interrupted.",
            started=False,
        )
    )
    plane.deliver(max_batches=1)

    # THEN the next attempt ran on the fallback, and the item says so per attempt
    assert [c["capacityProviderStrategy"] for c in calls] == [SPOT, ON_DEMAND]
    item = plane.item(key)
    assert item.attempt == 2
    assert item.state == TaskState.STARTING
    assert placements(plane, key) == [(1, "FARGATE_SPOT", False), (2, "FARGATE", True)]
    assert "fallback capacity" in (item.reason or "") or item.reason is None


def test_a_try_that_fell_back_stays_on_the_fallback(
    plane: MockedControlPlane, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = fake_run_task(monkeypatch, capacity_unavailable)
    key = task_key("nowhere")
    send(plane, run_request(key, queue="spot"))

    for _ in range(4):
        plane.deliver(max_batches=1)

    assert [c["capacityProviderStrategy"] for c in calls] == [SPOT, ON_DEMAND, ON_DEMAND]
    item = plane.item(key)
    assert item.state == TaskState.FAILED
    assert placements(plane, key) == [(1, "FARGATE_SPOT", False), (2, "FARGATE", True), (3, "FARGATE", True)]
    (alert,) = plane.alerts()
    detail = alert["detail"]
    assert detail["profile"] == "spot"
    assert [(p["attempt"], p["placement"], p["fallback"]) for p in detail["placements"]] == placements(
        plane, key
    )
    assert "queue profile 'spot': attempt 1 on FARGATE_SPOT" in detail["summary"]
    assert "attempt 3 on FARGATE (fallback)" in detail["summary"]


def test_a_failure_that_is_not_capacity_keeps_the_primary_strategy(
    plane: MockedControlPlane, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = fake_run_task(monkeypatch, real_run_task())
    key = task_key("pull")
    send(plane, run_request(key, queue="spot"))
    plane.deliver(max_batches=1)
    plane.fail_to_start(key)  # CannotPullContainerError: no other capacity would help
    plane.deliver(max_batches=1)
    assert [c["capacityProviderStrategy"] for c in calls] == [SPOT, SPOT]
    assert placements(plane, key) == [(1, "FARGATE_SPOT", False), (2, "FARGATE_SPOT", False)]


def test_a_key_the_profile_does_not_allow_fails_the_start_with_its_reason(plane: MockedControlPlane) -> None:
    key = task_key("refused")
    config = {"tags": [{"key": "team", "value": "a"}]}
    send(plane, run_request(key, queue="large", executor_config=config))

    plane.deliver()

    item = plane.item(key)
    assert item.state == TaskState.FAILED
    assert "'tags', which queue 'large' does not allow" in (item.reason or "")
    assert [t for t in plane.tasks() if key in json.dumps(t["overrides"])] == []
    (alert,) = plane.alerts()
    assert "queue 'large' does not allow" in alert["detail"]["reason"]


def test_readiness_names_each_profiles_problem(monkeypatch: pytest.MonkeyPatch) -> None:
    profiles = {
        "large": {"taskDefinition": "airflow-large", "containerName": "worker"},
        "gpu": {
            "taskDefinition": "airflow",
            "containerName": "cuda",
            "capacityProviderStrategy": [{"capacityProvider": "gpu-asg"}],
        },
    }
    with mocked_control_plane(
        monkeypatch,
        ECSCP_QUEUE_PROFILES=json.dumps(profiles),
        ECSCP_QUEUE_PROFILE_TASK_DEFINITION_FAMILIES="airflow-large",
    ):
        report = control_plane().check_readiness()
    problems = [str(p) for p in report.problems]
    assert all(p.startswith("QueueProfiles: profile '") for p in problems), problems
    assert any("profile 'large'" in p and "airflow-large" in p for p in problems)
    assert any("profile 'gpu'" in p and "no container 'cuda'" in p for p in problems)
    assert any(
        "profile 'gpu'" in p and "capacity provider 'gpu-asg' is not associated" in p for p in problems
    )


def test_a_ready_profile_adds_no_problem(plane: MockedControlPlane) -> None:
    assert control_plane().check_readiness().problems == []


def test_a_retry_request_from_an_older_control_plane_has_no_fallback() -> None:
    body = run_request(queue="spot").model_dump(mode="json")
    assert "fallback" not in body  # a false flag is not written: older readers refuse unknown keys
    assert RunRequest.model_validate(body).fallback is False


def test_an_attempt_after_the_fallback_failed_otherwise_stays_on_the_fallback(
    plane: MockedControlPlane, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = fake_run_task(monkeypatch, spot_then_real())
    key = task_key("sticky")
    send(plane, run_request(key, queue="spot"))
    plane.deliver(max_batches=1)  # attempt 1: no Spot capacity
    plane.deliver(max_batches=1)  # attempt 2: on FARGATE, started
    plane.fail_to_start(key)  # and its image could not be pulled
    plane.deliver(max_batches=1)  # attempt 3

    assert [c["capacityProviderStrategy"] for c in calls] == [SPOT, ON_DEMAND, ON_DEMAND]
    assert placements(plane, key) == [(1, "FARGATE_SPOT", False), (2, "FARGATE", True), (3, "FARGATE", True)]


def test_the_fallback_holds_when_the_retry_message_is_lost_and_the_first_comes_back(
    plane: MockedControlPlane, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = fake_run_task(monkeypatch, spot_then_real())
    key = task_key("send-failed")
    request = run_request(key, queue="spot")
    functions = control_plane()
    real_send = functions.queue.send
    sends = {"n": 0}

    def first_send_fails(retry: RunRequest, delay_seconds: int = 0) -> None:
        sends["n"] += 1
        if sends["n"] == 1:
            raise RuntimeError("SQS SendMessage failed")
        real_send(retry, delay_seconds=delay_seconds)

    monkeypatch.setattr(functions.queue, "send", first_send_fails)
    # attempt 1 finds no Spot capacity, and the retry's message is never sent
    with pytest.raises(RuntimeError):
        functions.handle_request(request)
    # SQS delivers the first message again: it starts attempt 2, which was put on the fallback
    functions.handle_request(request)

    assert [c["capacityProviderStrategy"] for c in calls] == [SPOT, ON_DEMAND]
    assert placements(plane, key) == [(1, "FARGATE_SPOT", False), (2, "FARGATE", True)]


def test_two_deliveries_of_one_start_record_its_placement_once(
    plane: MockedControlPlane, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = task_key("twice")
    request = run_request(key, queue="spot")
    real = control_plane().ecs._client.run_task
    answered: dict[str, Any] = {}

    def same_task_for_both(kwargs: dict[str, Any]) -> Any:
        if not answered:
            answered.update(real(**kwargs))
            # the message's visibility ran out: a second delivery runs while this RunTask does
            control_plane().handle_request(request)
        return answered  # the same client token: ECS answers with the same task

    fake_run_task(monkeypatch, same_task_for_both)
    control_plane().handle_request(request)

    assert placements(plane, key) == [(1, "FARGATE_SPOT", False)]
    raw = plane.dynamodb.get_item(TableName=plane.table_name, Key={"key": {"S": key}})["Item"]
    assert len(raw["placements"]["L"]) in (1, 2)  # stored twice at worst; read once


def test_a_refused_task_names_its_queue_and_profile_on_its_item_and_alert(plane: MockedControlPlane) -> None:
    key = task_key("refused-named")
    send(plane, run_request(key, queue="large", executor_config={"tags": [{"key": "a", "value": "b"}]}))
    plane.deliver()
    item = plane.item(key)
    assert (item.queue, item.profile) == ("large", "large")
    (alert,) = plane.alerts()
    assert alert["detail"]["profile"] == "large"
    assert "(queue profile 'large')" in alert["detail"]["summary"]


def test_a_family_the_profile_does_not_run_is_refused_naming_the_profile(plane: MockedControlPlane) -> None:
    key = task_key("other-family")
    config = {"overrides": {"memory": "8192"}, "capacityProviderStrategy": SPOT}
    send(plane, run_request(key, queue="large", executor_config=config))
    plane.deliver()
    assert "'capacityProviderStrategy', which queue 'large' does not allow" in (plane.item(key).reason or "")


def test_a_start_decided_for_one_attempt_does_not_fail_the_next(plane: MockedControlPlane) -> None:
    # GIVEN a try that another invocation already moved on to attempt 2 (QUEUED, no task yet)
    table = control_plane().table
    key = task_key("moved-on")
    table.create_queued(key, "scheduler-a", 1, "spot", {})
    table.schedule_retry(key, 1, "no Spot capacity", next_on_fallback=True)

    # WHEN an invocation that decided on attempt 1 (its token ran out, say) fails the try
    failed = table.mark_failed(
        key, "scheduler-a", "too late", attempt=1, start_failed=True, only_if_queued=True
    )

    # THEN nothing changes: attempt 2 goes on, on the fallback
    assert failed is None
    item = plane.item(key)
    assert (item.state, item.attempt, item.attempt_on_fallback) == (TaskState.QUEUED, 2, True)
    assert table.mark_failed(key, "scheduler-a", "too late", attempt=2, only_if_queued=True) is not None
