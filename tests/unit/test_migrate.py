"""``ecscp migrate``: an AwsEcsExecutor configuration becomes stack parameters and scheduler settings.

The sample configurations in ``provider_configs/`` are real ``airflow.cfg`` files and env files;
between them they set every option the installed provider declares. The template is the real
one, so every value is checked against the constraints CloudFormation will apply.
"""

from __future__ import annotations

import importlib
import json
import os
import re
import shlex
import subprocess
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
import tomllib
from samtranslator.yaml_helper import yaml_parse
from typer.testing import CliRunner

from ecs_control_plane.run_task_call import stack_run_task_kwargs
from ecs_control_plane.settings import ControlPlaneSettings
from ecscp import migrate as m
from ecscp.cli import app
from executor_client import config as executor_config

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "template.yaml"
CONFIGS = Path(__file__).resolve().parent / "provider_configs"
SAM_PYTHON = ROOT / ".tools" / "sam" / "bin" / "python"
#: Sample configurations migrate accepts.
ACCEPTED = ["fargate.cfg", "capacity_providers.cfg", "ec2.env", "minimal.env", "fargate.cfg+overrides.env"]


@pytest.fixture(scope="module")
def template() -> m.TemplateSpec:
    return m.TemplateSpec.from_text(TEMPLATE.read_text())


def provider_config(names: str = "", **env: str) -> m.ProviderConfig:
    """``a.cfg+b.env``: the sample files (at most one airflow.cfg), then ``env`` laid over them."""
    cfg_text, variables = None, {}
    for name in filter(None, names.split("+")):
        text = (CONFIGS / name).read_text()
        if name.endswith(".cfg"):
            cfg_text = text
        else:
            variables.update(m.parse_env_file(text))
    variables.update(env)
    return m.read_provider_config(variables, cfg_text, "airflow.cfg")


def provider_env(**options: str) -> dict[str, str]:
    return {f"AIRFLOW__AWS_ECS_EXECUTOR__{name.upper()}": value for name, value in options.items()}


REQUIRED = provider_env(cluster="airflow", container_name="airflow", task_definition="airflow-task:3")


def migrated(template: m.TemplateSpec, names: str = "", **env: str) -> m.Migration:
    return m.migrate(provider_config(names, **env), template)


def refusals(template: m.TemplateSpec, names: str = "", **env: str) -> list[m.Refusal]:
    with pytest.raises(m.MigrationRefusedError) as refused:
        migrated(template, names, **env)
    return list(refused.value.refusals)


def only_refusal(template: m.TemplateSpec, names: str = "", **env: str) -> m.Refusal:
    (refusal,) = refusals(template, names, **env)
    return refusal


def overrides_of(line: str) -> dict[str, str]:
    argv = shlex.split(line)
    return m.parse_sam_overrides(argv[argv.index("--parameter-overrides") + 1 :])


# -- the provider's options ---------------------------------------------------------------------


def test_every_option_the_installed_provider_declares_is_mapped() -> None:
    from airflow.providers.amazon.aws.executors.ecs.utils import (  # noqa: PLC0415 - heavy
        CONFIG_DEFAULTS,
        AllEcsConfigKeys,
        RunTaskKwargsConfigKeys,
    )
    from airflow.providers.amazon.get_provider_info import get_provider_info  # noqa: PLC0415 - heavy

    # GIVEN the provider's own lists of options and defaults
    declared = set(get_provider_info()["config"][m.PROVIDER_SECTION]["options"])  # type: ignore[no-untyped-call]
    # THEN migrate knows exactly those, with the same defaults
    # (each keys class iterates its own attributes only)
    assert declared == set(AllEcsConfigKeys()) | set(RunTaskKwargsConfigKeys()) == set(m.PROVIDER_OPTIONS)
    assert set(RunTaskKwargsConfigKeys()) == set(m.RUN_TASK_OPTIONS)
    assert dict(CONFIG_DEFAULTS) == m.PROVIDER_DEFAULTS


def test_the_sample_configs_set_every_provider_option() -> None:
    options: set[str] = set()
    for name in ACCEPTED:
        options |= set(provider_config(name).settings)
    assert options >= set(m.PROVIDER_OPTIONS)


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


