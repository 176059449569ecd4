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

from .env import PROJECT_ROOT
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


def _median(entry: dict[str, Any]) -> float:
    return float(entry["wall"]["median_ms"])


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
    out.extend(aws_latency_targets(results))
    coldstart = results.get("coldstart")
    if coldstart:
        imports = {name: _median({"wall": v["import_app_cpu"]}) for name, v in coldstart["import"].items()}
        out.append(
            {
                "target": "each handler imports in < 300 ms (CPU time of import app)",
                "met": all(ms < 300 for ms in imports.values()),
                "figure": {k: round(v) for k, v in imports.items()},
            }
        )
    return out


# -- under the AWS-latency model (benchmarks/latency.py) -----------------------------------------


def _by_n(section: dict[str, Any] | None) -> dict[int, dict[str, Any]]:
    return {e["n"]: e for e in (section or {}).get("sizes", [])}


def _modelled_ms(entry: dict[str, Any]) -> float:
    return float(entry.get("modelled_latency", {}).get("median_ms", 0.0))


def _cpu_plus_modelled_ms(entry: dict[str, Any]) -> float:
    """The scheduler's CPU plus the modelled latency: the wall on AWS with moto's own server time
    taken out (the model's latency already includes the service's time)."""
    return float(entry.get("cpu", {}).get("median_ms", 0.0)) + _modelled_ms(entry)


def _ratio_of(kind: str, e: dict[str, Any] | None, value: Any = _median) -> float | None:
    if not e:
        return None
    ours = value(e["ours"][kind])
    return round(value(e["provider"][kind]) / ours, 1) if ours else None


def break_even_ms(
    target: float, ours: dict[str, Any], provider: dict[str, Any], operation: str, *, cpu: bool = False
) -> float | None:
    """The latency per ``operation`` call at which provider / ours would be exactly ``target``.

    Everything else as measured: ours' wall, and the provider's wall without its modelled sleeps
    (moto and client time); with ``cpu``, ours' CPU + modelled latency and the provider's CPU.
    ``None`` when the provider makes no such call. Lets a reader check the conclusion against
    any latency figure they trust more than the model's estimate.
    """
    calls = int(provider["calls"].get(operation, 0))
    if not calls:
        return None
    if cpu:
        mine, rest = _cpu_plus_modelled_ms(ours), _cpu_plus_modelled_ms(provider) - _modelled_ms(provider)
    else:
        mine, rest = _median(ours), _median(provider) - _modelled_ms(provider)
    return round((target * mine - rest) / calls, 1)


