"""SQS: Lambda invocation on send, the queue counts on send and receive, message scans."""

from __future__ import annotations

import io
import zipfile
from typing import Any

import boto3
import pytest
from moto import mock_aws
from moto.sqs import models as sqs_models
from moto.sqs.models import Message, Queue

from ecscp.local.moto_patches import (
    sqs_message_scans,
    sqs_no_lambda_invoke,
    sqs_send_attributes,
)
from tests.support.aws import REGION
from tests.support.moto_ecs import bodies, queue

from .conftest import Apply

# --- SQS ---------------------------------------------------------------------------------------


def _function_zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("app.py", "def handler(event, context):\n    return None\n")
    return buffer.getvalue()


def test_sqs_no_lambda_invoke(patched: Apply) -> None:
    with mock_aws(config={"lambda": {"use_docker": False}}):
        # GIVEN a queue mapped to a function, as the template maps the run-request queue
        sqs = boto3.client("sqs", region_name=REGION)
        iam = boto3.client("iam", region_name=REGION)
        awslambda = boto3.client("lambda", region_name=REGION)
        role = iam.create_role(RoleName="fn", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
        awslambda.create_function(
            FunctionName="fn",
            Runtime="python3.11",
            Role=role,
            Handler="app.handler",
            Code={"ZipFile": _function_zip()},
        )
        url, arn = queue(sqs, "requests")
        awslambda.create_event_source_mapping(EventSourceArn=arn, FunctionName="fn", BatchSize=10)

        # WHEN a message is sent, with moto as released THEN moto's Lambda takes it inside the call
        sqs.send_message(QueueUrl=url, MessageBody="first")
        assert bodies(sqs, url) == []

        # GIVEN the patch THEN it waits on the queue for the poller, as on AWS
        patched(sqs_no_lambda_invoke)
        sqs.send_message(QueueUrl=url, MessageBody="second")
        assert bodies(sqs, url) == ["second"]


def test_sqs_send_attributes(patched: Apply, monkeypatch: pytest.MonkeyPatch) -> None:
    counted: list[str] = []
    count = Queue.approximate_number_of_messages

    def counting(self: Queue) -> int:
        counted.append(self.name)
        return int(count.fget(self))  # type: ignore[attr-defined]

    monkeypatch.setattr(Queue, "approximate_number_of_messages", property(counting))
    with mock_aws():
        sqs = boto3.client("sqs", region_name=REGION)
        url, _ = queue(sqs, "busy")
        # GIVEN moto as released THEN sending and receiving count the queue's messages
        counted.clear()
        sqs.send_message(QueueUrl=url, MessageBody="one")
        sqs.send_message_batch(QueueUrl=url, Entries=[{"Id": "a", "MessageBody": "two"}])
        assert len(counted) >= 2
        counted.clear()
        assert len(sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)["Messages"]) == 2
        assert counted

        # GIVEN the patch THEN they do not; GetQueueAttributes still counts, correctly
        patched(sqs_send_attributes)
        counted.clear()
        sqs.send_message(QueueUrl=url, MessageBody="three")
        sqs.send_message_batch(QueueUrl=url, Entries=[{"Id": "b", "MessageBody": "four"}])
        assert counted == []
        assert len(sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)["Messages"]) == 2
        assert counted == []
        attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
        assert attributes["ApproximateNumberOfMessagesNotVisible"] == "4"
        assert attributes["ApproximateNumberOfMessages"] == "0"
        assert counted == ["busy"]


QUEUED = 30


