"""ECS: RunTask, the task lifecycle, StopTask, DescribeTasks, CloudFormation's ECS resources."""

from __future__ import annotations

import functools
import json
from typing import Any

import boto3
import pytest
from moto import mock_aws
from moto.moto_api import state_manager
from werkzeug.test import Client

from ecscp.local.ecs.backend import BACKEND, with_host_endpoints
from ecscp.local.ecs.records import NOTICES_PATH, RECORDS, RECORDS_PATH, ContainerState, TaskStateRecord
from ecscp.local.moto_patches import (
    ecs_cloudformation_properties,
    ecs_describe_tasks_lookup,
    ecs_run_task_client_token,
    ecs_stop_task,
    ecs_task_level_memory,
    ecs_task_lifecycle,
)
from tests.support.aws import ACCOUNT, CLUSTER, CONTAINER, REGION
from tests.support.moto_ecs import Ecs, EcsEvents

from .conftest import Apply

# --- ECS ---------------------------------------------------------------------------------------


def test_ecs_run_task_client_token(patched: Apply) -> None:
    with mock_aws():
        # GIVEN moto as released
        ecs = Ecs()
        # WHEN the same clientToken is sent twice THEN moto starts two tasks
        assert ecs.run(clientToken="one") != ecs.run(clientToken="one")

        # GIVEN the patch WHEN the same clientToken is sent twice THEN one task, as on AWS
        patched(ecs_run_task_client_token)
        assert ecs.run(clientToken="two") == ecs.run(clientToken="two")
        assert ecs.run(clientToken="three") != ecs.run(clientToken="four")


def test_ecs_task_lifecycle(patched: Apply) -> None:
    with mock_aws():
        # GIVEN moto as released THEN a task starts RUNNING, its container with exit code 0,
        # and each DescribeTasks moves it one state on
        ecs = Ecs()
        started = ecs.client.run_task(
            cluster=CLUSTER,
            taskDefinition="airflow",
            launchType="FARGATE",
            networkConfiguration=ecs.network,
        )["tasks"][0]
        assert started["lastStatus"] == "RUNNING"
        assert started["containers"][0].get("exitCode") == 0
        statuses = [ecs.describe(started["taskArn"])[0]["lastStatus"] for _ in range(2)]
        assert statuses == ["DEACTIVATING", "STOPPING"]

        # GIVEN the patch THEN a new task is PROVISIONING, version 1, no exit code, and stays so
        patched(ecs_task_lifecycle)
        ecs_events = EcsEvents()
        arn = ecs.run(overrides={"containerOverrides": [{"name": CONTAINER, "command": ["true"]}]})
        for _ in range(3):
            (task,) = ecs.describe(arn)
            assert task["lastStatus"] == "PROVISIONING"
        assert task["version"] == 1
        assert "createdAt" in task
        assert "exitCode" not in task["containers"][0]
        assert task["containers"][0]["lastStatus"] == "PENDING"
        assert task["containers"][0]["containerArn"].startswith(arn.replace(":task/", ":container/"))

        # THEN RunTask emitted its PROVISIONING event, with what ECS reports of the task, and
        # queued a notice for the local ECS host
        (created,) = ecs_events.received()
        assert (created["lastStatus"], created["version"], created["cpu"], created["memory"]) == (
            "PROVISIONING",
            1,
            "512",
            "1024",
        )
        assert created["availabilityZone"] == task["availabilityZone"]
        (notice,) = [n for n in BACKEND.notices(after=0, wait_seconds=0) if n.task_arn == arn]
        assert (notice.kind, notice.overrides[0].command) == ("run", ["true"])

        # WHEN the host records a change through the private path
        def moto_app(environ: Any, start_response: Any) -> list[bytes]:
            raise AssertionError("the host's paths must not reach moto's app")

        client = Client(with_host_endpoints(moto_app))
        record = TaskStateRecord(
            task_arn=arn,
            last_status="RUNNING",
            container=ContainerState(last_status="RUNNING"),
            started_at=1_700_000_000,
        )
        response = client.post(RECORDS_PATH, data=RECORDS.dump_json([record]))
        assert response.status_code == 200

        # THEN that one record is both moto's state and the event
        (task,) = ecs.describe(arn)
        (running,) = ecs_events.received()
        assert (task["lastStatus"], task["version"], task["containers"][0]["lastStatus"]) == (
            "RUNNING",
            2,
            "RUNNING",
        )
        assert (running["lastStatus"], running["version"], running["startedAt"]) == (
            "RUNNING",
            2,
            "2023-11-14T22:13:20.000Z",
        )
        assert client.get(f"{NOTICES_PATH}?after={notice.seq}&wait=0").json == []
        bad = client.post(RECORDS_PATH, data=b'[{"task_arn": "x", "colour": "red"}]')
        assert bad.status_code == 400


def test_ecs_stop_task(patched: Apply) -> None:
    with mock_aws():
        # GIVEN moto as released (its task states pinned, so that only StopTask moves them)
        # WHEN a task is stopped THEN it is STOPPED at once, with no stopCode
        state_manager.set_transition(model_name="ecs::task", transition=ecs_task_lifecycle.PINNED_TRANSITION)
        ecs = Ecs()
        arn = ecs.run()
        ecs.client.stop_task(cluster=CLUSTER, task=arn, reason="bye")
        (task,) = ecs.describe(arn)
        assert task["lastStatus"] == "STOPPED"
        assert "stopCode" not in task

        # GIVEN the patch THEN StopTask asks for the stop; the task still runs until the host stops it
        patched(ecs_stop_task)
        arn = ecs.run()
        (before,) = ecs.describe(arn)
        ecs.client.stop_task(cluster=CLUSTER, task=arn, reason="bye")
        (task,) = ecs.describe(arn)
        assert task["lastStatus"] == before["lastStatus"] == "RUNNING"
        assert (task["desiredStatus"], task["stopCode"], task["stoppedReason"]) == (
            "STOPPED",
            "UserInitiated",
            "bye",
        )
        assert "stoppingAt" in task


