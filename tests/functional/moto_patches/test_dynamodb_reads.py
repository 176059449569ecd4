"""DynamoDB reads: what a Query sorts, and what a projection converts."""

from __future__ import annotations

import builtins
from typing import Any

import boto3
import pytest
from moto import mock_aws
from moto.dynamodb.models import table as moto_table
from moto.dynamodb.models.dynamo_type import Item

from ecscp.local.moto_patches import dynamodb_item_projection, dynamodb_query_sorting
from tests.support.aws import REGION

from .conftest import Apply

OWNERS = ("mine", "theirs")
ITEMS_PER_OWNER = 40


def _indexed_table(dynamodb: Any) -> None:
    """A table keyed by ``pk`` with an index on (owner, at) that projects a few attributes."""
    dynamodb.create_table(
        TableName="indexed",
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[
            {"AttributeName": attribute, "AttributeType": kind}
            for attribute, kind in (("pk", "S"), ("owner", "S"), ("at", "N"))
        ],
        GlobalSecondaryIndexes=[
            {
                "IndexName": "by-owner",
                "KeySchema": [
                    {"AttributeName": "owner", "KeyType": "HASH"},
                    {"AttributeName": "at", "KeyType": "RANGE"},
                ],
                "Projection": {"ProjectionType": "INCLUDE", "NonKeyAttributes": ["state", "doc"]},
            }
        ],
        BillingMode="PAY_PER_REQUEST",
    )
    for n in range(ITEMS_PER_OWNER):
        for owner in OWNERS:
            at = n % 25  # some items share a sort key: the table's key breaks the tie
            dynamodb.put_item(
                TableName="indexed",
                Item={
                    "pk": {"S": f"{owner}-{n:02d}"},
                    "owner": {"S": owner},
                    "at": {"N": str(at)},
                    "state": {"S": "running" if n % 2 else "queued"},
                    "doc": {"M": {"tries": {"N": str(n)}, "tags": {"SS": ["a", "b"]}}},
                    "list": {"L": [{"S": "x"}, {"N": str(n)}]},
                    "big": {"S": "y" * 200},
                },
            )


def _query_pages(dynamodb: Any, condition: str, values: dict[str, Any], **extra: Any) -> list[Any]:
    """Every page of one Query on the index, as returned."""
    pages: list[Any] = []
    kwargs: dict[str, Any] = {
        "TableName": "indexed",
        "IndexName": "by-owner",
        "KeyConditionExpression": f"#o = :o AND {condition}",
        "ExpressionAttributeNames": {"#o": "owner", "#a": "at"},
        "ExpressionAttributeValues": {":o": {"S": "mine"}, **values},
        **extra,
    }
    while True:
        page = dynamodb.query(**kwargs)
        page.pop("ResponseMetadata")
        pages.append(page)
        if "LastEvaluatedKey" not in page:
            return pages
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def _queries(dynamodb: Any) -> list[Any]:
    """Queries of every shape the patch touches: conditions, order, pages, filters, a plain Query."""
    after = {":n": {"N": "19"}}
    results = [
        _query_pages(dynamodb, "#a > :n", after),
        _query_pages(dynamodb, "#a > :n", after, Limit=3),
        _query_pages(dynamodb, "#a > :n", after, Limit=4, ScanIndexForward=False),
        _query_pages(dynamodb, "#a BETWEEN :lo AND :hi", {":lo": {"N": "3"}, ":hi": {"N": "5"}}),
        _query_pages(
            dynamodb,
            "#a >= :n",
            {**after, ":s": {"S": "running"}},
            FilterExpression="#s = :s",
            ExpressionAttributeNames={"#o": "owner", "#a": "at", "#s": "state"},
        ),
        _query_pages(dynamodb, "#a < :n", {":n": {"N": "0"}}),  # nothing meets it
        # a page that ends on the last item meeting the condition, with items after it that do
        # not: moto still gives a LastEvaluatedKey (and the next page is empty), both ways
        _query_pages(dynamodb, "#a < :n", {":n": {"N": "3"}}, Limit=3),
        _query_pages(dynamodb, "#a > :n", after, Limit=5, ScanIndexForward=False),
        _query_pages(dynamodb, "#a BETWEEN :lo AND :hi", {":lo": {"N": "3"}, ":hi": {"N": "5"}}, Limit=6),
        dynamodb.query(
            TableName="indexed",
            KeyConditionExpression="pk = :pk",
            ExpressionAttributeValues={":pk": {"S": "mine-07"}},
        )["Items"],
        dynamodb.scan(TableName="indexed")["Items"],
    ]
    assert len(results[0][0]["Items"]) > 0
    return results


