"""The ``patched`` fixture: a moto patch applied for one test, and moto put back as released after."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from types import ModuleType

import pytest
from moto.moto_api import state_manager

from ecscp.local.ecs.backend import BACKEND
from ecscp.local.moto_patches import _replace

Apply = Callable[[ModuleType], None]


@pytest.fixture
def patched() -> Iterator[Apply]:
    """Applies a patch for one test, and puts moto back as released afterwards."""
    assert not _replace._replaced, "a patch was left applied in this process"
    transitions = dict(state_manager._transitions)
    yield lambda module: module.apply()
    _replace.restore()
    BACKEND.reset()
    state_manager._transitions.clear()
    state_manager._transitions.update(transitions)
