"""moto's Query sorts every item of the table, then every item of the partition, before it applies
the sort-key condition.

moto 5.2's Query starts from ``Table.all_items()``, which sorts the whole table by key; on a
secondary index it then keeps the items whose partition key matches, sorts them all again by the
index's keys (each comparison of two ``DynamoType`` values casts both), and only then keeps those
that meet the sort-key condition. DynamoDB reads only the part of the partition the condition
selects. The executor's sync is such a Query (its owner's items written after a watermark): its
cost grew with every item in the table, about 20 ms for 1,000 items to return 30, and it was the
largest DynamoDB cost of the local stack after UpdateItem.

Patched, within a Query only (a Scan still walks the table in key order): the table's items are
not sorted first, since the Query sorts what it keeps by a key that ends in the table's own
unique key; and on an index with a sort-key condition (and no legacy ``QueryFilter``), the items
that fail the condition are dropped before the sort, but for the first and the last of them
in sort order (moto gives a page that ends on its ``Limit``-th result a LastEvaluatedKey when
any item follows it, met or not). The sort is total and the condition is per item, so the same
items come back in the same order, with the same ``Limit`` and ``ExclusiveStartKey`` pages.
Differences, all where moto as released is not DynamoDB: it stops a page when an item that
fails the condition would have taken it over 1 MB; it fails (HTTP 500) on an item whose index
key has the wrong type, or on an ``ExclusiveStartKey`` without the index's keys, when such an
item or key meets only dropped items; and ties (a key attribute named ``None``, which moto
leaves out of its sort) keep the table's order, not its key order.
"""

# ruff: noqa: PLC0415

from __future__ import annotations

import contextlib
import inspect
import threading
from collections.abc import Callable, Iterator
from typing import Any

from ._replace import original, replace

_state = threading.local()


@contextlib.contextmanager
def _in_query(keep: Callable[[Any], bool] | None) -> Iterator[None]:
    """Within: a Query is running; its index sort drops the items ``keep`` refuses (if any)."""
    previous = getattr(_state, "query", None)
    _state.query = (keep,)
    try:
        yield
    finally:
        _state.query = previous


def _sort_key_condition(table: Any, arguments: dict[str, Any]) -> Callable[[Any], bool] | None:
    """The index Query's sort-key condition as a test of one item; None when it has none."""
    comparison = arguments.get("range_comparison")
    index_name = arguments.get("index_name")
    if not comparison or not index_name or arguments.get("filter_kwargs"):
        return None
    index = next((i for i in table.all_indexes() if i.name == index_name), None)
    sort_keys = [k["AttributeName"] for k in getattr(index, "schema", ()) if k["KeyType"] == "RANGE"]
    if not sort_keys:
        return None  # moto refuses a sort-key condition on an index without one: left to it
    conditions = arguments.get("range_key_conditions") or []
    attribute = conditions[-1][0] if conditions else sort_keys[0]
    values = arguments.get("range_objs") or []

    def meets(item: Any) -> bool:
        value = item.attrs.get(attribute)
        return bool(value) and bool(value.compare(comparison, values))

    return meets


def _meeting_and_bounds(
    table: Any, keep: Callable[[Any], bool], hash_key_attrs: Any, range_key_attrs: Any, items: list[Any]
) -> list[Any]:
    """The items that meet the condition, and the first and last (in sort order) of those that
    do not: moto ends a page with a LastEvaluatedKey when any item follows the ``Limit``-th
    result, whether or not it meets the condition; the extremes are there to follow it."""
    meeting: list[Any] = []
    failing: list[Any] = []
    for item in items:
        (meeting if keep(item) else failing).append(item)
    if failing:
        attributes = table._generate_attr_to_sort_by(hash_key_attrs, range_key_attrs)

        def sort_key(item: Any) -> tuple[Any, ...]:
            return tuple(item.attrs[name] for name in attributes)

        bounds = {id(item): item for item in (min(failing, key=sort_key), max(failing, key=sort_key))}
        meeting.extend(bounds.values())
    return meeting


def apply() -> None:
    from moto.dynamodb.models import table

    # moto's own signature: another patch's wrapper may stand between (``*args, **kwargs``)
    signature = inspect.signature(original(table.Table, "query"))

    def make_query(query: Callable[..., Any]) -> Callable[..., Any]:
        def query_sorting_what_it_keeps(self: Any, *args: Any, **kwargs: Any) -> Any:
            bound = signature.bind(self, *args, **kwargs)
            with _in_query(_sort_key_condition(self, bound.arguments)):
                return query(self, *args, **kwargs)

        return query_sorting_what_it_keeps

    def make_all_items(all_items: Callable[..., Any]) -> Callable[..., Any]:
        def all_items_unsorted_in_a_query(self: Any) -> Any:
            if getattr(_state, "query", None) is None:
                return all_items(self)
            if self.range_key_attr:
                return [item for hash_set in self.items.values() for item in hash_set.values()]
            return list(self.items.values())

        return all_items_unsorted_in_a_query

    def make_sorted(sorted_items: Callable[..., Any]) -> Callable[..., Any]:
        def sorted_items_meeting_the_condition(
            self: Any, hash_key_attrs: Any, range_key_attrs: Any, items: list[Any]
        ) -> Any:
            running = getattr(_state, "query", None)
            keep = running[0] if running else None
            if keep is not None:
                items = _meeting_and_bounds(self, keep, hash_key_attrs, range_key_attrs, items)
            return sorted_items(self, hash_key_attrs, range_key_attrs, items)

        return sorted_items_meeting_the_condition

    replace(table.Table, "query", __name__, make_query)
    replace(table.Table, "all_items", __name__, make_all_items)
    replace(table.Table, "sorted_items", __name__, make_sorted)
