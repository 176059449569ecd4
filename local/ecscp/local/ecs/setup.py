"""The ECS side that the stack only refers to, created in moto before the deploy.

On a real account the cluster, its network, the task and execution roles, the Airflow task
definition and the CloudWatch Logs group its container logs to (``awslogs``) exist before
``sam deploy``, and the template takes them as parameters
(:mod:`ecscp.local.cloudformation.parameters` finds them here). The benchmarks start their
tasks into the same setup. The cluster has the capacity providers ``FARGATE`` and
``FARGATE_SPOT``; beside the Airflow task definition there is a second one, ``airflow-large``
(container ``worker``), which the local queue profiles run (:mod:`.profiles`). With the
template's optional infrastructure on (``CreateCluster``, ``Image``) the stack creates the
cluster, or the task definition with its roles and log group, itself: only the rest is created
here (then no second task definition either), and :func:`with_stack_resources` reads back what
the stack created.

Departs from AWS: shaped for what moto's RunTask needs (DNS hostnames on the VPC and
container-level memory, without which RunTask fails with HTTP 500); one subnet and one security
group; nothing is pulled or run here: the local ECS host runs the containers.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from typing import Any

from ecscp.local.endpoint import aws_client

from .profiles import (
    CAPACITY_PROVIDERS,
    LARGE_CONTAINER_NAME,
    LARGE_CPU,
    LARGE_MEMORY,
    LARGE_SIZE,
    LARGE_TASK_FAMILY,
    STANDARD_CONTAINER_NAME,
    STANDARD_SIZE,
    STANDARD_TASK_FAMILY,
    TASK_SIZE_ENV,
)

#: The Airflow container's task definition: moto needs container-level memory.
CONTAINER_NAME = STANDARD_CONTAINER_NAME
TASK_FAMILY = STANDARD_TASK_FAMILY
AIRFLOW_IMAGE = "apache/airflow:3.3.2-python3.11"
#: The awslogs stream prefix of the Airflow container: its streams are ecs/airflow/<task id>.
LOG_STREAM_PREFIX = "ecs"


def task_log_group(cluster_name: str) -> str:
    """The CloudWatch Logs group the Airflow container of this cluster's tasks logs to."""
    return f"/ecs/{cluster_name}/{CONTAINER_NAME}"


@dataclass(frozen=True)
class EcsSetup:
    """The ECS side the stack runs tasks in: created before the stack, like on a real account."""

    cluster_name: str
    cluster_arn: str
    subnet_id: str
    security_group_id: str
    task_definition: str
    task_definition_arn: str
    task_role_arn: str
    execution_role_arn: str
    container_name: str = CONTAINER_NAME
    #: The awslogs group of the Airflow container (template parameter TaskLogGroupName).
    log_group: str = ""
    #: The capacity providers associated with the cluster created here (none: the stack's own).
    capacity_providers: tuple[str, ...] = ()
    #: The second task definition the local queue profiles run (none when the stack creates its
    #: own task definition), and its Airflow container.
    profile_task_definition: str = ""
    profile_task_definition_arn: str = ""
    profile_container_name: str = ""


def create_ecs_setup(
    endpoint_url: str,
    region: str,
    cluster_name: str,
    *,
    cluster: bool = True,
    task_definition: bool = True,
) -> EcsSetup:
    """Network, and unless the stack creates them the cluster (``cluster``) and the Airflow task
    definition with its roles and log group (``task_definition``), shaped so moto's RunTask works.

    What is left to the stack is empty in the setup until :func:`with_stack_resources`.
    """
    ec2 = aws_client("ec2", endpoint_url, region)
    vpc_id = ec2.create_vpc(CidrBlock="10.42.0.0/16")["Vpc"]["VpcId"]
    ec2.modify_vpc_attribute(VpcId=vpc_id, EnableDnsSupport={"Value": True})
    # moto's awsvpc RunTask fails with HTTP 500 without DNS hostnames.
    ec2.modify_vpc_attribute(VpcId=vpc_id, EnableDnsHostnames={"Value": True})
    subnet_id = ec2.create_subnet(VpcId=vpc_id, CidrBlock="10.42.1.0/24", AvailabilityZone=f"{region}a")[
        "Subnet"
    ]["SubnetId"]
    group_id = ec2.create_security_group(
        GroupName=f"{cluster_name}-tasks", Description="Airflow tasks (local)", VpcId=vpc_id
    )["GroupId"]
    network = EcsSetup(
        cluster_name=cluster_name,
        cluster_arn="",
        subnet_id=subnet_id,
        security_group_id=group_id,
        task_definition="",
        task_definition_arn="",
        task_role_arn="",
        execution_role_arn="",
    )
    ecs = aws_client("ecs", endpoint_url, region)
    if cluster:
        created = ecs.create_cluster(clusterName=cluster_name, capacityProviders=list(CAPACITY_PROVIDERS))
        network = replace(
            network, cluster_arn=created["cluster"]["clusterArn"], capacity_providers=CAPACITY_PROVIDERS
        )
    if not task_definition:
        return network
    return _create_task_definition(network, endpoint_url, region)


