"""The sample provider configurations of the ``ecscp migrate`` tests, and migrating them.

The samples in ``tests/unit/provider_configs/`` are real ``airflow.cfg`` files and env files;
between them they set every option the installed provider declares. The template is the real
one, so every value is checked against the constraints CloudFormation will apply.
"""

from __future__ import annotations

import functools
import json
import shlex
from pathlib import Path
from typing import Any

import pytest

from ecscp import migrate as m

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "template.yaml"
CONFIGS = ROOT / "tests" / "unit" / "provider_configs"
#: Sample configurations migrate accepts.
ACCEPTED = ["fargate.cfg", "capacity_providers.cfg", "ec2.env", "minimal.env", "fargate.cfg+overrides.env"]


@functools.cache
def template_spec() -> m.TemplateSpec:
    """The checkout's template.yaml, read once."""
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


def run_task_kwargs(template: m.TemplateSpec, value: Any, **env: str) -> m.Migration:
    """The required options with ``run_task_kwargs`` set to ``value`` (JSON-encoded unless a string)."""
    encoded = value if isinstance(value, str) else json.dumps(value)
    return migrated(template, **REQUIRED, **provider_env(run_task_kwargs=encoded), **env)


def overrides_of(line: str) -> dict[str, str]:
    """The parameters a ``sam deploy ... --parameter-overrides ...`` line passes."""
    argv = shlex.split(line)
    return m.parse_sam_overrides(argv[argv.index("--parameter-overrides") + 1 :])
