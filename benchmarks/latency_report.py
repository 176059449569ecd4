"""Tables and targets of the AWS-latency scenario (benchmarks/aws_latency.py, latency.py)."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table

from .stats import calls_text as _calls
from .stats import entry_median as _median
from .stats import entry_text as _t
from .stats import fmt_ms


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


def aws_latency_tables(results: dict[str, Any], console: Console) -> None:
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
