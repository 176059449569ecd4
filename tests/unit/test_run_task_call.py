"""Building the run_task call: precedence, the Airflow container, refusals, limits."""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest

from ecs_control_plane.contract import client_token
from ecs_control_plane.run_task_call import RunTaskConfigError, build_run_task_call, check_run_task_shape
from ecs_control_plane.run_task_merge import deep_merge
from ecs_control_plane.settings import ControlPlaneSettings, SettingsError
from tests.support.requests import run_request, task_key

BASE_ENV = {
    "ECSCP_CLUSTER": "cluster",
    "ECSCP_CONTAINER_NAME": "airflow",
    "ECSCP_TASK_DEFINITION": "airflow:7",
    "ECSCP_STATE_TABLE": "table",
    "ECSCP_QUEUE_URL": "https://sqs/q",
    "ECSCP_CONTROL_PLANE_ID": "ecscp-stack",
}


def settings(**env: str) -> ControlPlaneSettings:
    return ControlPlaneSettings.from_env(BASE_ENV | env)


def container(call: dict[str, Any], name: str = "airflow") -> dict[str, Any]:
    return next(c for c in call["overrides"]["containerOverrides"] if c["name"] == name)


def test_defaults_give_a_fargate_call_for_the_airflow_container() -> None:
    request = run_request()
    call = build_run_task_call(settings(), request)
    assert call["cluster"] == "cluster"
    assert call["taskDefinition"] == "airflow:7"
    assert call["launchType"] == "FARGATE"
    assert call["platformVersion"] == "LATEST"
    assert call["startedBy"] == "ecscp-stack"
    assert call["count"] == 1
    assert call["clientToken"] == client_token(request.key, 1, "ecscp-stack")
    assert container(call)["command"] == request.command
    env = {e["name"]: e["value"] for e in container(call)["environment"]}
    assert env == {
        "ECSCP_TASK_KEY": request.key,
        "ECSCP_ATTEMPT": "1",
        "ECSCP_OWNER": "scheduler-a",
        "AIRFLOW_IS_EXECUTOR_CONTAINER": "true",
    }
    assert "networkConfiguration" not in call


