"""``ecscp migrate`` maps each provider option to its stack parameter or executor setting.

Each in the provider's meaning (``build_task_kwargs``): refused where the provider refuses to
start, warned about where a mapping exists but the meaning differs.
"""

from __future__ import annotations

import importlib
import json

import pytest
from samtranslator.yaml_helper import yaml_parse

from ecscp import migrate as m
from executor_client import config as executor_config
from tests.support.migration import (
    REQUIRED,
    TEMPLATE,
    migrated,
    only_refusal,
    provider_env,
    template_spec,
)


@pytest.fixture(scope="module")
def template() -> m.TemplateSpec:
    return template_spec()


# -- the run_task options -------------------------------------------------------------------------


def test_fargate_config_maps_each_option_to_its_parameter_and_executor_setting(
    template: m.TemplateSpec,
) -> None:
    # WHEN the Fargate airflow.cfg, which sets every option, is migrated
    result = migrated(template, "fargate.cfg")

    # THEN each run_task option is its parameter, in the provider's meaning
    assert dict(result.parameters) == {
        "Cluster": "airflow-prod",
        "ContainerName": "airflow-worker",
        "TaskDefinition": "airflow-task:12",
        "LaunchType": "FARGATE",
        "CapacityProviderStrategy": "",
        "PlatformVersion": "1.4.0",
        "AssignPublicIp": "true",
        "SecurityGroups": "sg-0a1b2c3d,sg-4e5f6a7b",
        "Subnets": "subnet-0123abcd,subnet-4567efab",
        "RunTaskKwargs": '{"propagateTags":"TASK_DEFINITION","enableExecuteCommand":true,'
        '"tags":[{"key":"team","value":"data"}],"overrides":{"ephemeralStorage":{"sizeInGiB":30}}}',
        "MaxRunTaskAttempts": "5",
    }
    # AND the others are the executor's own settings, by the executor's names
    env = executor_config.env_name
    assert dict(result.scheduler_env) == {
        "AIRFLOW__CORE__EXECUTOR": "executor_client.EcsControlPlaneExecutor",
        env(executor_config.QUEUE_URL): "<RunRequestQueueUrl>",
        env(executor_config.STATE_TABLE): "<StateTableName>",
        env(executor_config.REGION_NAME): "eu-west-1",
        env(executor_config.CONN_ID): "aws_ecs",
        env(executor_config.CONTAINER_NAME): "airflow-worker",
        env(executor_config.CHECK_HEALTH_ON_STARTUP): "False",
    }
    assert result.region == "eu-west-1"
    assert result.remove_cfg_section == "airflow.cfg"


@pytest.mark.parametrize("option", ["cluster", "container_name", "task_definition"])
def test_an_option_the_provider_requires_is_refused_when_missing(
    template: m.TemplateSpec, option: str
) -> None:
    env = {**REQUIRED, f"AIRFLOW__AWS_ECS_EXECUTOR__{option.upper()}": ""}
    refusal = only_refusal(template, **env)
    assert refusal.option == option
    assert "required" in refusal.reason


def test_a_cluster_arn_becomes_its_name_and_its_region_the_stacks(template: m.TemplateSpec) -> None:
    result = migrated(template, "ec2.env")
    assert result.parameters["Cluster"] == "airflow-ec2"
    assert result.region == "ap-southeast-2"
    assert any("cluster is an ARN" in warning for warning in result.warnings)


def test_region_name_other_than_the_cluster_arns_is_warned_about(template: m.TemplateSpec) -> None:
    result = migrated(template, "ec2.env", AIRFLOW__AWS_ECS_EXECUTOR__REGION_NAME="us-east-1")
    assert result.region == "us-east-1"
    assert any("differs from the cluster ARN's region" in warning for warning in result.warnings)


def test_a_task_definition_the_template_pattern_refuses_is_refused_naming_the_parameter(
    template: m.TemplateSpec,
) -> None:
    # GIVEN the provider's own example value, which TaskDefinition's AllowedPattern does not take
    refusal = only_refusal(template, **{**REQUIRED, **provider_env(task_definition="airflow-task:LATEST")})
    assert refusal.option == "task_definition"
    assert "TaskDefinition's AllowedPattern" in refusal.reason


def test_a_launch_type_outside_the_parameters_allowed_values_is_refused(template: m.TemplateSpec) -> None:
    refusal = only_refusal(template, **REQUIRED, AIRFLOW__AWS_ECS_EXECUTOR__LAUNCH_TYPE="fargate")
    assert refusal.option == "launch_type"
    assert "LaunchType must be one of" in refusal.reason


def test_ec2_keeps_its_launch_type_and_platform_version_which_the_stack_drops_as_the_provider(
    template: m.TemplateSpec,
) -> None:
    result = migrated(template, "ec2.env")
    assert result.parameters["LaunchType"] == "EC2"
    assert result.parameters["PlatformVersion"] == "LATEST"
    assert result.parameters["Subnets"] == result.parameters["SecurityGroups"] == ""


