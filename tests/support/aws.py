"""The control plane on moto, driven in-process through the real Lambda handlers.

``mocked_control_plane`` creates what template.yaml deploys (state table with its owner index,
run-request queue, an ECS cluster with a task definition whose container is ``airflow`` and
logs with ``awslogs`` to a CloudWatch Logs group, a rule that captures failed-start events),
points the functions' environment at it, and returns a ``MockedControlPlane`` that delivers
queued run requests to the run_task handler and ECS task state changes to the task_state
handler, the way SQS and EventBridge would.
"""

from __future__ import annotations

import collections
import json
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import boto3
import pytest
from botocore.client import BaseClient
from moto import mock_aws

from ecs_control_plane.contract import EVENT_SOURCE, FAILED_START_DETAIL_TYPE
from ecs_control_plane.runtime import control_plane
from ecs_control_plane.store import StateTable, item_from_dynamodb, state_table_definition
from ecscp.local.lambda_context import LambdaContext
from ecscp.local.lambda_runtime.sqs_source import sqs_record
from functions.reconciler import app as reconciler_app
from functions.run_task import app as run_task_app
from functions.task_state import app as task_state_app

REGION = "us-east-1"
ACCOUNT = "123456789012"
CLUSTER = "airflow-cluster"
CONTROL_PLANE_ID = "ecscp-test-stack"
CONTAINER = "airflow"
#: The task definition's awslogs configuration: group and stream prefix of its container's log.
LOG_GROUP = "/ecs/airflow"
LOG_STREAM_PREFIX = "ecs"


def create_state_table(client: Any, name: str) -> None:
    """The state table as template.yaml defines it (key, owner and active indexes, TTL)."""
    client.create_table(**state_table_definition(name))
    client.update_time_to_live(
        TableName=name, TimeToLiveSpecification={"Enabled": True, "AttributeName": "expires_at"}
    )


