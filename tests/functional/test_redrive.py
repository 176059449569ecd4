"""``ecscp redrive``'s loop on moto's SQS: what moves, what stays, and what a dry run leaves."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws
from typer.testing import CliRunner

from ecscp.cli import app
from ecscp.operations import commands
from ecscp.operations import redrive as redrive_module
from ecscp.operations.redrive import QueueDestination, describe_run_request, redrive
from ecscp.operations.stack import ControlPlaneStack
from tests.support.requests import run_request, task_key


class Queues:
    def __init__(self) -> None:
        self.sqs: Any = boto3.client("sqs", region_name="us-east-1")
        self.dlq = self.sqs.create_queue(QueueName="dlq")["QueueUrl"]
        self.queue = self.sqs.create_queue(QueueName="run-requests")["QueueUrl"]

    def dead_letters(self, count: int) -> list[str]:
        bodies = [run_request(task_key(f"t{i}")).model_dump_json() for i in range(count)]
        for body in bodies:
            self.sqs.send_message(
                QueueUrl=self.dlq,
                MessageBody=body,
                MessageAttributes={"origin": {"DataType": "String", "StringValue": "executor"}},
            )
        return bodies

    def drain(self, url: str) -> list[dict[str, Any]]:
        messages: list[dict[str, Any]] = []
        while batch := self.sqs.receive_message(
            QueueUrl=url, MaxNumberOfMessages=10, MessageAttributeNames=["All"], VisibilityTimeout=60
        ).get("Messages"):
            messages += batch
        return messages

    def move(self, **options: Any) -> Any:
        destination = QueueDestination(self.sqs, options.pop("to", self.queue), "the run-request queue")
        return redrive(self.sqs, self.dlq, destination, describe=describe_run_request, **options)


@pytest.fixture
def queues() -> Iterator[Queues]:
    with mock_aws():
        yield Queues()


def test_dead_letters_move_back_with_their_bodies_and_attributes(queues: Queues) -> None:
    # GIVEN three run requests in the dead-letter queue
    bodies = queues.dead_letters(3)
    moved: list[int] = []

    # WHEN they are redriven
    result = queues.move(on_progress=moved.append)

    # THEN each is on the run-request queue as it was, and the dead-letter queue is empty
    arrived = queues.drain(queues.queue)
    assert sorted(m["Body"] for m in arrived) == sorted(bodies)
    assert {m["MessageAttributes"]["origin"]["StringValue"] for m in arrived} == {"executor"}
    assert queues.drain(queues.dlq) == []
    assert len(result.messages) == sum(moved) == 3
    assert not result.failures


def test_a_dry_run_lists_every_message_and_leaves_each_visible_where_it_was(queues: Queues) -> None:
    # GIVEN two dead letters
    queues.dead_letters(2)

    # WHEN a dry run lists them
    result = queues.move(dry_run=True)

    # THEN it names both, moved nothing, and both can be received again at once
    assert sorted(what for _, what in result.messages) == sorted(
        f"run {task_key(f't{i}')} attempt 1 owner scheduler-a" for i in range(2)
    )
    assert queues.drain(queues.queue) == []
    assert len(queues.drain(queues.dlq)) == 2


def test_max_moves_no_more_than_asked(queues: Queues) -> None:
    queues.dead_letters(5)
    result = queues.move(max_messages=2)
    assert len(result.messages) == 2
    assert len(queues.drain(queues.queue)) == 2
    assert len(queues.drain(queues.dlq)) == 3


def test_a_message_the_destination_refuses_stays_in_the_dead_letter_queue(queues: Queues) -> None:
    # GIVEN a dead letter and a destination queue that does not exist
    queues.dead_letters(1)
    missing = queues.queue.replace("run-requests", "gone")

    # WHEN it is redriven there
    result = queues.move(to=missing)

    # THEN nothing was deleted: the failure is reported and the message is still a dead letter
    assert result.messages == []
    assert len(result.failures) == 1
    assert len(queues.drain(queues.dlq)) == 1


def test_a_queue_is_never_redriven_into_itself(queues: Queues) -> None:
    queues.dead_letters(1)
    with pytest.raises(ValueError, match="into itself"):
        queues.move(to=queues.dlq)
    assert len(queues.drain(queues.dlq)) == 1


def test_more_than_a_batch_moves_every_message_and_max_stops_between_batches(queues: Queues) -> None:
    # GIVEN 25 dead letters, more than one receive returns
    queues.dead_letters(25)

    # WHEN 15 are moved, then the rest
    first = queues.move(max_messages=15)
    rest = queues.move()

    # THEN 15 then 10 moved, each once, and the dead-letter queue is empty
    assert (len(first.messages), len(rest.messages)) == (15, 10)
    assert len({m["MessageId"] for m in queues.drain(queues.queue)}) == 25
    assert queues.drain(queues.dlq) == []


def test_an_interrupted_dry_run_leaves_every_message_visible_at_once(queues: Queues) -> None:
    # GIVEN 15 dead letters, and a dry run stopped (Ctrl-C) while it lists its second batch
    queues.dead_letters(15)
    listed: list[str] = []

    def describe(body: str) -> str:
        if len(listed) == 12:
            raise KeyboardInterrupt
        listed.append(body)
        return describe_run_request(body)

    destination = QueueDestination(queues.sqs, queues.queue, "the run-request queue")
    with pytest.raises(KeyboardInterrupt):
        redrive(queues.sqs, queues.dlq, destination, describe=describe, dry_run=True)

    # THEN none of them waits out the two minutes it was hidden for: all 15 can be received now
    assert len(queues.drain(queues.dlq)) == 15
    assert queues.drain(queues.queue) == []


class SqsThatMayNotCount:
    """An SQS client of a role with exactly the rights docs/operations.md lists for redrive."""

    def __init__(self, sqs: Any) -> None:
        self._sqs = sqs

    def get_queue_attributes(self, **_: Any) -> Any:
        raise ClientError({"Error": {"Code": "AccessDenied", "Message": "no"}}, "GetQueueAttributes")

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sqs, name)


def test_a_role_without_get_queue_attributes_still_redrives(
    queues: Queues, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN three dead letters, and an operator who may receive, delete and send but not count
    queues.dead_letters(3)
    stack = ControlPlaneStack(
        name="prod",
        region="us-east-1",
        status="UPDATE_COMPLETE",
        status_reason="",
        outputs={"DeadLetterQueueUrl": queues.dlq, "RunRequestQueueUrl": queues.queue},
        parameters={},
        resources={},
        session=boto3.session.Session(region_name="us-east-1"),
    )
    stack._clients["sqs"] = SqsThatMayNotCount(queues.sqs)
    monkeypatch.setattr(commands, "_find_stack", lambda *_: stack)

    # WHEN they are redriven
    result = CliRunner().invoke(app, ["redrive", "--stack", "prod", "--json"])

    # THEN all three moved (the progress bar just has no total)
    assert result.exit_code == 0, result.output
    assert len(queues.drain(queues.queue)) == 3


def test_a_dry_run_longer_than_the_visibility_timeout_still_lists_every_message(
    queues: Queues, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN 25 dead letters, and a listing slower than the time a received message stays hidden
    monkeypatch.setattr(redrive_module, "MOVE_VISIBILITY_SECONDS", 3)
    queues.dead_letters(25)

    def slowly(body: str) -> str:
        time.sleep(0.2)
        return describe_run_request(body)

    # WHEN a dry run lists them (the first batch would be visible again before the third receive)
    destination = QueueDestination(queues.sqs, queues.queue, "the run-request queue")
    result = redrive(queues.sqs, queues.dlq, destination, describe=slowly, dry_run=True)

    # THEN every message is listed once, and all are visible again at the end
    assert len({message_id for message_id, _ in result.messages}) == len(result.messages) == 25
    assert not result.failures
    assert len(queues.drain(queues.dlq)) == 25
