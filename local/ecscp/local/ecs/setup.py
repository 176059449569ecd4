"""The ECS side that the stack only refers to, created in moto before the deploy.

On a real account the cluster, its network, the task and execution roles, the Airflow task
definition and the CloudWatch Logs group its container logs to (``awslogs``) exist before
``sam deploy``, and the template takes them as parameters
(:mod:`ecscp.local.cloudformation.parameters` finds them here). The benchmarks start their
tasks into the same setup.

Departs from AWS: shaped for what moto's RunTask needs (DNS hostnames on the VPC and
container-level memory, without which RunTask fails with HTTP 500); one subnet and one security
group; nothing is pulled or run here: the local ECS host runs the containers.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from ecscp.local.endpoint import aws_client

#: The Airflow container's task definition: moto needs container-level memory.
CONTAINER_NAME = "airflow"
TASK_FAMILY = "airflow"
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


def create_ecs_setup(endpoint_url: str, region: str, cluster_name: str) -> EcsSetup:
    """Cluster, network, roles, the Airflow task definition and its log group, shaped so moto's
    RunTask works."""
    ec2 = aws_client("ec2", endpoint_url, region)
    ecs = aws_client("ecs", endpoint_url, region)
    iam = aws_client("iam", endpoint_url, region)
    log_group = task_log_group(cluster_name)
    aws_client("logs", endpoint_url, region).create_log_group(logGroupName=log_group)
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
    cluster_arn = ecs.create_cluster(clusterName=cluster_name)["cluster"]["clusterArn"]
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
    task_definition = ecs.register_task_definition(
        family=TASK_FAMILY,
        networkMode="awsvpc",
        requiresCompatibilities=["FARGATE"],
        cpu="512",
        memory="1024",
        taskRoleArn=task_role,
        executionRoleArn=execution_role,
        containerDefinitions=[
            # Container-level memory: moto's RunTask fails (HTTP 500) with task-level memory only.
            {
                "name": CONTAINER_NAME,
                "image": AIRFLOW_IMAGE,
                "essential": True,
                "memory": 1024,
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
        ],
    )["taskDefinition"]
    return EcsSetup(
        cluster_name=cluster_name,
        cluster_arn=cluster_arn,
        subnet_id=subnet_id,
        security_group_id=group_id,
        task_definition=TASK_FAMILY,
        task_definition_arn=task_definition["taskDefinitionArn"],
        task_role_arn=task_role,
        execution_role_arn=execution_role,
        log_group=log_group,
    )
