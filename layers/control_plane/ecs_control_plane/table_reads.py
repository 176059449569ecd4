"""The state table's reads: by key, the owner index (change feed), the active index, the try index.

Every read here is one DynamoDB call or a bounded number of them; the executor's reads return
ItemVersion pages so that it decides what to deserialize.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from .contract import (
    ACTIVE_INDEX,
    ACTIVE_SHARDS,
    OWNER_INDEX,
    RECONCILE_ATTRIBUTES,
    SYNC_ATTRIBUTES,
    TRY_INDEX,
    TaskStateItem,
)
from .items import (
    BATCH_GET_ATTEMPTS,
    ItemVersion,
    KeysRead,
    Page,
    UnprocessedKeysError,
    UnreadableItemError,
    deserialize,
    item_from_dynamodb,
)
from .readiness import READINESS_KEY, ReadinessReport
from .table_schema import VERSION_ATTRIBUTES, _projection

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.client import DynamoDBClient

logger = logging.getLogger(__name__)
BATCH_GET_LIMIT = 100


class StateTableReads:
    """Reads of the state table (StateTable adds the conditional writes)."""

    _client: DynamoDBClient
    table_name: str

    def get(self, key: str) -> TaskStateItem | None:
        """The item (consistent read); None if there is none.

        Raises UnreadableItemError for an item that exists but is not a valid item: callers
        must not take it for "no item" (that would start, stop or reset a try wrongly).
        """
        response = self._client.get_item(
            TableName=self.table_name, Key={"key": {"S": key}}, ConsistentRead=True
        )
        raw = response.get("Item")
        if not raw:
            return None
        try:
            return item_from_dynamodb(raw)
        except (ValidationError, ValueError, TypeError, RecursionError) as exc:
            raise UnreadableItemError(key, exc) from None

    def batch_get(
        self, keys: Iterable[str], *, consistent: bool = False, unreadable: set[str] | None = None
    ) -> list[TaskStateItem]:
        """Read many items, 100 keys a call, retrying unprocessed keys a bounded number of times.

        Items that are not valid are skipped (logged); their keys go to ``unreadable`` if given,
        so that a caller can tell "no item" from "an item it cannot read". Keys DynamoDB still
        leaves unprocessed after ``BATCH_GET_ATTEMPTS`` calls raise ``UnprocessedKeysError``:
        "not read" must never pass for "no item".
        """
        items: list[TaskStateItem] = []
        unique = list(dict.fromkeys(keys))
        for start in range(0, len(unique), BATCH_GET_LIMIT):
            pending = unique[start : start + BATCH_GET_LIMIT]
            delay = 0.05
            for attempt in range(1, BATCH_GET_ATTEMPTS + 1):
                read = self.read_keys(pending, consistent=consistent, attributes=None)
                for version in read.items:
                    item = version.parse()
                    if item is not None:
                        items.append(item)
                    elif unreadable is not None and version.key:
                        unreadable.add(version.key)
                pending = read.unprocessed
                if not pending:
                    break
                if attempt < BATCH_GET_ATTEMPTS:
                    time.sleep(delay)
                    delay = min(delay * 2, 1.0)
            if pending:
                raise UnprocessedKeysError(pending)
        return items

    def read_keys(
        self,
        keys: Sequence[str],
        *,
        consistent: bool = False,
        attributes: Sequence[str] | None = SYNC_ATTRIBUTES,
    ) -> KeysRead:
        """One BatchGetItem call for at most 100 keys: no retry loop, the caller decides.

        ``attributes`` limits what is read (all when None). Keys DynamoDB did not process
        (throttling, size) come back in ``unprocessed``.
        """
        if len(keys) > BATCH_GET_LIMIT:
            raise ValueError(f"at most {BATCH_GET_LIMIT} keys a call, not {len(keys)}")
        if not keys:
            return KeysRead([], [])
        request: dict[str, Any] = {"Keys": [{"key": {"S": k}} for k in keys], "ConsistentRead": consistent}
        if attributes is not None:
            request |= _projection(attributes)
        response: dict[str, Any] = dict(self._client.batch_get_item(RequestItems={self.table_name: request}))  # type: ignore[dict-item]
        found = [ItemVersion.of(raw) for raw in response.get("Responses", {}).get(self.table_name, [])]
        unprocessed: dict[str, Any] = response.get("UnprocessedKeys") or {}
        left = unprocessed.get(self.table_name, {}).get("Keys", [])
        return KeysRead(found, [str(k["key"]["S"]) for k in left])

    def changes_page(
        self, owner: str, since_ms: int, *, cursor: dict[str, Any] | None = None, limit: int = 1000
    ) -> Page:
        """One page of the items of ``owner`` written after ``since_ms``, oldest first (owner index).

        Pass the previous page's ``cursor`` to go on with the same read; items written meanwhile
        sort after it, so a read that goes on catches up with them.
        """
        return self._page(
            OWNER_INDEX,
            "owner",
            owner,
            "#u > :u",
            since_ms,
            cursor=cursor,
            limit=limit,
            attributes=SYNC_ATTRIBUTES,
        )

    def active_page(
        self, shard: int, owner: str, *, cursor: dict[str, Any] | None = None, limit: int = 500
    ) -> Page:
        """One page of one active-index partition: the key, ``updated_at`` and state of each item
        of ``owner`` still in flight (what tells an unchanged item from one to read by key).

        ``limit`` counts the items DynamoDB reads (every owner's); only ``owner``'s come back.
        """
        return self._page(
            ACTIVE_INDEX,
            "active_shard",
            f"A{shard}",
            "#u >= :u",
            0,
            cursor=cursor,
            limit=limit,
            attributes=VERSION_ATTRIBUTES,
            owner=owner,
        )

    def submissions_of(self, try_key: str) -> list[str]:
        """Keys of every submission of one try, oldest first (through the try index)."""
        keys: list[str] = []
        kwargs: dict[str, Any] = {
            "TableName": self.table_name,
            "IndexName": TRY_INDEX,
            "KeyConditionExpression": "#t = :t",
            "ExpressionAttributeNames": {"#t": "try_key"},
            "ExpressionAttributeValues": {":t": {"S": try_key}},
        }
        while True:
            response = self._client.query(**kwargs)
            keys.extend(raw["key"]["S"] for raw in response.get("Items", []))
            last = response.get("LastEvaluatedKey")
            if not last:
                return keys
            kwargs["ExclusiveStartKey"] = last

    def stale_active(self, older_than_ms: int) -> Iterator[TaskStateItem]:
        """Items still in flight that have not changed since ``older_than_ms`` (the reconciler's work).

        They carry what the active index projects (RECONCILE_ATTRIBUTES), not ``executor_config``.
        """
        for shard in range(ACTIVE_SHARDS):
            cursor: dict[str, Any] | None = None
            while True:
                page = self._page(
                    ACTIVE_INDEX,
                    "active_shard",
                    f"A{shard}",
                    "#u < :u",
                    older_than_ms,
                    cursor=cursor,
                    limit=None,
                    attributes=RECONCILE_ATTRIBUTES,
                )
                for version in page.items:
                    item = version.parse()
                    if item is not None:
                        yield item
                if page.cursor is None:
                    break
                cursor = page.cursor

    def _page(
        self,
        index: str,
        partition: str,
        value: str,
        updated_condition: str,
        updated_ms: int,
        *,
        cursor: dict[str, Any] | None,
        limit: int | None,
        attributes: Sequence[str],
        owner: str | None = None,
    ) -> Page:
        """One Query call on one index partition whose ``updated_at`` meets the condition."""
        projection = _projection(attributes)
        names = {"#p": partition, "#u": "updated_at", **projection["ExpressionAttributeNames"]}
        values: dict[str, Any] = {":p": {"S": value}, ":u": {"N": str(updated_ms)}}
        kwargs: dict[str, Any] = {
            "TableName": self.table_name,
            "IndexName": index,
            "KeyConditionExpression": f"#p = :p AND {updated_condition}",
            "ProjectionExpression": projection["ProjectionExpression"],
            "ExpressionAttributeNames": names,
            "ExpressionAttributeValues": values,
        }
        if owner is not None:
            kwargs["FilterExpression"] = "#o = :o"
            names["#o"] = "owner"
            values[":o"] = {"S": owner}
        if limit is not None:
            kwargs["Limit"] = limit
        if cursor:
            kwargs["ExclusiveStartKey"] = cursor
        response = self._client.query(**kwargs)
        return Page(
            [ItemVersion.of(raw) for raw in response.get("Items", [])], response.get("LastEvaluatedKey")
        )

    def readiness(self) -> ReadinessReport | None:
        """The latest readiness report; None if none was recorded yet (or it is unreadable)."""
        response = self._client.get_item(
            TableName=self.table_name, Key={"key": {"S": READINESS_KEY}}, ConsistentRead=True
        )
        raw = response.get("Item")
        if not raw:
            return None
        try:
            return ReadinessReport.model_validate(deserialize(raw))
        except (ValidationError, ValueError, TypeError, RecursionError):
            logger.error("readiness report skipped: it is not a valid report")
            return None

    def describe(self) -> dict[str, Any]:
        """The table's description (health checks)."""
        return dict(self._client.describe_table(TableName=self.table_name)["Table"])
