"""The typed allow-list of what a task's executor_config may set."""

from __future__ import annotations

from typing import Any

import pytest

from ecs_control_plane.executor_config import (
    ExecutorConfigError,
    ExecutorConfigPolicy,
    check_executor_config,
    task_definition_family,
)

CONTAINER = "airflow"
ROLE = "arn:aws:iam::123456789012:role/etl-task"
EXEC_ROLE = "arn:aws:iam::123456789012:role/etl-exec"
STACK_POLICY = ExecutorConfigPolicy(
    container_name=CONTAINER,
    task_definition_families=frozenset({"airflow"}),
    capacity_providers=frozenset({"FARGATE", "FARGATE_SPOT"}),
)


def airflow(**fields: Any) -> dict[str, Any]:
    return {"overrides": {"containerOverrides": [{"name": CONTAINER, **fields}]}}


def env(name: str, value: Any = "x") -> dict[str, Any]:
    return airflow(environment=[{"name": name, "value": value}])


@pytest.mark.parametrize(
    "config",
    [
        {},
        {"overrides": {"cpu": "2048", "memory": "8192"}},
        {"overrides": {"cpu": "1 vCPU", "memory": "2 GB"}},
        {"overrides": {"ephemeralStorage": {"sizeInGiB": 50}}},
        airflow(cpu=512, memory=2048, memoryReservation=1024),
        airflow(resourceRequirements=[{"type": "GPU", "value": "1"}]),
        env("MY_FLAG", "1"),
        {"tags": [{"key": "team", "value": "data"}]},
        {"capacityProviderStrategy": [{"capacityProvider": "FARGATE_SPOT", "weight": 1, "base": 0}]},
        {"taskDefinition": "airflow:12"},
        {"placementConstraints": [{"type": "distinctInstance"}]},
        {"placementStrategy": [{"type": "spread", "field": "attribute:ecs.availability-zone"}]},
        {"platformVersion": "1.4.0", "propagateTags": "TASK_DEFINITION", "enableECSManagedTags": True},
    ],
    ids=[
        "empty",
        "task-cpu-memory",
        "task-cpu-memory-units",
        "ephemeral-storage",
        "container-cpu-memory",
        "gpu",
        "environment",
        "tags",
        "allowed-capacity-provider",
        "own-family-revision",
        "placement-constraints",
        "placement-strategy",
        "platform-and-tags",
    ],
)
def test_what_a_dag_author_tunes_per_task_is_accepted(config: dict[str, Any]) -> None:
    check_executor_config(config, CONTAINER, STACK_POLICY)


