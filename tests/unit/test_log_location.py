"""Where an ECS task's Airflow container logs: the awslogs naming rule, and describing each
task definition once (``ecs_control_plane.log_location``)."""

from __future__ import annotations

from typing import Any

import pytest

from ecs_control_plane.log_location import (
    TaskDefinitionLogs,
    TaskLogLocation,
    awslogs_location,
    container_log_configuration,
)

TASK_ARN = "arn:aws:ecs:eu-west-1:123456789012:task/airflow/0123456789abcdef0123456789abcdef"
OPTIONS = {"awslogs-group": "/ecs/airflow", "awslogs-stream-prefix": "ecs", "awslogs-region": "eu-west-1"}
AWSLOGS: dict[str, Any] = {"logDriver": "awslogs", "options": OPTIONS}


def task_definition(log_configuration: dict[str, Any] | None, container: str = "airflow") -> dict[str, Any]:
    definition: dict[str, Any] = {"name": container, "image": "apache/airflow:3.3.2"}
    if log_configuration is not None:
        definition["logConfiguration"] = log_configuration
    return {"containerDefinitions": [{"name": "sidecar", "image": "envoy"}, definition]}


def test_awslogs_stream_is_prefix_container_and_task_id() -> None:
    # GIVEN an awslogs configuration with a group, a stream prefix and a region
    # WHEN the stream of one task's Airflow container is named
    location = awslogs_location(AWSLOGS, "airflow", TASK_ARN, "us-east-1")
    # THEN it is <prefix>/<container>/<task id> in that group and region, as ECS names it
    assert location == TaskLogLocation(
        "/ecs/airflow", "ecs/airflow/0123456789abcdef0123456789abcdef", "eu-west-1"
    )


def test_awslogs_without_a_region_logs_in_the_tasks_region() -> None:
    options = {k: v for k, v in OPTIONS.items() if k != "awslogs-region"}
    configuration = {"logDriver": "awslogs", "options": options}
    location = awslogs_location(configuration, "airflow", TASK_ARN, "us-east-1")
    assert location is not None
    assert location.region == "us-east-1"


@pytest.mark.parametrize(
    "log_configuration",
    [
        None,
        {"logDriver": "awsfirelens", "options": {"Name": "cloudwatch"}},
        {"logDriver": "awslogs", "options": {"awslogs-group": "/ecs/airflow"}},  # no stream prefix
        {"logDriver": "awslogs", "options": {"awslogs-stream-prefix": "ecs"}},  # no group
        {"logDriver": "awslogs"},
    ],
    ids=["none", "firelens", "no-prefix", "no-group", "no-options"],
)
def test_no_stream_is_named_when_ecs_names_none_that_can_be_computed(
    log_configuration: dict[str, Any] | None,
) -> None:
    # Without a stream prefix awslogs names the stream after the Docker container id, which
    # ECS does not report; other drivers do not write to CloudWatch Logs under a known name.
    assert awslogs_location(log_configuration, "airflow", TASK_ARN, "us-east-1") is None


def test_the_airflow_containers_configuration_is_read_not_a_sidecars() -> None:
    assert container_log_configuration(task_definition(AWSLOGS), "airflow") == AWSLOGS
    assert container_log_configuration(task_definition(AWSLOGS), "sidecar") is None
    assert container_log_configuration(task_definition(AWSLOGS), "missing") is None


class Describer:
    def __init__(self, *answers: Any) -> None:
        self.answers = list(answers)
        self.calls: list[str] = []

    def __call__(self, reference: str) -> dict[str, Any]:
        self.calls.append(reference)
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if isinstance(answer, Exception):
            raise answer
        return dict(answer)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_revision_is_described_once_for_every_task_it_runs() -> None:
    # GIVEN tasks started from one revision (the ARN RunTask returns)
    describe = Describer(task_definition(AWSLOGS))
    clock = Clock()
    logs = TaskDefinitionLogs(describe, "airflow", "us-east-1", clock=clock)
    revision = "arn:aws:ecs:eu-west-1:123456789012:task-definition/airflow:7"

    # WHEN the location of many of its tasks is asked, much later too
    locations = [logs.location(revision, f"{TASK_ARN[:-4]}{i:04d}") for i in range(5)]
    clock.now += 86400
    locations.append(logs.location(revision, TASK_ARN))

    # THEN ECS was asked once, and each task got its own stream
    assert describe.calls == [revision]
    assert len({loc.stream for loc in locations if loc}) == 6


def test_a_family_is_described_again_after_a_while_it_may_have_a_new_revision() -> None:
    # GIVEN a bare family, whose latest revision changes its log group
    moved = {**AWSLOGS, "options": {**OPTIONS, "awslogs-group": "/ecs/airflow-v2"}}
    describe = Describer(task_definition(AWSLOGS), task_definition(moved))
    clock = Clock()
    logs = TaskDefinitionLogs(describe, "airflow", "us-east-1", clock=clock, family_ttl_seconds=300)

    # WHEN tasks start within the TTL, then after it
    first = logs.location("airflow", TASK_ARN)
    clock.now += 299
    second = logs.location("airflow", TASK_ARN)
    clock.now += 2
    third = logs.location("airflow", TASK_ARN)

    # THEN the family was described twice, and the later tasks log where the new revision says
    assert describe.calls == ["airflow", "airflow"]
    assert first == second
    assert first is not None
    assert first.group == "/ecs/airflow"
    assert third is not None
    assert third.group == "/ecs/airflow-v2"


def test_a_failed_describe_records_nothing_and_is_not_asked_again_at_once() -> None:
    # GIVEN ECS refuses to describe the task definition (no permission, throttling)
    describe = Describer(RuntimeError("AccessDeniedException: not authorized"), task_definition(AWSLOGS))
    clock = Clock()
    logs = TaskDefinitionLogs(describe, "airflow", "us-east-1", clock=clock, failure_ttl_seconds=300)

    # WHEN tasks start: THEN no location, no exception, one call until the failure is forgotten
    assert logs.location("airflow:3", TASK_ARN) is None
    assert logs.location("airflow:3", TASK_ARN) is None
    assert describe.calls == ["airflow:3"]
    clock.now += 301
    assert logs.location("airflow:3", TASK_ARN) is not None
    assert describe.calls == ["airflow:3", "airflow:3"]


def test_the_cache_is_bounded() -> None:
    describe = Describer(task_definition(AWSLOGS))
    logs = TaskDefinitionLogs(describe, "airflow", "us-east-1", max_entries=2)
    for revision in ("airflow:1", "airflow:2", "airflow:3", "airflow:1"):
        logs.location(revision, TASK_ARN)
    # airflow:1 was the oldest when airflow:3 came, so it was described again
    assert describe.calls == ["airflow:1", "airflow:2", "airflow:3", "airflow:1"]
