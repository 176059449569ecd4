"""Multi-team Airflow (3.2+): one EcsControlPlaneExecutor per team, each with its own settings.

Airflow's executor loader makes a team's executor with ``team_name``; its ``self.conf`` reads
only ``AIRFLOW__<TEAM>___ECS_CONTROL_PLANE__*`` (or ``[<team>=ecs_control_plane]``). These tests
run two team executors side by side on moto: on one shared stack (per-team owners) and on a stack
each, and check that neither ever sees, reports or stops the other's tasks.
"""

from __future__ import annotations

from typing import Any

import boto3
import pytest
from airflow.executors.base_executor import BaseExecutor
from airflow.sdk.exceptions import AirflowException
from airflow.utils.state import TaskInstanceState

from ecs_control_plane.contract import RunRequest, TaskKey
from executor_client import EcsControlPlaneExecutor
from executor_client import config as cfg
from tests.support.airflow_release import task_workload
from tests.support.aws import MockedControlPlane, create_state_table
from tests.support.doubles import recheck

pytestmark = pytest.mark.skipif(
    not hasattr(BaseExecutor, "supports_multi_team"), reason="teams arrived in Airflow 3.2"
)

EXECUTOR_PATH = "executor_client.EcsControlPlaneExecutor"
DAG_ID = "team_dag"
RUN_ID = "manual__2026-12-02T10:00:00+00:00"


def team_env(team: str | None, key: str) -> str:
    return cfg.env_name(key, team)


def configure_team(
    monkeypatch: pytest.MonkeyPatch, team: str, *, queue_url: str, table: str, owner: str | None = None
) -> None:
    values = {
        cfg.QUEUE_URL: queue_url,
        cfg.STATE_TABLE: table,
        cfg.REGION_NAME: "us-east-1",
        cfg.END_TIMEOUT_SECONDS: "0",
        **({cfg.OWNER_ID: owner} if owner else {}),
    }
    for key, value in values.items():
        monkeypatch.setenv(team_env(team, key), value)


def team_executor(team: str) -> EcsControlPlaneExecutor:
    """What Airflow's ExecutorLoader does for ``executor = ...;<team>=executor_client....``."""
    from airflow.executors.executor_loader import ExecutorLoader  # noqa: PLC0415
    from airflow.executors.executor_utils import ExecutorName  # noqa: PLC0415

    executor = ExecutorLoader.load_executor(ExecutorName(module_path=EXECUTOR_PATH, team_name=team))
    assert isinstance(executor, EcsControlPlaneExecutor)
    executor.start()
    return executor


def submit(executor: EcsControlPlaneExecutor, work: Any) -> str:
    executor.queue_workload(work, session=None)  # type: ignore[arg-type]
    executor.heartbeat()
    encoded = executor.current_submission(work.ti.key)
    assert encoded is not None
    return encoded


def states(executor: EcsControlPlaneExecutor) -> dict[Any, Any]:
    executor.sync()
    return {key: state for key, (state, _) in executor.get_event_buffer().items()}


@pytest.fixture
def plane(control_plane_aws: MockedControlPlane, monkeypatch: pytest.MonkeyPatch) -> MockedControlPlane:
    monkeypatch.setenv("AIRFLOW_CONN_AWS_DEFAULT", '{"conn_type": "aws"}')
    # Global settings that must never reach a team's executor.
    monkeypatch.setenv(cfg.env_name(cfg.QUEUE_URL), "https://sqs.us-east-1.amazonaws.com/1/global-queue")
    monkeypatch.setenv(cfg.env_name(cfg.STATE_TABLE), "global-table")
    return control_plane_aws


@pytest.fixture
def second_stack(plane: MockedControlPlane) -> tuple[str, str]:
    """Team B's own queue and table, in the same (moto) account."""
    sqs = boto3.client("sqs", region_name="us-east-1")
    queue_url = sqs.create_queue(QueueName="team-b-run-requests")["QueueUrl"]
    create_state_table(boto3.client("dynamodb", region_name="us-east-1"), "team-b-state")
    return queue_url, "team-b-state"