def test_environment_overrides_airflow_cfg_as_in_airflow(template: m.TemplateSpec) -> None:
    # GIVEN the Fargate airflow.cfg and an environment that changes three options and the executor
    result = migrated(template, "fargate.cfg+overrides.env")

    # THEN the environment's values win
    assert result.parameters["TaskDefinition"] == "airflow-task:13"
    assert result.parameters["Subnets"] == "subnet-89abcdef"
    assert result.parameters["MaxRunTaskAttempts"] == "2"
    assert (
        result.scheduler_env["AIRFLOW__CORE__EXECUTOR"]
        == "CeleryExecutor,executor_client.EcsControlPlaneExecutor"
    )
    # AND the file's values stay where the environment is silent
    assert result.parameters["Cluster"] == "airflow-prod"
    # AND the provider's variables are listed for removal, with the section
    assert result.remove_env == (
        "AIRFLOW__AWS_ECS_EXECUTOR__MAX_RUN_TASK_ATTEMPTS",
        "AIRFLOW__AWS_ECS_EXECUTOR__SUBNETS",
        "AIRFLOW__AWS_ECS_EXECUTOR__TASK_DEFINITION",
    )


def test_only_the_upper_case_variable_names_airflow_reads_count(template: m.TemplateSpec) -> None:
    result = migrated(template, **REQUIRED, airflow__aws_ecs_executor__subnets="subnet-0123abcd")
    assert result.parameters["Subnets"] == ""


def test_env_file_reads_export_comments_and_shell_quoted_values() -> None:
    text = '# comment\n\nexport A=1\nB=\'{"x": [1, 2]}\'\nC="two words"\nD=\nE=a=b\n'
    assert m.parse_env_file(text) == {"A": "1", "B": '{"x": [1, 2]}', "C": "two words", "D": "", "E": "a=b"}
    with pytest.raises(ValueError, match="line 1"):
        m.parse_env_file("NOT A PAIR")


def test_an_airflow_cfg_airflow_cannot_read_is_refused() -> None:
    with pytest.raises(m.MigrationRefusedError, match="Airflow cannot read"):
        m.read_provider_config({}, "[aws_ecs_executor]\ncluster = a\ncluster = b\n")


@pytest.mark.parametrize("option", ["cluster", "container_name", "task_definition"])
def test_an_option_the_provider_requires_is_refused_when_missing(
    template: m.TemplateSpec, option: str
) -> None:
    env = {**REQUIRED, f"AIRFLOW__AWS_ECS_EXECUTOR__{option.upper()}": ""}
    refusal = only_refusal(template, **env)
    assert refusal.option == option
    assert "required" in refusal.reason


def test_no_provider_configuration_at_all_is_refused(template: m.TemplateSpec) -> None:
    refusal = only_refusal(template, AIRFLOW__CORE__EXECUTOR="LocalExecutor")
    assert "nothing to migrate" in refusal.reason


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


def test_without_launch_type_or_strategy_fargate_is_chosen_and_the_cluster_default_explained(
    template: m.TemplateSpec,
) -> None:
    result = migrated(template, "minimal.env")
    assert result.parameters["LaunchType"] == "FARGATE"
    assert any("default capacity provider strategy" in warning for warning in result.warnings)


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


# -- run_task_kwargs ------------------------------------------------------------------------------


def run_task_kwargs(template: m.TemplateSpec, value: Any, **env: str) -> m.Migration:
    encoded = value if isinstance(value, str) else json.dumps(value)
    return migrated(template, **REQUIRED, **provider_env(run_task_kwargs=encoded), **env)


def test_run_task_kwargs_snake_case_keys_are_camelized_as_the_provider_does(template: m.TemplateSpec) -> None:
    result = run_task_kwargs(
        template, {"propagate_tags": "TASK", "overrides": {"ephemeral_storage": {"size_in_gi_b": 21}}}
    )
    assert json.loads(result.parameters["RunTaskKwargs"]) == {
        "propagateTags": "TASK",
        "overrides": {"ephemeralStorage": {"sizeInGiB": 21}},
    }


def test_keys_inside_tags_are_kept_as_written_as_the_provider_keeps_them(template: m.TemplateSpec) -> None:
    # The provider's own example of run_task_kwargs, with a snake_case key inside "tags"
    result = run_task_kwargs(template, {"tags": {"cost_center": "1.0"}})
    assert json.loads(result.parameters["RunTaskKwargs"]) == {"tags": {"cost_center": "1.0"}}


def test_an_option_key_in_run_task_kwargs_that_is_no_string_is_refused(template: m.TemplateSpec) -> None:
    # The provider would split str(['subnet-a']) at its commas: never a working subnet list.
    with pytest.raises(m.MigrationRefusedError) as refused:
        run_task_kwargs(template, {"subnets": ["subnet-a"]})
    assert "run_task_kwargs key 'subnets'" in [r.source for r in refused.value.refusals]


