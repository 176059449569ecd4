"""Items read off the wire (``ecs_control_plane.wire_items``) are exactly what botocore's parser gives."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from ecs_control_plane.wire_items import _take_items, read_items_off_the_wire

REGION = "us-east-1"
TABLE = "wire-items"

#: One attribute of every DynamoDB type but binary, nested too, and strings that look like tags.
PLAIN_ITEM: dict[str, Any] = {
    "pk": {"S": "p"},
    "sk": {"N": "1"},
    "s": {"S": 'Billing_dag holds "B": and {"BS": [] } in its text'},
    "n": {"N": "12.50"},
    "yes": {"BOOL": True},
    "nothing": {"NULL": True},
    "list": {"L": [{"S": "a"}, {"N": "2"}, {"M": {"deep": {"BOOL": False}}}]},
    "map": {"M": {"x": {"SS": ["b", "a"]}, "y": {"NS": ["1", "2"]}}},
    "unicode": {"S": "é \u2603 \\ / \n"},
}
BINARY_ITEM: dict[str, Any] = {
    "pk": {"S": "p"},
    "sk": {"N": "2"},
    "blob": {"B": b"\x00\x01binary"},
    "blobs": {"BS": [b"one", b"two"]},
    "nested": {"M": {"inner": {"B": b"\xff"}}},
}


@pytest.fixture
def clients() -> Iterator[tuple[Any, Any]]:
    """A botocore client with the items read off the wire, and a plain one, on one moto table."""
    with mock_aws():
        plain = boto3.client("dynamodb", region_name=REGION)
        plain.create_table(
            TableName=TABLE,
            KeySchema=[
                {"AttributeName": "pk", "KeyType": "HASH"},
                {"AttributeName": "sk", "KeyType": "RANGE"},
            ],
            AttributeDefinitions=[
                {"AttributeName": "pk", "AttributeType": "S"},
                {"AttributeName": "sk", "AttributeType": "N"},
            ],
            BillingMode="PAY_PER_REQUEST",
        )
        fast = boto3.client("dynamodb", region_name=REGION)
        read_items_off_the_wire(fast)
        yield fast, plain


def _bodies_seen(client: Any) -> list[bytes]:
    """The response bodies botocore's parser is handed after the wire-items handler ran."""
    seen: list[bytes] = []
    client.meta.events.register(
        "before-parse.dynamodb", lambda response_dict, **_: seen.append(response_dict["body"])
    )
    return seen


def _query(client: Any) -> dict[str, Any]:
    response = client.query(
        TableName=TABLE, KeyConditionExpression="pk = :p", ExpressionAttributeValues={":p": {"S": "p"}}
    )
    response.pop("ResponseMetadata")
    return dict(response)


def test_a_query_gives_the_same_items_as_botocores_parser_without_parsing_them(clients):
    # GIVEN an item of every non-binary type
    fast, plain = clients
    plain.put_item(TableName=TABLE, Item=PLAIN_ITEM)
    bodies = _bodies_seen(fast)
    # WHEN both clients query it
    fast_result, plain_result = _query(fast), _query(plain)
    # THEN the results are equal, and botocore's parser never saw the items
    assert fast_result == plain_result
    assert fast_result["Items"] == [PLAIN_ITEM]
    assert fast_result["Count"] == 1
    assert bodies
    assert b"Items" not in bodies[-1]


def test_binary_values_are_left_to_botocore_which_decodes_them_to_bytes(clients):
    # GIVEN an item holding binary values (base64 on the wire)
    fast, plain = clients
    plain.put_item(TableName=TABLE, Item=BINARY_ITEM)
    bodies = _bodies_seen(fast)
    # WHEN the wire-items client queries it
    result = _query(fast)
    # THEN they come back as bytes, as botocore parses them, and the page went through its parser
    assert result == _query(plain)
    assert result["Items"][0]["blob"] == {"B": b"\x00\x01binary"}
    assert result["Items"][0]["nested"]["M"]["inner"] == {"B": b"\xff"}
    assert b"Items" in bodies[-1]
    assert base64.b64encode(b"\x00\x01binary") in bodies[-1]


def test_batch_get_gives_the_same_responses_and_unprocessed_keys_as_botocore(clients):
    fast, plain = clients
    plain.put_item(TableName=TABLE, Item=PLAIN_ITEM)
    request = {TABLE: {"Keys": [{"pk": {"S": "p"}, "sk": {"N": "1"}}, {"pk": {"S": "p"}, "sk": {"N": "9"}}]}}
    bodies = _bodies_seen(fast)

    fast_result = fast.batch_get_item(RequestItems=request)
    plain_result = plain.batch_get_item(RequestItems=request)

    for result in (fast_result, plain_result):
        result.pop("ResponseMetadata")
    assert fast_result == plain_result
    assert fast_result["Responses"] == {TABLE: [PLAIN_ITEM]}
    assert b"Responses" not in bodies[-1]


def test_an_error_response_is_parsed_into_the_usual_client_error(clients):
    fast, _ = clients
    with pytest.raises(fast.exceptions.ResourceNotFoundException):
        fast.query(
            TableName="no-such-table",
            KeyConditionExpression="pk = :p",
            ExpressionAttributeValues={":p": {"S": "p"}},
        )


def test_only_the_client_it_was_given_reads_off_the_wire(clients):
    fast, plain = clients
    plain.put_item(TableName=TABLE, Item=PLAIN_ITEM)
    read_items_off_the_wire(fast)  # again: still one handler
    plain_bodies = _bodies_seen(plain)

    assert _query(fast) == _query(plain)
    assert b"Items" in plain_bodies[-1]


def test_a_client_that_is_not_botocores_is_left_alone():
    class StandIn:
        def query(self, **_: Any) -> dict[str, Any]:
            return {"Items": []}

    stand_in = StandIn()
    read_items_off_the_wire(stand_in)
    assert stand_in.query() == {"Items": []}


@pytest.mark.parametrize(
    "body",
    [b"\xa1dItems\x80", b'[{"Items": []}]', b'"Items"', b"not json"],
    ids=["cbor", "list", "string", "text"],
)
def test_a_body_that_is_not_a_json_object_is_left_to_botocore(body):

    class Operation:
        name = "Query"

    response = {"body": body, "status_code": 200}
    taken: dict[str, Any] = {}
    _take_items(Operation(), response, taken)
    assert response["body"] == body
    assert taken == {}
