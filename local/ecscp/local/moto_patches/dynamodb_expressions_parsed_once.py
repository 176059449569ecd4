"""moto parses an UpdateItem's update and condition expressions twice per request.

moto 5.2's UpdateItem parses both expressions in its request handler (to check the names and
values they use) and again in its backend (to apply them): the same text, the same names and
values, within one request; and the control plane sends the same few update expressions again
and again. Parsing is pure Python and was about a seventh of the local stack's moto time.
DynamoDB's result is the same; the work is what differs.

Patched: an update expression's tree is parsed once per text (moto's validator works on a copy
of it, so the tree is never changed: :data:`UPDATE_TREES` most recent texts are kept); within
one UpdateItem request, a condition with the same text, names and values is parsed once.
"""

# ruff: noqa: PLC0415

from __future__ import annotations

import contextlib
import functools
import threading
from collections.abc import Callable, Iterator
from typing import Any

from ._replace import replace

#: Parsed update expressions kept (distinct texts; the control plane has a few dozen).
UPDATE_TREES = 512

_state = threading.local()


@contextlib.contextmanager
def one_request() -> Iterator[None]:
    """Within: expressions parsed once (the memo lives as long as the request)."""
    previous = getattr(_state, "memo", None)
    _state.memo = {}
    try:
        yield
    finally:
        _state.memo = previous


def _memo() -> dict[Any, Any] | None:
    memo: dict[Any, Any] | None = getattr(_state, "memo", None)
    return memo


def apply() -> None:
    from moto.dynamodb import models, responses
    from moto.dynamodb.parsing.expressions import UpdateExpressionParser  # type: ignore[attr-defined]

    def make_update_parser(make: Any) -> Any:
        parse = functools.lru_cache(maxsize=UPDATE_TREES)(make.__func__)

        @classmethod  # type: ignore[misc]
        def make_once(cls: Any, expression_str: str) -> Any:
            return parse(cls, expression_str)  # a parse error is raised again each time: not cached

        return make_once

    def make_condition_parser(create: Callable[..., Any]) -> Callable[..., Any]:
        def create_once(expression: str | None, names: Any, values: Any) -> Any:
            memo = _memo()
            if memo is None:
                return create(expression, names, values)
            key = ("condition", expression, id(names), id(values))
            if key not in memo:
                parser = create(expression, names, values)
                parsed = parser.parse()
                parser.parse = lambda: parsed  # the names and values found stay on the parser
                memo[key] = parser
            return memo[key]

        return create_once

    def make_request(update_item: Callable[..., Any]) -> Callable[..., Any]:
        def update_item_parsing_once(self: Any) -> Any:
            with one_request():
                return update_item(self)

        return update_item_parsing_once

    replace(UpdateExpressionParser, "make", __name__, make_update_parser)
    for module in (responses, models):
        replace(module, "create_condition_expression_parser", __name__, make_condition_parser)
    replace(responses.DynamoHandler, "update_item", __name__, make_request)
