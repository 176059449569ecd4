"""State items on the wire: DynamoDB's attribute values to TaskStateItem, lazily where it pays.

A reader that sees the same item again (the change feed's overlap, the safety net) tells
versions apart from three attributes and deserializes only what is new (ItemVersion).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from pydantic import ValidationError

from .contract import TaskStateItem
from .dynamodb_types import TypeDeserializer

logger = logging.getLogger(__name__)
_de = TypeDeserializer()
#: Calls ``batch_get`` makes for one chunk of keys before it gives up on the unprocessed ones.
BATCH_GET_ATTEMPTS = 6


def deserialize(raw: dict[str, Any]) -> dict[str, Any]:
    """Plain Python values (ints, not Decimals) of one item's attribute values."""
    return {k: _plain(_de.deserialize(v)) for k, v in raw.items()}


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


class UnreadableItemError(ValueError):
    """A state item exists but is not a valid item (written by hand, or by an older version)."""

    def __init__(self, key: str, error: Exception) -> None:
        super().__init__(f"the state item of {key[:300]!r} is not a valid item: {str(error)[:500]}")
        self.key = key


def item_from_dynamodb(raw: dict[str, Any]) -> TaskStateItem:
    return TaskStateItem.model_validate({k: _plain(_de.deserialize(v)) for k, v in raw.items()})


class UnprocessedKeysError(RuntimeError):
    """DynamoDB kept leaving these keys unprocessed (throttling): they were not read."""

    def __init__(self, keys: Sequence[str]) -> None:
        super().__init__(
            f"{len(keys)} keys left unprocessed by BatchGetItem after {BATCH_GET_ATTEMPTS} calls"
        )
        self.keys = list(keys)


def _readable_item(raw: dict[str, Any]) -> TaskStateItem | None:
    """The item, or None (logged) when it is not one: one bad item never stops a whole read."""
    try:
        return item_from_dynamodb(raw)
    except (ValidationError, ValueError, TypeError, RecursionError) as exc:
        key = raw.get("key", {}).get("S", "?") if isinstance(raw.get("key"), dict) else "?"
        logger.error(
            "state item skipped: it is not a valid item", extra={"key": key[:300], "error": str(exc)[:500]}
        )
        return None


@dataclass(frozen=True)
class ItemVersion:
    """One item as a read returned it, parsed only when asked.

    ``key``, ``updated_at`` and ``state`` are read straight off the wire, so a reader can skip a
    version it has applied already without deserializing and validating the whole item. A
    malformed item gets an empty key and ``updated_at`` -1; ``parse`` logs it and gives None.
    """

    key: str
    updated_at: int
    state: str
    raw: dict[str, Any]

    @classmethod
    def of(cls, raw: dict[str, Any]) -> ItemVersion:
        try:
            return cls(str(raw["key"]["S"]), int(raw["updated_at"]["N"]), str(raw["state"]["S"]), raw)
        except (KeyError, TypeError, ValueError):
            return cls("", -1, "", raw)

    def parse(self) -> TaskStateItem | None:
        return _readable_item(self.raw)


@dataclass(frozen=True)
class Page:
    """One call's worth of a read, and where the next call goes on from (None: the read is done)."""

    items: list[ItemVersion]
    cursor: dict[str, Any] | None = None


@dataclass(frozen=True)
class KeysRead:
    """One BatchGetItem call: the versions found, and the keys DynamoDB left for a later call."""

    items: list[ItemVersion]
    unprocessed: list[str]
