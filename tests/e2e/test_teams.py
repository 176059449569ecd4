"""End to end: Airflow 3.3 with two teams, each team's DAGs run by its own EcsControlPlaneExecutor.

Real Airflow in multi-team mode (``[core] multi_team``): the teams exist in the metadata
database, each team's DAGs come from a DAG bundle that names the team, and ``[core] executor``
gives each team this executor (after a global one, as Airflow requires). The scheduler's
executor loader makes one executor per team, each reading its team's
``AIRFLOW__<TEAM>___ECS_CONTROL_PLANE__*`` settings. All of them share one local stack (the
documented shared-stack shape), so each team's tasks must run under that team's owner, and the
owners must differ.
"""

from __future__ import annotations

import json
import re
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from ecs_control_plane.contract import TaskKey
from ecscp.local.airflow import LocalAirflow
from ecscp.local.airflow_api import TERMINAL_RUN_STATES, TaskInstance
from ecscp.local.stack import LocalStack, LocalStackConfig
from ecscp.project import PROJECT_ROOT
from executor_client import config as cfg

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(480)]

TEAMS = ("team_a", "team_b")
EXECUTOR = "executor_client.EcsControlPlaneExecutor"
STARTUP_TIMEOUT = 180.0
RUN_TIMEOUT = 180.0


def dag_id_of(team: str) -> str:
    return f"ecscp_{team}_dag"


def dag_file(team: str) -> str:
    return textwrap.dedent(
        f'''
        import pendulum
        from airflow.sdk import dag, task

        @dag(dag_id="{dag_id_of(team)}", schedule=None, start_date=pendulum.datetime(2024, 1, 1, tz="UTC"))
        def team_dag():
            @task
            def hello() -> str:
                return "{team}"

            hello()

        team_dag()
        '''
    )


def team_environment(stack_environment: dict[str, str]) -> dict[str, str]:
    """The stack's executor settings, given to each team (and kept for the global executor)."""
    env = dict(stack_environment)
    prefix = f"AIRFLOW__{cfg.SECTION.upper()}__"
    for name, value in stack_environment.items():
        if name.startswith(prefix):
            key = name[len(prefix) :].lower()
            for team in TEAMS:
                env[cfg.env_name(key, team)] = value
    env["AIRFLOW__CORE__EXECUTOR"] = ";".join([EXECUTOR, *(f"{team}={EXECUTOR}" for team in TEAMS)])
    return env


@dataclass
class TeamsRun:
    run_states: dict[str, str]
    tasks: dict[str, list[TaskInstance]]
    #: team -> owners of the state items of that team's DAG
    item_owners: dict[str, set[str]]
    scheduler_log: str


def owners_of_items(stack: LocalStack) -> dict[str, set[str]]:
    dynamodb = stack.client("dynamodb")
    table = stack.outputs["StateTableName"]
    owners: dict[str, set[str]] = {team: set() for team in TEAMS}
    items: list[dict[str, Any]] = []
    kwargs: dict[str, Any] = {"TableName": table}
    while True:
        page = dynamodb.scan(**kwargs)
        items += page.get("Items", [])
        if "LastEvaluatedKey" not in page:
            break
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
    for item in items:
        key = item.get("key", {}).get("S", "")
        owner = item.get("owner", {}).get("S")
        if owner is None or key.startswith("_"):
            continue
        try:
            dag_id = TaskKey.parse(key).dag_id
        except ValueError:
            continue
        for team in TEAMS:
            if dag_id == dag_id_of(team):
                owners[team].add(owner)
    return owners


def run_two_teams(state_dir: Path) -> TeamsRun:
    dags = state_dir.parent / "dags"
    bundles = []
    for team in TEAMS:
        folder = dags / team
        folder.mkdir(parents=True)
        (folder / f"{team}.py").write_text(dag_file(team))
        bundles.append(
            {
                "name": f"{team}_dags",
                "classpath": "airflow.dag_processing.bundles.local.LocalDagBundle",
                "kwargs": {"path": str(folder)},
                "team_name": team,
            }
        )
    teams_config = {
        "AIRFLOW__CORE__MULTI_TEAM": "True",
        "AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST": json.dumps(bundles),
    }
    airflow = LocalAirflow(state_dir, dags)
    # The containers resolve each workload's bundle by name, as the dag-processor did.
    stack = LocalStack(
        LocalStackConfig(
            project_root=PROJECT_ROOT,
            state_dir=state_dir / "stack",
            task_env={**airflow.worker_environment(), **teams_config},
        )
    )
    try:
        airflow.begin_migration()
        stack.start()
        for team in TEAMS:
            airflow.cli(["teams", "create", team], teams_config)
        airflow.start({**team_environment(stack.airflow_environment()), **teams_config}, STARTUP_TIMEOUT)
        wanted = {dag_id_of(team) for team in TEAMS}
        airflow.wait_until(
            lambda: wanted <= {d["dag_id"] for d in airflow.api.dags()}, STARTUP_TIMEOUT, "both teams' DAGs"
        )
        airflow.wait_until_healthy(timeout=STARTUP_TIMEOUT)
        runs = dict(zip(TEAMS, airflow.trigger_all([dag_id_of(t) for t in TEAMS]), strict=True))

        def ended() -> bool:
            stack.check()
            return all(
                airflow.api.run_state(run.dag_id, run.run_id) in TERMINAL_RUN_STATES for run in runs.values()
            )

        airflow.wait_until(ended, RUN_TIMEOUT, "both teams' runs to end", interval=1)
        run_states = {team: airflow.api.run_state(run.dag_id, run.run_id) for team, run in runs.items()}
        tasks = {team: airflow.api.task_instances(run.dag_id, run.run_id) for team, run in runs.items()}
        item_owners = owners_of_items(stack)
    finally:
        try:
            airflow.stop()
        finally:
            stack.stop()
    return TeamsRun(
        run_states=run_states,
        tasks=tasks,
        item_owners=item_owners,
        scheduler_log=(airflow.logs_dir / "scheduler.log").read_text(errors="replace"),
    )


@pytest.fixture(scope="module")
def teams_run(tmp_path_factory: pytest.TempPathFactory) -> TeamsRun:
    return run_two_teams(tmp_path_factory.mktemp("teams") / "state")


def test_each_teams_run_succeeds(teams_run: TeamsRun):
    assert teams_run.run_states == dict.fromkeys(TEAMS, "success")
    for team in TEAMS:
        assert [(ti.task_id, ti.state, ti.try_number) for ti in teams_run.tasks[team]] == [
            ("hello", "success", 1)
        ]


def test_each_team_has_its_own_executor_and_owner(teams_run: TeamsRun):
    started = dict(
        re.findall(
            r"EcsControlPlaneExecutor of team '(\w+)' starting as owner (\S+)", teams_run.scheduler_log
        )
    )
    assert set(started) == set(TEAMS)
    assert len(set(started.values())) == len(TEAMS)
    for team, owner in started.items():
        assert owner.startswith(f"{team}-")


def test_each_teams_task_ran_under_its_teams_owner(teams_run: TeamsRun):
    started = dict(
        re.findall(
            r"EcsControlPlaneExecutor of team '(\w+)' starting as owner (\S+)", teams_run.scheduler_log
        )
    )
    assert teams_run.item_owners == {team: {started[team]} for team in TEAMS}
