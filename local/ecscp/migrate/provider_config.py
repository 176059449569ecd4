"""The provider executor's configuration as Airflow reads it, and a refusal of one of its options.

``AwsEcsExecutor`` reads ``[aws_ecs_executor]`` of ``airflow.cfg`` and the
``AIRFLOW__AWS_ECS_EXECUTOR__*`` variables, which win; its option names and defaults are kept
here as the provider declares them (a test compares them with the installed provider).
"""

from __future__ import annotations

import configparser
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final

PROVIDER_EXECUTOR: Final = "airflow.providers.amazon.aws.executors.ecs.ecs_executor.AwsEcsExecutor"
PROVIDER_SECTION: Final = "aws_ecs_executor"
PROVIDER_ENV_PREFIX: Final = f"AIRFLOW__{PROVIDER_SECTION.upper()}__"
CORE_EXECUTOR_ENV: Final = "AIRFLOW__CORE__EXECUTOR"

#: The provider's run_task options (``RunTaskKwargsConfigKeys``); keys of the same name at the top
#: of ``run_task_kwargs`` replace them, since the provider merges the two into one dict.
RUN_TASK_OPTIONS: Final = (
    "assign_public_ip",
    "capacity_provider_strategy",
    "cluster",
    "container_name",
    "launch_type",
    "platform_version",
    "security_groups",
    "subnets",
    "task_definition",
)
#: Every option of ``[aws_ecs_executor]`` (``AllEcsConfigKeys``, and the provider's config section).
PROVIDER_OPTIONS: Final = (
    *RUN_TASK_OPTIONS,
    "conn_id",
    "check_health_on_startup",
    "max_run_task_attempts",
    "region_name",
    "run_task_kwargs",
)
#: The provider's ``CONFIG_DEFAULTS``.
PROVIDER_DEFAULTS: Final = {
    "conn_id": "aws_default",
    "max_run_task_attempts": "3",
    "assign_public_ip": "False",
    "platform_version": "LATEST",
    "check_health_on_startup": "True",
}


@dataclass(frozen=True)
class Refusal:
    """One option that cannot be migrated, and why."""

    option: str
    source: str
    reason: str

    def __str__(self) -> str:
        return f"[{PROVIDER_SECTION}] {self.option} ({self.source}): {self.reason}"


class MigrationRefusedError(ValueError):
    """The configuration cannot be migrated: every refused option, each with its reason."""

    def __init__(self, refusals: Sequence[Refusal]) -> None:
        self.refusals = tuple(refusals)
        super().__init__("; ".join(str(refusal) for refusal in self.refusals))


@dataclass(frozen=True)
class ProviderSetting:
    """An option's value as Airflow would read it, and where it came from."""

    value: str
    source: str


@dataclass(frozen=True)
class ProviderConfig:
    """The provider executor's settings, environment over ``airflow.cfg`` as in Airflow."""

    settings: Mapping[str, ProviderSetting]
    #: The ``AIRFLOW__AWS_ECS_EXECUTOR__*`` variables that were set: the scheduler drops them.
    env_names: tuple[str, ...] = ()
    #: The ``airflow.cfg`` whose ``[aws_ecs_executor]`` section was read, if it had one.
    cfg_with_section: str | None = None
    core_executor: ProviderSetting | None = None


def parse_env_file(text: str) -> dict[str, str]:
    """``NAME=VALUE`` lines (``export`` allowed, ``#`` comments); a quoted value reads as in a shell."""
    values: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        name, sep, value = stripped.removeprefix("export ").lstrip().partition("=")
        if not sep or not name.strip():
            raise ValueError(f"line {number}: expected NAME=VALUE, got {line!r}")
        if value[:1] in ("'", '"'):
            words = shlex.split(value)
            if len(words) != 1:
                raise ValueError(f"line {number}: the quoted value of {name.strip()} is not one word")
            value = words[0]
        values[name.strip()] = value
    return values


def read_provider_config(
    env: Mapping[str, str], cfg_text: str | None = None, cfg_label: str = "airflow.cfg"
) -> ProviderConfig:
    """What the provider's executor would read from ``cfg_text`` (an ``airflow.cfg``) and ``env``.

    Only the exact upper-case ``AIRFLOW__AWS_ECS_EXECUTOR__<OPTION>`` names count, as in Airflow.
    """
    settings: dict[str, ProviderSetting] = {}
    core_executor: ProviderSetting | None = None
    cfg_with_section: str | None = None
    if cfg_text is not None:
        # Airflow's parser is a ConfigParser: option names case-insensitive, %-interpolation.
        parser = configparser.ConfigParser()
        try:
            parser.read_string(cfg_text, source=cfg_label)
            if parser.has_section(PROVIDER_SECTION):
                cfg_with_section = cfg_label
                for option in parser.options(PROVIDER_SECTION):
                    settings[option] = ProviderSetting(parser.get(PROVIDER_SECTION, option), cfg_label)
            if parser.has_option("core", "executor"):
                core_executor = ProviderSetting(parser.get("core", "executor"), f"{cfg_label} [core]")
        except configparser.Error as exc:
            refusal = Refusal("*", cfg_label, f"Airflow cannot read this file: {exc}")
            raise MigrationRefusedError([refusal]) from None
    env_names = tuple(sorted(name for name in env if name.startswith(PROVIDER_ENV_PREFIX)))
    for name in env_names:
        settings[name.removeprefix(PROVIDER_ENV_PREFIX).lower()] = ProviderSetting(env[name], name)
    if CORE_EXECUTOR_ENV in env:
        core_executor = ProviderSetting(env[CORE_EXECUTOR_ENV], CORE_EXECUTOR_ENV)
    return ProviderConfig(settings, env_names, cfg_with_section, core_executor)