def test_dynamodb_query_sorting(patched: Apply, monkeypatch: pytest.MonkeyPatch) -> None:
    sorted_sizes: list[int] = []
    table_sorts: list[int] = []
    sorted_items = moto_table.Table.sorted_items

    def counting_sorted_items(self: Any, hash_attrs: Any, range_attrs: Any, items: list[Any]) -> Any:
        sorted_sizes.append(len(items))
        return sorted_items(self, hash_attrs, range_attrs, items)

    def counting_sorted(items: Any, **kwargs: Any) -> Any:
        items = list(items)
        table_sorts.append(len(items))
        return builtins.sorted(items, **kwargs)

    monkeypatch.setattr(moto_table.Table, "sorted_items", counting_sorted_items)
    monkeypatch.setattr(moto_table, "sorted", counting_sorted, raising=False)  # all_items' sort
    everything = ITEMS_PER_OWNER * len(OWNERS)
    with mock_aws():
        dynamodb = boto3.client("dynamodb", region_name=REGION)
        _indexed_table(dynamodb)
        # GIVEN moto as released THEN an index Query sorts the whole table, then every item of
        # its owner, whatever its condition keeps
        released = _queries(dynamodb)
        assert table_sorts[0] == everything
        assert sorted_sizes[0] == ITEMS_PER_OWNER

        # GIVEN the patch THEN the same items, order and pages; the Query sorts only the items
        # that meet its condition, and never the table; a Scan still walks it in key order
        patched(dynamodb_query_sorting)
        sorted_sizes.clear()
        table_sorts.clear()
        assert _queries(dynamodb) == released
        meets_first_condition = sum(1 for n in range(ITEMS_PER_OWNER) if n % 25 > 19)
        assert sorted_sizes[0] == meets_first_condition + 2  # and the first and last that do not
        assert max(sorted_sizes) < ITEMS_PER_OWNER
        assert [len(pages) for pages in released[6:9]] == [3, 2, 2]
        assert table_sorts == [everything]  # the Scan's


def _projections(dynamodb: Any) -> list[Any]:
    """Index projections and projection expressions: top-level, into a map, into a list."""

    def get(projection: str) -> Any:
        return dynamodb.get_item(
            TableName="indexed",
            Key={"pk": {"S": "mine-03"}},
            ProjectionExpression=projection,
            ExpressionAttributeNames={"#s": "state"},
        )["Item"]

    return [
        get("#s, big, doc, nothing"),
        get("doc.tries, #s"),
        get("list[1], #s"),
        _query_pages(dynamodb, "#a > :n", {":n": {"N": "20"}}),  # the index's INCLUDE projection
        _query_pages(dynamodb, "#a > :n", {":n": {"N": "20"}}, ProjectionExpression="pk, doc"),
    ]


def test_dynamodb_item_projection(patched: Apply, monkeypatch: pytest.MonkeyPatch) -> None:
    conversions: list[str] = []
    to_regular_json = Item.to_regular_json

    def counting(self: Item) -> Any:
        conversions.append(self.hash_key.value)
        return to_regular_json(self)

    monkeypatch.setattr(Item, "to_regular_json", counting)
    with mock_aws():
        dynamodb = boto3.client("dynamodb", region_name=REGION)
        _indexed_table(dynamodb)
        # GIVEN moto as released THEN a projection converts the whole item once per path
        conversions.clear()
        dynamodb.get_item(
            TableName="indexed", Key={"pk": {"S": "mine-03"}}, ProjectionExpression="big, doc, pk"
        )
        assert conversions == ["mine-03"] * 3
        released = _projections(dynamodb)

        # GIVEN the patch THEN the same items; paths of top-level attributes convert no whole
        # item, nested paths still go moto's way
        patched(dynamodb_item_projection)
        conversions.clear()
        dynamodb.get_item(
            TableName="indexed", Key={"pk": {"S": "mine-03"}}, ProjectionExpression="big, doc, pk"
        )
        assert conversions == []
        assert _projections(dynamodb) == released
        assert conversions.count("mine-03") == 4  # the nested projections' paths, two each
