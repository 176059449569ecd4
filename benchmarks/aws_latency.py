"""Scenario ``aws-latency``: the sync scenario's launch, idle and busy sync under the AWS-latency model.

The same machinery as ``sync`` (benchmarks/sync_bench.py, both executors side by side and
interleaved), with every botocore call of this process sleeping its modelled latency
(benchmarks/latency.py), so the ratios to the provider mean AWS in one region, not loopback.
The same plans run first on loopback, so both sets of ratios come from one run on one load.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from . import sync_bench
from .env import MotoServer
from .latency import AWS_LATENCY, LatencyModel
from .report import load_average

#: Under the model a provider launch of 1,000 tasks is 1,000 sleeps of a RunTask latency
#: (minutes), so N = 1,000 launches once, and the provider's syncs (seconds) repeat 3 times.
REPEATS = 10
PROVIDER_REPEATS = 3


def plans(sizes: tuple[int, ...]) -> list[sync_bench.SyncPlan]:
    return [
        sync_bench.SyncPlan(
            n=n, repeats=REPEATS, provider_repeats=PROVIDER_REPEATS, launch_rounds=3 if n <= 100 else 1
        )
        for n in sizes
    ]


def run(
    server: MotoServer, sizes: tuple[int, ...], say: Callable[[str], None], model: LatencyModel | None = None
) -> dict[str, Any]:
    load_before = load_average()
    say("  on loopback first (no added latency)")
    loopback = sync_bench.run(server, plans(sizes), say)
    say("  under the AWS-latency model")
    with AWS_LATENCY.applied(model) as applied:
        entries = sync_bench.run(server, plans(sizes), say)
    return {
        "model": applied.as_dict(),
        "sizes": entries,
        "loopback": {"sizes": loopback},
        "load_average_before": load_before,
        "load_average_after": load_average(),
    }
