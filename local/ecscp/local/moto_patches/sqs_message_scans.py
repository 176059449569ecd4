"""moto's SQS walks every message on the queue, reading the clock twice for each, to receive, and
twice more to delete one message.

moto 5.2's ``Queue.messages`` (what ReceiveMessage and a long poll's wake-up read) builds the list
of every visible message with two clock reads per message on the queue, received or not; and
``Queue.delete_message`` scans every message twice, building a list of its receipt handles for
each, and then copies the queue. A DeleteMessageBatch of ten on a queue of 1,000 messages made
20,000 such lists. With the throughput benchmark's 1,000 run requests queued at once, receiving
and deleting were about a fifth of the local stack's moto time while the queue was deep. SQS
answers the same; only the cost grows with the queue.

Patched: a scan reads the clock once (a message is visible if its visibility timeout and its
delay have both passed at that instant), and a delete finds the message by its receipt handles
in one pass. The same messages are returned, deleted and refused.
"""

# ruff: noqa: PLC0415

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ._replace import replace


def apply() -> None:
    from moto.sqs import models
    from moto.sqs.exceptions import ReceiptHandleIsInvalid
    from moto.sqs.models import Queue

    def make_messages(_messages: property) -> property:
        def visible_messages_at_one_instant(self: Any) -> list[Any]:
            # the clock moto's messages read (a test may move it)
            now = models.unix_time_millis()  # type: ignore[attr-defined]
            return [m for m in self._messages if now > m.visible_at and not now < m.delayed_until]

        return property(visible_messages_at_one_instant)

    def make_delete(delete_message: Callable[..., Any]) -> Callable[..., Any]:
        def delete_message_in_one_pass(self: Any, receipt_handle: str) -> None:
            if receipt_handle in self.deleted_messages:
                return  # already deleted: SQS accepts it again
            kept, deleted = [], []
            for message in self._messages:
                if message.receipt_handle == receipt_handle or receipt_handle in message._old_receipt_handles:
                    deleted.append(message)
                else:
                    kept.append(message)
            if not deleted:
                raise ReceiptHandleIsInvalid()
            for message in deleted:
                self.pending_messages.discard(message)
                self.deleted_messages.update(message.all_receipt_handles)
            self._messages = kept

        return delete_message_in_one_pass

    replace(Queue, "messages", __name__, make_messages)
    replace(Queue, "delete_message", __name__, make_delete)
