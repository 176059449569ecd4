"""boto3's DynamoDB type (de)serializers, imported on first use rather than with the layer.

``boto3.dynamodb.types`` cannot be imported without ``boto3/__init__``, which loads boto3's
session, its resource layer and ``s3transfer`` (about 12 ms of CPU), while the functions make
their clients with botocore alone. No maintained (de)serializer without boto3 behaves the same:
Powertools ships only a deserializer, and it returns ``bytes`` for binary and rounds long
numbers where boto3 refuses them. So these are boto3's own, loaded by the first call: the cost
moves from ``import app`` to the first DynamoDB read or write of a container, it does not vanish.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, cast

if TYPE_CHECKING:
    from boto3.dynamodb import types


class TypeSerializer:
    """``boto3.dynamodb.types.TypeSerializer``, loaded when the first value is serialized."""

    def serialize(self, value: Any) -> dict[str, Any]:
        return cast("dict[str, Any]", _serializer().serialize(value))


class TypeDeserializer:
    """``boto3.dynamodb.types.TypeDeserializer``, loaded when the first value is deserialized."""

    def deserialize(self, value: Mapping[str, Any]) -> Any:
        return _deserializer().deserialize(cast("Any", value))


@functools.cache
def _serializer() -> types.TypeSerializer:
    from boto3.dynamodb.types import TypeSerializer as Boto3TypeSerializer  # noqa: PLC0415

    return Boto3TypeSerializer()


@functools.cache
def _deserializer() -> types.TypeDeserializer:
    from boto3.dynamodb.types import TypeDeserializer as Boto3TypeDeserializer  # noqa: PLC0415

    return Boto3TypeDeserializer()
