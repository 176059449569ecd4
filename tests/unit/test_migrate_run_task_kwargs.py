"""``ecscp migrate`` treats ``run_task_kwargs`` as the provider's ``build_task_kwargs`` does.

Keys are camelized, keys named like an option replace it, placement keys and roles become their
parameters, and what the functions would refuse at cold start is refused here.
"""

from __future__ import annotations

import json

import pytest

from ecscp import migrate as m
from tests.support.migration import migrated, provider_env, run_task_kwargs, template_spec


@pytest.fixture(scope="module")
def template() -> m.TemplateSpec:
    return template_spec()


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
