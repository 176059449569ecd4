"""Queue profiles: validated at cold start naming the profile and field, and the RunTask call they make."""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest

from ecs_control_plane.contract import RunRequest, TaskStateItem
from ecs_control_plane.executor_config import EXECUTOR_CONFIG_KEY_PATHS, key_paths
from ecs_control_plane.queue_profiles import CapacityProviderItem, describe_placement
from ecs_control_plane.readiness import _fallback_problems
from ecs_control_plane.run_task_call import RunTaskConfigError, build_run_task_call, check_run_task_shape
from ecs_control_plane.settings import ControlPlaneSettings, SettingsError
from tests.support.queue_profiles import ON_DEMAND, SPOT
from tests.support.requests import run_request

STACK_ENV = {
    "ECSCP_CLUSTER": "airflow",
    "ECSCP_CONTAINER_NAME": "airflow",
    "ECSCP_TASK_DEFINITION": "airflow",
    "ECSCP_LAUNCH_TYPE": "FARGATE",
    "ECSCP_SUBNETS": "subnet-stack",
    "ECSCP_SECURITY_GROUPS": "sg-stack",
    "ECSCP_STATE_TABLE": "task-state",
    "ECSCP_QUEUE_URL": "https://sqs/queue",
    "ECSCP_CONTROL_PLANE_ID": "ecscp-test",
    "ECSCP_TASK_ROLE_ARN": "arn:aws:iam::123456789012:role/task",
}
LARGE_ROLE = "arn:aws:iam::123456789012:role/large-task"
PROFILES = {
    "large": {
        "taskDefinition": "airflow-large:3",
        "containerName": "worker",
        "cpu": "4096",
        "memory": "16384",
        "subnets": ["subnet-large"],
        "taskRoleArn": LARGE_ROLE,
        "allowedExecutorConfig": ["overrides.memory", "tags"],
    },
    "spot": {
        "taskDefinition": "airflow",
        "capacityProviderStrategy": SPOT,
        "fallbackCapacityProviderStrategy": ON_DEMAND,
    },
    "critical": {
        "taskDefinition": "airflow",
        "capacityProviderStrategy": ON_DEMAND,
        "allowedExecutorConfig": [],
    },
}


def settings_with(profiles: Any = PROFILES, **env: str) -> ControlPlaneSettings:
    values = {
        **STACK_ENV,
        "ECSCP_QUEUE_PROFILES": profiles if isinstance(profiles, str) else json.dumps(profiles),
        "ECSCP_QUEUE_PROFILE_TASK_DEFINITION_FAMILIES": "airflow-large",
        "ECSCP_QUEUE_PROFILE_ROLE_ARNS": LARGE_ROLE,
        **env,
    }
    return ControlPlaneSettings.from_env(values)


def call_for(settings: ControlPlaneSettings, queue: str | None, **fields: Any) -> dict[str, Any]:
    return build_run_task_call(
        settings, run_request(queue=queue, **fields) if queue else run_request(**fields)
    )


def airflow_override(call: dict[str, Any], name: str) -> dict[str, Any]:
    (override,) = [c for c in call["overrides"]["containerOverrides"] if c["name"] == name]
    return override


