"""moto's SQS SendMessage and ReceiveMessage count every message on the queue.

moto 5.2 rebuilds a queue's full attribute map, with the approximate message counts (a scan of
every message, two clock reads each), on every SendMessage just to read
``ContentBasedDeduplication``, and on ReceiveMessage for every message it returns (to read
``MessageRetentionPeriod``). SendMessageBatch slowed from about 60 ms to 600 ms per call as
1,000 messages accumulated. SQS's answers are the same; only the cost grows with the queue.
Patched: the send and retention paths read the static attributes only (each attribute's name
converted once, not at every read); GetQueueAttributes counts as before. The benchmarks' moto applies it too.
"""

# ruff: noqa: PLC0415

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from typing import Any

from ._replace import replace

_sending = threading.local()


def _sending_path(method: Callable[..., Any]) -> Callable[..., Any]:
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        _sending.depth = getattr(_sending, "depth", 0) + 1
        try:
            return method(*args, **kwargs)
        finally:
            _sending.depth -= 1

    return wrapper


def apply() -> None:
    from moto.core.utils import camelcase_to_underscores
    from moto.sqs.models import Queue, SQSBackend

    attribute_of = functools.lru_cache(maxsize=None)(camelcase_to_underscores)

    def make_attributes(full_attributes: property) -> property:
        def attributes(self: Queue) -> dict[str, Any]:
            if not getattr(_sending, "depth", 0):
                return full_attributes.fget(self)  # type: ignore[no-any-return,misc]
            result: dict[str, Any] = {}
            for name in self.BASE_ATTRIBUTES + (self.FIFO_ATTRIBUTES if self.fifo_queue else []):
                if not name.startswith("Approximate"):
                    value = getattr(self, attribute_of(name))
                    result[name] = str(value).lower() if isinstance(value, bool) else value
            return result

        return property(attributes)

    replace(Queue, "attributes", __name__, make_attributes)
    for name in ("send_message", "send_message_batch", "is_message_valid_based_on_retention_period"):
        replace(SQSBackend, name, __name__, _sending_path)
