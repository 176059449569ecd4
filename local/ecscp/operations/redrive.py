"""``ecscp redrive``: dead letters back to where they belong, sent first and deleted after.

Run requests go from their dead-letter queue back to the run-request queue, body and message
attributes as they were. ECS task events (``--task-events``) are events for the task_state
function (Lambda's asynchronous-invocation DLQ and the rule target's DLQ both keep the event as
the body); they go back to it as an asynchronous invocation (``lambda:InvokeFunction``,
``InvocationType=Event``), so one that fails again returns to the same dead-letter queue. On the
local stack, whose functions run in its own workers, they go on the task-state rule target's
delivery queue that the worker polls: the same asynchronous path.

Each message is sent (or invoked) before it is deleted, so a crash in between duplicates a
message, never loses one. That is safe: ``run_task`` makes one ECS task per (key, attempt)
(``clientToken``) and drops a request whose item is already starting, running or over
(``run_requests.plan_run``); ``task_state`` applies an event only if it is newer than what the item
holds, for its attempt and task (``ecs_events.plan_transition``). A receive and send/delete loop
in batches of ten, not SQS's StartMessageMoveTask: that one cannot list what it would move, stop
after N, or target a function.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from botocore.exceptions import BotoCoreError, ClientError

from ecs_control_plane.contract import MalformedRequestError, RunRequest
from ecs_control_plane.ecs_events import EcsTask

from .stack import TASK_STATE_FUNCTION, TASK_STATE_RULE, ControlPlaneStack, OperationsError

#: How long a received dead letter stays hidden from other readers while it is being moved.
MOVE_VISIBILITY_SECONDS = 120
#: A long poll: an empty answer means the queue has nothing visible (a short one samples servers).
WAIT_SECONDS = 2


@dataclass(frozen=True)
class DeadLetter:
    """One message of a dead-letter queue."""

    message_id: str
    receipt_handle: str
    body: str
    message_attributes: dict[str, Any] = field(default_factory=dict)
    receive_count: int = 0

    @classmethod
    def of(cls, message: dict[str, Any]) -> DeadLetter:
        return cls(
            message_id=message["MessageId"],
            receipt_handle=message["ReceiptHandle"],
            body=message["Body"],
            message_attributes=dict(message.get("MessageAttributes") or {}),
            receive_count=int((message.get("Attributes") or {}).get("ApproximateReceiveCount", 0)),
        )


def describe_run_request(body: str) -> str:
    """What a run request is about, never its command (it carries the workload token)."""
    try:
        request = RunRequest.from_message(body)
    except MalformedRequestError as exc:
        return f"malformed ({exc.reason}); key {exc.key or 'unreadable'}"
    return f"{request.kind} {request.key} attempt {request.attempt} owner {request.owner}"


def describe_task_event(body: str) -> str:
    """Which task, state and try an ECS task state change event is about."""
    try:
        event = json.loads(body)
        task = EcsTask.model_validate(event["detail"])
    except (ValueError, KeyError, TypeError):
        return "not an ECS task state change event"
    # The Airflow container is the one whose override carries the key, whatever its name.
    key = task.task_key("")
    return f"{task.last_status} {task.task_arn.rsplit('/', 1)[-1]} {key or '(no task key)'}"


class Destination(Protocol):
    """Where dead letters go back to."""

    name: str
    #: The queue it sends to (None: not a queue).
    queue_url: str | None

    def deliver(self, letters: list[DeadLetter]) -> tuple[list[DeadLetter], list[str]]:
        """(letters delivered, why each of the others was not)."""
        ...


class QueueDestination:
    """An SQS queue: the run-request queue, or a local rule target's delivery queue."""

    def __init__(self, sqs: Any, queue_url: str, name: str) -> None:
        self._sqs, self.name = sqs, name
        self.queue_url: str | None = queue_url

    def deliver(self, letters: list[DeadLetter]) -> tuple[list[DeadLetter], list[str]]:
        entries = []
        for i, letter in enumerate(letters):
            entry: dict[str, Any] = {"Id": str(i), "MessageBody": letter.body}
            if letter.message_attributes:
                entry["MessageAttributes"] = letter.message_attributes
            entries.append(entry)
        try:
            response = self._sqs.send_message_batch(QueueUrl=self.queue_url, Entries=entries)
        except (ClientError, BotoCoreError) as exc:
            return [], [f"{letter.message_id}: {exc}" for letter in letters]
        sent = [letters[int(s["Id"])] for s in response.get("Successful", [])]
        refused = [
            f"{letters[int(f['Id'])].message_id}: {f.get('Code')} {f.get('Message', '')}"
            for f in response.get("Failed", [])
        ]
        return sent, refused