def test_a_snake_case_key_that_camelizes_to_no_run_task_parameter_is_refused(
    template: m.TemplateSpec,
) -> None:
    # The provider sends enableEcsManagedTags (ECS's is enableECSManagedTags): botocore refuses it.
    with pytest.raises(m.MigrationRefusedError) as refused:
        run_task_kwargs(template, {"enable_ecs_managed_tags": True})
    (refusal,) = refused.value.refusals
    assert refusal.option == "run_task_kwargs"
    assert "enableEcsManagedTags" in refusal.reason


@pytest.mark.parametrize("key", ["startedBy", "clientToken"])
def test_run_task_kwargs_the_control_plane_owns_are_refused_naming_the_key(
    template: m.TemplateSpec, key: str
) -> None:
    with pytest.raises(m.MigrationRefusedError, match=key):
        run_task_kwargs(template, {key: "x"})


@pytest.mark.parametrize("value", ["{not json", "[1, 2]"])
def test_run_task_kwargs_that_is_no_json_object_is_refused_as_the_provider_fails_to_start(
    template: m.TemplateSpec, value: str
) -> None:
    with pytest.raises(m.MigrationRefusedError) as refused:
        run_task_kwargs(template, value)
    assert [r.option for r in refused.value.refusals] == ["run_task_kwargs"]


def test_run_task_kwargs_option_keys_replace_the_options_as_in_the_provider(template: m.TemplateSpec) -> None:
    # GIVEN run_task_kwargs with keys named like options (the provider merges both into one dict)
    result = run_task_kwargs(template, {"subnets": "subnet-9", "launch_type": "EC2"})
    assert result.parameters["Subnets"] == "subnet-9"
    assert result.parameters["LaunchType"] == "EC2"
    assert json.loads(result.parameters["RunTaskKwargs"]) == {}


def test_run_task_kwargs_camel_case_placement_keys_become_their_parameters(template: m.TemplateSpec) -> None:
    result = run_task_kwargs(
        template,
        {"taskDefinition": "other-family:2", "platformVersion": "1.3.0", "launchType": "FARGATE"},
        AIRFLOW__AWS_ECS_EXECUTOR__LAUNCH_TYPE="FARGATE",
    )
    assert result.parameters["TaskDefinition"] == "other-family:2"
    assert result.parameters["PlatformVersion"] == "1.3.0"
    assert json.loads(result.parameters["RunTaskKwargs"]) == {}


def test_run_task_kwargs_cluster_other_than_the_option_is_refused(template: m.TemplateSpec) -> None:
    with pytest.raises(m.MigrationRefusedError) as refused:
        run_task_kwargs(template, {"cluster": "elsewhere"})
    assert [r.source for r in refused.value.refusals] == ["run_task_kwargs key 'cluster'"]


def test_run_task_kwargs_network_configuration_is_dropped_when_the_options_build_one(
    template: m.TemplateSpec,
) -> None:
    network = {"awsvpcConfiguration": {"subnets": ["subnet-x"]}}
    result = run_task_kwargs(template, {"networkConfiguration": network}, **provider_env(subnets="subnet-a"))
    assert json.loads(result.parameters["RunTaskKwargs"]) == {}
    assert any("networkConfiguration dropped" in warning for warning in result.warnings)
    # Without network options, the provider used run_task_kwargs' network: so does the stack.
    alone = run_task_kwargs(template, {"networkConfiguration": network})
    assert json.loads(alone.parameters["RunTaskKwargs"]) == {"networkConfiguration": network}


def test_the_first_container_override_becomes_the_airflow_container_as_in_the_provider(
    template: m.TemplateSpec,
) -> None:
    overrides = {
        "containerOverrides": [{"name": "app", "memory": 512, "command": ["x"]}, {"name": "sidecar"}]
    }
    result = run_task_kwargs(template, {"overrides": overrides, "count": 1})
    assert json.loads(result.parameters["RunTaskKwargs"]) == {
        "overrides": {"containerOverrides": [{"name": "airflow", "memory": 512}, {"name": "sidecar"}]}
    }
    warnings = " | ".join(result.warnings)
    assert "named 'app'; the provider renamed it" in warnings
    assert "command dropped" in warnings
    assert "'count' dropped" in warnings


