"""docs/configuration.md is generated from template.yaml and the executor's options, and says all of them.

The file in the repository must be exactly what the generator makes of today's sources (so a new
parameter or option cannot be left out of it), and what the generator makes must name every
parameter, rule, option and output with what a reader needs: type, default, constraints, the
environment variables of an option.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from samtranslator.yaml_helper import yaml_parse

from ecscp import config_reference
from executor_client.config import DEFAULTS, OPTIONS, SECTION, env_name
from executor_client.provider import get_provider_info

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "template.yaml"
REFERENCE = ROOT / "docs" / "configuration.md"


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    parsed: dict[str, Any] = yaml_parse(TEMPLATE.read_text())
    return parsed


@pytest.fixture(scope="module")
def generated(template: dict[str, Any]) -> str:
    return config_reference.render(template, get_provider_info())


def row(markdown: str, name: str) -> str:
    """The table row whose first cell is ``name``; fails the test if there is none or several."""
    rows = [line for line in markdown.splitlines() if line.startswith(f"| `{name}` |")]
    assert len(rows) == 1, f"{name}: {len(rows)} rows in the reference"
    return rows[0]


def section(markdown: str, heading: str) -> str:
    """The text under ``heading`` up to the next heading of the same or a higher level."""
    level = heading.split(" ", 1)[0]
    start = markdown.index(heading + "\n")
    following = re.search(rf"^#{{1,{len(level)}}} ", markdown[start + len(heading) :], re.MULTILINE)
    end = start + len(heading) + following.start() if following else len(markdown)
    return markdown[start:end]


def test_the_committed_reference_is_what_the_sources_give(generated: str) -> None:
    # GIVEN template.yaml and executor_client/config.py as they are now
    # WHEN the reference is generated
    # THEN docs/configuration.md is exactly that (else: run `make docs` and commit the file)
    assert REFERENCE.read_text() == generated, "docs/configuration.md is stale: run `make docs`"


def test_every_template_parameter_has_its_row_under_its_group(
    template: dict[str, Any], generated: str
) -> None:
    groups = template["Metadata"]["AWS::CloudFormation::Interface"]["ParameterGroups"]
    for group in groups:
        under = section(generated, f"### {group['Label']['default']}")
        for name in group["Parameters"]:
            assert row(under, name)
    for name, body in template["Parameters"].items():
        cells = row(generated, name)
        assert f"| {body.get('Type', 'String')} |" in cells
        if "Default" in body:
            default = str(body["Default"])
            assert (f"| `{default}` |" if default else "| (empty) |") in cells, name
        else:
            assert "| **required** |" in cells, name
        assert " ".join(str(body["Description"]).split()).replace("<", "&lt;") in cells


def test_parameter_constraints_are_those_cloudformation_applies(generated: str) -> None:
    assert "| 1 to 20 |" in row(generated, "MaxRunTaskAttempts")
    assert "| ≥ 360 |" in row(generated, "QueuedTimeoutSeconds")
    assert "one of `DEBUG`, `INFO`, `WARNING`, `ERROR`" in row(generated, "LogLevel")
    assert '`""` (empty)' in row(generated, "LaunchType")
    assert "at least 1 character |" in row(generated, "ContainerName")
    # A pattern's "|" would end the cell: it is escaped.
    assert r"matches `^(rate\|cron)\(.+\)$`" in row(generated, "ReconcileSchedule")
    # The template's ConstraintDescription, whole (a bare " #" in YAML would cut it short).
    assert "(letters, digits and _ - / . #), no wildcard: matches" in row(generated, "TaskLogGroupName")


def test_a_parameter_in_no_group_is_still_listed() -> None:
    template = {
        "Metadata": {
            "AWS::CloudFormation::Interface": {
                "ParameterGroups": [{"Label": {"default": "Named"}, "Parameters": ["Grouped"]}]
            }
        },
        "Parameters": {
            "Grouped": {"Type": "String", "Description": "in a group"},
            "Loose": {"Type": "Number", "Default": 2, "Description": "in none"},
        },
    }
    generated = config_reference.render(template, get_provider_info())
    assert row(section(generated, "### Named"), "Grouped")
    assert "| Number | `2` |" in row(section(generated, f"### {config_reference.UNGROUPED_LABEL}"), "Loose")


def test_every_rule_names_its_parameters_and_message(template: dict[str, Any], generated: str) -> None:
    for name, rule in template["Rules"].items():
        cells = row(generated, name)
        for assertion in rule["Assertions"]:
            assert " ".join(assertion["AssertDescription"].split()) in cells
    assert "| `SecurityGroups`, `AssignPublicIp`, `Subnets` |" in row(generated, "NetworkNeedsSubnets")


def test_every_executor_option_has_its_row_with_default_and_variables(generated: str) -> None:
    under = section(generated, f"## Executor options (`[{SECTION}]`)")
    for key, option in OPTIONS.items():
        cells = row(under, key)
        assert f"`{env_name(key)}`" in cells
        assert "`AIRFLOW__<TEAM>___ECS_CONTROL_PLANE__" + key.upper() + "`" in cells
        assert (f"| `{DEFAULTS[key]}` |" if DEFAULTS[key] else "| (none) |") in cells
        # The text Airflow's own `airflow config list` shows for the option.
        assert " ".join(option["description"].split()).replace("<", "&lt;") in cells


def test_the_options_are_those_airflow_lists(generated: str) -> None:
    # GIVEN the configuration Airflow's providers manager loads through the package's entry point
    # (what `airflow config list` shows)
    from airflow.providers_manager import ProvidersManager  # noqa: PLC0415 - heavy

    airflow_config = dict(ProvidersManager().provider_configs)["airflow-ecs-control-plane"]
    # WHEN the reference is rendered from it
    from_airflow = config_reference.render(yaml_parse(TEMPLATE.read_text()), {"config": airflow_config})
    # THEN it is the reference rendered from the provider info
    assert from_airflow == generated


def test_every_stack_output_is_listed(template: dict[str, Any], generated: str) -> None:
    under = section(generated, "## Stack outputs")
    for name in template["Outputs"]:
        assert row(under, name)


def test_check_mode_refuses_a_stale_file_and_passes_once_written(tmp_path: Path) -> None:
    # GIVEN a reference someone edited by hand
    output = tmp_path / "configuration.md"
    output.write_text(REFERENCE.read_text().replace("| `Cluster` |", "| `TheCluster` |"))
    # WHEN it is checked, THEN the check fails and leaves the file as it was
    assert config_reference.main(["--check", "--output", str(output)]) == 1
    assert "`TheCluster`" in output.read_text()
    # WHEN it is regenerated, THEN it passes the check
    assert config_reference.main(["--output", str(output)]) == 0
    assert config_reference.main(["--check", "--output", str(output)]) == 0
    assert output.read_text() == REFERENCE.read_text()


def test_check_mode_refuses_a_missing_file(tmp_path: Path) -> None:
    assert config_reference.main(["--check", "--output", str(tmp_path / "absent.md")]) == 1