# -- validation -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("profiles", "env", "expected"),
    [
        (
            {"large": {**PROFILES["large"], "cpu": 4096}},
            {},
            "ECSCP_QUEUE_PROFILES (template parameter QueueProfiles): profile 'large': cpu:",
        ),
        (
            {
                "spot": {
                    "taskDefinition": "airflow",
                    "capacityProviderStrategy": [{"capacityProvider": "X", "weight": -1}],
                }
            },
            {"ECSCP_QUEUE_PROFILE_TASK_DEFINITION_FAMILIES": "", "ECSCP_QUEUE_PROFILE_ROLE_ARNS": ""},
            "profile 'spot': capacityProviderStrategy.0.weight:",
        ),
        ({"large": {"taskDefinition": "airflow", "tags": []}}, {}, "profile 'large': tags: Extra inputs"),
        ({"large": {"containerName": "airflow"}}, {}, "profile 'large': taskDefinition: Field required"),
        (
            {"x": {"taskDefinition": "airflow", "launchType": "FARGATE", "capacityProviderStrategy": SPOT}},
            {},
            "mutually exclusive",
        ),
        (
            {
                "x": {
                    "taskDefinition": "airflow",
                    "capacityProviderStrategy": SPOT,
                    "fallbackCapacityProviderStrategy": SPOT,
                }
            },
            {},
            "is the capacityProviderStrategy itself",
        ),
        (
            {"x": {"taskDefinition": "airflow", "allowedExecutorConfig": ["networkConfiguration"]}},
            {},
            "profile 'x': allowedExecutorConfig: Value error, 'networkConfiguration' is not",
        ),
        ("[1, 2]", {}, "must be a JSON object of Airflow queue name -> profile"),
        ("{not json", {}, "not valid JSON"),
    ],
)
def test_a_bad_profile_refuses_the_cold_start_naming_the_profile_and_field(
    profiles: Any, env: dict[str, str], expected: str
) -> None:
    with pytest.raises(SettingsError) as raised:
        settings_with(profiles, **env)
    assert expected in str(raised.value)


def test_a_profile_family_iam_does_not_list_is_refused_naming_the_parameter() -> None:
    with pytest.raises(SettingsError) as raised:
        settings_with(ECSCP_QUEUE_PROFILE_TASK_DEFINITION_FAMILIES="")
    message = str(raised.value)
    assert "profile 'large': taskDefinition family 'airflow-large'" in message
    assert "QueueProfileTaskDefinitionFamilies" in message


def test_a_profile_role_iam_does_not_list_is_refused_naming_the_parameter() -> None:
    with pytest.raises(SettingsError) as raised:
        settings_with(ECSCP_QUEUE_PROFILE_ROLE_ARNS="")
    assert f"profile 'large': role {LARGE_ROLE} is not in" in str(raised.value)
    assert "QueueProfileRoleArns" in str(raised.value)


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"ECSCP_QUEUE_PROFILE_TASK_DEFINITION_FAMILIES": "airflow-large,unused"}, "family 'unused'"),
        (
            {"ECSCP_QUEUE_PROFILE_ROLE_ARNS": f"{LARGE_ROLE},arn:aws:iam::123456789012:role/unused"},
            "role/unused",
        ),
    ],
)
def test_iam_that_lists_more_than_the_profiles_name_is_refused(env: dict[str, str], expected: str) -> None:
    with pytest.raises(SettingsError) as raised:
        settings_with(**env)
    assert expected in str(raised.value)
    assert "which no profile names" in str(raised.value)


def test_the_stacks_own_family_and_roles_need_no_listing() -> None:
    profiles = {"spot": {**PROFILES["spot"], "taskRoleArn": STACK_ENV["ECSCP_TASK_ROLE_ARN"]}}
    settings = settings_with(
        profiles, ECSCP_QUEUE_PROFILE_TASK_DEFINITION_FAMILIES="", ECSCP_QUEUE_PROFILE_ROLE_ARNS=""
    )
    assert settings.profile_for("spot") is not None


def test_no_profiles_is_todays_stack() -> None:
    settings = ControlPlaneSettings.from_env({**STACK_ENV, "ECSCP_QUEUE_PROFILES": ""})
    assert settings.queue_profiles.profiles == {}
    assert settings.profile_for("default") is None


# -- the call a profile makes ---------------------------------------------------------------------


def test_a_queue_without_profile_runs_on_the_stacks_settings() -> None:
    call = call_for(settings_with(), "default")
    assert call["taskDefinition"] == "airflow"
    assert call["launchType"] == "FARGATE"
    assert "capacityProviderStrategy" not in call
    assert airflow_override(call, "airflow")["environment"]


