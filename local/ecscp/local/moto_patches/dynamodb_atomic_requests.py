"""moto's DynamoDB UpdateItem is not atomic: a new item is visible with only its key.

moto's UpdateItem on a new item first stores the bare key, then applies the update expression
to the stored item in place, so a concurrent read sees an item with no attributes, and two
conditional updates can both pass. DynamoDB applies each request atomically, and the control
plane's conditional writes (one start per run request, one owner per task) rely on that.
Patched: every DynamoDB request runs under one lock.
"""

# ruff: noqa: PLC0415

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from ._replace import replace


def apply() -> None:
    from moto.dynamodb.responses import DynamoHandler

    def make(call_action: Callable[..., Any]) -> Callable[..., Any]:
        lock = threading.RLock()

        def atomic_call_action(self: Any) -> Any:
            with lock:
                return call_action(self)

        return atomic_call_action

    replace(DynamoHandler, "call_action", __name__, make)