def test_roles_in_run_task_kwargs_become_the_roles_run_task_may_pass(template: m.TemplateSpec) -> None:
    result = migrated(template, "capacity_providers.cfg")
    assert result.parameters["TaskRoleArn"] == "arn:aws:iam::123456789012:role/airflow-task"
    assert result.parameters["ExecutionRoleArn"] == "arn:aws:iam::123456789012:role/airflow-exec"
    assert not any("TaskRoleArn" in note for note in result.notes)
    assert any("TaskRoleArn=<role ARN>" in note for note in migrated(template, "minimal.env").notes)


def test_a_role_the_template_pattern_refuses_is_refused(template: m.TemplateSpec) -> None:
    with pytest.raises(m.MigrationRefusedError, match="TaskRoleArn's AllowedPattern"):
        run_task_kwargs(template, {"overrides": {"taskRoleArn": "arn:aws:iam::123:role/*"}})


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


def test_an_option_the_provider_does_not_know_is_refused_naming_it(template: m.TemplateSpec) -> None:
    found = {refusal.option: refusal.reason for refusal in refusals(template, "unmappable.cfg")}
    assert set(found) == {"subnet", "security_groups_cmd"}
    assert "not an option of the provider's executor" in found["subnet"]
    assert "set security_groups itself" in found["security_groups_cmd"]


def test_every_refusal_is_reported_at_once(template: m.TemplateSpec) -> None:
    env = provider_env(
        cluster="airflow", launch_type="fargate", max_run_task_attempts="x", security_groups="sg-1"
    )
    options = {refusal.option for refusal in refusals(template, **env)}
    assert options == {
        "container_name",
        "task_definition",
        "launch_type",
        "max_run_task_attempts",
        "security_groups",
    }


# -- the scheduler's executor ---------------------------------------------------------------------


def test_the_executor_path_is_the_one_the_stack_tells_the_scheduler() -> None:
    outputs = yaml_parse(TEMPLATE.read_text())["Outputs"]
    assert f"AIRFLOW__CORE__EXECUTOR={m.EXECUTOR_PATH}\n" in outputs["AirflowEnvironment"]["Value"]["Fn::Sub"]
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


# -- what the stack then does -------------------------------------------------------------------


class ProviderConf:
    """The part of Airflow's conf that the provider's build_task_kwargs reads."""

    def __init__(self, config: m.ProviderConfig) -> None:
        self.config = config

    def get(self, section: str, key: str, fallback: Any = None) -> Any:
        assert section == m.PROVIDER_SECTION
        setting = self.config.settings.get(key)
        return setting.value if setting is not None else fallback


def stack_settings(parameters: dict[str, str]) -> ControlPlaneSettings:
    """The functions' settings for these parameters, wired as template.yaml wires them."""
    document = yaml_parse(TEMPLATE.read_text())
    defaults = {name: str(body.get("Default", "")) for name, body in document["Parameters"].items()}
    variables = document["Globals"]["Function"]["Environment"]["Variables"]
    env = {
        var: parameters.get(ref["Ref"], defaults.get(ref["Ref"], "x"))
        for var, ref in variables.items()
        if isinstance(ref, dict) and "Ref" in ref
    }
    env["ECSCP_CONTROL_PLANE_ID"] = "ecscp-test"
    return ControlPlaneSettings.from_env(env)


@pytest.mark.parametrize("names", ["fargate.cfg", "ec2.env", "minimal.env", "fargate.cfg+overrides.env"])
def test_the_stack_sends_the_run_task_call_the_provider_built(template: m.TemplateSpec, names: str) -> None:
    from airflow.providers.amazon.aws.executors.ecs import ecs_executor_config  # noqa: PLC0415 - heavy

    # GIVEN the provider's own build_task_kwargs on a sample, on a cluster without default strategy
    config = provider_config(names)
    hook = mock.MagicMock()
    hook.return_value.conn.describe_clusters.return_value = {"clusters": [{}]}
    with mock.patch.object(ecs_executor_config, "EcsHook", hook):
        provider = ecs_executor_config.build_task_kwargs(ProviderConf(config))
    # WHEN the migrated parameters are deployed
    ours = stack_run_task_kwargs(stack_settings(dict(m.migrate(config, template).parameters)))
    # THEN the stack's call is the provider's (the cluster, count and command are set per start)
    for key in ("cluster", "count"):
        provider.pop(key)
    provider["overrides"]["containerOverrides"][0].pop("command")
    assert ours == provider


