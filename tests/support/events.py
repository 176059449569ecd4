"""Loads the sample events in events/ (they double as `sam local invoke -e` inputs)."""

from __future__ import annotations

import copy
import json
from functools import cache
from pathlib import Path
from typing import Any

EVENTS_DIR = Path(__file__).resolve().parents[2] / "events"


@cache
def _read(name: str) -> Any:
    return json.loads((EVENTS_DIR / name).read_text())


def load_event(name: str) -> Any:
    """A fresh copy of ``events/<name>`` (``.json`` may be left out)."""
    return copy.deepcopy(_read(name if name.endswith(".json") else f"{name}.json"))
