"""Adapters for ECS, SQS and EventBridge. Each takes its boto3 client and makes none."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from .contract import EVENT_SOURCE, FAILED_START_DETAIL_TYPE, FailedStartDetail, RunRequest
from .ecs_events import EcsTask
from .retry import FailureClass, classify_api_error, classify_run_task_failure

if TYPE_CHECKING:
    from mypy_boto3_ecs.client import ECSClient
    from mypy_boto3_events.client import EventBridgeClient
    from mypy_boto3_sqs.client import SQSClient

SQS_BATCH_LIMIT = 10
SQS_MAX_DELAY_SECONDS = 900


@dataclass(frozen=True)
class RunTaskOutcome:
    """What came of one RunTask call: a task ARN, or a classified failure."""

    task_arn: str | None = None
    failure: FailureClass | None = None
    reason: str | None = None

    @property
    def started(self) -> bool:
        return self.task_arn is not None


class EcsGateway:
    """RunTask, StopTask and DescribeTasks, with errors turned into classified outcomes."""

    def __init__(self, client: ECSClient) -> None:
        self._client = client

    def run_task(self, kwargs: dict[str, Any]) -> RunTaskOutcome:
        try:
            response = self._client.run_task(**kwargs)
        except ClientError as exc:
            error = exc.response.get("Error", {})
            code = str(error.get("Code", "Unknown"))
            resources: list[Any] = list(exc.response.get("resourceIds") or [])  # type: ignore[call-overload]
            if code == "ConflictException" and resources:
                # The token was used before with other parameters (a stack update between two
                # deliveries): ECS names the task it started for it, which is our task.
                return RunTaskOutcome(task_arn=str(resources[0]))
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            return RunTaskOutcome(
                failure=classify_api_error(code, status), reason=f"{code}: {error.get('Message', '')}".strip()
            )
        except BotoCoreError as exc:  # connection errors, timeouts: ECS may be fine a moment later
            return RunTaskOutcome(failure=FailureClass.TRANSIENT, reason=f"{type(exc).__name__}: {exc}")
        tasks = response.get("tasks") or []
        if tasks:
            return RunTaskOutcome(task_arn=tasks[0]["taskArn"])
        failures = response.get("failures") or []
        reasons = "; ".join(
            f"{f.get('reason', '?')}{': ' + f['detail'] if f.get('detail') else ''}" for f in failures
        )
        if not failures:
            return RunTaskOutcome(
                failure=FailureClass.RETRY_ATTEMPT, reason="RunTask returned no task and no failure"
            )
        classes = {classify_run_task_failure(str(f.get("reason", ""))) for f in failures}
        failure = (
            FailureClass.PERMANENT if classes == {FailureClass.PERMANENT} else FailureClass.RETRY_ATTEMPT
        )
        return RunTaskOutcome(failure=failure, reason=reasons)

    def stop_task(self, cluster: str, task_arn: str, reason: str) -> None:
        self._client.stop_task(cluster=cluster, task=task_arn, reason=reason[:255])

    def running_task_arns(self, cluster: str, started_by: str) -> list[str]:
        """ARNs of the tasks this control plane started that ECS still wants running."""
        arns: list[str] = []
        paginator = self._client.get_paginator("list_tasks")
        # ECS: with startedBy it must be the only filter; RUNNING is the default desired status.
        for page in paginator.paginate(cluster=cluster, startedBy=started_by):
            arns.extend(page.get("taskArns", []))
        return arns

    def describe_tasks(self, cluster: str, task_arns: Sequence[str]) -> list[EcsTask]:
        tasks: list[EcsTask] = []
        for start in range(0, len(task_arns), 100):
            response = self._client.describe_tasks(
                cluster=cluster, tasks=list(task_arns[start : start + 100])
            )
            tasks.extend(EcsTask.model_validate(t) for t in response.get("tasks", []))
        return tasks


@dataclass
class BatchSendResult:
    failed: list[tuple[RunRequest, str]] = field(default_factory=list)
    sent: int = 0


class RunRequestQueue:
    """The run-request queue: send (alone or in batches of ten) and delay redelivery."""

    def __init__(self, client: SQSClient, queue_url: str) -> None:
        self._client = client
        self.queue_url = queue_url

    def send(self, request: RunRequest, delay_seconds: int = 0) -> str:
        response = self._client.send_message(
            QueueUrl=self.queue_url,
            MessageBody=request.model_dump_json(),
            DelaySeconds=max(0, min(SQS_MAX_DELAY_SECONDS, int(delay_seconds))),
        )
        return response["MessageId"]

    def send_batch(self, requests: Sequence[RunRequest]) -> BatchSendResult:
        """Send up to any number of requests, ten per call; report each one that failed."""
        result = BatchSendResult()
        for start in range(0, len(requests), SQS_BATCH_LIMIT):
            chunk = requests[start : start + SQS_BATCH_LIMIT]
            entries = [{"Id": str(i), "MessageBody": r.model_dump_json()} for i, r in enumerate(chunk)]
            try:
                response = self._client.send_message_batch(QueueUrl=self.queue_url, Entries=entries)  # type: ignore[arg-type]
            except (ClientError, BotoCoreError) as exc:
                result.failed.extend((r, f"{type(exc).__name__}: {exc}") for r in chunk)
                continue
            result.sent += len(response.get("Successful", []))
            for failed in response.get("Failed", []):
                result.failed.append(
                    (chunk[int(failed["Id"])], f"{failed.get('Code')}: {failed.get('Message', '')}")
                )
        return result

    def delay_redelivery(self, receipt_handle: str, seconds: int) -> None:
        self._client.change_message_visibility(
            QueueUrl=self.queue_url,
            ReceiptHandle=receipt_handle,
            VisibilityTimeout=max(0, min(43200, int(seconds))),
        )

    def attributes(self) -> dict[str, str]:
        response = self._client.get_queue_attributes(QueueUrl=self.queue_url, AttributeNames=["All"])
        return {str(k): v for k, v in response.get("Attributes", {}).items()}


class FailedStartAlerts:
    """Puts the ``Airflow Task Start Failed`` event that the alert rule turns into an SNS message."""

    def __init__(self, client: EventBridgeClient, event_bus: str = "default") -> None:
        self._client = client
        self._bus = event_bus

    def publish(self, detail: FailedStartDetail) -> None:
        response = self._client.put_events(
            Entries=[
                {
                    "Source": EVENT_SOURCE,
                    "DetailType": FAILED_START_DETAIL_TYPE,
                    "Detail": json.dumps(detail.model_dump(mode="json")),
                    "EventBusName": self._bus,
                }
            ]
        )
        if response.get("FailedEntryCount"):
            entry = response["Entries"][0]
            raise RuntimeError(
                f"failed-start event not accepted: {entry.get('ErrorCode')} {entry.get('ErrorMessage')}"
            )