# -- output ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("names", ACCEPTED)
def test_the_sam_deploy_line_round_trips_through_shlex_and_each_value_passes_the_template(
    template: m.TemplateSpec, names: str
) -> None:
    result = migrated(template, names)
    line = m.render_sam_deploy(result)

    assert "\n" not in line
    assert shlex.split(line)[:2] == ["sam", "deploy"]
    assert overrides_of(line) == dict(result.parameters)
    for name, value in overrides_of(line).items():
        assert template.parameters[name].violation(value) is None, name
    assert ("--region" in shlex.split(line)) == (result.region is not None)


def test_json_values_survive_sam_which_unescapes_quotes(template: m.TemplateSpec) -> None:
    tags = [{"key": "note", "value": 'it\'s "quoted", a \\ and a  double  space'}]
    result = run_task_kwargs(template, {"tags": tags})
    assert json.loads(overrides_of(m.render_sam_deploy(result))["RunTaskKwargs"]) == {"tags": tags}


@pytest.mark.skipif(not SAM_PYTHON.exists(), reason="the SAM CLI is not installed (make sam-tools)")
def test_the_sam_cli_reads_the_same_parameters(template: m.TemplateSpec) -> None:
    # GIVEN the sam deploy line and the samconfig block of a config with JSON values and quotes
    tags = [{"key": "note", "value": 'it\'s "quoted" \\ here'}]
    result = migrated(
        template, "capacity_providers.cfg", **provider_env(run_task_kwargs=json.dumps({"tags": tags}))
    )
    argv = shlex.split(m.render_sam_deploy(result))
    tokens = argv[argv.index("--parameter-overrides") + 1 :]
    listed = tomllib.loads(m.render_samconfig(result))["default"]["deploy"]["parameters"][
        "parameter_overrides"
    ]
    script = (
        "import json, sys\n"
        "from samcli.cli.types import CfnParameterOverridesType\n"
        "for values in json.load(sys.stdin):\n"
        "    print(json.dumps(CfnParameterOverridesType().convert(tuple(values), None, None)))\n"
    )
    # WHEN the SAM CLI's own parser reads them
    done = subprocess.run(
        [str(SAM_PYTHON), "-c", script],
        input=json.dumps([tokens, listed]),
        capture_output=True,
        text=True,
        check=True,
    )
    # THEN it gets exactly the migrated parameters
    assert [json.loads(line) for line in done.stdout.splitlines()] == [dict(result.parameters)] * 2


@pytest.mark.parametrize("names", ACCEPTED)
def test_the_samconfig_block_is_toml_with_the_same_parameters(template: m.TemplateSpec, names: str) -> None:
    result = migrated(template, names)
    table = tomllib.loads(m.render_samconfig(result))["default"]["deploy"]["parameters"]
    assert m.parse_sam_overrides(table["parameter_overrides"]) == dict(result.parameters)
    assert table["capabilities"] == "CAPABILITY_IAM"
    assert table.get("region") == result.region


def test_the_output_sets_the_executor_and_removes_the_providers_settings(template: m.TemplateSpec) -> None:
    text = m.render(migrated(template, "fargate.cfg+overrides.env"))
    lines = text.splitlines()
    assert "AIRFLOW__ECS_CONTROL_PLANE__QUEUE_URL=<RunRequestQueueUrl>" in lines
    assert "AIRFLOW__AWS_ECS_EXECUTOR__SUBNETS" in lines
    assert "# and the [aws_ecs_executor] section of airflow.cfg" in lines


# -- the template ---------------------------------------------------------------------------------


def test_the_parameter_constraints_come_from_the_template_itself(template: m.TemplateSpec) -> None:
    # GIVEN a template whose Cluster pattern allows fewer names
    text = TEMPLATE.read_text().replace("^[a-zA-Z0-9_-]{1,255}$", "^[a-z]{1,5}$", 1)
    narrower = m.TemplateSpec.from_text(text)
    # THEN the same configuration is refused by it, and not by the real one
    assert migrated(template, "minimal.env").parameters["Cluster"] == "airflow"
    refusal = only_refusal(narrower, **{**REQUIRED, **provider_env(cluster="airflow1")})
    assert refusal.option == "cluster"
    assert "Cluster's AllowedPattern ^[a-z]{1,5}$" in refusal.reason