def test_capacity_provider_strategy_in_the_providers_literal_form_becomes_a_json_list(
    template: m.TemplateSpec,
) -> None:
    result = migrated(template, "capacity_providers.cfg")
    assert json.loads(result.parameters["CapacityProviderStrategy"]) == [
        {"capacityProvider": "FARGATE_SPOT", "weight": 4},
        {"capacityProvider": "FARGATE", "weight": 1, "base": 1},
    ]
    assert result.parameters["LaunchType"] == ""
    # The provider sent the option's text to RunTask, which botocore refuses: the user is told.
    assert any("botocore refuses" in warning for warning in result.warnings)


@pytest.mark.parametrize(
    "strategy",
    [
        '{"capacityProvider": "FARGATE"}',
        '["FARGATE"]',
        "[{'weight': 1}]",
        '[{"capacityProvider": "A", "x": 1}]',
        "[(",
    ],
)
def test_a_capacity_provider_strategy_ecs_cannot_take_is_refused(
    template: m.TemplateSpec, strategy: str
) -> None:
    env = {**REQUIRED, **provider_env(capacity_provider_strategy=strategy)}
    assert only_refusal(template, **env).option == "capacity_provider_strategy"


def test_capacity_provider_strategy_and_launch_type_together_are_refused_as_the_provider_refuses_them(
    template: m.TemplateSpec,
) -> None:
    refusal = only_refusal(template, "launch_type_and_capacity_provider.cfg")
    assert refusal.option == "capacity_provider_strategy"
    assert "mutually exclusive" in refusal.reason


def test_a_launch_type_in_run_task_kwargs_with_a_capacity_provider_strategy_is_refused(
    template: m.TemplateSpec,
) -> None:
    env = {
        **REQUIRED,
        **provider_env(capacity_provider_strategy='[{"capacityProvider":"FARGATE_SPOT"}]'),
        **provider_env(run_task_kwargs='{"launchType": "FARGATE"}'),
    }
    refusal = only_refusal(template, **env)
    assert "ECS refuses every RunTask with launchType and capacityProviderStrategy" in refusal.reason


def test_without_launch_type_or_strategy_both_stay_empty_for_the_control_planes_fallback(
    template: m.TemplateSpec,
) -> None:
    # GIVEN neither launch_type nor capacity_provider_strategy, anywhere
    result = migrated(template, "minimal.env")
    # THEN both parameters are empty: run_task then falls back as the provider did (the cluster's
    # default capacity provider strategy, else FARGATE; test_migrate_output checks the calls)
    assert result.parameters["LaunchType"] == ""
    assert result.parameters["CapacityProviderStrategy"] == ""
    # AND nothing is warned about, since the meaning is the provider's
    assert not any("LaunchType" in warning or "launch_type" in warning for warning in result.warnings)


def test_assign_public_ip_true_and_false_map_to_the_parameters_values(template: m.TemplateSpec) -> None:
    network = provider_env(subnets="subnet-0123abcd")
    assert (
        migrated(template, **REQUIRED, **network, **provider_env(assign_public_ip="True")).parameters[
            "AssignPublicIp"
        ]
        == "true"
    )
    assert (
        migrated(template, **REQUIRED, **network, **provider_env(assign_public_ip="False")).parameters[
            "AssignPublicIp"
        ]
        == "false"
    )


def test_assign_public_ip_other_than_exactly_true_is_disabled_as_in_the_provider_with_a_warning(
    template: m.TemplateSpec,
) -> None:
    env = {**REQUIRED, **provider_env(subnets="subnet-0123abcd", assign_public_ip="true")}
    result = migrated(template, **env)
    assert result.parameters["AssignPublicIp"] == "false"
    assert any("only for exactly 'True'" in warning for warning in result.warnings)


def test_security_groups_without_subnets_are_refused_as_the_provider_refuses_them(
    template: m.TemplateSpec,
) -> None:
    refusal = only_refusal(template, "security_groups_without_subnets.cfg")
    assert refusal.option == "security_groups"
    assert refusal.reason.startswith("At least one subnet is required to run a task.")


def test_assign_public_ip_without_subnets_is_refused_as_the_provider_refuses_it(
    template: m.TemplateSpec,
) -> None:
    refusal = only_refusal(template, "assign_public_ip_without_subnets.env")
    assert refusal.option == "assign_public_ip"
    assert refusal.source == "AIRFLOW__AWS_ECS_EXECUTOR__ASSIGN_PUBLIC_IP"
    assert refusal.reason.startswith("At least one subnet is required to run a task.")


def test_lower_case_false_without_subnets_is_refused_because_the_provider_builds_a_network_for_it(
    template: m.TemplateSpec,
) -> None:
    refusal = only_refusal(template, **REQUIRED, AIRFLOW__AWS_ECS_EXECUTOR__ASSIGN_PUBLIC_IP="false")
    assert refusal.option == "assign_public_ip"


def test_security_groups_and_subnets_are_trimmed_comma_separated_lists(template: m.TemplateSpec) -> None:
    env = {**REQUIRED, **provider_env(subnets=" subnet-a , subnet-b,", security_groups="sg-1,, sg-2")}
    result = migrated(template, **env)
    assert result.parameters["Subnets"] == "subnet-a,subnet-b"
    assert result.parameters["SecurityGroups"] == "sg-1,sg-2"
    assert sum("sent the ids as written" in warning for warning in result.warnings) == 2


