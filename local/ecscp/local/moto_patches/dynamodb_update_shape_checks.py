"""moto re-checks the shape of an UpdateItem's expression on every request, in quadratic walks.

moto 5.2's UpdateItem validation starts with three checks that depend only on the update
expression, its attribute names and the table's key: at most one clause of each kind, no two
actions on overlapping paths, no action on a key attribute. The first two run at every
``UpdateExpression`` node of the tree and each gathers the clauses below it, so their cost grows
with the square of the expression: with the control plane's ``SET`` of a dozen attributes they
were about a third of moto's UpdateItem validation, on every request, for the same few texts.
DynamoDB's result is the same; the work is what differs.

Patched: once an expression's tree (parsed once per text, see
:mod:`.dynamodb_expressions_parsed_once`) passes the whole validation with some attribute names
on a table's key, later validations of that tree with the same names and key skip the three
checks; every other walk (values, the item's attributes, functions, types) runs as before. An
expression that fails is checked again each time, so it fails the same way.
"""

# ruff: noqa: PLC0415

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ._replace import replace

#: Trees remembered (each with the names and keys it passed with); the control plane has a few dozen.
TREES = 512

#: id(tree) -> (tree, the (names, key attributes) it passed with); the tree is held so its id stays its own.
_passed: dict[int, tuple[Any, set[tuple[Any, ...]]]] = {}


def _context(validator: Any) -> tuple[Any, ...]:
    names = validator.expression_attribute_names or {}
    return tuple(sorted(names.items())), tuple(validator.table.table_key_attrs)


def apply() -> None:
    from moto.dynamodb.parsing import validators

    shape_checks = (
        validators.ActionCountValidator,
        validators.OverlappingPathsValidator,
        validators.UpdateHashRangeKeyValidator,
    )

    def make_init(init: Callable[..., Any]) -> Callable[..., Any]:
        def init_remembering_the_tree(self: Any, expression: Any, *args: Any, **kwargs: Any) -> None:
            self.__dict__["_parsed_tree"] = expression
            init(self, expression, *args, **kwargs)

        return init_remembering_the_tree

    def make_validate(validate: Callable[..., Any]) -> Callable[..., Any]:
        def validate_checking_the_shape_once(self: Any) -> Any:
            tree = self.__dict__.get("_parsed_tree")
            context = _context(self)
            entry = _passed.get(id(tree))
            if entry is not None and entry[0] is tree and context in entry[1]:
                self.processors = [p for p in self.processors if not isinstance(p, shape_checks)]
                return validate(self)
            validated = validate(self)  # raises on any failure: nothing is remembered then
            if tree is not None:
                if id(tree) not in _passed and len(_passed) >= TREES:
                    _passed.clear()
                _passed.setdefault(id(tree), (tree, set()))[1].add(context)
            return validated

        return validate_checking_the_shape_once

    replace(validators.UpdateExpressionValidator, "__init__", __name__, make_init)
    replace(validators.UpdateExpressionValidator, "validate", __name__, make_validate)
