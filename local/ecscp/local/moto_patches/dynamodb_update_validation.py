"""moto's UpdateItem validation deep-copies the expression's tree and rebuilds a map per node.

moto 5.2 validates every UpdateItem's update expression on a ``copy.deepcopy`` of its parsed
tree (its walks replace nodes in place), then walks that tree ten times; at every node of
every walk, ``DepthFirstTraverser.nodes_to_be_processed`` rebuilds the walk's processing map (a
dict of bound methods) only to read its keys. With the control plane's UpdateItems (a ``SET`` of
a dozen placeholders, and a condition) the copy and the walks were about 95% of moto's
UpdateItem backend time and a quarter of the moto process's work in the throughput benchmark.
DynamoDB's result is the same; the work is what differs.

Patched: the validator copies a tree node by node (a node holds its type, its parent and its
list of children; any other value in it is deep-copied as before, and a tree whose root has a
parent is deep-copied whole), and each walk class's node types are read from its map once
(every moto walk maps fixed classes, not values of the instance).
"""

# ruff: noqa: PLC0415

from __future__ import annotations

import copy
from typing import Any

from ._replace import replace

_walk_types: dict[type, tuple[type, ...]] = {}


def copy_tree(value: Any, memo: dict[int, Any] | None = None) -> Any:
    """``copy.deepcopy(value)``, node by node when ``value`` is the root of a moto tree."""
    from moto.dynamodb.parsing.ast_nodes import Node  # type: ignore[attr-defined]

    if isinstance(value, Node) and value.parent is None:
        return _copy_node(value, None, Node)
    return copy.deepcopy(value, memo)


def _copy_node(node: Any, parent: Any, node_class: type) -> Any:
    clone = object.__new__(type(node))
    for name, value in vars(node).items():
        if name == "parent":
            clone.parent = parent
        elif name == "children" and value is not None:
            clone.children = [_copy_child(child, clone, node_class) for child in value]
        else:
            clone.__dict__[name] = value if name == "type" else copy.deepcopy(value)
    return clone


def _copy_child(child: Any, parent: Any, node_class: type) -> Any:
    if isinstance(child, node_class):
        return _copy_node(child, parent, node_class)
    if isinstance(child, (str, int, float, bool, type(None))):
        return child
    return copy.deepcopy(child)


def apply() -> None:
    from moto.dynamodb.parsing import validators
    from moto.dynamodb.parsing.ast_nodes import DepthFirstTraverser  # type: ignore[attr-defined]

    def make_types(nodes_to_be_processed: Any) -> Any:
        def nodes_to_be_processed_once(self: Any) -> tuple[type, ...]:
            walk = type(self)
            types = _walk_types.get(walk)
            if types is None:
                types = _walk_types[walk] = tuple(nodes_to_be_processed(self))
            return types

        return nodes_to_be_processed_once

    replace(validators, "deepcopy", __name__, lambda _deepcopy: copy_tree)
    replace(DepthFirstTraverser, "nodes_to_be_processed", __name__, make_types)
