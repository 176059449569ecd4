"""The scheduler's side: ``[core] executor`` with the provider's entry replaced, and its health check."""

from __future__ import annotations

from typing import Final

from .options import Findings, Options
from .provider_config import PROVIDER_EXECUTOR, ProviderSetting, Refusal

#: The executor as ``[core] executor`` names it (the stack's AirflowEnvironment output says the same).
EXECUTOR_PATH: Final = "executor_client.EcsControlPlaneExecutor"


def check_health(options: Options, findings: Findings) -> str | None:
    """``check_health_on_startup`` as Airflow reads it, for the executor's option of that name."""
    given = options.defaulted("check_health_on_startup")
    # Airflow's conf.getboolean, which both executors use.
    value = str(given.value).lower().strip().split("#")[0].strip()
    if value in ("t", "true", "1"):
        return "True"
    if value in ("f", "false", "0"):
        return "False"
    findings.refuse(given, f"not a boolean ({given.value!r}): Airflow refuses it (conf.getboolean)")
    return None


def core_executor(setting: ProviderSetting | None, findings: Findings) -> str:
    """``[core] executor`` with the provider's executor replaced by this one (its alias kept)."""
    if setting is None:
        return EXECUTOR_PATH
    replaced = False
    teams = []
    for team_part in setting.value.split(";"):
        team, sep, names = team_part.partition("=") if "=" in team_part else ("", "", team_part)
        entries = []
        for entry in (name.strip() for name in names.split(",")):
            alias, colon, path = entry.rpartition(":")
            if not (path.startswith("airflow.providers.amazon.") and path.endswith(".AwsEcsExecutor")):
                entries.append(entry)
                continue
            if team:
                reason = (
                    f"team {team!r} runs AwsEcsExecutor with its team's own configuration, which migrate "
                    "does not read: migrate that team's settings separately"
                )
                findings.refusals.append(Refusal("(core executor)", setting.source, reason))
            entries.append(f"{alias}{colon}{EXECUTOR_PATH}")
            replaced = True
        teams.append(f"{team}{sep}{','.join(entries)}")
    if not replaced:
        findings.warnings.append(
            f"{setting.source} executor is {setting.value!r}, which does not name {PROVIDER_EXECUTOR}: "
            f"printed {EXECUTOR_PATH} alone"
        )
        return EXECUTOR_PATH
    return ";".join(teams)