def aws_latency_ratios(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Per N: provider / ours for idle sync and launch, under the model and on loopback moto."""
    section = results.get("aws_latency") or {}
    # The same run's loopback pass; else the sync scenario's figures.
    loopback = _by_n(section.get("loopback") or results.get("sync"))
    rows = []
    for n, e in sorted(_by_n(section).items()):
        raw = loopback.get(n)
        rows.append(
            {
                "n": n,
                "idle": _ratio_of("idle", e),
                "idle_loopback": _ratio_of("idle", raw),
                "idle_cpu_plus_modelled": _ratio_of("idle", e, _cpu_plus_modelled_ms),
                "idle_vs_empty_table_query": round(
                    _median(e["provider"]["idle"]) / _median(e["floor"]["query_empty_table"]), 1
                ),
                "launch": _ratio_of("launch", e),
                "launch_loopback": _ratio_of("launch", raw),
                "launch_cpu_plus_modelled": _ratio_of("launch", e, _cpu_plus_modelled_ms),
                "idle_break_even_describe_tasks_ms": break_even_ms(
                    100, e["ours"]["idle"], e["provider"]["idle"], "ecs.DescribeTasks"
                ),
                "idle_break_even_describe_tasks_ms_cpu": break_even_ms(
                    100, e["ours"]["idle"], e["provider"]["idle"], "ecs.DescribeTasks", cpu=True
                ),
                "launch_break_even_run_task_ms": break_even_ms(
                    10, e["ours"]["launch"], e["provider"]["launch"], "ecs.RunTask"
                ),
                "launch_break_even_run_task_ms_cpu": break_even_ms(
                    10, e["ours"]["launch"], e["provider"]["launch"], "ecs.RunTask", cpu=True
                ),
            }
        )
    return rows


def aws_latency_targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    rows = {r["n"]: r for r in aws_latency_ratios(results)}
    out: list[dict[str, Any]] = []
    if 1000 in rows:
        r = rows[1000]
        out.append(
            {
                "target": ">=100x faster idle sync than the provider at N=1000, under the AWS-latency model",
                "met": r["idle"] >= 100,
                "figure": {
                    "ratio": r["idle"],
                    "loopback": r["idle_loopback"],
                    "CPU + modelled": r["idle_cpu_plus_modelled"],
                    "provider / bare Query on an empty table": r["idle_vs_empty_table_query"],
                    "DescribeTasks ms for 100x (wall)": r["idle_break_even_describe_tasks_ms"],
                    "(CPU + modelled)": r["idle_break_even_describe_tasks_ms_cpu"],
                },
            }
        )
    launches = {n: r for n, r in rows.items() if n in (100, 1000)}
    if launches:
        out.append(
            {
                "target": "launch: >=10x less scheduler time, under the AWS-latency model",
                "met": all(r["launch"] >= 10 for r in launches.values()),
                "figure": {
                    n: {
                        "ratio": r["launch"],
                        "loopback": r["launch_loopback"],
                        "CPU + modelled": r["launch_cpu_plus_modelled"],
                        "RunTask ms for 10x (wall)": r["launch_break_even_run_task_ms"],
                        "(CPU + modelled)": r["launch_break_even_run_task_ms_cpu"],
                    }
                    for n, r in launches.items()
                },
            }
        )
    return out


def _aws_latency_tables(results: dict[str, Any], console: Console) -> None:
    section = results.get("aws_latency")
    if not section:
        return
    model = section["model"]
    table = Table(title=f"AWS-latency model (benchmarks/latency.py; seed {model['seed']}, {model['spread']})")
    for col in ("call", "median", "p99", "figure"):
        table.add_column(col)
    for op, c in [*model["calls"].items(), ("(any other)", model["default"])]:
        table.add_row(
            op, fmt_ms(c["median_ms"]), fmt_ms(c["p99_ms"]), "estimate" if c["estimate"] else "published"
        )
    console.print(table)

    ratios = {r["n"]: r for r in aws_latency_ratios(results)}
    titles = {
        "idle": "Idle sync under the AWS-latency model",
        "launch": "Launch under the AWS-latency model (one heartbeat hands N tasks over)",
    }
    for kind, title in titles.items():
        table = Table(title=f"{title}: wall median (min-max); modelled latency; CPU")
        for col in (
            "N",
            "ours",
            "calls",
            "provider",
            "calls",
            "provider / ours",
            "on loopback",
            "CPU + modelled",
        ):
            table.add_column(col)
        for e in section["sizes"]:
            r, o, p = ratios[e["n"]], e["ours"][kind], e["provider"][kind]
            table.add_row(
                str(e["n"]),
                _under_model(o),
                _calls(o),
                _under_model(p),
                _calls(p),
                _x(r[kind]),
                _x(r[f"{kind}_loopback"]),
                _x(r[f"{kind}_cpu_plus_modelled"]),
            )
        console.print(table)


def _under_model(entry: dict[str, Any]) -> str:
    cpu = fmt_ms(entry.get("cpu", {}).get("median_ms", 0))
    return f"{_t(entry)}; {fmt_ms(_modelled_ms(entry))}; {cpu}"


def _x(ratio: float | None) -> str:
    return "-" if ratio is None else f"{ratio}x"


# -- printing -------------------------------------------------------------------------------------


def _t(entry: dict[str, Any]) -> str:
    w = entry["wall"]
    return f"{fmt_ms(w['median_ms'])} ({fmt_ms(w['min_ms'])}-{fmt_ms(w['max_ms'])}, n={w['samples']})"


def _calls(entry: dict[str, Any]) -> str:
    return ", ".join(f"{n} {op.split('.', 1)[1]}" for op, n in entry["calls"].items()) or "0"


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

        resync = Table(title="Ours: safety-net re-read of every tracked key (every 60 s by default)")
        for col in ("N", "wall", "calls"):
            resync.add_column(col)
        for e in sync:
            r = e["ours"]["full_resync"]
            resync.add_row(str(e["n"]), _t(r), _calls(r))
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
            calls = (
                ", ".join(f"{v} {k.split('.', 1)[1]}" for k, v in h["aws_calls_per_record"].items())
                if h
                else "-"
            )
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

    _aws_latency_tables(results, console)

    goals = results.get("targets", [])
    if goals:
        table = Table(title="Targets (not assertions)")
        for col in ("target", "met", "figure"):
            table.add_column(col)
        for goal in goals:
            table.add_row(goal["target"], "yes" if goal["met"] else "NO", str(goal["figure"]))
        console.print(table)
