"""The state table's shape: its key, its indexes and what each projects, and read projections.

One home for what template.yaml declares (a unit test checks they agree) and for the attribute
lists reads ask for, so an index never projects less than its readers read.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .contract import ACTIVE_INDEX, OWNER_INDEX, RECONCILE_ATTRIBUTES, SYNC_ATTRIBUTES, TRY_INDEX


def _index_keys(partition: str, sort: str) -> set[str]:
    return {"key", partition, sort}


#: The attributes each index projects besides its keys: only what its readers ask for.
OWNER_INDEX_ATTRIBUTES = tuple(a for a in SYNC_ATTRIBUTES if a not in _index_keys("owner", "updated_at"))
ACTIVE_INDEX_ATTRIBUTES = tuple(
    a for a in RECONCILE_ATTRIBUTES if a not in _index_keys("active_shard", "updated_at")
)


def state_table_definition(table_name: str) -> dict[str, Any]:
    """``CreateTable`` arguments for the state table, as template.yaml declares it.

    For tests, benchmarks and tools that make the table outside CloudFormation; a unit test
    checks that the template says the same.
    """

    def index(name: str, partition: str, sort: str, attributes: Sequence[str] = ()) -> dict[str, Any]:
        projection: dict[str, Any] = {"ProjectionType": "INCLUDE" if attributes else "KEYS_ONLY"}
        if attributes:
            projection["NonKeyAttributes"] = list(attributes)
        return {
            "IndexName": name,
            "KeySchema": [
                {"AttributeName": partition, "KeyType": "HASH"},
                {"AttributeName": sort, "KeyType": "RANGE"},
            ],
            "Projection": projection,
        }

    return {
        "TableName": table_name,
        "BillingMode": "PAY_PER_REQUEST",
        "AttributeDefinitions": [
            {"AttributeName": "key", "AttributeType": "S"},
            {"AttributeName": "owner", "AttributeType": "S"},
            {"AttributeName": "updated_at", "AttributeType": "N"},
            {"AttributeName": "active_shard", "AttributeType": "S"},
            {"AttributeName": "try_key", "AttributeType": "S"},
            {"AttributeName": "created_at", "AttributeType": "N"},
        ],
        "KeySchema": [{"AttributeName": "key", "KeyType": "HASH"}],
        "GlobalSecondaryIndexes": [
            index(OWNER_INDEX, "owner", "updated_at", OWNER_INDEX_ATTRIBUTES),
            index(ACTIVE_INDEX, "active_shard", "updated_at", ACTIVE_INDEX_ATTRIBUTES),
            index(TRY_INDEX, "try_key", "created_at"),
        ],
    }


#: What tells one version of an item from another (see ItemVersion).
VERSION_ATTRIBUTES = ("key", "updated_at", "state")


def _projection(attributes: Sequence[str]) -> dict[str, Any]:
    names = {f"#p{i}": attr for i, attr in enumerate(attributes)}
    return {"ProjectionExpression": ", ".join(names), "ExpressionAttributeNames": names}