class FunctionDestination:
    """A Lambda function, invoked asynchronously with each letter's body as the event."""

    def __init__(self, lam: Any, function_name: str) -> None:
        self._lambda, self.name = lam, function_name
        self.queue_url: str | None = None

    def deliver(self, letters: list[DeadLetter]) -> tuple[list[DeadLetter], list[str]]:
        sent: list[DeadLetter] = []
        refused: list[str] = []
        for letter in letters:
            try:
                response = self._lambda.invoke(
                    FunctionName=self.name, InvocationType="Event", Payload=letter.body.encode()
                )
            except (ClientError, BotoCoreError) as exc:
                refused.append(f"{letter.message_id}: {exc}")
                continue
            if response.get("StatusCode") == 202:
                sent.append(letter)
            else:
                refused.append(f"{letter.message_id}: Invoke answered {response.get('StatusCode')}")
        return sent, refused


@dataclass
class RedriveResult:
    """What one redrive did (or, dry, would do)."""

    source: str
    destination: str
    dry_run: bool
    #: (message id, what it is) of each message moved, or listed in a dry run.
    messages: list[tuple[str, str]] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "destination": self.destination,
            "dry_run": self.dry_run,
            ("would_move" if self.dry_run else "moved"): len(self.messages),
            "messages": [{"message_id": m, "what": what} for m, what in self.messages],
            "failures": self.failures,
        }


def queue_depth(sqs: Any, queue_url: str) -> int | None:
    """About how many messages are visible; None when the caller may not ask (the bar has no total).

    Only the progress bar needs it: a role with exactly the rights a redrive needs (receive,
    delete, change visibility, send) must not be refused for the lack of sqs:GetQueueAttributes.
    """
    try:
        attributes = sqs.get_queue_attributes(
            QueueUrl=queue_url, AttributeNames=["ApproximateNumberOfMessages"]
        )
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ("AccessDenied", "AccessDeniedException"):
            return None
        raise
    return int(attributes["Attributes"].get("ApproximateNumberOfMessages", 0))


def _receive(sqs: Any, queue_url: str, count: int, visibility: int) -> list[DeadLetter]:
    response = sqs.receive_message(
        QueueUrl=queue_url,
        MaxNumberOfMessages=count,
        VisibilityTimeout=visibility,
        WaitTimeSeconds=WAIT_SECONDS,
        MessageAttributeNames=["All"],
        AttributeNames=["ApproximateReceiveCount"],
    )
    return [DeadLetter.of(m) for m in response.get("Messages", [])]


def _batch(sqs: Any, operation: str, queue_url: str, entries: list[dict[str, Any]]) -> list[str]:
    """One *MessageBatch call; the ids of the entries SQS refused."""
    if not entries:
        return []
    response = getattr(sqs, operation)(QueueUrl=queue_url, Entries=entries)
    return [f"{f['Id']}: {f.get('Code')} {f.get('Message', '')}" for f in response.get("Failed", [])]


