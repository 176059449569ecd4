"""moto converts a whole DynamoDB item to Python once for every attribute a projection names.

moto 5.2's ``Item.project`` (an index's projection, and every ``ProjectionExpression``) turns
the entire item into plain Python (a deep copy and a deserialization of every attribute) once
per path it projects, and picks the path out of that copy. A Query on the owner index projects
each item it returns twice: the index's 13 attributes out of an item of about 30 (some of them
maps), then the executor's 10; a sync returning 70 items converted about 35,000 attribute values
to return 700. DynamoDB returns the same attributes; the work is what differs.

Patched: when every path is one top-level attribute (as in an index's projection and in the
control plane's projection expressions), only the named attributes are converted, once each,
and the projected item is built from them as moto builds it. Paths into maps or lists
(``a.b``, ``a[0]``) go the way moto released them. One difference: moto stores a number of more
than 38 digits (DynamoDB refuses it at the write) and then fails every projection of its item;
patched, only those that name it.
"""

# ruff: noqa: PLC0415

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ._replace import replace


def _top_level(paths: list[list[str]]) -> list[str] | None:
    """The attribute names, when every path is one attribute that is not a list index."""
    names = []
    for path in paths:
        if len(path) != 1 or path[0].endswith("]"):
            return None
        names.append(path[0])
    return names


def apply() -> None:
    from moto.dynamodb.models import dynamo_type

    def make_project(project: Callable[..., Any]) -> Callable[..., Any]:
        def project_converting_what_it_keeps(self: Any, projection_expressions: list[list[str]]) -> Any:
            names = _top_level(projection_expressions)
            if names is None:
                return project(self, projection_expressions)
            kept = {
                name: dynamo_type.deserializer.deserialize(self.attrs[name].to_regular_json())
                for name in names
                if name in self.attrs
            }
            return dynamo_type.Item(
                hash_key=self.hash_key,
                range_key=self.range_key,
                attrs=dict(dynamo_type.serializer.serialize(kept)["M"]),
            )

        return project_converting_what_it_keeps

    replace(dynamo_type.Item, "project", __name__, make_project)
