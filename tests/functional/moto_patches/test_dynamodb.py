"""DynamoDB: atomic requests, item results and copies, expressions, validation, Query, projections."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws
from moto.core.responses import ActionResult
from moto.dynamodb.comparisons import ConditionExpressionParser
from moto.dynamodb.models.dynamo_type import Item
from moto.dynamodb.parsing import validators
from moto.dynamodb.parsing.ast_nodes import DepthFirstTraverser
from moto.dynamodb.parsing.executors import UpdateExpressionExecutor
from moto.dynamodb.parsing.tokens import ExpressionTokenizer

from ecscp.local.moto_patches import (
    dynamodb_atomic_requests,
    dynamodb_expressions_parsed_once,
    dynamodb_item_copies,
    dynamodb_item_results,
    dynamodb_update_shape_checks,
    dynamodb_update_validation,
)
from tests.support.aws import REGION

from .conftest import Apply

# --- DynamoDB ----------------------------------------------------------------------------------


def _table(dynamodb: Any) -> None:
    dynamodb.create_table(
        TableName="items",
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )


def _key(pk: str) -> dict[str, Any]:
    return {"pk": {"S": pk}}


def _read_during_update(
    dynamodb: Any, monkeypatch: pytest.MonkeyPatch, pk: str
) -> tuple[bool, dict[str, Any]]:
    """Whether a GetItem sent while moto applies an UpdateItem's expression waited, and what it saw."""
    execute = UpdateExpressionExecutor.execute
    seen: dict[str, Any] = {}
    waited: list[bool] = []
    readers: list[threading.Thread] = []

    def read_meanwhile(self: Any, *args: Any) -> Any:
        if args or readers:  # the executor's recursion into the expression
            return execute(self, *args)
        reader = threading.Thread(
            target=lambda: seen.update(dynamodb.get_item(TableName="items", Key=_key(pk)))
        )
        readers.append(reader)
        reader.start()
        reader.join(timeout=0.5)
        waited.append(reader.is_alive())
        return execute(self)

    monkeypatch.setattr(UpdateExpressionExecutor, "execute", read_meanwhile)
    dynamodb.update_item(
        TableName="items",
        Key=_key(pk),
        UpdateExpression="SET colour = :c",
        ExpressionAttributeValues={":c": {"S": "red"}},
    )
    monkeypatch.setattr(UpdateExpressionExecutor, "execute", execute)
    for reader in readers:
        reader.join()
    return waited == [True], seen.get("Item", {})


def test_dynamodb_atomic_requests(patched: Apply, monkeypatch: pytest.MonkeyPatch) -> None:
    with mock_aws():
        dynamodb = boto3.client("dynamodb", region_name=REGION)
        _table(dynamodb)
        # GIVEN moto as released WHEN UpdateItem creates an item THEN a concurrent read sees it
        # with its key only
        waited, item = _read_during_update(dynamodb, monkeypatch, "one")
        assert (waited, item) == (False, _key("one"))

        # GIVEN the patch THEN the read waits for the update and sees the whole item
        patched(dynamodb_atomic_requests)
        waited, item = _read_during_update(dynamodb, monkeypatch, "two")
        assert (waited, item) == (True, {**_key("two"), "colour": {"S": "red"}})


def _item_operations(dynamodb: Any, pk: str) -> list[Any]:
    """The responses of every item operation on an item with every kind of value."""
    item = {
        **_key(pk),
        "s": {"S": "text"},
        "n": {"N": "12.5"},
        "list": {"L": [{"S": "a"}, {"N": "1"}, {"BOOL": True}]},
        "map": {"M": {"inner": {"SS": ["x", "y"]}}},
    }
    with_null = {**_key(f"{pk}-null"), "nothing": {"NULL": True}, "bytes": {"B": b"\x00\x01"}}
    responses = [
        dynamodb.put_item(TableName="items", Item=item, ReturnValues="ALL_OLD"),
        dynamodb.put_item(TableName="items", Item=with_null),
        dynamodb.get_item(TableName="items", Key=_key(pk)),
        dynamodb.get_item(TableName="items", Key=_key(f"{pk}-null")),
        dynamodb.update_item(
            TableName="items",
            Key=_key(pk),
            UpdateExpression="SET s = :s",
            ExpressionAttributeValues={":s": {"S": "new"}},
            ReturnValues="ALL_NEW",
        ),
        dynamodb.query(
            TableName="items",
            KeyConditionExpression="pk = :pk",
            ExpressionAttributeValues={":pk": _key(pk)["pk"]},
        ),
        dynamodb.batch_get_item(RequestItems={"items": {"Keys": [_key(pk), _key(f"{pk}-null")]}}),
        dynamodb.delete_item(TableName="items", Key=_key(pk), ReturnValues="ALL_OLD"),
    ]
    for response in responses:
        response.pop("ResponseMetadata")
    for response in responses[6]["Responses"].values():
        response.sort(key=lambda item: item["pk"]["S"])
    return responses


