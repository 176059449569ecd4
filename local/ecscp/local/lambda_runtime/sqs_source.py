"""Lambda's SQS event source mapping, polled by the function's local worker.

A batch of up to ``BatchSize`` messages (waiting up to ``MaximumBatchingWindowInSeconds`` for
more) becomes one invocation, its records shaped as Lambda delivers them. With
``ReportBatchItemFailures`` only the records not reported as failed are deleted, and an unusable
``itemIdentifier`` fails the whole batch, as on AWS; a handler error leaves the whole batch to
reappear after the queue's visibility timeout.

Departs from AWS: each worker process polls for itself and takes a batch only when its handler
is free (Lambda's pollers scale apart from the function's concurrency).
"""

from __future__ import annotations

import base64
import logging
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ecscp.local.spec import SqsSource

if TYPE_CHECKING:
    from mypy_boto3_sqs.client import SQSClient

log = logging.getLogger(__name__)

#: Pause between ReceiveMessage calls while a batching window is open.
WINDOW_POLL_SECONDS = 0.05


def sqs_record(message: dict[str, Any], queue_arn: str, region: str) -> dict[str, Any]:
    """An SQS message as a Lambda SQS event record."""
    attributes: dict[str, Any] = {}
    for name, value in (message.get("MessageAttributes") or {}).items():
        attribute: dict[str, Any] = {
            "stringListValues": [],
            "binaryListValues": [],
            "dataType": value.get("DataType", "String"),
        }
        if "StringValue" in value:
            attribute["stringValue"] = value["StringValue"]
        if "BinaryValue" in value:
            attribute["binaryValue"] = base64.b64encode(value["BinaryValue"]).decode()
        attributes[name] = attribute
    return {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message["Body"],
        "attributes": dict(message.get("Attributes") or {}),
        "messageAttributes": attributes,
        "md5OfBody": message.get("MD5OfBody", ""),
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": region,
    }


def failed_message_ids(response: Any, records: list[dict[str, Any]]) -> set[str] | None:
    """Ids reported in ``batchItemFailures``; None when the response fails the whole batch."""
    ids = {r["messageId"] for r in records}
    if not isinstance(response, dict) or not response.get("batchItemFailures"):
        return set()
    failed: set[str] = set()
    for failure in response["batchItemFailures"]:
        identifier = failure.get("itemIdentifier") if isinstance(failure, dict) else None
        if not identifier or identifier not in ids:
            return None  # AWS treats an unusable identifier as a failure of the whole batch
        failed.add(identifier)
    return failed


def poll_sqs(
    sqs: SQSClient,
    source: SqsSource,
    invoke: Callable[[Any, str], tuple[bool, Any]],
    *,
    region: str,
    stopping: threading.Event,
    wait_seconds: int = 0,
) -> int:
    """Receive one batch and invoke the function with it; the number of records handled."""
    messages: list[dict[str, Any]] = []
    wanted = source.batch_size
    deadline = time.monotonic() + source.maximum_batching_window_seconds
    while len(messages) < wanted:
        got = sqs.receive_message(
            QueueUrl=source.queue_url,
            MaxNumberOfMessages=min(10, wanted - len(messages)),
            AttributeNames=["All"],
            MessageAttributeNames=["All"],
            WaitTimeSeconds=0 if messages else wait_seconds,
        ).get("Messages", [])
        messages.extend(dict(m) for m in got)
        if not got and (not messages or time.monotonic() >= deadline):
            break
        if not got:  # inside the batching window: wait for more records
            stopping.wait(WINDOW_POLL_SECONDS)
            continue
        if len(got) < 10 and time.monotonic() >= deadline:
            break
    if not messages:
        return 0
    records = [sqs_record(m, source.queue_arn, region) for m in messages]
    ok, response = invoke({"Records": records}, f"{len(records)} SQS record(s)")
    if not ok:
        return len(records)  # the whole batch becomes visible again after its timeout
    failed = failed_message_ids(response, records) if source.report_batch_item_failures else set()
    if failed is None:
        log.error("batchItemFailures names an unknown message: the whole batch is retried")
        return len(records)
    done = [r for r in records if r["messageId"] not in failed]
    for start in range(0, len(done), 10):
        chunk = done[start : start + 10]
        sqs.delete_message_batch(
            QueueUrl=source.queue_url,
            Entries=[{"Id": str(i), "ReceiptHandle": r["receiptHandle"]} for i, r in enumerate(chunk)],
        )
    return len(records)