def test_team_variables_name_the_team_with_three_underscores():
    assert cfg.env_name(cfg.QUEUE_URL, "team_a") == "AIRFLOW__TEAM_A___ECS_CONTROL_PLANE__QUEUE_URL"
    assert cfg.env_name(cfg.QUEUE_URL) == "AIRFLOW__ECS_CONTROL_PLANE__QUEUE_URL"
    assert cfg.section_name("team_a") == "team_a=ecs_control_plane"


def test_airflow_loads_it_as_a_team_executor_reading_only_that_teams_settings(
    plane: MockedControlPlane, monkeypatch: pytest.MonkeyPatch
):
    # GIVEN team_a's settings point at the stack, the global ones elsewhere
    configure_team(monkeypatch, "team_a", queue_url=plane.queue_url, table=plane.table_name)
    # WHEN Airflow's loader makes team_a's executor
    executor = team_executor("team_a")
    # THEN it is team_a's, reads team_a's values, and its generated owner names the team
    assert executor.team_name == "team_a"
    assert (executor.queue_url, executor.state_table) == (plane.queue_url, plane.table_name)
    assert executor.owner.startswith("team_a-")


def test_unconfigured_team_executor_names_the_teams_variables(
    plane: MockedControlPlane, monkeypatch: pytest.MonkeyPatch
):
    # GIVEN only the global settings are set (a team's executor never falls back to them)
    executor = EcsControlPlaneExecutor(team_name="team_c")
    # WHEN it starts
    with pytest.raises(AirflowException) as refused:
        executor.start()
    # THEN the error names the team and the variables that team must set
    message = str(refused.value)
    assert "AIRFLOW__TEAM_C___ECS_CONTROL_PLANE__QUEUE_URL" in message
    assert "AIRFLOW__TEAM_C___ECS_CONTROL_PLANE__STATE_TABLE" in message
    assert "[team_c=ecs_control_plane]" in message
    assert "team_c" in message.split(" is not configured", maxsplit=1)[0]


def test_health_check_of_a_team_executor_names_the_teams_variable(
    plane: MockedControlPlane, monkeypatch: pytest.MonkeyPatch
):
    # GIVEN team_a's table setting names a table that does not exist
    configure_team(monkeypatch, "team_a", queue_url=plane.queue_url, table="no-such-table")
    executor = EcsControlPlaneExecutor(team_name="team_a")
    # WHEN its health check runs
    with pytest.raises(AirflowException) as refused:
        executor.check_health()
    # THEN the failure says which team variable to fix
    assert "check AIRFLOW__TEAM_A___ECS_CONTROL_PLANE__STATE_TABLE" in str(refused.value)
    assert "of team 'team_a'" in str(refused.value)


def test_two_teams_on_one_shared_stack_never_touch_each_others_tasks(
    plane: MockedControlPlane, monkeypatch: pytest.MonkeyPatch
):
    # GIVEN two teams' executors on one stack, each with its own owner, one task each
    for team in ("team_a", "team_b"):
        configure_team(monkeypatch, team, queue_url=plane.queue_url, table=plane.table_name)
    a, b = team_executor("team_a"), team_executor("team_b")
    assert a.owner != b.owner
    work_a, work_b = task_workload(DAG_ID, "task_of_a"), task_workload(DAG_ID, "task_of_b")
    key_a, key_b = submit(a, work_a), submit(b, work_b)
    plane.deliver()
    # WHEN a's task fails and b's succeeds
    plane.run_to_exit(key_a, 1)
    plane.run_to_exit(key_b, 0)
    # THEN each team hears only of its own task, its safety net agrees, and the items say whose
    assert states(a) == {work_a.ti.key: TaskInstanceState.FAILED}
    assert states(b) == {work_b.ti.key: TaskInstanceState.SUCCESS}
    recheck(a)
    recheck(b)
    assert (states(a), states(b)) == ({}, {})
    assert (plane.item(key_a).owner, plane.item(key_b).owner) == (a.owner, b.owner)


