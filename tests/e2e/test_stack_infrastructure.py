"""End to end: ``ecscp demo --create-infrastructure`` runs real Airflow 3 on the stack's own ECS.

The template is deployed from nothing with ``CreateCluster`` and ``Image``: moto's CloudFormation
creates the cluster and the Airflow task definition, and the containers get the execution API
URL from that task definition only. One demo run of the bundled mapping DAG; its kept state
directory holds the stack's outputs (``stack/deployment.json``) and each ECS task's record
(``stack/tasks/<n>/task.json``), which are compared.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from ecscp.demo import EXAMPLE_DAGS
from tests.e2e.test_demo import MAPPING, DemoRun, run_demo_cli

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(1200)]


@pytest.fixture(scope="module")
def state(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("infrastructure-demo") / "state"


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory, state: Path) -> DemoRun:
    dags = tmp_path_factory.mktemp("infrastructure-dags")
    shutil.copy(EXAMPLE_DAGS / "ecscp_mapping.py", dags)
    return run_demo_cli("--create-infrastructure", "--dags", str(dags), "--state-dir", str(state))


def deployment(state: Path) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((state / "stack" / "deployment.json").read_text())
    return loaded


def test_the_mapping_dag_runs_on_the_infrastructure_the_stack_created(demo: DemoRun) -> None:
    # GIVEN the demo with the stack's own cluster and task definition (fixture)
    # THEN it ended, and every task of the DAG ran as documented
    assert demo.exit_code == 0, demo.stderr[-3000:]
    assert [run["state"] for run in demo.document["runs"]] == ["success"]
    assert demo.tasks() == MAPPING


def test_every_ecs_task_ran_in_the_created_cluster_and_task_definition(demo: DemoRun, state: Path) -> None:
    # GIVEN the stack's outputs and parameters, and the record of each ECS task the demo ran
    deployed = deployment(state)
    outputs, parameters = deployed["outputs"], deployed["parameters"]
    records = [json.loads(p.read_text()) for p in sorted((state / "stack" / "tasks").glob("*/task.json"))]

    # THEN the stack created the cluster and the task definition (none was named to it)
    assert (parameters["CreateCluster"], parameters["TaskDefinition"]) == ("true", "")
    assert parameters["Image"]
    # AND each task of the DAG ran as an ECS task of those, and nothing ran elsewhere
    assert len(records) == len(MAPPING)
    assert {r["cluster_arn"] for r in records} == {outputs["CreatedClusterArn"]}
    assert {r["task_definition_arn"] for r in records} == {outputs["CreatedTaskDefinitionArn"]}
    assert all(r["task_arn"].split("/")[-2] == parameters["Cluster"] for r in records)
