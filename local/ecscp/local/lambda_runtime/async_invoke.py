"""EventBridge rule targets as Lambda's asynchronous invocations of the function.

moto's patched EventBridge puts each event for a Lambda target on the target's delivery queue
(:func:`ecscp.local.moto_patches.events_targets.delivery_queue_name`), and so do the local
schedules; the function's worker takes them from there, one invocation per event. As with
Lambda's asynchronous invocations, a failed one is retried up to the function's
``MaximumRetryAttempts`` (2 by default) unless the event is older than
``MaximumEventAgeInSeconds``, and is then sent to the function's dead-letter queue, or dropped
and logged when it has none.

Departs from AWS: a retry comes after :data:`ASYNC_RETRY_SECONDS`, not after a minute or more;
attempts are the delivery queue's receive count; only an SQS dead-letter target is delivered
to; delivery is at least once (a worker that dies mid-batch has its handled events delivered
again).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ecscp.local.spec import FunctionSpec, RuleSource

if TYPE_CHECKING:
    from mypy_boto3_sqs.client import SQSClient

log = logging.getLogger(__name__)

#: Delay before an asynchronous invocation is retried (AWS waits about a minute; locally short).
ASYNC_RETRY_SECONDS = 1


def poll_delivery_queue(
    sqs: SQSClient,
    source: RuleSource,
    invoke: Callable[[Any, str], tuple[bool, Any]],
    spec: FunctionSpec,
    wait_seconds: int = 0,
) -> int:
    """Invoke the function once per delivered event; the number of events handled."""
    messages = sqs.receive_message(
        QueueUrl=source.delivery_queue_url,
        MaxNumberOfMessages=10,
        AttributeNames=["ApproximateReceiveCount", "SentTimestamp"],
        WaitTimeSeconds=wait_seconds,
    ).get("Messages", [])
    done: list[str] = []
    for message in messages:
        try:
            event: Any = json.loads(message["Body"])
        except ValueError:
            event = message["Body"]
        ok, _ = invoke(event, f"event of rule {source.rule_name}")
        attributes = message.get("Attributes", {})
        attempts = int(attributes.get("ApproximateReceiveCount", "1"))
        age = time.time() - int(attributes.get("SentTimestamp", "0")) / 1000
        too_old = age > spec.async_max_event_age_seconds
        if ok or too_old or attempts > spec.async_max_retries:
            if not ok:
                dead_letter(sqs, spec.dead_letter_arn, message["Body"], source.rule_name, attempts)
            done.append(message["ReceiptHandle"])
        else:
            sqs.change_message_visibility(
                QueueUrl=source.delivery_queue_url,
                ReceiptHandle=message["ReceiptHandle"],
                VisibilityTimeout=ASYNC_RETRY_SECONDS,
            )
    if done:
        # One call for the batch: a delete per event was a third of the worker's calls. A
        # worker that dies mid-batch has its handled events delivered again (at least once).
        sqs.delete_message_batch(
            QueueUrl=source.delivery_queue_url,
            Entries=[{"Id": str(i), "ReceiptHandle": handle} for i, handle in enumerate(done)],
        )
    return len(messages)


def dead_letter(sqs: SQSClient, arn: str | None, body: str, rule_name: str, attempts: int) -> None:
    """Send an event whose invocations all failed to the dead-letter queue, or log it as dropped."""
    if not arn or ":sqs:" not in arn:
        log.error("event of rule %s dropped after %d attempts (no dead-letter queue)", rule_name, attempts)
        return
    url = sqs.get_queue_url(QueueName=arn.rsplit(":", 1)[-1])["QueueUrl"]
    sqs.send_message(QueueUrl=url, MessageBody=body)
    log.error("event of rule %s sent to the dead-letter queue after %d attempts", rule_name, attempts)