def test_a_profile_runs_its_task_definition_container_network_and_size() -> None:
    call = call_for(settings_with(), "large")
    assert call["taskDefinition"] == "airflow-large:3"
    assert call["overrides"]["cpu"] == "4096"
    assert call["overrides"]["memory"] == "16384"
    # the workload and the control plane's variables go to the profile's container
    worker = airflow_override(call, "worker")
    env = {e["name"]: e["value"] for e in worker["environment"]}
    assert worker["command"][:3] == ["python", "-m", "airflow.sdk.execution_time.execute_workload"]
    assert "ECSCP_TASK_KEY" in env
    assert not [c for c in call["overrides"]["containerOverrides"] if c["name"] == "airflow"]
    # its subnets replace the stack's; what it leaves out (security groups) stays the stack's
    awsvpc = call["networkConfiguration"]["awsvpcConfiguration"]
    assert awsvpc["subnets"] == ["subnet-large"]
    assert awsvpc["securityGroups"] == ["sg-stack"]
    assert call["launchType"] == "FARGATE"  # the stack's placement, which the profile leaves


def test_a_profile_strategy_replaces_the_stacks_launch_type() -> None:
    call = call_for(settings_with(), "spot")
    assert call["capacityProviderStrategy"] == SPOT
    assert "launchType" not in call
    assert call["platformVersion"] == "LATEST"


def test_the_next_attempt_after_a_capacity_failure_runs_on_the_fallback() -> None:
    settings = settings_with()
    call = call_for(settings, "spot", fallback=True, attempt=2)
    assert call["capacityProviderStrategy"] == ON_DEMAND
    assert "launchType" not in call
    # a profile with no fallback ignores the flag
    assert call_for(settings, "critical", fallback=True)["capacityProviderStrategy"] == ON_DEMAND
    assert call_for(settings, "large", fallback=True)["launchType"] == "FARGATE"


def test_executor_config_for_the_stacks_container_applies_to_the_profiles_container() -> None:
    config = {
        "overrides": {"memory": "30720", "containerOverrides": []},
        "tags": [{"key": "team", "value": "a"}],
    }
    call = call_for(settings_with(), "large", executor_config=config)
    assert call["overrides"]["memory"] == "30720"
    assert {"key": "team", "value": "a"} in call["tags"]


def test_a_key_the_profile_does_not_allow_is_refused_naming_the_key_and_queue() -> None:
    config = {
        "overrides": {
            "containerOverrides": [{"name": "airflow", "environment": [{"name": "A", "value": "1"}]}]
        }
    }
    with pytest.raises(RunTaskConfigError) as raised:
        call_for(settings_with(), "large", executor_config=config)
    message = str(raised.value)
    assert "'overrides.containerOverrides.environment'" in message
    assert "queue 'large'" in message
    assert "overrides.memory, tags" in message
    # the same config is fine on a queue without profile, and on a profile without a list
    assert call_for(settings_with(), "default", executor_config=config)
    assert call_for(settings_with(), "spot", executor_config=config)


def test_an_empty_allow_list_lets_the_queue_set_nothing() -> None:
    with pytest.raises(RunTaskConfigError, match=r"queue 'critical' does not allow .*allows: nothing"):
        call_for(settings_with(), "critical", executor_config={"tags": [{"key": "a", "value": "b"}]})
    assert call_for(settings_with(), "critical", executor_config={})


def test_a_profile_lets_its_tasks_choose_among_its_own_capacity_providers_only() -> None:
    settings = settings_with()
    chosen = {"capacityProviderStrategy": ON_DEMAND}
    assert call_for(settings, "spot", executor_config=chosen)["capacityProviderStrategy"] == ON_DEMAND
    with pytest.raises(RunTaskConfigError, match="capacity provider 'FARGATE_SPOT'"):
        call_for(settings, "default", executor_config={"capacityProviderStrategy": SPOT})


