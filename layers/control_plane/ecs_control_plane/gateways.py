"""Adapters for ECS, SQS and EventBridge. Each takes its boto3 client and makes none."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError, ParamValidationError

from .contract import EVENT_SOURCE, FAILED_START_DETAIL_TYPE, FailedStartDetail, RunRequest
from .ecs_events import EcsTask
from .readiness import CheckError
from .retry import FailureClass, classify_api_error, classify_run_task_failure

if TYPE_CHECKING:
    from mypy_boto3_ecs.client import ECSClient
    from mypy_boto3_events.client import EventBridgeClient
    from mypy_boto3_sqs.client import SQSClient

SQS_BATCH_LIMIT = 10
SQS_MAX_DELAY_SECONDS = 900
#: SQS refuses a message, and a whole SendMessageBatch call, larger than this (256 KiB).
SQS_MAX_BYTES = 262_144


@dataclass(frozen=True)
class RunTaskOutcome:
    """What came of one RunTask call: a task ARN, or a classified failure."""

    task_arn: str | None = None
    failure: FailureClass | None = None
    reason: str | None = None
    #: The revision the task runs (RunTask's answer), when ECS said.
    task_definition_arn: str | None = None

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
            message = str(error.get("Message", ""))
            return RunTaskOutcome(
                failure=classify_api_error(code, status, message), reason=f"{code}: {message}".strip()
            )
        except ParamValidationError as exc:  # the call itself is malformed: no retry will fix it
            return RunTaskOutcome(failure=FailureClass.PERMANENT, reason=f"invalid RunTask parameters: {exc}")
        except BotoCoreError as exc:  # connection errors, timeouts: ECS may be fine a moment later
            return RunTaskOutcome(failure=FailureClass.TRANSIENT, reason=f"{type(exc).__name__}: {exc}")
        tasks = response.get("tasks") or []
        if tasks:
            return RunTaskOutcome(
                task_arn=tasks[0]["taskArn"], task_definition_arn=tasks[0].get("taskDefinitionArn")
            )
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

    def describe_cluster(self, cluster: str) -> dict[str, Any] | None:
        """The cluster, None if ECS does not know it; CheckError if ECS refuses to say."""
        try:
            response = self._client.describe_clusters(clusters=[cluster])
        except (ClientError, BotoCoreError) as exc:
            raise CheckError(
                f"DescribeClusters of {cluster!r} failed: {_error_text(exc)}", _transient(exc)
            ) from exc
        clusters = response.get("clusters") or []
        return dict(clusters[0]) if clusters else None

    def describe_task_definition(self, task_definition: str) -> dict[str, Any]:
        """The task definition (latest ACTIVE revision of a family); CheckError if it does not resolve."""
        try:
            response = self._client.describe_task_definition(taskDefinition=task_definition)
        except (ClientError, BotoCoreError) as exc:
            raise CheckError(
                f"task definition {task_definition!r} does not resolve: {_error_text(exc)}", _transient(exc)
            ) from exc
        return dict(response["taskDefinition"])

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


def _transient(exc: Exception) -> bool:
    """Throttling, a 5xx, refused function credentials, no connection: not about the settings."""
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        code, message = str(error.get("Code", "")), str(error.get("Message", ""))
        return classify_api_error(code, status, message) is FailureClass.TRANSIENT
    return True


def _error_text(exc: Exception) -> str:
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        return f"{error.get('Code', 'Unknown')}: {error.get('Message', '')}".strip()
    return f"{type(exc).__name__}: {exc}"


@dataclass
class BatchSendResult:
    #: Requests that may be sent again later (the call or the entry failed for now).
    failed: list[tuple[RunRequest, str]] = field(default_factory=list)
    #: Requests SQS will never take (too large, refused as the sender's fault): fail them now.
    refused: list[tuple[RunRequest, str]] = field(default_factory=list)
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
        """Send any number of requests in as few calls as SQS allows; report each one that failed.

        Calls carry at most ten messages and 256 KiB in all, so one large request never makes SQS
        refuse the other nine of its batch; a request that is too large on its own is refused alone.
        """
        result = BatchSendResult()
        chunks: list[list[tuple[RunRequest, str]]] = []
        chunk: list[tuple[RunRequest, str]] = []
        chunk_bytes = 0
        for request in requests:
            body = request.model_dump_json()
            size = len(body.encode())
            if size > SQS_MAX_BYTES:
                result.refused.append(
                    (
                        request,
                        f"the run request is {size} bytes, more than the {SQS_MAX_BYTES} bytes SQS accepts "
                        "in a message: shrink the task's executor_config",
                    )
                )
                continue
            if chunk and (len(chunk) == SQS_BATCH_LIMIT or chunk_bytes + size > SQS_MAX_BYTES):
                chunks.append(chunk)
                chunk, chunk_bytes = [], 0
            chunk.append((request, body))
            chunk_bytes += size
        if chunk:
            chunks.append(chunk)
        for entries in chunks:
            self._send_chunk(entries, result)
        return result

    def _send_chunk(self, chunk: list[tuple[RunRequest, str]], result: BatchSendResult) -> None:
        entries = [{"Id": str(i), "MessageBody": body} for i, (_, body) in enumerate(chunk)]
        try:
            response = self._client.send_message_batch(QueueUrl=self.queue_url, Entries=entries)  # type: ignore[arg-type]
        except (ClientError, BotoCoreError) as exc:
            result.failed.extend((request, f"{type(exc).__name__}: {exc}") for request, _ in chunk)
            return
        result.sent += len(response.get("Successful", []))
        for failed in response.get("Failed", []):
            request = chunk[int(failed["Id"])][0]
            why = f"{failed.get('Code')}: {failed.get('Message', '')}"
            (result.refused if failed.get("SenderFault") else result.failed).append((request, why))

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
