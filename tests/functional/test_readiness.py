"""Settings that cannot work are refused before any task runs, naming the stack parameter.

The control plane checks its settings against ECS (the scheduler cannot: it holds no ECS
rights), records the result in the state table, and the executor's start-up health check
refuses to start on it with an AirflowException naming the parameter, as the provider's
executor's health check does for a missing cluster. On moto with the real handlers, and on
the local stack, which refuses to start (or, asked to start anyway, lets the health check
refuse).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from airflow.sdk.exceptions import AirflowException

from ecs_control_plane.contract import TaskState
from ecs_control_plane.readiness import ReadinessReport
from ecs_control_plane.runtime import control_plane
from ecscp.local.cloudformation import DeployError
from ecscp.local.stack import LocalStack, LocalStackConfig, LocalStackError
from ecscp.project import PROJECT_ROOT
from executor_client import EcsControlPlaneExecutor
from tests.functional.test_executor import configure, encoded, make_executor, submit, workload
from tests.support.aws import CLUSTER, CONTAINER, MockedControlPlane

ROLE = "arn:aws:iam::123456789012:role/airflow-task"


@pytest.fixture
def plane(control_plane_aws: MockedControlPlane, monkeypatch: pytest.MonkeyPatch) -> MockedControlPlane:
    configure(monkeypatch, control_plane_aws)
    return control_plane_aws


def settle(monkeypatch: pytest.MonkeyPatch, **env: str) -> None:
    """The functions deployed again with these settings (a new container reads them)."""
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    control_plane.cache_clear()


def register(plane: MockedControlPlane, family: str, **definition: Any) -> None:
    container = {"name": CONTAINER, "image": "apache/airflow:3.3.2", "essential": True, "memory": 1024}
    plane.ecs.register_task_definition(
        family=family, containerDefinitions=definition.pop("containers", [container]), **definition
    )


def problems(report: ReadinessReport) -> dict[str, str]:
    return {p.parameter: p.message for p in report.problems}


def test_a_stack_that_can_run_tasks_is_recorded_ready_and_the_scheduler_starts(
    plane: MockedControlPlane,
) -> None:
    # WHEN the reconciler runs on a stack whose settings fit its cluster
    report = plane.reconcile()

    # THEN it found nothing wrong, recorded so, and a scheduler starts
    assert report["settings_problems"] == 0
    recorded = plane.table.readiness()
    assert recorded is not None
    assert recorded.ready
    assert make_executor(owner="scheduler-a").check_health_on_startup


@pytest.mark.parametrize(
    ("env", "parameter", "says"),
    [
        ({"ECSCP_CLUSTER": "no-such-cluster"}, "Cluster", "does not exist"),
        ({"ECSCP_TASK_DEFINITION": "no-such-family"}, "TaskDefinition", "does not resolve"),
        ({"ECSCP_CONTAINER_NAME": "web"}, "ContainerName", "has no container 'web' (it has: airflow)"),
        ({"ECSCP_SUBNETS": "", "ECSCP_SECURITY_GROUPS": ""}, "Subnets", "awsvpc"),
        (
            {
                "ECSCP_LAUNCH_TYPE": "",
                "ECSCP_CAPACITY_PROVIDER_STRATEGY": '[{"capacityProvider": "FARGATE_SPOT"}]',
            },
            "CapacityProviderStrategy",
            "'FARGATE_SPOT' is not associated with cluster",
        ),
        ({"ECSCP_ALLOWED_CAPACITY_PROVIDERS": "gpu"}, "AllowedCapacityProviders", "'gpu' is not associated"),
    ],
    ids=[
        "missing-cluster",
        "unknown-task-definition",
        "unknown-container",
        "no-subnets",
        "strategy",
        "allowed",
    ],
)
def test_settings_that_cannot_work_make_the_scheduler_refuse_to_start_naming_the_parameter(
    plane: MockedControlPlane, monkeypatch: pytest.MonkeyPatch, env: dict[str, str], parameter: str, says: str
) -> None:
    # GIVEN a stack deployed with a setting that cannot work
    settle(monkeypatch, **env)

    # WHEN the reconciler checks it
    report = plane.reconcile()

    # THEN the problem is recorded, naming the template parameter
    assert report["settings_problems"] >= 1
    recorded = plane.table.readiness()
    assert recorded is not None
    assert says in problems(recorded)[parameter]
    # AND a scheduler refuses to start, naming it too
    with pytest.raises(AirflowException, match=f"stack parameter {parameter}: .*{says[:20]}"):
        make_executor(owner="scheduler-a")


def test_fixing_the_setting_lets_the_next_check_clear_it(
    plane: MockedControlPlane, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a stack whose check found the container name wrong
    settle(monkeypatch, ECSCP_CONTAINER_NAME="web")
    plane.reconcile()
    # WHEN it is deployed again with the right name and the reconciler runs
    settle(monkeypatch, ECSCP_CONTAINER_NAME=CONTAINER)
    plane.reconcile()
    # THEN the scheduler starts
    make_executor(owner="scheduler-a")


def test_a_launch_type_the_task_definition_cannot_use_is_named(
    plane: MockedControlPlane, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN an EC2-only task definition, and the stack asking for FARGATE
    register(plane, "ec2-only", networkMode="bridge", requiresCompatibilities=["EC2"])
    settle(monkeypatch, ECSCP_TASK_DEFINITION="ec2-only", ECSCP_LAUNCH_TYPE="FARGATE")
    # THEN the check names LaunchType
    plane.reconcile()
    recorded = plane.table.readiness()
    assert recorded is not None
    assert "cannot run with the FARGATE launch type" in problems(recorded)["LaunchType"]


def test_a_task_role_the_control_plane_may_not_pass_is_named_until_the_parameter_names_it(
    plane: MockedControlPlane, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a task definition with a task role, and a stack that names no role (PassRole: none)
    register(
        plane, "with-role", networkMode="awsvpc", requiresCompatibilities=["FARGATE"], cpu="512",
        memory="1024", taskRoleArn=ROLE,
    )  # fmt: skip
    settle(monkeypatch, ECSCP_TASK_DEFINITION="with-role")
    plane.reconcile()
    recorded = plane.table.readiness()
    assert recorded is not None
    # THEN every RunTask would be refused AccessDenied: the check says which parameter to set
    assert (
        f"uses taskRoleArn {ROLE}, which the control plane may not pass" in problems(recorded)["TaskRoleArn"]
    )
    # AND with TaskRoleArn naming it, the stack is ready
    settle(monkeypatch, ECSCP_TASK_ROLE_ARN=ROLE)
    plane.reconcile()
    assert plane.table.readiness().ready  # type: ignore[union-attr]


def test_no_check_recorded_yet_does_not_stop_the_scheduler(plane: MockedControlPlane) -> None:
    # A stack deployed moments ago: its reconciler has not run. The scheduler starts (and says so).
    assert plane.table.readiness() is None
    make_executor(owner="scheduler-a")


# -- the provider's placement fallback --------------------------------------------------------


def run_one(plane: MockedControlPlane, name: str) -> dict[str, Any]:
    executor = make_executor(owner="scheduler-a")
    work = workload(name)
    calls: list[dict[str, Any]] = []
    gateway = control_plane().ecs
    real = gateway.run_task

    def record(kwargs: dict[str, Any]) -> Any:
        calls.append(kwargs)
        return real(kwargs)

    gateway.run_task = record  # type: ignore[method-assign]
    submit(executor, work)
    plane.deliver()
    assert plane.item(encoded(work.ti.key)).state == TaskState.STARTING
    (call,) = calls
    return call


def test_neither_launch_type_nor_strategy_falls_back_to_fargate_as_the_provider_does(
    plane: MockedControlPlane, monkeypatch: pytest.MonkeyPatch
) -> None:
    settle(monkeypatch, ECSCP_LAUNCH_TYPE="", ECSCP_CAPACITY_PROVIDER_STRATEGY="")
    call = run_one(plane, "fallback_fargate")
    assert call["launchType"] == "FARGATE"
    assert call["platformVersion"] == "LATEST"
    assert "capacityProviderStrategy" not in call


def test_a_cluster_default_strategy_is_left_to_ecs_as_the_provider_does(
    plane: MockedControlPlane, monkeypatch: pytest.MonkeyPatch
) -> None:
    plane.ecs.put_cluster_capacity_providers(
        cluster=CLUSTER,
        capacityProviders=["FARGATE_SPOT"],
        defaultCapacityProviderStrategy=[{"capacityProvider": "FARGATE_SPOT", "weight": 1}],
    )
    settle(monkeypatch, ECSCP_LAUNCH_TYPE="", ECSCP_CAPACITY_PROVIDER_STRATEGY="")
    call = run_one(plane, "cluster_default")
    assert "launchType" not in call
    assert "capacityProviderStrategy" not in call


# -- the local stack ----------------------------------------------------------------------------


@pytest.fixture
def local_config(tmp_path: Path) -> LocalStackConfig:
    return LocalStackConfig(
        project_root=PROJECT_ROOT, state_dir=tmp_path / "stack", startup_timeout_seconds=60
    )


@pytest.mark.timeout(300)
@pytest.mark.parametrize(
    ("parameters", "named"),
    [
        ({"Cluster": "no-such-cluster"}, "Cluster: ECS cluster 'no-such-cluster' does not exist"),
        ({"ContainerName": "web"}, "ContainerName: task definition"),
    ],
    ids=["missing-cluster", "unknown-container"],
)
def test_the_local_stack_refuses_settings_that_cannot_work_before_any_task(
    local_config: LocalStackConfig, parameters: dict[str, str], named: str
) -> None:
    local_config.parameters = parameters
    with pytest.raises(LocalStackError, match=named), LocalStack(local_config):
        pytest.fail("the stack started")


@pytest.mark.timeout(300)
def test_the_local_stack_refuses_security_groups_without_subnets_at_deploy(
    local_config: LocalStackConfig,
) -> None:
    local_config.parameters = {"Subnets": "", "SecurityGroups": "sg-123"}
    with (
        pytest.raises(DeployError, match="NetworkNeedsSubnets: At least one subnet is required"),
        LocalStack(local_config),
    ):
        pytest.fail("the stack started")


@pytest.mark.timeout(300)
def test_a_local_stack_started_anyway_makes_the_scheduler_refuse_to_start(
    local_config: LocalStackConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a local stack whose cluster does not exist, started anyway
    local_config.parameters = {"Cluster": "no-such-cluster"}
    local_config.require_ready = False
    with LocalStack(local_config) as stack:
        assert stack.readiness is not None
        assert not stack.readiness.ready
        # WHEN a scheduler configured for it starts
        for name, value in stack.airflow_environment().items():
            monkeypatch.setenv(name, value)
        monkeypatch.setenv("AIRFLOW_CONN_AWS_DEFAULT", '{"conn_type": "aws"}')
        executor = EcsControlPlaneExecutor()
        # THEN its health check refuses, naming the parameter
        with pytest.raises(AirflowException, match="stack parameter Cluster: ECS cluster 'no-such-cluster'"):
            executor.start()


@pytest.mark.timeout(300)
def test_ecscp_local_up_refuses_a_parameter_that_cannot_work_and_names_it(tmp_path: Path) -> None:
    from typer.testing import CliRunner  # noqa: PLC0415 - only this test drives the CLI

    from ecscp.cli import app  # noqa: PLC0415

    result = CliRunner().invoke(
        app, ["local", "up", "--state-dir", str(tmp_path / "stack"), "--parameter", "ContainerName=web"]
    )
    assert result.exit_code == 2, result.output
    assert "did not start" in result.output
    assert "ContainerName: task definition" in result.output


def test_a_deregistered_revision_is_named(plane: MockedControlPlane, monkeypatch: pytest.MonkeyPatch) -> None:
    register(
        plane, "retired", networkMode="awsvpc", requiresCompatibilities=["FARGATE"], cpu="512", memory="1024"
    )
    plane.ecs.deregister_task_definition(taskDefinition="retired:1")
    settle(monkeypatch, ECSCP_TASK_DEFINITION="retired:1")
    plane.reconcile()
    recorded = plane.table.readiness()
    assert recorded is not None
    assert "INACTIVE" in problems(recorded)["TaskDefinition"]


def test_an_allowed_family_that_does_not_resolve_is_named(
    plane: MockedControlPlane, monkeypatch: pytest.MonkeyPatch
) -> None:
    settle(monkeypatch, ECSCP_ALLOWED_TASK_DEFINITION_FAMILIES="no-such-family")
    plane.reconcile()
    recorded = plane.table.readiness()
    assert recorded is not None
    assert "'no-such-family' does not resolve" in problems(recorded)["AllowedTaskDefinitionFamilies"]


def test_ecs_throttling_the_check_records_no_verdict(
    plane: MockedControlPlane, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a stack found ready, then ECS throttling the next check's DescribeClusters
    plane.reconcile()
    before = plane.table.readiness()
    assert before is not None
    assert before.ready
    from botocore.exceptions import ClientError  # noqa: PLC0415

    def throttled(**_: Any) -> Any:
        error = {"Code": "ThrottlingException", "Message": "Rate exceeded"}
        raise ClientError({"Error": error, "ResponseMetadata": {"HTTPStatusCode": 400}}, "DescribeClusters")  # type: ignore[arg-type]

    monkeypatch.setattr(control_plane().ecs._client, "describe_clusters", throttled)
    # WHEN the reconciler runs
    report = plane.reconcile()
    # THEN the run counts an error, and the last verdict stands: schedulers still start
    assert report["errors"] >= 1
    assert plane.table.readiness() == before
    make_executor(owner="scheduler-a")