@pytest.mark.parametrize(
    ("config", "message"),
    [
        # roles: under any role that trusts ECS tasks, unless the operator allows it
        ({"overrides": {"taskRoleArn": ROLE}}, "AllowedTaskRoleArns"),
        ({"overrides": {"executionRoleArn": EXEC_ROLE}}, "AllowedExecutionRoleArns"),
        # another task definition family (RunTask would otherwise run any family)
        ({"taskDefinition": "other-family:3"}, "AllowedTaskDefinitionFamilies"),
        (
            {"taskDefinition": "arn:aws:ecs:us-east-1:123456789012:task-definition/other:3"},
            "family 'other'",
        ),
        # a command for a sidecar, or any sidecar override
        ({"overrides": {"containerOverrides": [{"name": "sidecar", "command": ["sh"]}]}}, "command"),
        (
            {"overrides": {"containerOverrides": [{"name": "sidecar", "cpu": 1}]}},
            "only the Airflow container",
        ),
        # the Airflow container under a case or whitespace variant of its name, or twice
        ({"overrides": {"containerOverrides": [{"name": "Airflow"}]}}, "only the Airflow container"),
        ({"overrides": {"containerOverrides": [{"name": " airflow"}]}}, "only the Airflow container"),
        ({"overrides": {"containerOverrides": [{"name": CONTAINER}, {"name": CONTAINER}]}}, "at most 1"),
        # environment files from any S3 object
        (
            airflow(environmentFiles=[{"value": "arn:aws:s3:::bucket/x.env", "type": "s3"}]),
            "environment files",
        ),
        # variables that redirect the workload's token or the credential endpoint
        (env("AIRFLOW__CORE__EXECUTION_API_SERVER_URL", "https://evil/"), "reserved"),
        (env("airflow__core__execution_api_server_url", "https://evil/"), "reserved"),
        (env("AWS_CONTAINER_CREDENTIALS_FULL_URI", "http://evil/"), "reserved"),
        (env("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "/x"), "reserved"),
        (env("AWS_CONTAINER_AUTHORIZATION_TOKEN", "x"), "reserved"),
        (env("ECSCP_TASK_KEY", "x"), "reserved"),
        (env(" ECSCP_OWNER", "x"), "bad name"),
        (env("AIRFLOW_IS_EXECUTOR_CONTAINER", "false"), "reserved"),
        # ... under every other name Airflow derives the execution API URL from, or that moves
        # where the container's requests go
        (env("AIRFLOW__WORKERS__EXECUTION_API_SERVER_URL", "http://evil/"), "reserved"),
        (env("AIRFLOW__CORE__EXECUTION_API_SERVER_URL_CMD", "echo http://evil/"), "reserved"),
        (env("AIRFLOW__API__BASE_URL", "http://evil/"), "reserved"),
        (env("AIRFLOW_CONFIG", "/tmp/evil.cfg"), "reserved"),
        (env("AIRFLOW_HOME", "/tmp/evil"), "reserved"),
        (env("https_proxy", "http://evil:3128"), "reserved"),
        (env("HTTP_PROXY", "http://evil:3128"), "reserved"),
        (env("REQUESTS_CA_BUNDLE", "/tmp/evil.pem"), "reserved"),
        (env("AWS_ENDPOINT_URL", "http://evil/"), "reserved"),
        (env("AWS_ENDPOINT_URL_S3", "http://evil/"), "reserved"),
        # ECS Exec, volumes, the network, the launch type
        ({"enableExecuteCommand": True}, "RunTaskKwargs"),
        ({"volumeConfigurations": [{"name": "v"}]}, "RunTaskKwargs"),
        (
            {"networkConfiguration": {"awsvpcConfiguration": {"assignPublicIp": "ENABLED"}}},
            "Subnets, SecurityGroups and AssignPublicIp",
        ),
        ({"launchType": "EC2"}, "AllowedCapacityProviders"),
        ({"capacityProviderStrategy": [{"capacityProvider": "my-ec2-fleet"}]}, "AllowedCapacityProviders"),
        # what the control plane owns
        ({"cluster": "x"}, "Cluster parameter"),
        ({"startedBy": "x"}, "startedBy"),
        ({"clientToken": "x"}, "clientToken"),
        ({"count": 2}, "one ECS task"),
        # values of the wrong type are refused here, not by botocore after the start was queued
        ({"overrides": {"cpu": 1024}}, "overrides.cpu: Input should be a valid string"),
        (airflow(memory="2048"), "memory: Input should be a valid integer"),
        (env("FLAG", 1), "value: Input should be a valid string"),
        (airflow(environment=[{"name": ["A"], "value": "x"}]), "name: Input should be a valid string"),
        ({"tags": {"team": "data"}}, "tags: Input should be a valid list"),
        ({"overrides": {"ephemeralStorage": {"sizeInGiB": 5000}}}, "sizeInGiB"),
        ({"overrides": {"taskRole": "x"}}, "Extra inputs are not permitted"),
        ([], "must be a JSON object"),
    ],
)
def test_everything_else_is_refused_naming_the_key_and_where_to_allow_it(config: Any, message: str) -> None:
    with pytest.raises(ExecutorConfigError, match=message.replace("(", r"\(")):
        check_executor_config(config, CONTAINER, STACK_POLICY)


def test_the_operator_widens_the_list_explicitly() -> None:
    # GIVEN a stack that lets tasks choose one more family, two roles and a capacity provider
    policy = ExecutorConfigPolicy(
        container_name=CONTAINER,
        task_definition_families=frozenset({"airflow", "gpu-airflow"}),
        task_role_arns=frozenset({ROLE}),
        execution_role_arns=frozenset({EXEC_ROLE}),
        capacity_providers=frozenset({"gpu-fleet"}),
    )
    config = {
        "taskDefinition": "gpu-airflow:2",
        "overrides": {"taskRoleArn": ROLE, "executionRoleArn": EXEC_ROLE},
        "capacityProviderStrategy": [{"capacityProvider": "gpu-fleet", "weight": 1}],
    }
    # THEN exactly those are accepted
    check_executor_config(config, CONTAINER, policy)
    with pytest.raises(ExecutorConfigError, match="AllowedTaskRoleArns"):
        check_executor_config({"overrides": {"taskRoleArn": ROLE + "-admin"}}, CONTAINER, policy)


def test_the_executor_checks_structure_without_knowing_the_stacks_policy() -> None:
    # The scheduler does not know which families or roles the stack allows: run_task decides those.
    check_executor_config({"taskDefinition": "other:1"}, CONTAINER, policy=None)
    with pytest.raises(ExecutorConfigError, match="reserved"):
        check_executor_config(env("AWS_CONTAINER_CREDENTIALS_FULL_URI"), CONTAINER, policy=None)


def test_deeply_nested_json_is_refused_readably() -> None:
    nested: dict[str, Any] = {}
    cursor = nested
    for _ in range(5000):
        cursor["x"] = {}
        cursor = cursor["x"]
    with pytest.raises(ExecutorConfigError, match=r"not accepted|nested too deeply"):
        check_executor_config({"overrides": nested}, CONTAINER, STACK_POLICY)


@pytest.mark.parametrize(
    ("value", "family"),
    [
        ("airflow", "airflow"),
        ("airflow:7", "airflow"),
        ("arn:aws:ecs:us-east-1:123456789012:task-definition/airflow:7", "airflow"),
    ],
)
def test_task_definition_family(value: str, family: str) -> None:
    assert task_definition_family(value) == family
