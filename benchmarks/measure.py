"""Run a callable several times, timing it and counting the AWS calls each run made."""

from __future__ import annotations

import gc
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .env import COUNTER
from .latency import AWS_LATENCY
from .stats import Timing


@dataclass
class Measurement:
    timing: Timing
    #: AWS API calls per run, by ``service.Operation`` (identical across runs unless noted).
    calls: dict[str, int]
    calls_total: int
    #: HTTP requests per run (equals calls_total unless botocore retried).
    http_requests: int
    calls_varied: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "wall": self.timing.as_dict(),
            "calls": self.calls,
            "calls_total": self.calls_total,
            "http_requests": self.http_requests,
        }
        if self.calls_varied:
            out["calls_varied"] = True
        out.update(self.extra)
        return out


@dataclass
class Task:
    """One thing to measure: ``fn`` timed; ``before``/``after`` untimed and uncounted around it."""

    fn: Callable[[], Any]
    repeats: int
    before: Callable[[], Any] | None = None
    after: Callable[[], Any] | None = None
    _seconds: list[float] = field(default_factory=list)
    _calls: list[dict[str, int]] = field(default_factory=list)
    _sends: list[int] = field(default_factory=list)
    _query_items: list[int] = field(default_factory=list)
    _cpu: list[float] = field(default_factory=list)
    _slept: list[float] = field(default_factory=list)

    def run_once(self) -> None:
        if self.before is not None:
            self.before()
        gc.collect()
        COUNTER.reset()
        slept, cpu = AWS_LATENCY.slept_s, time.process_time()
        start = time.perf_counter()
        self.fn()
        self._seconds.append(time.perf_counter() - start)
        self._cpu.append(time.process_time() - cpu)
        self._slept.append(AWS_LATENCY.slept_s - slept)
        self._calls.append(COUNTER.snapshot())
        self._sends.append(COUNTER.sends)
        self._query_items.append(COUNTER.query_items)
        if self.after is not None:
            self.after()

    def result(self) -> Measurement:
        # Report the largest run's calls: with identical runs that is simply "the" count.
        worst = max(self._calls, key=lambda c: sum(c.values()))
        extra: dict[str, Any] = {}
        if any(self._query_items):
            extra["query_items_per_run"] = self._query_items
        if any(self._slept):
            # Under benchmarks.latency: how much of the wall was modelled AWS latency, and the
            # process's CPU time (which the sleeps do not add to).
            extra["modelled_latency"] = Timing.of(self._slept).as_dict()
            extra["cpu"] = Timing.of(self._cpu).as_dict()
        return Measurement(
            timing=Timing.of(self._seconds),
            calls=worst,
            calls_total=sum(worst.values()),
            http_requests=max(self._sends),
            calls_varied=any(c != self._calls[0] for c in self._calls),
            extra=extra,
        )


def measure(
    fn: Callable[[], Any],
    repeats: int,
    *,
    before: Callable[[], Any] | None = None,
    after: Callable[[], Any] | None = None,
) -> Measurement:
    """``repeats`` timed runs of ``fn``."""
    return round_robin({"only": Task(fn, repeats, before, after)})["only"]


def round_robin(tasks: dict[str, Task]) -> dict[str, Measurement]:
    """Alternate the tasks run by run, so that a change in the machine's load hits them alike.

    (Other processes share this machine's two cores; ratios of interleaved runs stay meaningful
    when absolute times drift.)
    """
    for round_no in range(max(t.repeats for t in tasks.values())):
        for task in tasks.values():
            if round_no < task.repeats:
                task.run_once()
    return {name: task.result() for name, task in tasks.items()}