def test_dynamodb_item_results(patched: Apply, monkeypatch: pytest.MonkeyPatch) -> None:
    serialised: list[str] = []
    execute_result = ActionResult.execute_result

    def counting(self: Any, context: Any) -> Any:
        serialised.append(context.operation_model.name)
        return execute_result(self, context)

    monkeypatch.setattr(ActionResult, "execute_result", counting)
    with mock_aws():
        dynamodb = boto3.client("dynamodb", region_name=REGION)
        _table(dynamodb)
        # GIVEN moto as released THEN every item result goes through its shape serialiser
        released = _item_operations(dynamodb, "one")
        assert "GetItem" in serialised
        assert "Query" in serialised

        # GIVEN the patch THEN the same responses; moto serialises only those with a null or a
        # binary value (and DeleteItem's, which carry a field of moto's own)
        patched(dynamodb_item_results)
        serialised.clear()
        fast = _item_operations(dynamodb, "one")
        assert fast == released
        assert {"PutItem", "UpdateItem", "Query"}.isdisjoint(serialised)
        assert serialised.count("GetItem") == 1


def _copies_and_parses(monkeypatch: pytest.MonkeyPatch) -> tuple[list[str], list[str]]:
    """Counters of moto's item deep copies and of its expression parses (update, condition)."""
    copies: list[str] = []
    parses: list[str] = []
    item_deepcopy = Item.__deepcopy__
    tokenize = ExpressionTokenizer.make_list.__func__  # type: ignore[attr-defined]
    lex = ConditionExpressionParser._lex_condition_expression

    def counting_copy(self: Any, memo: Any) -> Any:
        copies.append(self.hash_key.value)
        return item_deepcopy(self, memo)

    def counting_tokenize(cls: Any, expression: str) -> Any:
        parses.append("update")
        return tokenize(cls, expression)

    def counting_lex(self: Any) -> Any:
        parses.append("condition")
        return lex(self)

    monkeypatch.setattr(Item, "__deepcopy__", counting_copy)
    monkeypatch.setattr(ExpressionTokenizer, "make_list", classmethod(counting_tokenize))
    monkeypatch.setattr(ConditionExpressionParser, "_lex_condition_expression", counting_lex)
    return copies, parses


def _conditional_update(dynamodb: Any, pk: str, colour: str, return_values: str = "ALL_NEW") -> Any:
    return dynamodb.update_item(
        TableName="items",
        Key=_key(pk),
        UpdateExpression="SET colour = :c",
        ConditionExpression="attribute_not_exists(colour) OR colour <> :c",
        ExpressionAttributeValues={":c": {"S": colour}},
        ReturnValues=return_values,
    )


def test_dynamodb_item_copies(patched: Apply, monkeypatch: pytest.MonkeyPatch) -> None:
    copies, _ = _copies_and_parses(monkeypatch)
    with mock_aws():
        dynamodb = boto3.client("dynamodb", region_name=REGION)
        _table(dynamodb)
        for pk in ("a", "b"):
            dynamodb.put_item(TableName="items", Item={**_key(pk), "colour": {"S": "red"}})
        query = {"TableName": "items", "KeyConditionExpression": "pk = :pk"}

        # GIVEN moto as released THEN UpdateItem copies the item twice, Query each item it returns
        _conditional_update(dynamodb, "a", "blue")
        assert copies == ["a", "a"]
        copies.clear()
        dynamodb.query(**query, ExpressionAttributeValues={":pk": {"S": "b"}})
        assert copies == ["b"]

        # GIVEN the patch THEN neither copies, and the answers are the same
        patched(dynamodb_item_copies)
        copies.clear()
        assert _conditional_update(dynamodb, "a", "green")["Attributes"]["colour"] == {"S": "green"}
        found = dynamodb.query(**query, ExpressionAttributeValues={":pk": {"S": "b"}})["Items"]
        assert found == [{**_key("b"), "colour": {"S": "red"}}]
        assert copies == []
        # AND ReturnValues that read the old item still get it as it was
        old = _conditional_update(dynamodb, "b", "black", return_values="ALL_OLD")["Attributes"]
        assert old["colour"] == {"S": "red"}
        assert copies == ["b"]
        # AND a table with a stream still gets its copy of the old item
        dynamodb.update_table(
            TableName="items",
            StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
        )
        copies.clear()
        _conditional_update(dynamodb, "b", "white")
        assert copies == ["b"]


