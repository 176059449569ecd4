"""Values as ``sam deploy --parameter-overrides`` and ``samconfig.toml`` read them.

SAM parses ``Name=Value`` tokens its own way (and unescapes ``\\"`` in every value), so each
value is written in a form SAM reads back unchanged, and JSON is written so that it survives.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from typing import Any

# How the SAM CLI reads one Key=Value token (samcli.cli.types.CfnParameterOverridesType).
_SAM_VALUE = r"""("(?:\\.|[^"\\]+)*"|'(?:\\.|[^'\\]+)*'|(?:\\.|[^ "\\]+)+)"""
_SAM_PAIR = re.compile(r"""(?:(?: )([A-Za-z0-9"']+)=""" + _SAM_VALUE + ")")
_SAM_NEEDS_QUOTES = re.compile(r"""[\s"'\\]""")


def _sam_unquote(value: str) -> str:
    if value and value[0] == value[-1] and value[0] in ('"', "'"):
        value = value[1:-1]
    return value.replace("\\ ", " ").replace('\\"', '"').replace("\\'", "'")


def parse_sam_overrides(tokens: Iterable[str]) -> dict[str, str]:
    """The parameters ``sam deploy --parameter-overrides <tokens>`` passes (as SAM parses them)."""
    parameters: dict[str, str] = {}
    for token in tokens:
        pairs = _SAM_PAIR.findall(" " + token.strip())
        if not pairs:
            raise ValueError(f"sam cannot read {token!r}")
        parameters.update({_sam_unquote(key): _sam_unquote(value) for key, value in pairs})
    return parameters


def sam_override_token(name: str, value: str) -> str:
    """``Name=Value`` as SAM reads it back: double-quoted (``"`` escaped) when it has to be."""
    if value and not _SAM_NEEDS_QUOTES.search(value):
        return f"{name}={value}"
    return f'{name}="' + value.replace('"', '\\"') + '"'


def sam_reads_back(name: str, value: str) -> bool:
    try:
        return parse_sam_overrides([sam_override_token(name, value)]) == {name: value}
    except ValueError:
        return False


def json_text(value: Any) -> str:
    """Compact JSON whose strings escape ``"``, ``'`` and ``\\`` as ``\\uXXXX``.

    SAM unescapes ``\\"`` in every parameter value, so a JSON escape of that form would not
    survive ``--parameter-overrides`` or ``samconfig.toml``; ``\\uXXXX`` means the same to JSON.
    """
    if isinstance(value, Mapping):
        return "{" + ",".join(f"{json_text(str(k))}:{json_text(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list | tuple):
        return "[" + ",".join(json_text(item) for item in value) + "]"
    if isinstance(value, str):
        return '"' + "".join(c if c >= " " and c not in "\"'\\" else f"\\u{ord(c):04x}" for c in value) + '"'
    return json.dumps(value)