class MockedControlPlane:
    """The moto-backed stack plus the two handlers, invoked the way AWS would invoke them."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        self.sqs = boto3.client("sqs", region_name=REGION)
        self.dynamodb = boto3.client("dynamodb", region_name=REGION)
        self.ecs = boto3.client("ecs", region_name=REGION)
        self.events = boto3.client("events", region_name=REGION)
        self.queue_url = env["ECSCP_QUEUE_URL"]
        self.table_name = env["ECSCP_STATE_TABLE"]
        self.alert_queue_url = env["TEST_ALERT_QUEUE_URL"]
        self.table = StateTable(self.dynamodb, self.table_name)
        self.versions: dict[str, int] = {}

    # -- run_task: SQS -> handler ----------------------------------------------------------------

    def receive(self, max_messages: int = 10, visibility_timeout: int = 30) -> list[dict[str, Any]]:
        response = self.sqs.receive_message(
            QueueUrl=self.queue_url,
            MaxNumberOfMessages=max_messages,
            VisibilityTimeout=visibility_timeout,
            AttributeNames=["All"],
            MessageAttributeNames=["All"],
        )
        return [dict(m) for m in response.get("Messages", [])]

    def sqs_event(self, messages: list[dict[str, Any]]) -> dict[str, Any]:
        """The run_task function's event for received messages, built as the local stack's
        Lambda runtime builds it."""
        queue_arn = f"arn:aws:sqs:{REGION}:{ACCOUNT}:{self.queue_url.rsplit('/', 1)[-1]}"
        return {"Records": [sqs_record(m, queue_arn, REGION) for m in messages]}

    def invoke_run_task(self, event: dict[str, Any]) -> dict[str, Any]:
        return dict(run_task_app.lambda_handler(event, LambdaContext(function_name="run_task")))

    def deliver(self, max_batches: int = 20, visibility_timeout: int = 30) -> list[dict[str, Any]]:
        """Like the SQS event source mapping: receive, invoke, delete what succeeded."""
        responses = []
        for _ in range(max_batches):
            messages = self.receive(visibility_timeout=visibility_timeout)
            if not messages:
                break
            response = self.invoke_run_task(self.sqs_event(messages))
            failed = {f["itemIdentifier"] for f in response.get("batchItemFailures", [])}
            for message in messages:
                if message["MessageId"] not in failed:
                    self.sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"])
            responses.append(response)
        return responses

    def deliver_only(self, kind: str) -> dict[str, Any]:
        """Deliver the requests of one kind now; the others stay on the queue, in any order."""
        messages = self.receive(max_messages=10, visibility_timeout=30)
        chosen = [m for m in messages if json.loads(m["Body"]).get("kind") == kind]
        for message in messages:
            if message not in chosen:
                self.sqs.change_message_visibility(
                    QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=0
                )
        response = self.invoke_run_task(self.sqs_event(chosen)) if chosen else {"batchItemFailures": []}
        for message in chosen:
            self.sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"])
        return response

    # -- task_state: ECS -> EventBridge -> handler ----------------------------------------------

    def tasks(self) -> list[dict[str, Any]]:
        arns = self.ecs.list_tasks(cluster=CLUSTER)["taskArns"]
        arns += self.ecs.list_tasks(cluster=CLUSTER, desiredStatus="STOPPED")["taskArns"]
        if not arns:
            return []
        return [dict(t) for t in self.ecs.describe_tasks(cluster=CLUSTER, tasks=arns)["tasks"]]

    def task_for(self, key: str) -> dict[str, Any]:
        """The most recent ECS task started for ``key``."""
        matching = [t for t in self.tasks() if _env(t).get("ECSCP_TASK_KEY") == key]
        assert matching, f"no ECS task carries key {key}"
        return max(matching, key=lambda t: int(_env(t).get("ECSCP_ATTEMPT", "0")))

    def ecs_event(
        self,
        task: dict[str, Any],
        last_status: str,
        *,
        version: int | None = None,
        exit_code: int | None = None,
        stop_code: str | None = None,
        stopped_reason: str | None = None,
        started: bool = True,
        container_name: str = CONTAINER,
    ) -> dict[str, Any]:
        """An "ECS Task State Change" event for a task moto started, as EventBridge delivers it."""
        arn = task["taskArn"]
        if version is None:
            version = self.versions.get(arn, 0) + 1
        self.versions[arn] = max(version, self.versions.get(arn, 0))
        now = "2026-11-25T10:00:00.000Z"
        container: dict[str, Any] = {"name": container_name, "lastStatus": last_status}
        if exit_code is not None:
            container["exitCode"] = exit_code
        detail: dict[str, Any] = {
            "clusterArn": f"arn:aws:ecs:{REGION}:{ACCOUNT}:cluster/{CLUSTER}",
            "taskArn": arn,
            "taskDefinitionArn": task.get("taskDefinitionArn"),
            "lastStatus": last_status,
            "desiredStatus": "STOPPED" if last_status == "STOPPED" else "RUNNING",
            "launchType": "FARGATE",
            "version": version,
            "startedBy": task.get("startedBy", CONTROL_PLANE_ID),
            "group": task.get("group", "family:airflow"),
            "createdAt": now,
            "containers": [container],
            "overrides": task.get("overrides", {"containerOverrides": []}),
        }
        if started and last_status in ("RUNNING", "STOPPED"):
            detail["startedAt"] = now
        if last_status == "STOPPED":
            detail["stoppedAt"] = now
            detail["stopCode"] = stop_code or "EssentialContainerExited"
            if stopped_reason:
                detail["stoppedReason"] = stopped_reason
        return {
            "version": "0",
            "id": str(uuid.uuid4()),
            "detail-type": "ECS Task State Change",
            "source": "aws.ecs",
            "account": ACCOUNT,
            "time": now,
            "region": REGION,
            "resources": [arn],
            "detail": detail,
        }

    def apply(self, event: dict[str, Any]) -> dict[str, Any]:
        return dict(task_state_app.lambda_handler(event, LambdaContext(function_name="task_state")))

    def run_to_exit(self, key: str, exit_code: int, container_name: str = CONTAINER) -> None:
        """PROVISIONING, RUNNING, then STOPPED with ``exit_code`` for the task of ``key``."""
        task = self.task_for(key)
        for status in ("PROVISIONING", "PENDING", "RUNNING"):
            self.apply(self.ecs_event(task, status, container_name=container_name))
        self.apply(self.ecs_event(task, "STOPPED", exit_code=exit_code, container_name=container_name))

    def fail_to_start(self, key: str, reason: str = "CannotPullContainerError: pull access denied") -> None:
        task = self.task_for(key)
        self.apply(self.ecs_event(task, "PROVISIONING"))
        self.apply(
            self.ecs_event(
                task, "STOPPED", stop_code="TaskFailedToStart", stopped_reason=reason, started=False
            )
        )

    def reconcile(self) -> dict[str, Any]:
        """One scheduled run of the reconciler function."""
        event = {"source": "aws.events", "detail-type": "Scheduled Event", "detail": {}}
        return dict(reconciler_app.lambda_handler(event, LambdaContext(function_name="reconciler")))

    def age(self, key: str, seconds: int) -> None:
        """Pretend the item has not changed for ``seconds``."""
        self.dynamodb.update_item(
            TableName=self.table_name,
            Key={"key": {"S": key}},
            UpdateExpression="SET updated_at = updated_at - :d",
            ExpressionAttributeValues={":d": {"N": str(seconds * 1000)}},
        )

    # -- observations ---------------------------------------------------------------------------

    def item(self, key: str) -> Any:
        raw = self.dynamodb.get_item(TableName=self.table_name, Key={"key": {"S": key}}).get("Item")
        return item_from_dynamodb(raw) if raw else None

    def raw_items(self) -> list[dict[str, Any]]:
        return list(self.dynamodb.scan(TableName=self.table_name)["Items"])

    def alerts(self) -> list[dict[str, Any]]:
        """Failed-start events put on the bus (captured by a rule into a queue)."""
        found: list[dict[str, Any]] = []
        while True:
            messages = self.sqs.receive_message(QueueUrl=self.alert_queue_url, MaxNumberOfMessages=10).get(
                "Messages", []
            )
            if not messages:
                return found
            for m in messages:
                found.append(json.loads(m["Body"]))
                self.sqs.delete_message(QueueUrl=self.alert_queue_url, ReceiptHandle=m["ReceiptHandle"])


@contextmanager
def aws_calls() -> Iterator[collections.Counter[str]]:
    """Count every AWS call made meanwhile by any botocore client, as ``"dynamodb.UpdateItem"``."""
    calls: collections.Counter[str] = collections.Counter()
    original = BaseClient._make_api_call

    def counted(client: BaseClient, operation_name: str, api_params: dict[str, Any]) -> Any:
        calls[f"{client.meta.service_model.service_name}.{operation_name}"] += 1
        return original(client, operation_name, api_params)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(BaseClient, "_make_api_call", counted)
        yield calls


def _env(task: dict[str, Any]) -> dict[str, str]:
    """The environment of the task's Airflow container: the override that carries the task key
    (a queue profile's container may have another name than the stack's)."""
    for override in task.get("overrides", {}).get("containerOverrides", []):
        env = {e["name"]: e["value"] for e in override.get("environment", [])}
        if "ECSCP_TASK_KEY" in env:
            return env
    return {}


@contextmanager
def mocked_control_plane(
    monkeypatch: pytest.MonkeyPatch, *, max_attempts: int = 3, **settings: str
) -> Iterator[MockedControlPlane]:
    """Everything the stack deploys, on moto, with the functions' environment pointing at it."""
    with mock_aws():
        ec2 = boto3.client("ec2", region_name=REGION)
        vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
        ec2.modify_vpc_attribute(VpcId=vpc, EnableDnsHostnames={"Value": True})
        subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.0.1.0/24", AvailabilityZone=f"{REGION}a")
        subnet_id = subnet["Subnet"]["SubnetId"]
        sg = ec2.create_security_group(GroupName="airflow", Description="airflow", VpcId=vpc)["GroupId"]

        ecs = boto3.client("ecs", region_name=REGION)
        ecs.create_cluster(clusterName=CLUSTER)
        ecs.register_task_definition(
            family="airflow",
            networkMode="awsvpc",
            requiresCompatibilities=["FARGATE"],
            cpu="512",
            memory="1024",
            containerDefinitions=[
                {
                    "name": CONTAINER,
                    "image": "apache/airflow:3.3.2",
                    "essential": True,
                    "memory": 1024,
                    "logConfiguration": {
                        "logDriver": "awslogs",
                        "options": {
                            "awslogs-group": LOG_GROUP,
                            "awslogs-region": REGION,
                            "awslogs-stream-prefix": LOG_STREAM_PREFIX,
                        },
                    },
                }
            ],
        )
        boto3.client("logs", region_name=REGION).create_log_group(logGroupName=LOG_GROUP)
        sqs = boto3.client("sqs", region_name=REGION)
        dlq = sqs.create_queue(QueueName="run-requests-dlq")["QueueUrl"]
        dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
        queue_url = sqs.create_queue(
            QueueName="run-requests",
            Attributes={
                "VisibilityTimeout": "180",
                "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": "10"}),
            },
        )["QueueUrl"]
        create_state_table(boto3.client("dynamodb", region_name=REGION), "task-state")

        alert_queue = sqs.create_queue(QueueName="captured-alerts")["QueueUrl"]
        alert_arn = sqs.get_queue_attributes(QueueUrl=alert_queue, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
        events = boto3.client("events", region_name=REGION)
        events.put_rule(
            Name="failed-starts",
            EventPattern=json.dumps({"source": [EVENT_SOURCE], "detail-type": [FAILED_START_DETAIL_TYPE]}),
        )
        events.put_targets(Rule="failed-starts", Targets=[{"Id": "capture", "Arn": alert_arn}])

        env = {
            "ECSCP_CLUSTER": CLUSTER,
            "ECSCP_CONTAINER_NAME": CONTAINER,
            "ECSCP_TASK_DEFINITION": "airflow",
            "ECSCP_LAUNCH_TYPE": "FARGATE",
            "ECSCP_PLATFORM_VERSION": "LATEST",
            "ECSCP_ASSIGN_PUBLIC_IP": "false",
            "ECSCP_SUBNETS": subnet_id,
            "ECSCP_SECURITY_GROUPS": sg,
            "ECSCP_RUN_TASK_KWARGS": "{}",
            "ECSCP_CAPACITY_PROVIDER_STRATEGY": "",
            "ECSCP_MAX_RUN_TASK_ATTEMPTS": str(max_attempts),
            "ECSCP_START_RETRY_BASE_SECONDS": "0",
            "ECSCP_STATE_TABLE": "task-state",
            "ECSCP_QUEUE_URL": queue_url,
            "ECSCP_CONTROL_PLANE_ID": CONTROL_PLANE_ID,
            "ECSCP_EVENT_BUS": "default",
            "TEST_ALERT_QUEUE_URL": alert_queue,
            **settings,
        }
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        control_plane.cache_clear()
        try:
            yield MockedControlPlane(env)
        finally:
            control_plane.cache_clear()