@pytest.mark.parametrize(
    ("env", "executor_config", "expected"),
    [
        # template parameters beat defaults
        ({"ECSCP_LAUNCH_TYPE": "EC2"}, {}, {"launchType": "EC2", "platformVersion": None}),
        # RunTaskKwargs beat template parameters
        ({"ECSCP_RUN_TASK_KWARGS": '{"taskDefinition": "other:1"}'}, {}, {"taskDefinition": "other:1"}),
        # executor_config beats RunTaskKwargs (a family the operator allows tasks to choose)
        (
            {
                "ECSCP_RUN_TASK_KWARGS": '{"taskDefinition": "other:1"}',
                "ECSCP_ALLOWED_TASK_DEFINITION_FAMILIES": "mine",
            },
            {"taskDefinition": "mine:2"},
            {"taskDefinition": "mine:2"},
        ),
        # a capacity provider strategy replaces the launch type, at any level
        (
            {"ECSCP_CAPACITY_PROVIDER_STRATEGY": '[{"capacityProvider": "FARGATE_SPOT", "weight": 1}]'},
            {},
            {
                "launchType": None,
                "capacityProviderStrategy": [{"capacityProvider": "FARGATE_SPOT", "weight": 1}],
            },
        ),
        (
            {"ECSCP_ALLOWED_CAPACITY_PROVIDERS": "cp"},
            {"capacityProviderStrategy": [{"capacityProvider": "cp"}]},
            {"launchType": None, "capacityProviderStrategy": [{"capacityProvider": "cp"}]},
        ),
        # ... and a launch type set later replaces a strategy set earlier
        (
            {
                "ECSCP_CAPACITY_PROVIDER_STRATEGY": '[{"capacityProvider": "cp"}]',
                "ECSCP_RUN_TASK_KWARGS": '{"launchType": "EC2"}',
            },
            {},
            {"launchType": "EC2", "capacityProviderStrategy": None},
        ),
        # subnets, security groups, public IP become the awsvpc configuration
        (
            {
                "ECSCP_SUBNETS": "subnet-1, subnet-2",
                "ECSCP_SECURITY_GROUPS": "sg-1",
                "ECSCP_ASSIGN_PUBLIC_IP": "true",
            },
            {},
            {
                "networkConfiguration": {
                    "awsvpcConfiguration": {
                        "subnets": ["subnet-1", "subnet-2"],
                        "assignPublicIp": "ENABLED",
                        "securityGroups": ["sg-1"],
                    }
                }
            },
        ),
        # nested dicts merge recursively (the seed's semantics)
        (
            {
                "ECSCP_SUBNETS": "subnet-1",
                "ECSCP_RUN_TASK_KWARGS": '{"networkConfiguration": {"awsvpcConfiguration": '
                '{"assignPublicIp": "ENABLED"}}}',
            },
            {},
            {
                "networkConfiguration": {
                    "awsvpcConfiguration": {"subnets": ["subnet-1"], "assignPublicIp": "ENABLED"}
                }
            },
        ),
        (
            {},
            {"overrides": {"cpu": "2048", "memory": "4096", "ephemeralStorage": {"sizeInGiB": 40}}},
            {
                "overrides": {
                    "containerOverrides": [
                        {"name": "airflow", "command": ..., "environment": ...},
                    ],
                    "cpu": "2048",
                    "memory": "4096",
                    "ephemeralStorage": {"sizeInGiB": 40},
                }
            },
        ),
    ],
    ids=[
        "param-launch-type",
        "kwargs-over-params",
        "exec-config-over-kwargs",
        "capacity-param",
        "capacity-exec",
        "launch-type-after-capacity",
        "network",
        "recursive-merge",
        "task-resources",
    ],
)
def test_precedence_defaults_params_kwargs_executor_config(
    env: dict[str, str], executor_config: dict[str, Any], expected: dict[str, Any]
) -> None:
    call = build_run_task_call(settings(**env), run_request(executor_config=executor_config))
    for key, value in expected.items():
        if key == "overrides":  # the Airflow container's command and environment are the workload's
            got = dict(call[key])
            assert [c["name"] for c in got.pop("containerOverrides")] == ["airflow"]
            assert got == {k: v for k, v in value.items() if k != "containerOverrides"}
            continue
        assert call.get(key) == value, key


def test_executor_config_container_overrides_keep_the_command_and_add_environment() -> None:
    executor_config = {
        "overrides": {
            "containerOverrides": [
                {"name": "airflow", "memory": 2048, "environment": [{"name": "FLAG", "value": "1"}]},
            ]
        }
    }
    request = run_request(executor_config=executor_config)
    call = build_run_task_call(settings(), request)
    airflow = container(call)
    assert airflow["memory"] == 2048
    assert airflow["command"] == request.command
    assert {"name": "FLAG", "value": "1"} in airflow["environment"]


def test_sidecar_overrides_are_the_operators_not_the_tasks() -> None:
    # GIVEN RunTaskKwargs (the operator's) overriding a sidecar
    kwargs = '{"overrides": {"containerOverrides": [{"name": "airflow"}, {"name": "sidecar", "cpu": 128}]}}'
    call = build_run_task_call(settings(ECSCP_RUN_TASK_KWARGS=kwargs), run_request())
    # THEN it is kept, and the Airflow container still runs the workload
    assert container(call, "sidecar") == {"name": "sidecar", "cpu": 128}
    # AND a task's executor_config may not do the same
    config = {"overrides": {"containerOverrides": [{"name": "sidecar", "command": ["sh"]}]}}
    with pytest.raises(RunTaskConfigError, match=r"may not set 'overrides.containerOverrides.0.command'"):
        build_run_task_call(settings(), run_request(executor_config=config))