def test_terminating_one_team_stops_only_that_teams_tasks(
    plane: MockedControlPlane, monkeypatch: pytest.MonkeyPatch
):
    # GIVEN one running task per team on a shared stack
    for team in ("team_a", "team_b"):
        configure_team(monkeypatch, team, queue_url=plane.queue_url, table=plane.table_name)
    a, b = team_executor("team_a"), team_executor("team_b")
    key_a, key_b = submit(a, task_workload(DAG_ID, "long_a")), submit(b, task_workload(DAG_ID, "long_b"))
    plane.deliver()
    # WHEN team_a's scheduler is terminated
    a.terminate()
    stops = [RunRequest.from_message(m["Body"]) for m in plane.receive(visibility_timeout=0)]
    # THEN only team_a's task is asked to stop, in team_a's name
    assert [(r.kind, r.key, r.owner) for r in stops] == [("stop", key_a, a.owner)]
    assert key_b in b.tracked


def test_two_teams_on_their_own_stacks_send_to_their_own_queues(
    plane: MockedControlPlane, second_stack: tuple[str, str], monkeypatch: pytest.MonkeyPatch
):
    # GIVEN team_a on the main stack and team_b on a stack of its own
    configure_team(monkeypatch, "team_a", queue_url=plane.queue_url, table=plane.table_name)
    configure_team(monkeypatch, "team_b", queue_url=second_stack[0], table=second_stack[1])
    a, b = team_executor("team_a"), team_executor("team_b")
    # WHEN each submits a task
    key_a, key_b = submit(a, task_workload(DAG_ID, "on_a")), submit(b, task_workload(DAG_ID, "on_b"))
    # THEN each run request is on its own team's queue, and nothing else is
    sqs = boto3.client("sqs", region_name="us-east-1")

    def keys_on(queue_url: str) -> list[str]:
        messages = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10).get("Messages", [])
        return [RunRequest.from_message(m["Body"]).key for m in messages]

    assert keys_on(plane.queue_url) == [key_a]
    assert keys_on(second_stack[0]) == [key_b]
    assert TaskKey.parse(key_b).task_id == "on_b"


def test_a_teams_own_aws_connection_is_the_one_its_executor_uses(
    plane: MockedControlPlane, monkeypatch: pytest.MonkeyPatch
):
    # GIVEN multi-team Airflow, team_a's executor naming a connection only team_a has (its
    # region in the connection), and a global connection of the same name elsewhere
    monkeypatch.setenv("AIRFLOW__CORE__MULTI_TEAM", "True")
    monkeypatch.setenv(team_env("team_a", cfg.QUEUE_URL), plane.queue_url)
    monkeypatch.setenv(team_env("team_a", cfg.STATE_TABLE), plane.table_name)
    monkeypatch.setenv(team_env("team_a", cfg.CONN_ID), "aws_team")
    monkeypatch.setenv(
        "AIRFLOW_CONN__TEAM_A___AWS_TEAM", '{"conn_type": "aws", "extra": {"region_name": "eu-west-2"}}'
    )
    monkeypatch.setenv(
        "AIRFLOW_CONN_AWS_TEAM", '{"conn_type": "aws", "extra": {"region_name": "ap-south-1"}}'
    )
    # WHEN its clients are made
    executor = EcsControlPlaneExecutor(team_name="team_a")
    clients = executor.clients
    # THEN they come from team_a's connection, not the global one nor the default chain
    assert executor.conn_id == "aws_team"
    assert clients.queue._client.meta.region_name == "eu-west-2"
    assert clients.table._client.meta.region_name == "eu-west-2"
