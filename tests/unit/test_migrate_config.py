"""``ecscp migrate`` reads the provider's configuration as Airflow does, and the template as SAM does.

Before anything is mapped: the options are exactly the provider's, the environment wins over
``airflow.cfg``, every refusal is reported at once, and the parameter constraints are the template's.
"""

from __future__ import annotations

from typing import Any

import pytest

from ecscp import migrate as m
from tests.support.migration import (
    ACCEPTED,
    REQUIRED,
    TEMPLATE,
    migrated,
    only_refusal,
    provider_config,
    provider_env,
    refusals,
    template_spec,
)


@pytest.fixture(scope="module")
def template() -> m.TemplateSpec:
    return template_spec()


# -- reading the provider's configuration ---------------------------------------------------------


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


def test_no_provider_configuration_at_all_is_refused(template: m.TemplateSpec) -> None:
    refusal = only_refusal(template, AIRFLOW__CORE__EXECUTOR="LocalExecutor")
    assert "nothing to migrate" in refusal.reason


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