def _create_task_definition(setup: EcsSetup, endpoint_url: str, region: str) -> EcsSetup:
    """The Airflow task definition, its roles and its log group, as an account has them."""
    cluster_name = setup.cluster_name
    ecs = aws_client("ecs", endpoint_url, region)
    iam = aws_client("iam", endpoint_url, region)
    log_group = task_log_group(cluster_name)
    aws_client("logs", endpoint_url, region).create_log_group(logGroupName=log_group)
    trust = json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": {"Service": "ecs-tasks.amazonaws.com"},
                    "Action": "sts:AssumeRole",
                }
            ],
        }
    )
    task_role = iam.create_role(RoleName=f"{cluster_name}-task", AssumeRolePolicyDocument=trust)["Role"][
        "Arn"
    ]
    execution_role = iam.create_role(RoleName=f"{cluster_name}-execution", AssumeRolePolicyDocument=trust)[
        "Role"
    ]["Arn"]
    common: dict[str, Any] = {
        "networkMode": "awsvpc",
        "requiresCompatibilities": ["FARGATE"],
        "taskRoleArn": task_role,
        "executionRoleArn": execution_role,
    }
    standard = ecs.register_task_definition(
        family=TASK_FAMILY,
        cpu="512",
        memory="1024",
        containerDefinitions=[_airflow_container(CONTAINER_NAME, 1024, STANDARD_SIZE, log_group, region)],
        **common,
    )["taskDefinition"]
    large = ecs.register_task_definition(
        family=LARGE_TASK_FAMILY,
        cpu=LARGE_CPU,
        memory=LARGE_MEMORY,
        containerDefinitions=[
            _airflow_container(LARGE_CONTAINER_NAME, int(LARGE_MEMORY), LARGE_SIZE, log_group, region)
        ],
        **common,
    )["taskDefinition"]
    return replace(
        setup,
        task_definition=TASK_FAMILY,
        task_definition_arn=standard["taskDefinitionArn"],
        task_role_arn=task_role,
        execution_role_arn=execution_role,
        log_group=log_group,
        profile_task_definition=LARGE_TASK_FAMILY,
        profile_task_definition_arn=large["taskDefinitionArn"],
        profile_container_name=LARGE_CONTAINER_NAME,
    )


def _airflow_container(name: str, memory: int, size: str, log_group: str, region: str) -> dict[str, Any]:
    """An Airflow container definition, as the local host runs it: its environment says its size."""
    return {
        "name": name,
        "image": AIRFLOW_IMAGE,
        "essential": True,
        # Container-level memory: moto's RunTask fails (HTTP 500) with task-level memory only.
        "memory": memory,
        "environment": [{"name": TASK_SIZE_ENV, "value": size}],
        # As a Fargate task definition logs: the local ECS host writes its output there.
        "logConfiguration": {
            "logDriver": "awslogs",
            "options": {
                "awslogs-group": log_group,
                "awslogs-region": region,
                "awslogs-stream-prefix": LOG_STREAM_PREFIX,
            },
        },
    }


def with_stack_resources(
    setup: EcsSetup, endpoint_url: str, region: str, resources: list[dict[str, Any]]
) -> EcsSetup:
    """The setup completed with the ECS cluster and task definition the stack itself created.

    ``resources``: the stack's resource summaries. The task definition's roles, Airflow container
    and awslogs group are read from ECS, as the readiness check reads them.
    """
    ecs = aws_client("ecs", endpoint_url, region)
    for resource in resources:
        physical = str(resource.get("PhysicalResourceId") or "")
        if resource["ResourceType"] == "AWS::ECS::Cluster" and physical:
            (cluster,) = ecs.describe_clusters(clusters=[physical])["clusters"]
            setup = replace(setup, cluster_name=cluster["clusterName"], cluster_arn=cluster["clusterArn"])
        elif resource["ResourceType"] == "AWS::ECS::TaskDefinition" and physical:
            definition = ecs.describe_task_definition(taskDefinition=physical)["taskDefinition"]
            (container, *_) = definition["containerDefinitions"]
            options = (container.get("logConfiguration") or {}).get("options") or {}
            setup = replace(
                setup,
                task_definition=definition["family"],
                task_definition_arn=definition["taskDefinitionArn"],
                task_role_arn=definition.get("taskRoleArn", ""),
                execution_role_arn=definition.get("executionRoleArn", ""),
                container_name=container["name"],
                log_group=options.get("awslogs-group", ""),
            )
    return setup
