"""The steady-state scenario's table and targets (see steady_state.py)."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table

#: Issue 12's targets for our executor at N = 10,000.
P99_CPU_TARGET_MS = 50
DYNAMODB_CALLS_TARGET = 2
PARSED_PER_CHANGED_TARGET = 1.2


def _spread(figure: dict[str, float]) -> str:
    return f"{figure['p50']:.0f} / {figure['p99']:.0f} / {figure['max']:.0f}"


def print_table(results: dict[str, Any], console: Console) -> None:
    for section, where in (("steady_state", "loopback"), ("steady_state_aws_latency", "AWS-latency model")):
        sizes = results.get(section, {}).get("sizes", [])
        if sizes:
            _table(sizes, where, console)


def _table(sizes: list[dict[str, Any]], where: str, console: Console) -> None:
    table = Table(
        title=f"Steady state ({where}): 1% of the tasks end and as many start per heartbeat, one a second"
    )
    for col in (
        "N",
        "executor",
        "heartbeats",
        "wall p50/p99/max ms",
        "CPU p50/p99/max ms",
        "of which reading task states",
        "max AWS calls (besides hand-over)",
        "max DynamoDB calls",
        "parsed / changed",
    ):
        table.add_column(col)
    for e in sizes:
        for side in ("ours", "provider"):
            r = e[side]
            table.add_row(
                str(e["n"]),
                side,
                str(r["heartbeats"]),
                _spread(r["wall_ms"]),
                _spread(r["cpu_ms"]),
                _spread(r["read_cpu_ms"]) if "read_cpu_ms" in r else "-",
                f"{r['max_aws_calls']} ({r['max_aws_calls_besides_hand_over']})",
                str(r["max_dynamodb_calls"]) if side == "ours" else "-",
                str(r.get("parsed_per_changed", "-")),
            )
    console.print(table)


def targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    sizes = results.get("steady_state", {}).get("sizes", [])
    at = {e["n"]: e["ours"] for e in sizes}
    out: list[dict[str, Any]] = []
    if 10_000 in at:
        ours = at[10_000]
        out.append(
            {
                "target": f"steady state N=10,000: p99 heartbeat CPU <= {P99_CPU_TARGET_MS} ms (ours)",
                "met": ours["cpu_ms"]["p99"] <= P99_CPU_TARGET_MS,
                "figure": ours["cpu_ms"]["p99"],
            }
        )
        out.append(
            {
                "target": f"steady state N=10,000: <= {DYNAMODB_CALLS_TARGET} DynamoDB calls a heartbeat",
                "met": ours["max_dynamodb_calls"] <= DYNAMODB_CALLS_TARGET,
                "figure": ours["max_dynamodb_calls"],
            }
        )
    ratios = {n: r["parsed_per_changed"] for n, r in at.items() if r.get("parsed_per_changed") is not None}
    if ratios:
        out.append(
            {
                "target": f"items parsed per sync <= {PARSED_PER_CHANGED_TARGET}x items changed",
                "met": all(v <= PARSED_PER_CHANGED_TARGET for v in ratios.values()),
                "figure": ratios,
            }
        )
    return out
