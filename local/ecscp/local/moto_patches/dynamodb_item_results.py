"""moto serialises DynamoDB item results by walking the botocore shape of every attribute value.

moto 5.2 builds each result with its shape-driven serialiser, which cost more than the
operations themselves (a Query of 200 items: ~50 ms; the executor's Query on every sync
returns every item written in the last 30 s). DynamoDB's answer is the same JSON either way;
the local stack's throughput is what differs. Patched: the results of item operations, which
are already DynamoDB JSON, are dumped as they are; a result with a null or a binary value
(which the shape walk would drop or encode) still goes through moto's serialiser.
"""

# ruff: noqa: PLC0415

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from ._replace import replace

#: DynamoDB item operations whose results are already DynamoDB JSON.
ITEM_OPERATIONS = frozenset(
    {"GetItem", "BatchGetItem", "Query", "Scan", "PutItem", "UpdateItem", "DeleteItem"}
)
#: Text that makes a result leave the fast path: a null, or a binary value (base64 on the wire).
_SLOW_MARKERS = (": null", '"B": ', '"BS": ')


def apply() -> None:
    from moto.dynamodb.responses import DynamoResult

    def make(execute_result: Callable[..., Any]) -> Callable[..., Any]:
        def fast_execute_result(self: Any, context: Any) -> Any:
            result = self.result
            if context.operation_model.name in ITEM_OPERATIONS and isinstance(result, dict):
                members = context.operation_model.output_shape.members
                if all(name in members for name in result):
                    try:
                        body = json.dumps(result)
                    except (TypeError, ValueError):
                        return execute_result(self, context)
                    if not any(marker in body for marker in _SLOW_MARKERS):
                        version = context.service_model.metadata.get("jsonVersion", "1.0")
                        return 200, {"Content-Type": f"application/x-amz-json-{version}"}, body
            return execute_result(self, context)

        return fast_execute_result

    replace(DynamoResult, "execute_result", __name__, make)
