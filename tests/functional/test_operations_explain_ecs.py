"""``ecscp explain`` of an ECS task on moto's ECS: which cluster's task it is."""

from __future__ import annotations

import boto3
import pytest
from moto import mock_aws

from ecscp.operations.explain import explain, parse_target
from ecscp.operations.stack import ControlPlaneStack, OperationsError

REGION = "us-east-1"
ARN = f"arn:aws:ecs:{REGION}:123456789012:task/prod/0123456789abcdef0123456789abcdef"


def stack_of_cluster(cluster: str) -> ControlPlaneStack:
    return ControlPlaneStack(
        name="prod",
        region=REGION,
        status="UPDATE_COMPLETE",
        status_reason="",
        outputs={},
        parameters={"Cluster": cluster},
        resources={},
        session=boto3.session.Session(region_name=REGION),
    )


def test_a_task_of_another_cluster_is_refused_naming_both_clusters() -> None:
    # GIVEN a stack of cluster prod, and the ARN of a task of cluster staging
    stack = stack_of_cluster(f"arn:aws:ecs:{REGION}:123456789012:cluster/prod")
    other = ARN.replace("task/prod/", "task/staging/")

    # WHEN it is explained THEN the message says whose task it is, not that ECS forgot it
    with (
        mock_aws(),
        pytest.raises(OperationsError, match="is of cluster staging, and stack prod runs its tasks"),
    ):
        explain(stack, parse_target(other))


@pytest.mark.parametrize("cluster", ["prod", f"arn:aws:ecs:{REGION}:123456789012:cluster/prod"])
def test_a_task_of_the_stacks_own_cluster_is_looked_up_in_it(cluster: str) -> None:
    with mock_aws():
        boto3.client("ecs", region_name=REGION).create_cluster(clusterName="prod")
        with pytest.raises(OperationsError, match="ECS does not know task"):
            explain(stack_of_cluster(cluster), parse_target(ARN))
