"""moto's ECS, SQS and EventBridge as the moto patch tests and the local ECS tests set them up
(inside ``mock_aws``): a Fargate cluster, queues read back, and a rule capturing ECS events."""

from __future__ import annotations

import json
from typing import Any

import boto3

from tests.support.aws import CLUSTER, CONTAINER, REGION


class Ecs:
    """A cluster and a Fargate task definition on moto, with short ways to run and look."""

    def __init__(self) -> None:
        ec2 = boto3.client("ec2", region_name=REGION)
        vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
        ec2.modify_vpc_attribute(VpcId=vpc, EnableDnsHostnames={"Value": True})
        self.subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.0.1.0/24")["Subnet"]["SubnetId"]
        self.group = ec2.create_security_group(GroupName="airflow", Description="airflow", VpcId=vpc)[
            "GroupId"
        ]
        awsvpc = {"subnets": [self.subnet], "securityGroups": [self.group]}
        self.network: Any = {"awsvpcConfiguration": awsvpc}
        self.client = boto3.client("ecs", region_name=REGION)
        self.client.create_cluster(clusterName=CLUSTER)
        self.client.register_task_definition(
            family="airflow",
            networkMode="awsvpc",
            requiresCompatibilities=["FARGATE"],
            cpu="512",
            memory="1024",
            containerDefinitions=[{"name": CONTAINER, "image": "airflow", "essential": True, "memory": 1024}],
        )

    def run(self, **kwargs: Any) -> str:
        tasks = self.client.run_task(
            cluster=CLUSTER,
            taskDefinition="airflow",
            launchType="FARGATE",
            networkConfiguration=self.network,
            **kwargs,
        )["tasks"]
        assert len(tasks) == 1
        return str(tasks[0]["taskArn"])

    def describe(self, *tasks: str) -> list[dict[str, Any]]:
        return [dict(t) for t in self.client.describe_tasks(cluster=CLUSTER, tasks=list(tasks))["tasks"]]


def queue(sqs: Any, name: str) -> tuple[str, str]:
    url = sqs.create_queue(QueueName=name)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    return url, arn


def bodies(sqs: Any, url: str) -> list[str]:
    messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
    for message in messages:
        sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
    return [m["Body"] for m in messages]


class EcsEvents:
    """What a rule matching every ECS Task State Change delivers (to an SQS queue, natively)."""

    def __init__(self) -> None:
        self.sqs = boto3.client("sqs", region_name=REGION)
        self.url, queue_arn = queue(self.sqs, "ecs-events")
        events = boto3.client("events", region_name=REGION)
        events.put_rule(Name="ecs", EventPattern=json.dumps({"source": ["aws.ecs"]}))
        events.put_targets(Rule="ecs", Targets=[{"Id": "q", "Arn": queue_arn}])

    def received(self) -> list[dict[str, Any]]:
        return [json.loads(body)["detail"] for body in bodies(self.sqs, self.url)]