@pytest.mark.parametrize(
    ("executor_config", "message"),
    [
        ({"command": ["x"]}, "may not set 'command'"),
        ({"name": "x"}, "may not set 'name'"),
        (
            {"overrides": {"containerOverrides": [{"name": "airflow", "command": ["x"]}]}},
            "may not set 'overrides.containerOverrides.0.command'",
        ),
        ({"overrides": {"containerOverrides": [{"name": "other"}]}}, "only the Airflow container"),
        ({"overrides": {"containerOverrides": [{"memory": 1}]}}, "containerOverrides.0.name: Field required"),
        ({"cluster": "x"}, "may not set 'cluster'"),
        ({"startedBy": "x"}, "may not set 'startedBy'"),
        ({"count": 5}, "may not set 'count'"),
        ({"clientToken": "x"}, "may not set 'clientToken'"),
        ({"launchTypo": "EC2"}, "launchTypo: Extra inputs are not permitted"),
        (
            {
                "overrides": {
                    "containerOverrides": [
                        {"name": "airflow", "environment": [{"name": "ECSCP_TASK_KEY", "value": "x"}]}
                    ]
                }
            },
            "reserved",
        ),
        ({"overrides": {"taskRole": "x"}}, "overrides.taskRole: Extra inputs are not permitted"),
        ([], "must be a JSON object"),
    ],
)
def test_executor_config_refusals_name_the_problem(executor_config: Any, message: str) -> None:
    with pytest.raises(RunTaskConfigError, match=message.replace("(", r"\(")):
        build_run_task_call(settings(), run_request().model_copy(update={"executor_config": executor_config}))


def test_bad_run_task_kwargs_fail_the_functions_start_once_naming_the_setting() -> None:
    # Not every task one by one: the settings are read at cold start.
    with pytest.raises(SettingsError, match=r"ECSCP_RUN_TASK_KWARGS.*RunTaskKwargs may not set 'cluster'"):
        settings(ECSCP_RUN_TASK_KWARGS='{"cluster": "x"}')
    with pytest.raises(
        SettingsError,
        match=r"ECSCP_RUN_TASK_KWARGS \(template parameter RunTaskKwargs\): "
        r"Input should be a valid dict",
    ):
        settings(ECSCP_RUN_TASK_KWARGS="[1]")


def test_snake_case_run_task_kwargs_are_camelized_as_the_provider_does() -> None:
    # GIVEN RunTaskKwargs written as the provider's [aws_ecs_executor] run_task_kwargs often are
    kwargs = (
        '{"platform_version": "1.4.0", "propagate_tags": "TASK_DEFINITION",'
        ' "network_configuration": {"awsvpc_configuration":'
        ' {"subnets": ["subnet-9"], "assign_public_ip": "ENABLED"}},'
        ' "tags": [{"key": "cost_center", "value": "x"}]}'
    )
    call = build_run_task_call(settings(ECSCP_RUN_TASK_KWARGS=kwargs), run_request())
    # THEN they mean what they meant there (tag keys are the user's and stay as written)
    assert call["platformVersion"] == "1.4.0"
    assert call["propagateTags"] == "TASK_DEFINITION"
    assert call["networkConfiguration"] == {
        "awsvpcConfiguration": {"subnets": ["subnet-9"], "assignPublicIp": "ENABLED"}
    }
    assert {"key": "cost_center", "value": "x"} in call["tags"]


@pytest.mark.parametrize(
    "env",
    [{"ECSCP_SECURITY_GROUPS": "sg-1"}, {"ECSCP_ASSIGN_PUBLIC_IP": "true"}],
    ids=["security-groups", "assign-public-ip"],
)
def test_a_network_without_subnets_is_refused_as_the_provider_does(env: dict[str, str]) -> None:
    with pytest.raises(SettingsError, match=r"At least one subnet is required to run a task.*ECSCP_SUBNETS"):
        settings(**env)


