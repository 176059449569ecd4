"""What a run records about itself, the targets, and the tables printed at the end."""

from __future__ import annotations

import datetime as dt
import os
import platform
import subprocess
import sys
from importlib import metadata
from typing import Any

import psutil
from rich.console import Console
from rich.table import Table

from . import steady_report
from .env import PROJECT_ROOT
from .latency_report import aws_latency_tables, aws_latency_targets
from .stats import calls_text as _calls
from .stats import entry_median as _median
from .stats import entry_text as _t
from .stats import fmt_ms

PACKAGES = (
    "moto",
    "boto3",
    "botocore",
    "apache-airflow",
    "apache-airflow-providers-amazon",
    "aws-lambda-powertools",
    "pydantic",
)


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _git(*args: str) -> str:
    try:
        return subprocess.run(
            ["git", *args], cwd=PROJECT_ROOT, capture_output=True, text=True, check=True, timeout=10
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def environment() -> dict[str, Any]:
    versions: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return {
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "machine": {
            "cores": os.cpu_count(),
            "cpu": _cpu_model(),
            "ram_bytes": psutil.virtual_memory().total,
            "python": sys.version.split()[0],
            "platform": platform.platform(),
        },
        "packages": versions,
        "git_commit": _git("rev-parse", "--short", "HEAD"),
    }


# -- targets --------------------------------------------------------------------------------------


def _handover_calls(side: dict[str, Any]) -> int:
    """Calls that hand tasks over (RunTask, SendMessageBatch), without the heartbeat's status read."""
    calls: dict[str, int] = side["launch"]["calls"]
    return sum(n for op, n in calls.items() if op in ("ecs.RunTask", "sqs.SendMessageBatch"))


def targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    """The issue's targets, each with the figure that decides it (targets, not assertions)."""
    out: list[dict[str, Any]] = []
    sync = results.get("sync", {}).get("sizes", [])
    if sync:
        calls = {e["n"]: e["ours"]["idle"]["calls_total"] for e in sync}
        out.append(
            {
                "target": "idle sync makes 1 AWS call at every N",
                "met": all(c == 1 for c in calls.values()),
                "figure": calls,
            }
        )
        within = {
            e["n"]: round(_median(e["ours"]["idle"]) / _median(e["floor"]["query_same_table"]), 2)
            for e in sync
        }
        out.append(
            {
                "target": "idle sync within 2x the bare Query (same table)",
                "met": all(r <= 2 for r in within.values()),
                "figure": within,
            }
        )
        at_1000 = [e for e in sync if e["n"] == 1000]
        if at_1000:
            e = at_1000[0]
            speedup = round(_median(e["provider"]["idle"]) / _median(e["ours"]["idle"]), 1)
            out.append(
                {
                    "target": ">=100x faster idle sync than the provider at N=1000",
                    "met": speedup >= 100,
                    "figure": speedup,
                }
            )
        launches = [e for e in sync if e["n"] in (100, 1000)]
        if launches:
            fewer = {
                e["n"]: round(_handover_calls(e["provider"]) / _handover_calls(e["ours"]), 1)
                for e in launches
            }
            faster = {
                e["n"]: round(_median(e["provider"]["launch"]) / _median(e["ours"]["launch"]), 1)
                for e in launches
            }
            out.append(
                {
                    "target": "launch: >=10x fewer AWS calls to hand tasks over",
                    "met": all(v >= 10 for v in fewer.values()),
                    "figure": fewer,
                }
            )
            out.append(
                {
                    "target": "launch: >=10x less scheduler time",
                    "met": all(v >= 10 for v in faster.values()),
                    "figure": faster,
                }
            )
    runs = [results[s] for s in ("throughput_small", "throughput") if "tasks_per_s" in results.get(s, {})]
    if runs:
        out.append(
            {
                "target": ">=50 tasks/s end to end locally, 0 lost",
                "met": all((r.get("tasks_per_s") or 0) >= 50 and r.get("lost") == 0 for r in runs),
                "figure": {
                    f"{r['tasks']} tasks": {
                        "tasks_per_s": r.get("tasks_per_s"),
                        "finished": sum(r.get("terminal_states", {}).values()),
                        "lost": r.get("lost"),
                    }
                    for r in runs
                },
            }
        )
    drain = results.get("throughput", {})
    if drain.get("tasks", 0) >= 1000 and "tasks_per_s" in drain:
        out.append(
            {
                "target": ">=25 tasks/s draining 1,000 tasks locally, 0 lost, 0 started twice (issue 11)",
                "met": (drain.get("tasks_per_s") or 0) >= 25
                and drain.get("lost") == 0
                and drain.get("keys_started_more_than_once") == 0,
                "figure": {
                    "tasks_per_s": drain.get("tasks_per_s"),
                    "lost": drain.get("lost"),
                    "started_twice": drain.get("keys_started_more_than_once"),
                    "moto_calls_per_task": (drain.get("moto_requests_per_task") or {}).get("total"),
                },
            }
        )
    out.extend(aws_latency_targets(results))
    coldstart = results.get("coldstart")
    if coldstart:
        imports = {name: _median({"wall": v["import_app_cpu"]}) for name, v in coldstart["import"].items()}
        out.append(
            {
                "target": "each handler imports in <= 200 ms (CPU time of import app, tracing off)",
                "met": all(ms <= 200 for ms in imports.values()),
                "figure": {k: round(v) for k, v in imports.items()},
            }
        )
        task_state = coldstart.get("handlers", {}).get("task_state")
        if task_state:
            calls = task_state["aws_calls_per_record"].get("dynamodb", {})
            out.append(
                {
                    "target": "task_state: one conditional UpdateItem per ECS event, no read (common case)",
                    "met": calls == {"UpdateItem": 1.0},
                    "figure": {f"dynamodb {op}": n for op, n in calls.items()},
                }
            )
    return out + steady_report.targets(results)


# -- printing -------------------------------------------------------------------------------------


def _calls_by_service(calls: dict[str, Any]) -> str:
    """``dynamodb: 2 UpdateItem; ecs: 1 RunTask`` (results before 2026-12 were ``{"ecs.RunTask": 1}``)."""
    grouped: dict[str, dict[str, float]] = {}
    for name, value in calls.items():
        if isinstance(value, dict):
            grouped.setdefault(name, {}).update(value)
        else:
            service, operation = name.split(".", 1)
            grouped.setdefault(service, {})[operation] = value
    return "; ".join(
        f"{service}: " + ", ".join(f"{n:g} {op}" for op, n in ops.items()) for service, ops in grouped.items()
    )


def _write_units_table(units: dict[str, Any] | None, console: Console) -> None:
    if not units:
        return
    table = Table(title="DynamoDB write units per task try (table + indexes; real handlers, 4 writes)")
    for col in (
        "executor_config",
        "largest item",
        "indexes project what readers read",
        "indexes project ALL",
    ):
        table.add_column(col)

    def text(totals: dict[str, int]) -> str:
        parts = ", ".join(f"{where.split('-')[0]} {n}" for where, n in totals.items() if where != "total")
        return f"{totals['total']} ({parts})"

    for label, e in units.items():
        table.add_row(label, f"{e['largest_item_bytes']} B", text(e["projected"]), text(e["all_projected"]))
    console.print(table)


def _ratio(a: float, b: float) -> str:
    return f"{a / b:.1f}x" if b else "-"


def _throughput_table(throughput: dict[str, Any] | None, console: Console) -> None:
    if not throughput:
        return
    if "error" in throughput:
        console.print(f"End to end in the local stack: not measured ({throughput['error']})")
        return
    table = Table(title=f"End to end in the local stack: {throughput.get('mode', '')}")
    columns = (
        "tasks",
        "tasks/s",
        "p50 submit→seen",
        "p99",
        "unfinished at cut-off",
        "lost",
        "states",
        "elapsed",
        "moto calls/task",
    )
    for col in columns:
        table.add_column(col)
    lat = throughput.get("latency_submit_to_terminal_seen", {})
    table.add_row(
        str(throughput.get("tasks")),
        str(throughput.get("tasks_per_s")),
        fmt_ms(lat.get("p50_ms") or 0),
        fmt_ms(lat.get("p99_ms") or 0),
        str(throughput.get("unfinished_at_cutoff")),
        str(throughput.get("lost")),
        str(throughput.get("terminal_states")),
        f"{throughput.get('elapsed_s')} s",
        str((throughput.get("moto_requests_per_task") or {}).get("total", "-")),
    )
    console.print(table)


def print_tables(results: dict[str, Any], console: Console | None = None) -> None:  # noqa: PLR0915
    console = console or Console()
    sync = results.get("sync", {}).get("sizes", [])
    if sync:
        idle = Table(title="Idle sync: N tasks in flight, nothing changed (median, min-max)")
        for col in (
            "N",
            "ours",
            "calls",
            "provider",
            "calls",
            "provider / ours",
            "bare Query (same table)",
            "bare Query (empty table)",
        ):
            idle.add_column(col)
        for e in sync:
            o, p, f = e["ours"]["idle"], e["provider"]["idle"], e["floor"]
            idle.add_row(
                str(e["n"]),
                _t(o),
                _calls(o),
                _t(p),
                _calls(p),
                _ratio(_median(p), _median(o)),
                _t(f["query_same_table"]),
                _t(f["query_empty_table"]),
            )
        console.print(idle)

        busy = Table(title="Busy sync: 1% of the tasks finish (and are replaced) between syncs")
        for col in (
            "N",
            "changed",
            "ours",
            "calls",
            "items read per sync",
            "provider",
            "calls",
            "provider / ours",
        ):
            busy.add_column(col)
        for e in sync:
            o, p = e["ours"]["busy"], e["provider"]["busy"]
            read = o.get("query_items_per_run", [])
            busy.add_row(
                str(e["n"]),
                str(e["changed_between_busy_syncs"]),
                _t(o),
                _calls(o),
                f"{min(read, default=0)}-{max(read, default=0)}",
                _t(p),
                _calls(p),
                _ratio(_median(p), _median(o)),
            )
        console.print(busy)

        launch = Table(title="Launch: scheduler-side time and calls to hand N tasks over (one heartbeat)")
        for col in ("N", "ours", "calls", "provider", "calls", "time ratio", "call ratio"):
            launch.add_column(col)
        for e in sync:
            o, p = e["ours"]["launch"], e["provider"]["launch"]
            launch.add_row(
                str(e["n"]),
                fmt_ms(_median(o)),
                _calls(o),
                fmt_ms(_median(p)),
                _calls(p),
                _ratio(_median(p), _median(o)),
                _ratio(p["calls_total"], o["calls_total"]),
            )
        console.print(launch)

        resync = Table(
            title="Ours: one safety-net pass over every tracked task (about every 60 s; one call a heartbeat)"
        )
        for col in ("N", "wall, whole pass", "calls", "heartbeats"):
            resync.add_column(col)
        for e in sync:
            r = e["ours"]["full_resync"]
            resync.add_row(str(e["n"]), _t(r), _calls(r), str(r.get("heartbeats", 1)))
        console.print(resync)

    raw = results.get("sync_raw_moto", {}).get("sizes", [])
    if raw:
        table = Table(title="Idle sync on moto as released (its DescribeTasks scan grows with N x tasks)")
        for col in ("N", "ours", "calls", "provider", "calls", "provider / ours", "bare Query (same table)"):
            table.add_column(col)
        for e in raw:
            o, p = e["ours"]["idle"], e["provider"]["idle"]
            table.add_row(
                str(e["n"]),
                _t(o),
                _calls(o),
                _t(p),
                _calls(p),
                _ratio(_median(p), _median(o)),
                _t(e["floor"]["query_same_table"]),
            )
        console.print(table)

    for section in ("throughput_small", "throughput"):
        _throughput_table(results.get(section), console)

    coldstart = results.get("coldstart")
    if coldstart:
        table = Table(title="Lambda functions: import time (cold-start proxy) and cost per record")
        for col in (
            "function",
            "import app (wall)",
            "import app (CPU)",
            "heaviest imports",
            "per record",
            "AWS calls per record",
        ):
            table.add_column(col)
        handlers = coldstart.get("handlers", {})
        for name, data in coldstart["import"].items():
            heavy = ", ".join(f"{k} {v:.0f}" for k, v in list(data["heaviest_imports_ms"].items())[:3])
            h = handlers.get(name)
            per = fmt_ms(h["per_record_ms"]) if h else "-"
            calls = _calls_by_service(h["aws_calls_per_record"]) if h else "-"
            table.add_row(
                name,
                _t({"wall": data["import_app"]}),
                _t({"wall": data["import_app_cpu"]}),
                heavy,
                per,
                calls,
            )
        console.print(table)

    memory = results.get("memory")
    if memory:
        table = Table(title=f"Executor memory with {memory['n']} tracked tasks (fresh process each)")
        for col in ("side", "Python heap per task", "RSS growth per task"):
            table.add_column(col)
        for side in ("ours", "provider"):
            m = memory[side]
            table.add_row(
                side, f"{m['python_heap_bytes_per_task']:.0f} B", f"{m['rss_bytes_per_task']:.0f} B"
            )
        console.print(table)

    steady_report.print_table(results, console)
    _write_units_table(results.get("coldstart", {}).get("write_units_per_try"), console)
    aws_latency_tables(results, console)

    goals = results.get("targets", [])
    if goals:
        table = Table(title="Targets (not assertions)")
        for col in ("target", "met", "figure"):
            table.add_column(col)
        for goal in goals:
            table.add_row(goal["target"], "yes" if goal["met"] else "NO", str(goal["figure"]))
        console.print(table)
