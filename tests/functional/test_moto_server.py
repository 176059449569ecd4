"""The local endpoint's HTTP server: what botocore and the ECS host need of it, on a real moto
process (``ecscp.local.moto_server``): kept-alive connections, S3 uploads that expect
``100 Continue``, long-polls that do not hold up other calls, and the request counts."""

from __future__ import annotations

import http.client
import json
import subprocess
import threading
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest

from ecscp.local.endpoint import aws_client
from ecscp.local.moto_server import REQUESTS_PATH, start_server
from ecscp.local.processes import stop_child

REGION = "us-east-1"


@pytest.fixture(scope="module")
def endpoint() -> Iterator[str]:
    process, url = start_server(subprocess.DEVNULL)
    try:
        yield url
    finally:
        stop_child(process)


def _connection(endpoint: str) -> http.client.HTTPConnection:
    parts = urlsplit(endpoint)
    return http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=10)


def test_one_connection_carries_one_request_after_another(endpoint: str) -> None:
    # GIVEN one connection
    connection = _connection(endpoint)
    # WHEN three requests go over it, one after the other
    for _ in range(3):
        connection.request("GET", REQUESTS_PATH)
        response = connection.getresponse()
        body = response.read()
        # THEN each is answered, and the server keeps the connection open
        assert response.status == 200
        assert response.getheader("Connection") != "close"
        assert isinstance(json.loads(body), dict)
    connection.close()


def test_an_s3_upload_that_expects_100_continue_is_stored(endpoint: str) -> None:
    # GIVEN botocore's S3 client, which sends PutObject with "Expect: 100-continue"
    s3 = aws_client("s3", endpoint, REGION)
    s3.create_bucket(Bucket="uploads")
    body = bytes(range(256)) * 4096  # 1 MiB
    # WHEN it uploads, twice over its kept-alive connection
    for key in ("a.zip", "b.zip"):
        s3.put_object(Bucket="uploads", Key=key, Body=body)
    # THEN both objects are stored whole
    for key in ("a.zip", "b.zip"):
        assert s3.get_object(Bucket="uploads", Key=key)["Body"].read() == body


def test_waiting_long_polls_do_not_hold_up_other_calls(endpoint: str) -> None:
    # GIVEN more waiting long-polls than the stack ever has (SQS ReceiveMessage, 3 s each)
    sqs = aws_client("sqs", endpoint, REGION)
    url = sqs.create_queue(QueueName="empty")["QueueUrl"]

    def poll() -> None:
        aws_client("sqs", endpoint, REGION).receive_message(QueueUrl=url, WaitTimeSeconds=3)

    pollers = [threading.Thread(target=poll) for _ in range(16)]
    for poller in pollers:
        poller.start()
    time.sleep(0.5)
    # WHEN another call comes meanwhile
    started = time.monotonic()
    sqs.send_message(QueueUrl=url, MessageBody="x")
    answered_in = time.monotonic() - started
    for poller in pollers:
        poller.join()
    # THEN it is answered at once, not after the long-polls
    assert answered_in < 1.0


def test_requests_are_counted_by_operation(endpoint: str) -> None:
    # GIVEN the counts so far
    def counts() -> dict[str, Any]:
        connection = _connection(endpoint)
        connection.request("GET", REQUESTS_PATH)
        result: dict[str, Any] = json.loads(connection.getresponse().read())
        connection.close()
        return result

    before = counts()
    # WHEN two SQS calls and one S3 call are made
    sqs = aws_client("sqs", endpoint, REGION)
    sqs.create_queue(QueueName="counted")
    sqs.list_queues()
    aws_client("s3", endpoint, REGION).list_buckets()
    after = counts()
    # THEN each is counted under its operation (X-Amz-Target, else method and first path segment)
    made = {op: n - before.get(op, 0) for op, n in after.items() if n != before.get(op, 0)}
    assert made == {"AmazonSQS.CreateQueue": 1, "AmazonSQS.ListQueues": 1, "GET /": 1}
