"""The workload's commands hidden in what a local Lambda worker reports about a failed invocation.

A run request carries its task's command, and the command carries the workload's token; a
handler's error (a validation error quoting its input, say) can repeat it. Not an AWS behaviour:
Lambda logs what the handler raised as it is. The local stack keeps the token out of its own
logs, which a developer reads and shares.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any


def _commands(value: Any, found: set[str]) -> set[str]:
    """Every string in a ``command`` list anywhere in an event, JSON bodies included."""
    if isinstance(value, str) and value[:1] in "{[":
        try:
            value = json.loads(value)
        except ValueError:
            return found
    if isinstance(value, dict):
        for key, item in value.items():
            if key == "command" and isinstance(item, list):
                for part in (p for p in item if isinstance(p, str) and len(p) >= 8):
                    found.update({part, json.dumps(part)[1:-1]})
                    found.update(_long_strings(part))
            else:
                _commands(item, found)
    elif isinstance(value, list):
        for item in value:
            _commands(item, found)
    return found


def _long_strings(text: str) -> set[str]:
    """String values of a JSON command argument (a workload's token among them)."""
    try:
        value = json.loads(text)
    except ValueError:
        return set()
    found: set[str] = set()
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, str) and len(item) >= 16:
            found.add(item)
    return found


def redactor(event: Any) -> Callable[[str], str]:
    """Hides the workload commands of an event (they carry a token) in an error report."""
    secrets = sorted(_commands(event, set()), key=len, reverse=True)

    def redact(text: str) -> str:
        for secret in secrets:
            text = text.replace(secret, "<redacted command>")
            text = text.replace(secret[:40], "<redacted command>")  # error messages truncate values
        return text

    return redact