def redrive(
    sqs: Any,
    source_url: str,
    destination: Destination,
    *,
    describe: Callable[[str], str],
    max_messages: int | None = None,
    dry_run: bool = False,
    on_progress: Callable[[int], None] = lambda _n: None,
) -> RedriveResult:
    """Move (or list) up to ``max_messages`` dead letters, in batches of ten.

    Refuses a destination that is the source queue: every message sent back would be received
    again as a new one, for ever.
    """
    if destination.queue_url == source_url:
        raise ValueError(f"{source_url} would be redriven into itself")
    result = RedriveResult(source_url, destination.name, dry_run)
    seen: set[str] = set()
    #: Received and not delivered (listed, refused, or not sent yet when the run stops): released
    #: at the end, even an interrupted one, so that each is visible again at once.
    held: dict[str, DeadLetter] = {}
    #: When each held message was last hidden (monotonic seconds).
    hidden_at: dict[str, float] = {}
    try:
        while max_messages is None or len(result.messages) < max_messages:
            # A long listing must not see its first messages come back as if they were new ones
            # (it would stop there): keep hiding what it holds until it releases them.
            result.failures += _keep_hidden(sqs, source_url, held, hidden_at)
            want = 10 if max_messages is None else min(10, max_messages - len(result.messages))
            letters = [
                m
                for m in _receive(sqs, source_url, want, MOVE_VISIBILITY_SECONDS)
                if m.message_id not in seen
            ]
            if not letters:
                break
            seen.update(m.message_id for m in letters)
            held.update((m.message_id, m) for m in letters)
            hidden_at.update((m.message_id, time.monotonic()) for m in letters)
            refused: list[str] = []
            if dry_run:
                delivered = letters
            else:
                delivered, refused = destination.deliver(letters)
                result.failures += refused
                for m in delivered:
                    del held[m.message_id]
                entries: list[dict[str, Any]] = [
                    {"Id": str(i), "ReceiptHandle": m.receipt_handle} for i, m in enumerate(delivered)
                ]
                result.failures += [
                    f"delete {f}" for f in _batch(sqs, "delete_message_batch", source_url, entries)
                ]
            result.messages += [(m.message_id, describe(m.body)) for m in delivered]
            on_progress(len(delivered))
            if refused and not delivered:
                break  # the destination refuses everything: stop instead of spinning
    finally:
        result.failures += _release(sqs, source_url, list(held.values()))
    return result


def _keep_hidden(
    sqs: Any, queue_url: str, held: dict[str, DeadLetter], hidden_at: dict[str, float]
) -> list[str]:
    """Hide again, for MOVE_VISIBILITY_SECONDS, each held message hidden half of that ago."""
    now = time.monotonic()
    due = [m for m in held.values() if now - hidden_at[m.message_id] >= MOVE_VISIBILITY_SECONDS / 2]
    hidden_at.update((m.message_id, now) for m in due)
    return _change_visibility(sqs, queue_url, due, MOVE_VISIBILITY_SECONDS)


def _release(sqs: Any, queue_url: str, letters: list[DeadLetter]) -> list[str]:
    """Make received messages visible again at once; the refusals."""
    return _change_visibility(sqs, queue_url, letters, 0)


def _change_visibility(sqs: Any, queue_url: str, letters: list[DeadLetter], seconds: int) -> list[str]:
    failures: list[str] = []
    for start in range(0, len(letters), 10):
        entries: list[dict[str, Any]] = [
            {"Id": str(i), "ReceiptHandle": m.receipt_handle, "VisibilityTimeout": seconds}
            for i, m in enumerate(letters[start : start + 10])
        ]
        failures += _batch(sqs, "change_message_visibility_batch", queue_url, entries)
    return failures


@dataclass(frozen=True)
class Route:
    """One dead-letter queue, where its messages go back to, and how to name each."""

    source_url: str
    destination: Destination
    describe: Callable[[str], str]


def route(stack: ControlPlaneStack, *, task_events: bool) -> Route:
    """The run-request DLQ to its queue; or the task-event DLQ to the task_state function."""
    sqs = stack.client("sqs")
    if not task_events:
        queue = QueueDestination(sqs, stack.output("RunRequestQueueUrl"), "the run-request queue")
        return Route(stack.output("DeadLetterQueueUrl"), queue, describe_run_request)
    source = stack.output("TaskEventDeadLetterQueueUrl")
    function = stack.resource(TASK_STATE_FUNCTION)
    if function is None:
        raise OperationsError(f"stack {stack.name} has no {TASK_STATE_FUNCTION}")
    if not stack.is_local:
        return Route(source, FunctionDestination(stack.client("lambda"), function), describe_task_event)
    # Locally the function runs in the stack's worker, which polls the rule target's delivery queue.
    from ecscp.local.moto_patches.events_targets import delivery_queue_name  # noqa: PLC0415 (local only)

    events = stack.client("events")
    rule = events.describe_rule(Name=stack.resource(TASK_STATE_RULE) or "")
    targets = events.list_targets_by_rule(Rule=rule["Name"])["Targets"]
    target = next((t for t in targets if t["Arn"].split(":")[6] == function), None)
    if target is None:
        raise OperationsError(f"rule {rule['Name']} does not target {function}")
    url = sqs.get_queue_url(QueueName=delivery_queue_name(rule["Arn"], target["Id"]))["QueueUrl"]
    return Route(
        source, QueueDestination(sqs, url, f"{function} (local delivery queue)"), describe_task_event
    )