def test_dynamodb_expressions_parsed_once(patched: Apply, monkeypatch: pytest.MonkeyPatch) -> None:
    _, parses = _copies_and_parses(monkeypatch)
    with mock_aws():
        dynamodb = boto3.client("dynamodb", region_name=REGION)
        _table(dynamodb)
        # GIVEN moto as released THEN one UpdateItem parses each of its expressions twice
        _conditional_update(dynamodb, "a", "red")
        assert sorted(parses) == ["condition", "condition", "update", "update"]

        # GIVEN the patch THEN once each, and the condition still decides
        patched(dynamodb_expressions_parsed_once)
        parses.clear()
        assert _conditional_update(dynamodb, "a", "blue")["Attributes"]["colour"] == {"S": "blue"}
        assert sorted(parses) == ["condition", "update"]
        with pytest.raises(ClientError, match="ConditionalCheckFailed"):
            _conditional_update(dynamodb, "a", "blue")
        # AND the next request parses its own condition (the memo lives one request) but not an
        # update expression it has seen before; a new one is parsed, a wrong one still refused
        parses.clear()
        _conditional_update(dynamodb, "a", "green")
        assert parses == ["condition"]
        dynamodb.update_item(TableName="items", Key=_key("a"), UpdateExpression="REMOVE colour")
        assert parses == ["condition", "update"]
        for _ in range(2):
            with pytest.raises(ClientError, match="ValidationException"):
                dynamodb.update_item(TableName="items", Key=_key("a"), UpdateExpression="SET colour ==")


#: UpdateItems of every kind moto's validator handles: (expression, names, values).
_UPDATES: list[tuple[str, dict[str, str], dict[str, Any]]] = [
    (
        "SET #s = :s, tries = if_not_exists(tries, :zero) + :one, labels = list_append(labels, :t)",
        {"#s": "state"},
        {":s": {"S": "RUNNING"}, ":zero": {"N": "0"}, ":one": {"N": "1"}, ":t": {"L": [{"S": "x"}]}},
    ),
    (
        "SET notes.nested = :v, labels[0] = :s REMOVE stale ADD tally :one",
        {},
        {":v": {"M": {}}, ":s": {"S": "y"}, ":one": {"N": "1"}},
    ),
    ("SET tally = tally - :one DELETE hues :c", {}, {":one": {"N": "1"}, ":c": {"SS": ["red"]}}),
]
_REFUSED: list[tuple[str, dict[str, Any]]] = [
    ("SET tally = missing + :one", {":one": {"N": "1"}}),  # a path that does not exist
    ("SET labels = list_append(:s, labels)", {":s": {"S": "not a list"}}),
    ("SET pk = :s", {":s": {"S": "other"}}),  # the hash key
    ("SET tally = :one, tally = :one", {":one": {"N": "1"}}),  # overlapping paths
]


def _updates_and_refusals(dynamodb: Any, pk: str) -> list[Any]:
    dynamodb.put_item(
        TableName="items",
        Item={
            "pk": {"S": pk},
            "labels": {"L": []},
            "notes": {"M": {}},
            "stale": {"S": "g"},
            "hues": {"SS": ["red", "blue"]},
        },
    )
    outcomes: list[Any] = []
    for expression, names, values in _UPDATES:
        extra = {"ExpressionAttributeNames": names} if names else {}
        outcomes.append(
            dynamodb.update_item(
                TableName="items",
                Key=_key(pk),
                UpdateExpression=expression,
                ExpressionAttributeValues=values,
                ReturnValues="ALL_NEW",
                **extra,
            )["Attributes"]
        )
    for expression, values in _REFUSED:
        with pytest.raises(ClientError) as refused:
            dynamodb.update_item(
                TableName="items", Key=_key(pk), UpdateExpression=expression, ExpressionAttributeValues=values
            )
        outcomes.append(refused.value.response["Error"])
    return outcomes


def _subclasses(cls: type) -> set[type]:
    found: set[type] = set(cls.__subclasses__())
    return found.union(*(_subclasses(sub) for sub in found))


