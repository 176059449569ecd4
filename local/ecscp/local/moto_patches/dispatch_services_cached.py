"""moto's request dispatcher lists moto's package directory on every request.

To find a request's backend, moto's server lists its package directory (a stat per service)
each time. The list cannot change while the server runs; AWS has no such cost, and the local
stack's one moto process serves every call. Patched: the list is read once.
"""

# ruff: noqa: PLC0415

from __future__ import annotations

from collections.abc import Callable, Iterable

from ._replace import replace


def apply() -> None:
    from moto import backends

    def make(list_of_moto_modules: Callable[[], Iterable[str]]) -> Callable[[], Iterable[str]]:
        modules = tuple(list_of_moto_modules())
        return lambda: modules

    replace(backends, "list_of_moto_modules", __name__, make)
