"""``python -m benchmarks`` (``make bench``): every scenario, one moto server, tables and JSON.

Scenarios: ``sync`` (launch, idle and busy sync at each N; ``launch``, ``idle`` and ``busy``
are accepted for it), ``throughput`` (local stack end to end), ``coldstart`` (handler import
time and cost per record), ``memory`` (executor memory per tracked task), ``aws-latency``
(launch, idle and busy sync again with per-call latency typical of AWS in one region added to
every call: benchmarks/latency.py).
"""

# Airflow, moto and the handlers are imported where used: the environment (AIRFLOW_HOME,
# fake credentials, endpoints) must be set before they read it.
# ruff: noqa: PLC0415

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console

from .env import COUNTER, PROJECT_ROOT, MotoServer, configure_process_env

RESULTS_DIR = PROJECT_ROOT / "benchmarks" / "results"
SCENARIOS = ("sync", "steady", "throughput", "coldstart", "memory", "aws-latency")
ALIASES = {"idle": "sync", "busy": "sync", "launch": "sync", "latency": "aws-latency"}


@dataclass(frozen=True)
class Profile:
    sizes: tuple[int, ...]
    repeats: int
    #: Provider repeats per N (its sync at 10,000 takes long on moto).
    provider_repeats: dict[int, int]
    throughput_tasks: int
    throughput_timeout_s: float
    import_repeats: int
    handler_records: int
    memory_tasks: int
    #: A first, smaller end-to-end run (0: none).
    throughput_small_tasks: int = 0
    #: Launch rounds for N <= 1000 (a launch is one sample; rounds give a median and a range).
    launch_rounds: int = 1
    #: N for a second sync pass on moto exactly as released (for comparison with older figures).
    raw_moto_sizes: tuple[int, ...] = ()
    #: Steady state: N, and how long each executor runs at each N.
    steady_sizes: tuple[int, ...] = (1000,)
    steady_seconds: float = 20
    #: N for the sync scenario under the AWS-latency model (a provider launch sleeps N RunTasks).
    latency_sizes: tuple[int, ...] = (100, 1000)


FULL = Profile(
    sizes=(100, 1000, 10_000),
    repeats=10,
    provider_repeats={100: 5, 1000: 5, 10_000: 2},
    throughput_tasks=1000,
    throughput_small_tasks=200,
    throughput_timeout_s=240,
    import_repeats=5,
    handler_records=200,
    memory_tasks=10_000,
    launch_rounds=3,
    raw_moto_sizes=(100, 1000),
    steady_sizes=(1000, 10_000),
    steady_seconds=300,
)
QUICK = Profile(
    sizes=(100, 1000),
    repeats=5,
    provider_repeats={100: 3, 1000: 3},
    throughput_tasks=30,
    throughput_timeout_s=180,
    import_repeats=3,
    handler_records=50,
    memory_tasks=2000,
    latency_sizes=(100,),
)


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="smaller N and fewer repeats (a few minutes)")
    parser.add_argument(
        "--only",
        default="",
        help=f"comma-separated scenarios: {', '.join(SCENARIOS)} (idle, busy, launch = sync)",
    )
    parser.add_argument("--sizes", default="", help="override N for the sync scenario, e.g. 100,1000")
    parser.add_argument("--throughput-tasks", type=int, default=0, help="tasks for the throughput scenario")
    parser.add_argument(
        "--steady-seconds", type=float, default=0, help="how long each executor runs at each N (steady)"
    )
    parser.add_argument("--steady-sizes", default="", help="override N for the steady scenario, e.g. 10000")
    parser.add_argument(
        "--steady-aws-latency",
        action="store_true",
        help="run the steady scenario under the AWS-latency model (section steady_state_aws_latency)",
    )
    parser.add_argument(
        "--output",
        type=Path,
        default=None,
        help="JSON file (default: results/latest.json, or results/quick.json with --quick); "
        "scenarios not run keep their previous figures",
    )
    parser.add_argument(
        "--raw-moto",
        action="store_true",
        help="moto exactly as released (no removal of its per-call scans; see moto_child.py)",
    )
    parser.add_argument(
        "--latency-seed", type=int, default=12, help="seed of the aws-latency scenario's latency draws"
    )
    return parser.parse_args(argv)


def _scenarios(only: str) -> list[str]:
    if not only:
        return list(SCENARIOS)
    chosen: list[str] = []
    for part in (p.strip() for p in only.split(",") if p.strip()):
        name = ALIASES.get(part, part)
        if name not in SCENARIOS:
            raise SystemExit(f"unknown scenario {part!r}; choose from {', '.join([*SCENARIOS, *ALIASES])}")
        if name not in chosen:
            chosen.append(name)
    return chosen


def _quiet() -> None:
    logging.basicConfig(level=logging.ERROR)
    for name in ("werkzeug", "botocore", "airflow", "ecs_control_plane", "executor_client"):
        logging.getLogger(name).setLevel(logging.ERROR)
    warnings.filterwarnings("ignore")


def _aws_latency(
    server: MotoServer, args: argparse.Namespace, profile: Profile, environment: dict[str, Any], say: Any
) -> dict[str, Any]:
    from . import aws_latency
    from .latency import LatencyModel

    sizes = tuple(int(s) for s in args.sizes.split(",") if s.strip()) or profile.latency_sizes
    model = LatencyModel(seed=args.latency_seed)
    say(f"aws-latency scenario: sync scenario with AWS latency per call, N = {', '.join(map(str, sizes))}")
    return aws_latency.run(server, sizes, say, model) | {
        "measured_at": environment["date"],
        "git_commit": environment["git_commit"],
    }


