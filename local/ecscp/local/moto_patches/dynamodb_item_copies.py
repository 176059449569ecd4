"""moto deep-copies whole DynamoDB items that it only reads.

moto 5.2 copies the item twice on every UpdateItem (once for ``ReturnValues``, once for the
table's stream) and every item a Query returns (before projecting it), whether or not anything
needs the copy. The copies were the largest single cost of the local stack's moto: the control
plane's writes are UpdateItems returning ``ALL_NEW`` on a table without a stream, and the
executor's Query on every sync returns every item written in the last 30 s. Results are the
same either way; the work is what differs (requests are serialized by
:mod:`.dynamodb_atomic_requests`, so nothing changes an item while a request reads it).

Patched: the copy is skipped when it is not used: UpdateItem's for ``ReturnValues`` ``NONE``
or ``ALL_NEW`` (the old item is read for the other values), its stream copy when the table has
no stream, and Query's copy of its results (they are only projected and serialized).
"""

# ruff: noqa: PLC0415

from __future__ import annotations

import contextlib
import copy
import threading
from collections.abc import Callable, Iterator
from types import ModuleType
from typing import Any

from ._replace import replace

#: ``ReturnValues`` that never read the item as it was before the update.
RETURN_VALUES_WITHOUT_OLD_ITEM = frozenset({"NONE", "ALL_NEW"})

_state = threading.local()


@contextlib.contextmanager
def items_copied(copied: bool) -> Iterator[None]:
    """Within: the patched modules' ``copy.deepcopy`` copies items only if ``copied``."""
    previous = getattr(_state, "copied", True)
    _state.copied = copied
    try:
        yield
    finally:
        _state.copied = previous


class _CopyModule(ModuleType):
    """``copy`` as the patched moto modules see it: ``deepcopy`` of items can be skipped."""

    def __init__(self, item_type: type) -> None:
        super().__init__("copy")
        self._item_type = item_type
        self.copy = copy.copy

    def deepcopy(self, value: Any, memo: dict[int, Any] | None = None) -> Any:
        if not getattr(_state, "copied", True):
            is_items = isinstance(value, list) and all(isinstance(v, self._item_type) for v in value)
            if value is None or isinstance(value, self._item_type) or is_items:
                return value
        return copy.deepcopy(value, memo)


def apply() -> None:
    from moto.dynamodb import models, responses
    from moto.dynamodb.models import table
    from moto.dynamodb.models.dynamo_type import Item

    shim = _CopyModule(Item)
    for module in (responses, models, table):
        replace(module, "copy", __name__, lambda original: shim)

    def make_response(update_item: Callable[..., Any]) -> Callable[..., Any]:
        def update_item_copying_if_read(self: Any) -> Any:
            old_item_read = self.body.get("ReturnValues", "NONE") not in RETURN_VALUES_WITHOUT_OLD_ITEM
            with items_copied(old_item_read):
                return update_item(self)

        return update_item_copying_if_read

    def make_backend(update_item: Callable[..., Any]) -> Callable[..., Any]:
        def update_item_copying_for_streams(self: Any, table_name: str, *args: Any, **kwargs: Any) -> Any:
            with items_copied(self.get_table(table_name).stream_shard is not None):
                return update_item(self, table_name, *args, **kwargs)

        return update_item_copying_for_streams

    def make_query(query: Callable[..., Any]) -> Callable[..., Any]:
        def query_without_copies(self: Any, *args: Any, **kwargs: Any) -> Any:
            with items_copied(False):
                return query(self, *args, **kwargs)

        return query_without_copies

    replace(responses.DynamoHandler, "update_item", __name__, make_response)
    replace(models.DynamoDBBackend, "update_item", __name__, make_backend)
    replace(table.Table, "query", __name__, make_query)
