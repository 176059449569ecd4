"""The local stack with the template's optional infrastructure on: deployed from nothing.

moto's CloudFormation creates the ECS cluster, the Airflow task definition, its roles and log
group (nothing is created before the deploy but the network), the readiness check passes against
them, and the local ECS host runs a task of the created task definition in the created cluster,
with the environment that task definition declares.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator

import pytest

from ecscp.demo import stack_infrastructure
from ecscp.local.stack import LocalStack, LocalStackConfig
from ecscp.project import PROJECT_ROOT
from tests.functional.test_local_stack import Plane
from tests.support.requests import SECRET_TOKEN

pytestmark = pytest.mark.timeout(300)

EXECUTION_API_URL = "http://127.0.0.1:9/execution/"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    config = LocalStackConfig(
        project_root=PROJECT_ROOT,
        state_dir=tmp_path_factory.mktemp("local-stack-infrastructure"),
        parameters=stack_infrastructure(EXECUTION_API_URL),
    )
    with LocalStack(config) as running:
        yield running


def test_the_stack_creates_the_cluster_task_definition_and_roles_it_then_runs_with(stack: LocalStack) -> None:
    # GIVEN the stack deployed with CreateCluster and Image (fixture)
    outputs = stack.outputs
    ecs = stack.client("ecs")

    # THEN the cluster and task definition it runs with are the ones its outputs name
    assert stack.ecs.cluster_arn == outputs["CreatedClusterArn"]
    assert stack.ecs.task_definition_arn == outputs["CreatedTaskDefinitionArn"]
    assert stack.deployment is not None
    assert stack.deployment.parameters["TaskDefinition"] == ""
    # AND the cluster offers Fargate capacity, the task definition is Fargate's with the created roles
    (cluster,) = ecs.describe_clusters(clusters=[outputs["CreatedClusterArn"]])["clusters"]
    assert cluster["capacityProviders"] == ["FARGATE", "FARGATE_SPOT"]
    definition = ecs.describe_task_definition(taskDefinition=outputs["CreatedTaskDefinitionArn"])[
        "taskDefinition"
    ]
    assert definition["networkMode"] == "awsvpc"
    assert definition["taskRoleArn"] == outputs["CreatedTaskRoleArn"]
    assert definition["executionRoleArn"] == outputs["CreatedTaskExecutionRoleArn"]
    # AND the readiness check found nothing that cannot run
    assert stack.readiness is not None
    assert stack.readiness.problems == []
    # AND the scheduler reads the created task log group
    assert stack.airflow_environment()["AIRFLOW__ECS_CONTROL_PLANE__READ_TASK_LOGS"] == "True"


def test_a_task_runs_in_the_created_cluster_with_the_task_definitions_environment(stack: LocalStack) -> None:
    # GIVEN a container that succeeds only if it sees the execution API URL of the task definition
    plane = Plane(stack)
    seen = "os.environ.get('AIRFLOW__CORE__EXECUTION_API_SERVER_URL')"
    check = f"import os, sys; sys.exit({seen} != {EXECUTION_API_URL!r})"

    # WHEN it is run
    key = plane.run("reads_the_task_definition", [sys.executable, "-c", check, SECRET_TOKEN])
    item = plane.wait_final(key)

    # THEN it succeeded, as an ECS task of the created task definition in the created cluster,
    # logging to the created log group
    assert (item.state.value, item.exit_code) == ("SUCCESS", 0)
    (record,) = [r for r in stack.task_records() if r["key"] == key]
    assert record["cluster_arn"] == stack.outputs["CreatedClusterArn"]
    assert record["task_definition_arn"] == stack.outputs["CreatedTaskDefinitionArn"]
    assert item.log_group == stack.outputs["CreatedTaskLogGroupName"]