def test_ec2_launch_type_sends_no_assign_public_ip_as_the_provider_does() -> None:
    call = build_run_task_call(settings(ECSCP_LAUNCH_TYPE="EC2", ECSCP_SUBNETS="subnet-1"), run_request())
    assert call["networkConfiguration"] == {"awsvpcConfiguration": {"subnets": ["subnet-1"]}}


def test_oversized_overrides_are_refused_before_calling_ecs() -> None:
    env = [{"name": f"V{i}", "value": "x" * 200} for i in range(50)]
    config = {"overrides": {"containerOverrides": [{"name": "airflow", "environment": env}]}}
    with pytest.raises(RunTaskConfigError, match="8192"):
        build_run_task_call(settings(), run_request(executor_config=config))


def test_the_overrides_limit_counts_the_whole_overrides_object_as_ecs_does() -> None:
    # GIVEN a workload whose overrides just fit under ECS's 8192 characters
    base = build_run_task_call(settings(), run_request().model_copy(update={"command": ["x"]}))
    room = 8192 - len(json.dumps(base["overrides"], separators=(",", ":")))
    request = run_request().model_copy(update={"command": ["x" * (room - 10)]})
    fits = build_run_task_call(settings(), request)
    assert len(json.dumps(fits["overrides"], separators=(",", ":"))) <= 8192
    # WHEN the task also sets task-level overrides, so that the whole overrides object is longer
    config = {"overrides": {"cpu": "4096", "memory": "16384", "ephemeralStorage": {"sizeInGiB": 100}}}
    # THEN the start is refused before calling ECS, as ECS would refuse it
    with pytest.raises(RunTaskConfigError, match=r"overrides are \d+ characters, more than the 8192"):
        build_run_task_call(settings(), request.model_copy(update={"executor_config": config}))


def test_attempt_changes_only_the_token_and_attempt_variable() -> None:
    request = run_request(key=task_key())
    first, second = build_run_task_call(settings(), request, 1), build_run_task_call(settings(), request, 2)
    assert first["clientToken"] != second["clientToken"]
    assert {"name": "ECSCP_ATTEMPT", "value": "2"} in container(second)["environment"]


