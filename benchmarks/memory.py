"""Scenario 6: the executor's resident memory per tracked task, each side in a fresh process.

``python -m benchmarks.memory --side ours|provider --n 10000`` prints one JSON line. The
process starts its own moto server, builds the N workloads first (the scheduler holds those
anyway), then measures RSS before and after the executor takes them over and tracks them.
The provider's RunTask is answered from one response captured from moto, with a new task ARN
each time: it keeps the same objects per task, without 10,000 RunTask calls to wait for.
"""

# Airflow, moto and the handlers are imported where used: the environment (AIRFLOW_HOME,
# fake credentials, endpoints) must be set before they read it.
# ruff: noqa: PLC0415

from __future__ import annotations

import argparse
import copy
import gc
import json
import subprocess
import sys
import tempfile
import tracemalloc
import uuid
from pathlib import Path
from typing import Any

import psutil

from .env import CLUSTER, PROJECT_ROOT, TASK_FAMILY, AwsFixture, MotoServer, configure_process_env


def _rss() -> int:
    gc.collect()
    return int(psutil.Process().memory_info().rss)


def _start() -> int:
    """RSS now, and trace every allocation from here on (what is still alive at the end is kept)."""
    rss = _rss()
    tracemalloc.start()
    return rss


def _stop(before: int, tracked: int) -> dict[str, Any]:
    gc.collect()
    retained, _peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return {"rss_before": before, "rss_after": _rss(), "python_heap_retained": retained, "tracked": tracked}


def _measure_ours(fixture: AwsFixture, n: int) -> dict[str, Any]:
    from . import ours
    from .workloads import make_workloads

    ours.configure(fixture)
    executor = ours.make_executor(parallelism=10 * n)
    workloads = make_workloads(n, batch="mem")
    before = _start()
    for workload in workloads:
        executor.queue_workload(workload, session=None)
    del workloads
    executor.heartbeat()
    ours.settled_items(fixture.dynamodb, ours.encoded_keys(executor))
    ours.full_resync(executor)
    executor.sync()  # steady state: an ordinary sync after the safety net
    executor.event_buffer.clear()  # the scheduler drains it every loop
    if len(executor.tracked) != n:
        raise RuntimeError(f"ours tracks {len(executor.tracked)} of {n}")
    return _stop(before, len(executor.tracked))


def _measure_provider(fixture: AwsFixture, n: int) -> dict[str, Any]:
    from . import provider
    from .workloads import make_workloads

    provider.configure(fixture)
    executor = provider.make_executor(parallelism=10 * n)
    sample = fixture.ecs.run_task(
        cluster=CLUSTER,
        taskDefinition=TASK_FAMILY,
        launchType="FARGATE",
        networkConfiguration=fixture.network_kwargs(),  # type: ignore[arg-type]
    )
    template: dict[str, Any] = {key: value for key, value in sample.items() if key != "ResponseMetadata"}

    def run_task(**_: Any) -> dict[str, Any]:
        response = copy.deepcopy(template)
        response["tasks"][0]["taskArn"] = (
            f"{template['tasks'][0]['taskArn'].rsplit('/', 1)[0]}/{uuid.uuid4().hex}"
        )
        return response

    executor.ecs.run_task = run_task
    workloads = make_workloads(n, batch="mem")
    before = _start()
    for workload in workloads:
        executor.queue_workload(workload, session=None)
    del workloads
    executor.heartbeat()
    executor.event_buffer.clear()
    if provider.in_flight(executor) != n:
        raise RuntimeError(f"provider tracks {provider.in_flight(executor)} of {n}")
    return _stop(before, provider.in_flight(executor))


def _child(side: str, n: int) -> None:
    configure_process_env(Path(tempfile.mkdtemp(prefix="ecscp-bench-mem-")))
    with MotoServer() as server:
        server.reset()
        fixture = AwsFixture(server)
        fixture.create_all()
        result = _measure_ours(fixture, n) if side == "ours" else _measure_provider(fixture, n)
    growth = result["rss_after"] - result["rss_before"]
    result.update(
        side=side,
        n=n,
        rss_growth_bytes=growth,
        rss_bytes_per_task=round(growth / n, 1),
        python_heap_bytes_per_task=round(result["python_heap_retained"] / n, 1),
    )
    print(json.dumps(result))


def measure(side: str, n: int) -> dict[str, Any]:
    """Run one side in a fresh interpreter and return what it printed."""
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.memory", "--side", side, "--n", str(n)],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        check=False,
        timeout=1800,
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        raise RuntimeError(f"memory run for {side} failed: {done.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(lines[-1])
    return result


def run(n: int, say: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"n": n}
    for side in ("ours", "provider"):
        say(f"  {side}: RSS with {n} tracked tasks (fresh process)")
        out[side] = measure(side, n)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--side", choices=["ours", "provider"], required=True)
    parser.add_argument("--n", type=int, default=10_000)
    args = parser.parse_args()
    _child(args.side, args.n)


if __name__ == "__main__":
    main()