def main(argv: list[str] | None = None) -> int:  # noqa: PLR0915 - one scenario after another
    from . import report

    args = _parse(argv)
    profile = QUICK if args.quick else FULL
    scenarios = _scenarios(args.only)
    output = args.output or RESULTS_DIR / ("quick.json" if args.quick else "latest.json")
    console = Console(stderr=True)

    def say(text: str) -> None:
        console.print(f"[dim]{time.strftime('%H:%M:%S')}[/dim] {text}", highlight=False)

    configure_process_env(Path(tempfile.mkdtemp(prefix="ecscp-bench-")))
    _quiet()
    COUNTER.install()

    results: dict[str, Any] = {}
    if output.exists():
        results = json.loads(output.read_text())
    environment = report.environment()
    if set(scenarios) == set(SCENARIOS) or "environment" not in results:
        results["environment"] = environment
        results["profile"] = "quick" if args.quick else "full"
        results["moto"] = "raw" if args.raw_moto else "per-call scans removed (benchmarks/moto_child.py)"
    before = set(results)
    started = time.perf_counter()

    sizes = tuple(int(s) for s in args.sizes.split(",") if s.strip()) or profile.sizes
    with MotoServer(raw=args.raw_moto) as server:
        if "sync" in scenarios:
            from . import sync_bench

            say(f"sync scenario (launch, idle, busy) at N = {', '.join(map(str, sizes))}")
            load_before = report.load_average()
            plans = [
                sync_bench.SyncPlan(
                    n=n,
                    repeats=profile.repeats,
                    provider_repeats=profile.provider_repeats.get(n, 2 if n >= 5000 else 5),
                    launch_rounds=profile.launch_rounds if n <= 1000 else 1,
                )
                for n in sizes
            ]
            results["sync"] = {
                "sizes": sync_bench.run(server, plans, say),
                "load_average_before": load_before,
                "load_average_after": report.load_average(),
            }
        if "steady" in scenarios:
            from . import steady_state

            steady_sizes = (
                tuple(int(s) for s in args.steady_sizes.split(",") if s.strip()) or profile.steady_sizes
            )
            seconds = args.steady_seconds or profile.steady_seconds
            say(f"steady-state scenario at N = {', '.join(map(str, steady_sizes))}, {seconds:.0f} s each")
            load_before = report.load_average()
            steady_plans = [steady_state.SteadyPlan(n=n, duration_s=seconds) for n in steady_sizes]
            if args.steady_aws_latency:
                from .latency import AWS_LATENCY, LatencyModel

                AWS_LATENCY.install()
                with AWS_LATENCY.applied(LatencyModel(seed=args.latency_seed)):
                    steady = steady_state.run(server, steady_plans, say)
                section = "steady_state_aws_latency"
            else:
                steady, section = steady_state.run(server, steady_plans, say), "steady_state"
            results[section] = {
                "sizes": steady,
                "load_average_before": load_before,
                "load_average_after": report.load_average(),
            }
        if "aws-latency" in scenarios:
            results["aws_latency"] = _aws_latency(server, args, profile, environment, say)
        if "coldstart" in scenarios:
            from . import coldstart

            say("coldstart scenario")
            results["coldstart"] = coldstart.run(
                server, import_repeats=profile.import_repeats, records=profile.handler_records, say=say
            ) | {"load_average_after": report.load_average()}
            from . import write_units

            say("  DynamoDB write units per task try, with today's index projections and with ALL")
            results["coldstart"]["write_units_per_try"] = write_units.run(server)

    if "sync" in scenarios and profile.raw_moto_sizes and not args.raw_moto and not args.sizes:
        from . import sync_bench

        say(f"sync scenario again on moto as released, N = {', '.join(map(str, profile.raw_moto_sizes))}")
        with MotoServer(raw=True) as raw_server:
            plans = [sync_bench.SyncPlan(n=n, repeats=5, provider_repeats=3) for n in profile.raw_moto_sizes]
            results["sync_raw_moto"] = {"sizes": sync_bench.run(raw_server, plans, say)}

    if "memory" in scenarios:
        from . import memory

        say("memory scenario")
        results["memory"] = memory.run(profile.memory_tasks, say) | {
            "load_average_after": report.load_average()
        }

    if "throughput" in scenarios:
        from . import throughput

        # A backlog small enough to drain within the cut-off, then the 1,000 at once.
        runs = (
            [("throughput_small", profile.throughput_small_tasks)] if profile.throughput_small_tasks else []
        )
        runs.append(("throughput", args.throughput_tasks or profile.throughput_tasks))
        for section, tasks in runs:
            say(f"throughput scenario ({tasks} tasks through the local stack)")
            load_before = report.load_average()
            try:
                results[section] = throughput.run(
                    tasks, timeout_s=profile.throughput_timeout_s, max_concurrent_tasks=16, say=say
                ) | {"load_average_before": load_before, "load_average_after": report.load_average()}
            except Exception as exc:  # noqa: BLE001 - the other scenarios' figures still count
                say(f"[red]throughput scenario failed: {type(exc).__name__}: {exc}[/red]")
                results[section] = {"error": f"{type(exc).__name__}: {exc}"}

    for section in (
        "sync",
        "sync_raw_moto",
        "steady_state",
        "steady_state_aws_latency",
        "coldstart",
        "memory",
        "throughput_small",
        "throughput",
    ):
        if section in results and (section not in before or section.split("_")[0] in scenarios):
            results[section]["measured_at"] = environment["date"]
            results[section]["git_commit"] = environment["git_commit"]
    results["targets"] = report.targets(results)
    duration = round(time.perf_counter() - started, 1)
    if set(scenarios) == set(SCENARIOS):
        results["duration_s"] = duration
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = output.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(results, indent=2, sort_keys=False) + "\n")
    tmp.replace(output)
    report.print_tables(results, Console(width=max(150, Console().width)))
    say(f"figures written to {output} ({duration} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