def test_dynamodb_update_validation(patched: Apply, monkeypatch: pytest.MonkeyPatch) -> None:
    deep_copies: list[str] = []
    maps: list[str] = []
    deepcopy = validators.deepcopy  # type: ignore[attr-defined]

    def counting_deepcopy(value: Any, *args: Any) -> Any:
        deep_copies.append(type(value).__name__)
        return deepcopy(value, *args)

    def counting(processing_map: Any) -> Any:
        def counted(self: Any) -> Any:
            maps.append(type(self).__name__)
            return processing_map(self)

        return counted

    monkeypatch.setattr(validators, "deepcopy", counting_deepcopy)
    for walk in _subclasses(DepthFirstTraverser):
        if "_processing_map" in vars(walk):
            monkeypatch.setattr(walk, "_processing_map", counting(vars(walk)["_processing_map"]))
    with mock_aws():
        dynamodb = boto3.client("dynamodb", region_name=REGION)
        _table(dynamodb)
        # GIVEN moto as released THEN each UpdateItem deep-copies its tree, and its walks rebuild
        # their processing map at every node
        released = _updates_and_refusals(dynamodb, "a")
        assert deep_copies.count("UpdateExpression") == len(_UPDATES) + len(_REFUSED)
        maps_released = len(maps)
        assert maps_released > 40 * len(_UPDATES)

        # GIVEN the patch THEN the same items and the same refusals, with no deep copy of a tree
        # and each walk's map read for its node types once
        patched(dynamodb_update_validation)
        deep_copies.clear()
        maps.clear()
        assert _updates_and_refusals(dynamodb, "a") == released
        assert "UpdateExpression" not in deep_copies
        assert len(maps) < maps_released / 3  # what is left: one per node a walk processes


def _shape_checks(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """A counter of moto's three shape checks of an update expression (one entry per node checked)."""
    checked: list[str] = []

    def counting(name: str, check: Callable[..., Any]) -> Callable[..., Any]:
        def counted(self: Any, node: Any) -> Any:
            checked.append(name)
            return check(self, node)

        return counted

    for walk, name in (
        (validators.ActionCountValidator, "verify_action_counts"),
        (validators.OverlappingPathsValidator, "check_for_overlapping_paths"),
        (validators.UpdateHashRangeKeyValidator, "check_for_hash_or_range_key"),
    ):
        monkeypatch.setattr(walk, name, counting(name, getattr(walk, name)))
    return checked


def _set_by_name(dynamodb: Any, name: str) -> Any:
    return dynamodb.update_item(
        TableName="items",
        Key=_key("a"),
        UpdateExpression="SET #n = :v, seen = :v",
        ExpressionAttributeNames={"#n": name},
        ExpressionAttributeValues={":v": {"S": "x"}},
        ReturnValues="ALL_NEW",
    )["Attributes"]


def test_dynamodb_update_shape_checks(patched: Apply, monkeypatch: pytest.MonkeyPatch) -> None:
    checked = _shape_checks(monkeypatch)
    with mock_aws():
        dynamodb = boto3.client("dynamodb", region_name=REGION)
        _table(dynamodb)
        # GIVEN moto as released (each text parsed once, as in the local stack) THEN every
        # UpdateItem checks its expression's shape again, at every node
        patched(dynamodb_expressions_parsed_once)
        released = _updates_and_refusals(dynamodb, "a")
        checked.clear()
        _set_by_name(dynamodb, "colour")
        _set_by_name(dynamodb, "colour")
        per_request = len(checked) / 2
        assert per_request >= 3

        # GIVEN the patch THEN the same items and the same refusals, each refusal every time
        patched(dynamodb_update_shape_checks)
        assert _updates_and_refusals(dynamodb, "a") == released
        assert _updates_and_refusals(dynamodb, "a") == released
        # AND an expression that passed is not checked again with the same names
        _set_by_name(dynamodb, "colour")
        checked.clear()
        assert _set_by_name(dynamodb, "colour")["colour"] == {"S": "x"}
        assert checked == []
        # AND the same text with other names is checked again: naming the key is refused
        assert _set_by_name(dynamodb, "hue")["hue"] == {"S": "x"}
        assert len(checked) == per_request
        for _ in range(2):
            with pytest.raises(ClientError, match="Cannot update attribute pk"):
                _set_by_name(dynamodb, "pk")
        # AND what is remembered is bounded: past TREES trees, it starts again
        monkeypatch.setattr(dynamodb_update_shape_checks, "TREES", 1)
        dynamodb.update_item(TableName="items", Key=_key("a"), UpdateExpression="REMOVE seen")
        checked.clear()
        _set_by_name(dynamodb, "colour")
        assert len(checked) == per_request