# -- the other options ----------------------------------------------------------------------------


@pytest.mark.parametrize("attempts", ["0", "21"])
def test_max_run_task_attempts_outside_the_parameters_range_is_refused(
    template: m.TemplateSpec, attempts: str
) -> None:
    refusal = only_refusal(template, **REQUIRED, AIRFLOW__AWS_ECS_EXECUTOR__MAX_RUN_TASK_ATTEMPTS=attempts)
    assert refusal.option == "max_run_task_attempts"
    assert "MaxRunTaskAttempts must be at" in refusal.reason


def test_max_run_task_attempts_that_is_no_integer_is_refused(template: m.TemplateSpec) -> None:
    refusal = only_refusal(template, **REQUIRED, AIRFLOW__AWS_ECS_EXECUTOR__MAX_RUN_TASK_ATTEMPTS="3.0")
    assert refusal.option == "max_run_task_attempts"


def test_max_run_task_attempts_warns_that_a_failed_container_is_not_run_again(
    template: m.TemplateSpec,
) -> None:
    assert any("Airflow's retries" in warning for warning in migrated(template, "fargate.cfg").warnings)
    assert not any("Airflow's retries" in warning for warning in migrated(template, "ec2.env").warnings)


@pytest.mark.parametrize(
    ("value", "expected"), [("t", "True"), ("1", "True"), ("FALSE", "False"), ("0", "False")]
)
def test_check_health_on_startup_reads_as_airflows_getboolean(
    template: m.TemplateSpec, value: str, expected: str
) -> None:
    result = migrated(template, **REQUIRED, AIRFLOW__AWS_ECS_EXECUTOR__CHECK_HEALTH_ON_STARTUP=value)
    assert result.scheduler_env["AIRFLOW__ECS_CONTROL_PLANE__CHECK_HEALTH_ON_STARTUP"] == expected


def test_check_health_on_startup_airflow_cannot_read_is_refused(template: m.TemplateSpec) -> None:
    refusal = only_refusal(template, **REQUIRED, AIRFLOW__AWS_ECS_EXECUTOR__CHECK_HEALTH_ON_STARTUP="yes")
    assert refusal.option == "check_health_on_startup"


def test_conn_id_carries_over_and_empty_keeps_the_default_credential_chain(template: m.TemplateSpec) -> None:
    assert (
        migrated(template, "minimal.env").scheduler_env["AIRFLOW__ECS_CONTROL_PLANE__CONN_ID"]
        == "aws_default"
    )
    ec2 = migrated(template, "ec2.env")
    assert ec2.scheduler_env["AIRFLOW__ECS_CONTROL_PLANE__CONN_ID"] == ""
    assert any("boto3's default chain" in note and "SchedulerPolicy" in note for note in ec2.notes)


def test_region_name_unset_leaves_the_executors_region_to_its_connection(template: m.TemplateSpec) -> None:
    result = migrated(template, "minimal.env")
    assert result.region is None
    assert "AIRFLOW__ECS_CONTROL_PLANE__REGION_NAME" not in result.scheduler_env


# -- the scheduler's executor ---------------------------------------------------------------------


def test_the_executor_path_is_the_one_the_stack_tells_the_scheduler() -> None:
    outputs = yaml_parse(TEMPLATE.read_text())["Outputs"]
    [settings, _read_task_logs] = outputs["AirflowEnvironment"]["Value"]["Fn::Join"][1]
    assert f"AIRFLOW__CORE__EXECUTOR={m.EXECUTOR_PATH}\n" in settings["Fn::Sub"]
    module, _, name = m.EXECUTOR_PATH.rpartition(".")
    assert getattr(importlib.import_module(module), name).__name__ == name


def test_an_executor_alias_is_kept_so_tasks_naming_it_keep_working(template: m.TemplateSpec) -> None:
    result = migrated(template, "capacity_providers.cfg")
    assert (
        result.scheduler_env["AIRFLOW__CORE__EXECUTOR"]
        == "LocalExecutor,ecs:executor_client.EcsControlPlaneExecutor"
    )


def test_a_team_executor_is_refused_since_migrate_reads_no_team_configuration(
    template: m.TemplateSpec,
) -> None:
    executor = "LocalExecutor;team_a=airflow.providers.amazon.aws.executors.ecs.AwsEcsExecutor"
    refusal = only_refusal(template, **REQUIRED, AIRFLOW__CORE__EXECUTOR=executor)
    assert "team 'team_a'" in refusal.reason


def test_an_executor_setting_without_the_provider_is_replaced_with_a_warning(
    template: m.TemplateSpec,
) -> None:
    result = migrated(template, **REQUIRED, AIRFLOW__CORE__EXECUTOR="LocalExecutor")
    assert result.scheduler_env["AIRFLOW__CORE__EXECUTOR"] == m.EXECUTOR_PATH
    assert any("does not name" in warning for warning in result.warnings)