@pytest.mark.parametrize(
    ("body", "refused", "accepted", "expected"),
    [
        ({"Type": "Number", "MinValue": 1}, "x", "1", "is a Number"),
        ({"Type": "Number", "MinValue": 1}, "0", "1", "at least 1"),
        ({"Type": "Number", "MaxValue": 20}, "21", "20", "at most 20"),
        ({"AllowedValues": ["a", ""]}, "b", "", "one of"),
        ({"AllowedPattern": "^[a-z]+$"}, "a1", "ab", "AllowedPattern"),
        ({"MinLength": 2}, "a", "ab", "at least 2 characters"),
        ({"MaxLength": 2}, "abc", "ab", "at most 2 characters"),
    ],
)
def test_a_parameter_constraint_refuses_what_cloudformation_refuses(
    body: dict[str, Any], refused: str, accepted: str, expected: str
) -> None:
    spec = m.ParameterSpec.from_template("P", body)
    assert expected in (spec.violation(refused) or "")
    assert spec.violation(accepted) is None


def test_a_value_sam_cannot_pass_is_refused(template: m.TemplateSpec) -> None:
    # SAM reads Name="a\" as an unterminated quote: there is no way to pass a trailing backslash.
    refusal = only_refusal(template, **{**REQUIRED, **provider_env(container_name="airflow\\")})
    assert refusal.option == "container_name"
    assert "cannot be passed to sam deploy" in refusal.reason


def test_a_template_without_the_projects_parameters_is_not_taken() -> None:
    with pytest.raises(m.TemplateMismatchError, match="Cluster"):
        m.TemplateSpec.from_text("Parameters:\n  Other:\n    Type: String\nOutputs: {}\n")
    with pytest.raises(m.TemplateMismatchError):
        m.TemplateSpec.from_text("Resources: [")


def test_the_default_template_is_the_checkout_one() -> None:
    assert m.DEFAULT_TEMPLATE == TEMPLATE


# -- the command ------------------------------------------------------------------------------------


def run_cli(*args: str, env: dict[str, str] | None = None) -> Any:
    with mock.patch.dict(os.environ, env or {}, clear=True):
        return CliRunner().invoke(app, ["migrate", "--template", str(TEMPLATE), *args])


def test_cli_prints_the_sam_deploy_line_and_the_scheduler_environment() -> None:
    result = run_cli(
        "--airflow-cfg", str(CONFIGS / "fargate.cfg"), "--env-file", str(CONFIGS / "overrides.env")
    )
    assert result.exit_code == 0, result.output
    sam_lines = [line for line in result.stdout.splitlines() if line.startswith("sam deploy ")]
    assert len(sam_lines) == 1
    assert overrides_of(sam_lines[0])["TaskDefinition"] == "airflow-task:13"
    assert "AIRFLOW__CORE__EXECUTOR=CeleryExecutor,executor_client.EcsControlPlaneExecutor" in result.stdout
    # Warnings go to stderr, so stdout stays pipeable.
    assert "warning: max_run_task_attempts=2" in result.stderr
    assert "warning" not in result.stdout


def test_cli_reads_the_process_environment_without_an_env_file() -> None:
    result = run_cli(env={**REQUIRED, "AIRFLOW__AWS_ECS_EXECUTOR__SUBNETS": "subnet-0123abcd"})
    assert result.exit_code == 0, result.output
    assert "AIRFLOW__AWS_ECS_EXECUTOR__SUBNETS" in result.stdout.splitlines()


def test_cli_samconfig_format_prints_toml() -> None:
    result = run_cli("--format", "samconfig", "--env-file", str(CONFIGS / "ec2.env"))
    assert result.exit_code == 0, result.output
    toml_part = result.stdout.split("\n\n")[0]
    assert tomllib.loads(toml_part)["default"]["deploy"]["parameters"]["region"] == "ap-southeast-2"


def test_cli_refusal_exits_2_naming_the_option() -> None:
    result = run_cli("--airflow-cfg", str(CONFIGS / "security_groups_without_subnets.cfg"))
    assert result.exit_code == 2
    assert re.search(
        r"refused: \[aws_ecs_executor\] security_groups \(.*\): At least one subnet", result.stderr
    )
    assert result.stdout == ""


def test_cli_a_foreign_template_exits_1(tmp_path: Path) -> None:
    foreign = tmp_path / "template.yaml"
    foreign.write_text("Parameters:\n  Other:\n    Type: String\n")
    result = CliRunner().invoke(app, ["migrate", "--template", str(foreign)])
    assert result.exit_code == 1
    assert "is it this project's template.yaml" in result.stderr