def test_every_profile_and_its_fallback_make_a_call_botocore_accepts() -> None:
    model = boto3.client("ecs", region_name="us-east-1").meta.service_model
    check_run_task_shape(settings_with(), model)
    bad = {
        "spot": {
            **PROFILES["spot"],
            "fallbackCapacityProviderStrategy": [{"capacityProvider": "FARGATE", "weight": 1}],
        }
    }
    settings = settings_with(
        bad, ECSCP_QUEUE_PROFILE_TASK_DEFINITION_FAMILIES="", ECSCP_QUEUE_PROFILE_ROLE_ARNS=""
    )
    check_run_task_shape(settings, model)


def test_describe_placement_names_where_the_call_places_its_task() -> None:
    assert describe_placement({"capacityProviderStrategy": SPOT}) == "FARGATE_SPOT"
    two = [{"capacityProvider": "FARGATE_SPOT", "weight": 3}, {"capacityProvider": "FARGATE", "weight": 1}]
    assert describe_placement({"capacityProviderStrategy": two}) == "FARGATE_SPOT*3,FARGATE*1"
    assert describe_placement({"launchType": "EC2"}) == "launch type EC2"
    assert describe_placement({}) == "cluster default"


def test_key_paths_are_what_an_allow_list_names() -> None:
    config = {
        "overrides": {
            "cpu": "1024",
            "ephemeralStorage": {"sizeInGiB": 30},
            "containerOverrides": [{"name": "airflow", "environment": []}, {"name": "airflow"}],
        },
        "tags": [{"key": "a", "value": "b"}],
        "placementConstraints": [],
    }
    assert key_paths(config) == {
        "overrides.cpu",
        "overrides.ephemeralStorage.sizeInGiB",
        "overrides.containerOverrides.environment",
        "tags",
    }
    assert key_paths({"overrides": {}}) == set()
    assert key_paths(config) <= EXECUTOR_CONFIG_KEY_PATHS


def test_the_request_carries_the_fallback_flag_through_json() -> None:
    request = run_request(queue="spot", fallback=True)
    assert RunRequest.model_validate_json(request.model_dump_json()).fallback is True
    assert run_request().fallback is False


def test_a_false_fallback_stays_out_of_the_message_so_older_readers_read_it() -> None:
    assert "fallback" not in run_request(queue="spot").model_dump_json()
    assert '"fallback":true' in run_request(queue="spot", fallback=True).model_dump_json()


def test_an_item_reads_one_placement_per_attempt() -> None:
    entry = {"attempt": 1, "placement": "FARGATE_SPOT"}
    item = TaskStateItem.model_validate(
        {"key": "k", "owner": "o", "state": "STARTING", "placements": [entry, entry, {**entry, "attempt": 2}]}
    )
    assert [p.attempt for p in item.placements] == [1, 2]


def test_a_profile_queue_is_told_what_its_profile_lets_it_choose() -> None:
    config = {"capacityProviderStrategy": [{"capacityProvider": "OTHER", "weight": 1}]}
    with pytest.raises(RunTaskConfigError) as raised:
        call_for(settings_with(), "spot", executor_config=config)
    assert "queue 'spot''s profile" in str(raised.value)
    assert "AllowedCapacityProviders" in str(raised.value)


def test_readiness_refuses_a_fargate_fallback_for_an_ec2_only_task_definition() -> None:
    strategy = [CapacityProviderItem(capacity_provider="FARGATE")]
    ec2_only = {"family": "gpu", "revision": 2, "compatibilities": ["EC2"]}
    (problem,) = _fallback_problems(strategy, ec2_only)
    assert "gpu:2 cannot run on its fallback capacity (FARGATE)" in problem
    assert _fallback_problems(strategy, {**ec2_only, "compatibilities": ["EC2", "FARGATE"]}) == []
