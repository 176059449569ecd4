"""How every patch replaces a moto attribute: once, remembering what it replaced.

A patch module's ``apply()`` calls :func:`replace`; applying it again changes nothing.
:func:`original` gives the attribute as moto released it (what the guard tests call), and
:func:`restore` puts every replaced attribute back (the tests use it, the server never does).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

_MISSING = object()


@dataclass(frozen=True)
class _Replaced:
    owner: Any
    name: str
    patch: str
    original: Any
    owned: bool  # whether the attribute was the owner's own (not inherited, not absent)


_replaced: list[_Replaced] = []


def replace(owner: Any, name: str, patch: str, make: Callable[[Any], Any]) -> Any:
    """Set ``owner.name`` to ``make(current)`` unless ``patch`` already did; return the original.

    ``current`` is the attribute as stored (a function, a property), not bound.
    """
    for entry in _replaced:
        if entry.owner is owner and entry.name == name and entry.patch == patch:
            return entry.original
    owned = name in vars(owner)
    current = inspect.getattr_static(owner, name, _MISSING)
    _replaced.append(_Replaced(owner, name, patch, current, owned))
    setattr(owner, name, make(None if current is _MISSING else current))
    return current


def original(owner: Any, name: str) -> Any:
    """``owner.name`` as moto released it, whether or not a patch replaced it."""
    for entry in _replaced:
        if entry.owner is owner and entry.name == name:
            return entry.original
    return inspect.getattr_static(owner, name)


def restore() -> None:
    """Put back every attribute a patch replaced, last replaced first."""
    while _replaced:
        entry = _replaced.pop()
        if entry.owned:
            setattr(entry.owner, entry.name, entry.original)
        else:
            delattr(entry.owner, entry.name)
