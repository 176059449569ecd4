"""What ``ecscp migrate`` prints, and what the stack then does with it.

The printed parameters give the run_task call the provider built, survive ``sam deploy`` and
``samconfig.toml`` unchanged, and the command keeps stdout for them (warnings go to stderr).
"""

from __future__ import annotations

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

from ecs_control_plane.contract import CONTROL_PLANE_TAG, RESERVED_ENV_NAMES
from ecs_control_plane.readiness import default_placement
from ecs_control_plane.run_task_call import build_run_task_call
from ecs_control_plane.settings import ControlPlaneSettings
from ecscp import migrate as m
from ecscp.cli import app
from ecscp.local.cloudformation.rules import broken_rules
from tests.support.migration import (
    ACCEPTED,
    CONFIGS,
    REQUIRED,
    ROOT,
    TEMPLATE,
    migrated,
    overrides_of,
    provider_config,
    provider_env,
    run_task_kwargs,
    template_spec,
)
from tests.support.requests import run_request

SAM_PYTHON = ROOT / ".tools" / "sam" / "bin" / "python"


@pytest.fixture(scope="module")
def template() -> m.TemplateSpec:
    return template_spec()


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
    # Without the optional infrastructure (CreatesTaskDefinition...), an Fn::If gives its else value.
    refs = {
        var: v["Fn::If"][2] if isinstance(v, dict) and "Fn::If" in v else v for var, v in variables.items()
    }
    env = {
        var: parameters.get(ref["Ref"], defaults.get(ref["Ref"], "x"))
        for var, ref in refs.items()
        if isinstance(ref, dict) and "Ref" in ref
    }
    env["ECSCP_CONTROL_PLANE_ID"] = "ecscp-test"
    return ControlPlaneSettings.from_env(env)


def control_plane_call(settings: ControlPlaneSettings, cluster: dict[str, Any]) -> dict[str, Any]:
    """The control plane's run_task call on ``cluster`` (as DescribeClusters gives it), less what
    it sets per start: cluster, count, token, startedBy, its tag, the command and its variables."""
    call = build_run_task_call(settings, run_request(), fallback_launch_type=default_placement(cluster))
    for key in ("cluster", "count", "clientToken", "startedBy"):
        call.pop(key)
    if tags := [tag for tag in call.pop("tags") if tag["key"] != CONTROL_PLANE_TAG]:
        call["tags"] = tags
    airflow = call["overrides"]["containerOverrides"][0]
    airflow.pop("command")
    if environment := [e for e in airflow.pop("environment") if e["name"] not in RESERVED_ENV_NAMES]:
        airflow["environment"] = environment
    return call


CLUSTERS = {
    "no-default-strategy": {},
    "default-strategy": {
        "defaultCapacityProviderStrategy": [{"capacityProvider": "FARGATE_SPOT", "weight": 1}]
    },
}


@pytest.mark.parametrize("cluster", CLUSTERS.values(), ids=CLUSTERS.keys())
@pytest.mark.parametrize("names", ["fargate.cfg", "ec2.env", "minimal.env", "fargate.cfg+overrides.env"])
def test_the_stack_sends_the_run_task_call_the_provider_built(
    template: m.TemplateSpec, names: str, cluster: dict[str, Any]
) -> None:
    from airflow.providers.amazon.aws.executors.ecs import ecs_executor_config  # noqa: PLC0415 - heavy

    # GIVEN the provider's own build_task_kwargs on a sample, on a cluster with or without a
    # default capacity provider strategy
    config = provider_config(names)
    hook = mock.MagicMock()
    hook.return_value.conn.describe_clusters.return_value = {"clusters": [cluster]}
    with mock.patch.object(ecs_executor_config, "EcsHook", hook):
        provider = ecs_executor_config.build_task_kwargs(ProviderConf(config))
    # WHEN the migrated parameters are deployed and a task is started on the same cluster
    ours = control_plane_call(stack_settings(dict(m.migrate(config, template).parameters)), cluster)
    # THEN the control plane's call is the provider's (the cluster, count and command are per start)
    for key in ("cluster", "count"):
        provider.pop(key)
    provider["overrides"]["containerOverrides"][0].pop("command")
    if not {"launchType", "capacityProviderStrategy"} & provider.keys():
        # The one difference: the provider also sent platform_version when ECS applies the
        # cluster's default strategy; run_task sends it only with its FARGATE fallback.
        assert "platformVersion" not in ours
        provider.pop("platformVersion")
    assert ours == provider


def test_the_migrated_parameters_break_none_of_the_templates_rules(template: m.TemplateSpec) -> None:
    document = yaml_parse(TEMPLATE.read_text())
    defaults = {name: str(body.get("Default", "")) for name, body in document["Parameters"].items()}
    for names in ACCEPTED:
        assert broken_rules(document, defaults | dict(migrated(template, names).parameters)) == [], names


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