def _receive_and_delete(sqs: Any, url: str) -> list[Any]:
    """What receiving, re-receiving and deleting (with current, old and wrong handles) answer."""
    outcomes: list[Any] = []
    first = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=0)["Messages"]
    again = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=30)["Messages"]
    outcomes.append(sorted(m["Body"] for m in first) == sorted(m["Body"] for m in again))
    entries = [{"Id": f"old{i}", "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(first[:3])]
    entries += [{"Id": f"new{i}", "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(again[3:6])]
    entries.append({"Id": "wrong", "ReceiptHandle": "not-a-handle"})
    deleted = sqs.delete_message_batch(QueueUrl=url, Entries=entries)
    outcomes.append(sorted(entry["Id"] for entry in deleted["Successful"]))
    outcomes.append([(entry["Id"], entry["Code"]) for entry in deleted["Failed"]])
    sqs.delete_message(QueueUrl=url, ReceiptHandle=again[0]["ReceiptHandle"])  # deleted: accepted again
    delayed = sqs.send_message(QueueUrl=url, MessageBody="later", DelaySeconds=60)["MessageId"]
    rest = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=30)["Messages"]
    outcomes.append(len(rest))
    outcomes.append(delayed not in {m["MessageId"] for m in rest})
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    outcomes.append(
        [attributes[f"ApproximateNumberOfMessages{kind}"] for kind in ("", "NotVisible", "Delayed")]
    )
    return outcomes


def _next_in_group_after_delete(sqs: Any, name: str) -> list[str]:
    """A FIFO group's next message is delivered once the one before it is deleted."""
    url = sqs.create_queue(QueueName=f"{name}.fifo", Attributes={"FifoQueue": "true"})["QueueUrl"]
    for body in ("one", "two"):
        sqs.send_message(QueueUrl=url, MessageBody=body, MessageGroupId="g", MessageDeduplicationId=body)
    (first,) = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=1)["Messages"]
    assert sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=1).get("Messages", []) == []
    sqs.delete_message(QueueUrl=url, ReceiptHandle=first["ReceiptHandle"])
    second = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=1).get("Messages", [])
    return [first["Body"], *(m["Body"] for m in second)]


def _full_queue(sqs: Any, name: str) -> str:
    url, _ = queue(sqs, name)
    for start in range(0, QUEUED, 10):
        entries = [{"Id": str(n), "MessageBody": f"m{n}"} for n in range(start, start + 10)]
        sqs.send_message_batch(QueueUrl=url, Entries=entries)
    return url


def test_sqs_message_scans(patched: Apply, monkeypatch: pytest.MonkeyPatch) -> None:
    clock_reads: list[int] = []
    handle_checks: list[int] = []
    clock = sqs_models.unix_time_millis
    had_receipt_handle = Message.had_receipt_handle

    def counting_clock(*args: Any) -> float:
        clock_reads.append(1)
        return float(clock(*args))

    def counting_handles(self: Message, receipt_handle: str) -> bool:
        handle_checks.append(1)
        return bool(had_receipt_handle(self, receipt_handle))

    monkeypatch.setattr(sqs_models, "unix_time_millis", counting_clock)
    monkeypatch.setattr(Message, "had_receipt_handle", counting_handles)
    with mock_aws():
        sqs = boto3.client("sqs", region_name=REGION)
        # GIVEN moto as released (receiving does not count the queue, as in the local stack) THEN
        # a receive reads the clock twice for every message queued, and a delete checks every
        # message's handles twice
        patched(sqs_send_attributes)
        url = _full_queue(sqs, "deep")
        clock_reads.clear()
        sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=1, VisibilityTimeout=0)
        assert len(clock_reads) >= 2 * QUEUED
        released = _receive_and_delete(sqs, url)
        assert len(handle_checks) >= 2 * QUEUED
        assert _next_in_group_after_delete(sqs, "group") == ["one", "two"]

        # GIVEN the patch THEN the same answers; a receive reads the clock once per scan and for
        # what it returns, and a delete finds its message without building handle lists
        patched(sqs_message_scans)
        url = _full_queue(sqs, "deeper")
        clock_reads.clear()
        sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=1, VisibilityTimeout=0)
        assert len(clock_reads) < QUEUED / 3
        handle_checks.clear()
        assert _receive_and_delete(sqs, url) == released
        assert _next_in_group_after_delete(sqs, "group-patched") == ["one", "two"]
        assert handle_checks == []
