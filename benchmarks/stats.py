"""Timing figures: every figure is a median with its min and max, and how many samples made it."""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class Timing:
    """Wall times in milliseconds."""

    median_ms: float
    min_ms: float
    max_ms: float
    samples: int

    @classmethod
    def of(cls, seconds: Sequence[float]) -> Timing:
        ms = [s * 1000 for s in seconds]
        return cls(
            median_ms=round(statistics.median(ms), 3),
            min_ms=round(min(ms), 3),
            max_ms=round(max(ms), 3),
            samples=len(ms),
        )

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def text(self) -> str:
        return f"{fmt_ms(self.median_ms)} ({fmt_ms(self.min_ms)}-{fmt_ms(self.max_ms)}, n={self.samples})"


def fmt_ms(ms: float) -> str:
    if ms >= 10_000:
        return f"{ms / 1000:.1f} s"
    if ms >= 1000:
        return f"{ms / 1000:.2f} s"
    if ms >= 10:
        return f"{ms:.0f} ms"
    return f"{ms:.2f} ms"


def timed(fn: Callable[[], Any]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def percentile(values: Sequence[float], pct: float) -> float:
    """Nearest-rank percentile (no interpolation: every reported value was observed)."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    rank = max(1, min(len(ordered), math.ceil(pct / 100 * len(ordered))))
    return ordered[rank - 1]


def ratio(a: float, b: float) -> float | None:
    return round(a / b, 2) if b else None


def entry_median(entry: dict[str, Any]) -> float:
    """The median wall time (ms) of one measurement as the results JSON records it."""
    return float(entry["wall"]["median_ms"])


def entry_text(entry: dict[str, Any]) -> str:
    w = entry["wall"]
    return f"{fmt_ms(w['median_ms'])} ({fmt_ms(w['min_ms'])}-{fmt_ms(w['max_ms'])}, n={w['samples']})"


def calls_text(entry: dict[str, Any]) -> str:
    return ", ".join(f"{n} {op.split('.', 1)[1]}" for op, n in entry["calls"].items()) or "0"