def test_ecs_describe_tasks_lookup(patched: Apply) -> None:
    with mock_aws():
        # GIVEN moto as released THEN a string that merely contains a task id finds the task
        ecs = Ecs()
        arn = ecs.run()
        task_id = arn.rsplit("/", 1)[-1]
        assert len(ecs.describe(f"not-{task_id}")) == 1

        # GIVEN the patch THEN only the full ARN or the id find it, as on AWS
        patched(ecs_describe_tasks_lookup)
        assert ecs.describe(f"not-{task_id}") == []
        assert [t["taskArn"] for t in ecs.describe(arn)] == [arn]
        assert [t["taskArn"] for t in ecs.describe(task_id)] == [arn]
        other = ecs.run()
        assert {t["taskArn"] for t in ecs.describe(arn, other.rsplit("/", 1)[-1])} == {arn, other}


_CLUSTER_AND_TASK_DEFINITION = {
    "Resources": {
        "Cluster": {
            "Type": "AWS::ECS::Cluster",
            "Properties": {
                "ClusterName": "fargate",
                "CapacityProviders": ["FARGATE", "FARGATE_SPOT"],
                "DefaultCapacityProviderStrategy": [{"CapacityProvider": "FARGATE", "Weight": 1}],
                "ClusterSettings": [{"Name": "containerInsights", "Value": "enabled"}],
            },
        },
        "TaskDefinition": {
            "Type": "AWS::ECS::TaskDefinition",
            "Properties": {
                "Family": "airflow",
                "RequiresCompatibilities": ["FARGATE"],
                "NetworkMode": "awsvpc",
                "Cpu": "1024",
                "Memory": "2048",
                "TaskRoleArn": f"arn:aws:iam::{ACCOUNT}:role/task",
                "ExecutionRoleArn": f"arn:aws:iam::{ACCOUNT}:role/execution",
                "ContainerDefinitions": [
                    {"Name": "airflow", "Image": "airflow", "Environment": [{"Name": "A", "Value": "1"}]}
                ],
            },
        },
    }
}


def _created_cluster_and_task_definition(stack: str) -> tuple[dict[str, Any], dict[str, Any]]:
    boto3.client("cloudformation", region_name=REGION).create_stack(
        StackName=stack, TemplateBody=json.dumps(_CLUSTER_AND_TASK_DEFINITION)
    )
    ecs = boto3.client("ecs", region_name=REGION)
    (cluster,) = ecs.describe_clusters(clusters=["fargate"], include=["SETTINGS"])["clusters"]
    definition = ecs.describe_task_definition(taskDefinition="airflow")["taskDefinition"]
    return cluster, definition


def test_ecs_cloudformation_properties(patched: Apply) -> None:
    with mock_aws():
        # GIVEN moto as released WHEN a stack creates a Fargate cluster and task definition
        # THEN the cluster has no capacity providers and the task definition is EC2's, roleless
        cluster, definition = _created_cluster_and_task_definition("released")
        assert not cluster.get("capacityProviders")
        assert not cluster.get("defaultCapacityProviderStrategy")
        assert (definition["networkMode"], definition["compatibilities"]) == ("bridge", ["EC2"])
        assert "taskRoleArn" not in definition
        assert "cpu" not in definition

        # GIVEN the patch THEN both carry every property, as CloudFormation passes them to ECS
        patched(ecs_cloudformation_properties)
        cluster, definition = _created_cluster_and_task_definition("patched")
        assert cluster["capacityProviders"] == ["FARGATE", "FARGATE_SPOT"]
        assert cluster["defaultCapacityProviderStrategy"] == [{"capacityProvider": "FARGATE", "weight": 1}]
        assert {"name": "containerInsights", "value": "enabled"} in cluster["settings"]
        assert definition["networkMode"] == "awsvpc"
        assert "FARGATE" in definition["compatibilities"]
        assert (definition["cpu"], definition["memory"]) == ("1024", "2048")
        assert definition["taskRoleArn"] == f"arn:aws:iam::{ACCOUNT}:role/task"
        assert definition["executionRoleArn"] == f"arn:aws:iam::{ACCOUNT}:role/execution"
        (container,) = definition["containerDefinitions"]
        assert (container["name"], container["environment"]) == ("airflow", [{"name": "A", "value": "1"}])


def test_ecs_task_level_memory(patched: Apply) -> None:
    with mock_aws():
        # GIVEN a Fargate task definition with memory at task level only, as Fargate's usually are
        ecs = Ecs()
        ecs.client.register_task_definition(
            family="task-level",
            networkMode="awsvpc",
            requiresCompatibilities=["FARGATE"],
            cpu="1024",
            memory="2048",
            containerDefinitions=[{"name": CONTAINER, "image": "airflow", "essential": True}],
        )
        run = functools.partial(
            ecs.client.run_task,
            cluster=CLUSTER,
            taskDefinition="task-level",
            launchType="FARGATE",
            networkConfiguration=ecs.network,
        )
        # WHEN moto as released runs it THEN RunTask fails (HTTP 500: a TypeError adding memories)
        with pytest.raises(TypeError):
            run()

        # GIVEN the patch THEN it starts, as on AWS
        patched(ecs_task_level_memory)
        (task,) = run()["tasks"]
        assert task["taskDefinitionArn"].endswith("task-definition/task-level:1")
