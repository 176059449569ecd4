"""moto's SQS SendMessage invokes the Lambda functions mapped to the queue, inside the call.

With an event source mapping, moto hands each sent message to its own Lambda backend during
SendMessage; without Docker that "succeeds" without running anything and deletes the message.
On AWS the Lambda service polls the queue, with the mapping's batch size, visibility timeout
and ``ReportBatchItemFailures``, which the control plane's run-request handling relies on.
Patched: queues have no mappings as far as SendMessage knows; the local Lambda runtime polls.
"""

# ruff: noqa: PLC0415

from __future__ import annotations

from ._replace import replace


def apply() -> None:
    from moto.sqs.models import Queue

    replace(
        Queue,
        "lambda_event_source_mappings",
        __name__,
        lambda original: property(lambda self: {}, lambda self, value: None),
    )