def test_deep_merge_replaces_lists_and_merges_dicts() -> None:
    assert deep_merge({"a": {"b": 1, "c": [1]}, "d": 1}, {"a": {"c": [2]}, "e": 2}) == {
        "a": {"b": 1, "c": [2]},
        "d": 1,
        "e": 2,
    }


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"ECSCP_CLUSTER": ""}, "ECSCP_CLUSTER"),
        ({"ECSCP_RUN_TASK_KWARGS": "{nope"}, "ECSCP_RUN_TASK_KWARGS"),
        ({"ECSCP_LAUNCH_TYPE": "SPACESHIP"}, "ECSCP_LAUNCH_TYPE"),
        ({"ECSCP_MAX_RUN_TASK_ATTEMPTS": "0"}, "ECSCP_MAX_RUN_TASK_ATTEMPTS"),
        (
            {"ECSCP_QUEUED_TIMEOUT_SECONDS": "300", "ECSCP_START_RETRY_MAX_SECONDS": "300"},
            "queued_timeout_seconds",
        ),
        ({"ECSCP_CONTROL_PLANE_ID": "x" * 129}, "ECSCP_CONTROL_PLANE_ID"),
    ],
)
def test_bad_settings_name_the_variable(env: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        settings(**env)


def test_missing_settings_name_the_variable() -> None:
    with pytest.raises(SettingsError, match="ECSCP_QUEUE_URL"):
        ControlPlaneSettings.from_env({k: v for k, v in BASE_ENV.items() if k != "ECSCP_QUEUE_URL"})


@pytest.mark.parametrize(("attempt", "delay"), [(1, 10), (2, 20), (3, 40), (10, 300)])
def test_start_retry_backoff_is_exponential_and_capped(attempt: int, delay: int) -> None:
    assert settings().backoff_seconds(attempt) == delay


def test_every_task_carries_the_control_plane_tag_that_no_other_tag_can_replace() -> None:
    # GIVEN RunTaskKwargs that set tags, one of them with the control plane's tag key
    kwargs = '{"tags": [{"key": "team", "value": "data"}, {"key": "ecscp:control-plane", "value": "forged"}]}'
    config = {"tags": [{"key": "dag", "value": "etl"}]}
    call = build_run_task_call(settings(ECSCP_RUN_TASK_KWARGS=kwargs), run_request(executor_config=config))
    # THEN the task's tag says which control plane started it (IAM lets it stop only those),
    # beside the operator's and the task's own tags
    assert call["tags"] == [
        {"key": "team", "value": "data"},
        {"key": "dag", "value": "etl"},
        {"key": "ecscp:control-plane", "value": "ecscp-stack"},
    ]
    # AND a task's executor_config may not set that tag at all
    forged = {"tags": [{"key": "ecscp:control-plane", "value": "x"}]}
    with pytest.raises(RunTaskConfigError, match="ecscp:control-plane"):
        build_run_task_call(settings(), run_request(executor_config=forged))


def test_launch_type_and_strategy_together_are_refused_as_the_provider_refuses_them() -> None:
    with pytest.raises(SettingsError, match=r"mutually exclusive.*LaunchType, CapacityProviderStrategy"):
        settings(
            ECSCP_LAUNCH_TYPE="FARGATE",
            ECSCP_CAPACITY_PROVIDER_STRATEGY='[{"capacityProvider": "FARGATE_SPOT", "weight": 1}]',
        )


def test_neither_launch_type_nor_strategy_falls_back_to_fargate_as_the_provider_does() -> None:
    call = build_run_task_call(settings(ECSCP_LAUNCH_TYPE=""), run_request())
    assert (call["launchType"], call["platformVersion"]) == ("FARGATE", "LATEST")
    assert "capacityProviderStrategy" not in call


def test_a_cluster_default_strategy_gets_neither_as_the_provider_sends_neither() -> None:
    # readiness.default_placement gives None when the cluster has a default strategy
    call = build_run_task_call(settings(ECSCP_LAUNCH_TYPE=""), run_request(), fallback_launch_type=None)
    assert "launchType" not in call
    assert "capacityProviderStrategy" not in call


def test_a_placement_chosen_at_any_level_is_never_replaced_by_the_fallback() -> None:
    strategy = [{"capacityProvider": "FARGATE_SPOT", "weight": 1}]
    chosen = settings(ECSCP_ALLOWED_CAPACITY_PROVIDERS="FARGATE_SPOT")
    call = build_run_task_call(chosen, run_request(executor_config={"capacityProviderStrategy": strategy}))
    assert call["capacityProviderStrategy"] == strategy
    assert "launchType" not in call
    assert build_run_task_call(settings(ECSCP_LAUNCH_TYPE="EC2"), run_request())["launchType"] == "EC2"


def test_executor_config_cannot_undo_what_the_operator_put_in_run_task_kwargs() -> None:
    # GIVEN an operator's RunTaskKwargs: environment and a sidecar override, placement constraints
    kwargs = json.dumps(
        {
            "overrides": {
                "containerOverrides": [
                    {"name": "airflow", "environment": [{"name": "LOG_SINK", "value": "ops"}]},
                    {"name": "proxy", "memory": 64},
                ]
            },
            "placementConstraints": [{"type": "memberOf", "expression": "attribute:pool == airflow"}],
            "tags": [{"key": "cost-center", "value": "42"}],
        }
    )
    # WHEN a task tunes its container and placement
    config = {
        "overrides": {
            "containerOverrides": [
                {"name": "airflow", "cpu": 256, "environment": [{"name": "MODE", "value": "fast"}]}
            ]
        },
        "placementConstraints": [{"type": "distinctInstance"}],
        "tags": [{"key": "cost-center", "value": "7"}],
    }
    call = build_run_task_call(settings(ECSCP_RUN_TASK_KWARGS=kwargs), run_request(executor_config=config))

    # THEN the task's settings are merged in, and nothing of the operator's is lost
    airflow = container(call)
    assert airflow["cpu"] == 256
    assert {e["name"]: e["value"] for e in airflow["environment"]}.items() >= {
        "LOG_SINK": "ops",
        "MODE": "fast",
    }.items()
    assert container(call, "proxy") == {"name": "proxy", "memory": 64}
    assert call["placementConstraints"] == [
        {"type": "memberOf", "expression": "attribute:pool == airflow"},
        {"type": "distinctInstance"},
    ]
    # AND where both name the same entry, the task's value wins (the more specific level)
    assert {"key": "cost-center", "value": "7"} in call["tags"]
    assert {"key": "cost-center", "value": "42"} not in call["tags"]


@pytest.mark.parametrize(
    "config",
    [
        {"overrides": None},
        {"overrides": {"containerOverrides": None}},
        {"overrides": {"containerOverrides": [{"name": "airflow", "environment": None}]}},
        {"capacityProviderStrategy": None},
        {"taskDefinition": None},
        {"tags": [{"key": "a", "value": None}]},
    ],
    ids=["overrides", "container-overrides", "environment", "strategy", "task-definition", "tag-value"],
)
def test_nulls_in_executor_config_are_refused_naming_where(config: dict[str, Any]) -> None:
    with pytest.raises(RunTaskConfigError, match="to null: leave the key out"):
        build_run_task_call(settings(), run_request().model_copy(update={"executor_config": config}))


@pytest.mark.parametrize(
    "kwargs", ['{"launchType": "EC2"}', '{"launch_type": "EC2"}'], ids=["camel", "snake"]
)
def test_ec2_chosen_in_run_task_kwargs_sends_no_assign_public_ip_as_the_provider_does(kwargs: str) -> None:
    call = build_run_task_call(
        settings(ECSCP_SUBNETS="subnet-1", ECSCP_RUN_TASK_KWARGS=kwargs), run_request()
    )
    assert call["launchType"] == "EC2"
    assert "assignPublicIp" not in call["networkConfiguration"]["awsvpcConfiguration"]


@pytest.mark.parametrize(
    ("kwargs", "says"),
    [
        ('{"platformVersion": 3}', "Invalid type for parameter platformVersion"),
        ('{"networkConfiguration": {"awsvpcConfiguration": {"subnet": ["s"]}}}', "Unknown parameter in"),
        ('{"overrides": {"cpu": 256}}', "Invalid type for parameter overrides.cpu"),
        ('{"tags": {"team": "data"}}', "Invalid type for parameter tags"),
    ],
    ids=["int-platform-version", "unknown-nested-key", "int-cpu", "tags-as-object"],
)
def test_run_task_kwargs_ecs_would_refuse_fail_the_functions_start_once(kwargs: str, says: str) -> None:
    # Not every task one by one: checked against ECS's own API model when the functions start
    ecs = boto3.client("ecs", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
    with pytest.raises(
        SettingsError, match=r"ECSCP_RUN_TASK_KWARGS \(template parameter RunTaskKwargs\)"
    ) as refused:
        check_run_task_shape(
            settings(ECSCP_RUN_TASK_KWARGS=kwargs, ECSCP_SUBNETS="subnet-1"), ecs.meta.service_model
        )
    assert says in str(refused.value)


def test_the_default_stack_makes_a_run_task_call_ecs_accepts() -> None:
    ecs = boto3.client("ecs", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
    check_run_task_shape(
        settings(ECSCP_SUBNETS="subnet-1", ECSCP_SECURITY_GROUPS="sg-1"), ecs.meta.service_model
    )
