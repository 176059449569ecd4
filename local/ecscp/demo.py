"""``ecscp demo``: the local stack plus real Airflow 3, running every DAG of a folder once.

The demo is the project's end-to-end proof: Airflow's scheduler hands task instances to
``EcsControlPlaneExecutor``, run requests go through SQS to the ``run_task`` function, the
local ECS runner starts the containers as processes, state changes come back through
EventBridge, ``task_state`` and DynamoDB, and the executor reports them to Airflow. What the
demo prints comes from Airflow's REST API (task states, try numbers) and from the stack
(ECS tasks started per submission of each task try, alerts published to the SNS topic).
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console, JustifyMethod
from rich.table import Table

from ecs_control_plane.contract import TaskKey
from ecscp.local.airflow import LocalAirflow
from ecscp.local.airflow_api import TERMINAL_RUN_STATES, AirflowError, DagRun, TaskInstance
from ecscp.local.ecs.setup import AIRFLOW_IMAGE
from ecscp.local.processes import interrupts_deferred
from ecscp.project import PROJECT_ROOT

if TYPE_CHECKING:
    from ecscp.local.stack import LocalStack

EXAMPLE_DAGS = Path(__file__).resolve().parent / "example_dags"

EXIT_OK = 0
EXIT_CRASHED = 1
EXIT_TIMED_OUT = 2
EXIT_INTERRUPTED = 130

_POLL_SECONDS = 2.0
#: What the created task definition's container environment carries (template ExecutionApiServerUrl).
EXECUTION_API_URL_ENV = "AIRFLOW__CORE__EXECUTION_API_SERVER_URL"
_ALERT_WAIT_SECONDS = 15.0


@dataclass(frozen=True)
class TaskOutcome:
    """How one task instance ended, and what the control plane started for its final try.

    ``starts`` has one entry per submission of the try (Airflow hands the same try over again
    for each reschedule poke and each resume after a deferral): the ECS tasks started for it,
    start retries included, in the order the submissions first started.
    """

    task_id: str
    map_index: int
    state: str | None
    try_number: int
    starts: tuple[int, ...] = ()
    duration: float | None = None

    @property
    def start_attempts(self) -> int:
        """ECS tasks started for the try, over all its submissions."""
        return sum(self.starts)

    @property
    def submissions(self) -> int:
        return len(self.starts)


@dataclass(frozen=True)
class RunOutcome:
    dag_id: str
    run_id: str
    state: str
    tasks: list[TaskOutcome]


@dataclass
class DemoResult:
    runs: list[RunOutcome] = field(default_factory=list)
    alerts: list[str] = field(default_factory=list)
    import_errors: dict[str, str] = field(default_factory=dict)
    wall_seconds: float = 0.0
    timed_out: bool = False
    error: str | None = None
    state_dir: Path | None = None

    @property
    def exit_code(self) -> int:
        if self.error is not None or self.import_errors:
            return EXIT_CRASHED
        if self.timed_out or any(run.state not in TERMINAL_RUN_STATES for run in self.runs):
            return EXIT_TIMED_OUT
        return EXIT_OK

    def to_json(self) -> dict[str, Any]:
        """The ``--json`` document: runs with their tasks, and the alerts."""
        return {
            "runs": [
                {
                    "dag_id": run.dag_id,
                    "run_id": run.run_id,
                    "state": run.state,
                    "tasks": [
                        {
                            "task_id": task.task_id,
                            "map_index": task.map_index,
                            "state": task.state,
                            "try_number": task.try_number,
                            "start_attempts": task.start_attempts,
                            "submissions": task.submissions,
                        }
                        for task in run.tasks
                    ],
                }
                for run in self.runs
            ],
            "alerts": list(self.alerts),
        }


def task_key(ti: TaskInstance) -> str:
    """The control plane's key for this task instance's current try (without a submission)."""
    return TaskKey(ti.dag_id, ti.task_id, ti.run_id, ti.map_index, ti.try_number).encode()


_TRY_KEY_PARTS = 6  # ti|dag|task|run|map_index|try; a submission key adds one more part


def try_key_of(key: str) -> str | None:
    """The try a task key names: the key itself (``ti|dag|task|run|map_index|try``) or, for a
    submission of it (``...|try|<submission>``), its first six parts; None for anything else."""
    parts = key.split("|")
    if parts[0] != "ti" or len(parts) not in (_TRY_KEY_PARTS, _TRY_KEY_PARTS + 1):
        return None
    return "|".join(parts[:_TRY_KEY_PARTS])


def starts_per_try(start_attempts: Mapping[str, int]) -> dict[str, tuple[int, ...]]:
    """Group the stack's ECS starts per task key into the starts of each submission of a try.

    A key without a submission counts as the try's only submission, so keys of both forms
    are counted the same way.
    """
    grouped: dict[str, list[int]] = {}
    for key, count in start_attempts.items():
        try_key = try_key_of(key)
        if try_key is not None:
            grouped.setdefault(try_key, []).append(count)
    return {try_key: tuple(counts) for try_key, counts in grouped.items()}


def collect_outcomes(
    airflow: LocalAirflow, runs: Sequence[DagRun], start_attempts: Mapping[str, int]
) -> list[RunOutcome]:
    starts = starts_per_try(start_attempts)
    outcomes = []
    for run in runs:
        tis = sorted(
            airflow.api.task_instances(run.dag_id, run.run_id), key=lambda t: (t.task_id, t.map_index)
        )
        tasks = [
            TaskOutcome(
                task_id=ti.task_id,
                map_index=ti.map_index,
                state=ti.state,
                try_number=ti.try_number,
                starts=starts.get(task_key(ti), ()),
                duration=ti.duration,
            )
            for ti in tis
        ]
        outcomes.append(RunOutcome(run.dag_id, run.run_id, run.state, tasks))
    return outcomes


def _progress_line(runs: Sequence[DagRun]) -> str:
    done = sum(run.state in TERMINAL_RUN_STATES for run in runs)
    return f"{done}/{len(runs)} runs finished: " + ", ".join(f"{run.dag_id}={run.state}" for run in runs)


def run_demo(
    dags_folder: Path = EXAMPLE_DAGS,
    *,
    timeout: float = 600.0,
    state_dir: Path | None = None,
    keep_state: bool = False,
    create_infrastructure: bool = False,
    console: Console | None = None,
) -> DemoResult:
    """Start everything, run each DAG in ``dags_folder`` once, stop everything, report.

    ``create_infrastructure``: the stack creates the ECS cluster and the Airflow task definition
    itself (template parameters ``CreateCluster``, ``Image``, ``ExecutionApiServerUrl``), and the
    containers get the execution API URL from that task definition only.

    Never raises for a failed demo (the result says what went wrong), except on Ctrl-C,
    which still stops every process first.
    """
    from ecscp.local.stack import LocalStack, LocalStackConfig  # noqa: PLC0415 (heavy: moto, samtranslator)

    clock = _Clock(time.monotonic() + timeout, console or Console(stderr=True))
    state, created_state = _prepare_state_dir(state_dir)
    result = DemoResult(state_dir=state)
    airflow = LocalAirflow(state, dags_folder, log=clock.say)
    stack_config = LocalStackConfig(
        project_root=PROJECT_ROOT,
        state_dir=state / "stack",
        task_env=airflow.worker_environment(),
    )
    if create_infrastructure:
        stack_config.parameters = stack_infrastructure(airflow.execution_api_url)
        stack_config.task_env.pop(EXECUTION_API_URL_ENV)
    stack = LocalStack(stack_config)
    try:
        _drive(airflow, stack, clock, result)
    except KeyboardInterrupt:
        result.error = "interrupted"
        raise
    except TimeoutError as exc:
        result.timed_out = True
        clock.say(f"[red]timed out:[/red] {exc}")
    except Exception as exc:  # noqa: BLE001 (any crash is reported as the demo's result, after cleanup)
        result.error = f"{type(exc).__name__}: {exc}"
        clock.say(f"[red]failed:[/red] {result.error}")
    finally:
        clock.say("stopping Airflow and the local stack")
        with interrupts_deferred():
            try:
                airflow.stop()
            finally:
                stack.stop()
        result.wall_seconds = clock.elapsed()
        if created_state and not keep_state and result.exit_code == EXIT_OK:
            shutil.rmtree(state, ignore_errors=True)
            result.state_dir = None
        else:
            clock.say(f"state and logs kept in {state}")
    return result


def stack_infrastructure(execution_api_url: str) -> dict[str, str]:
    """Template parameters with which the stack creates its own cluster and task definition."""
    return {"CreateCluster": "true", "Image": AIRFLOW_IMAGE, "ExecutionApiServerUrl": execution_api_url}


def _drive(airflow: LocalAirflow, stack: LocalStack, clock: _Clock, result: DemoResult) -> None:
    """Start both sides, run every DAG once and fill ``result``; the caller cleans up."""
    airflow.begin_migration()
    clock.say("starting the local stack (moto, the SAM template, Lambda runtime, ECS runner)")
    stack.start()
    clock.say(f"local stack ready at {stack.endpoint_url}")
    airflow.start(stack.airflow_environment(), ready_timeout=clock.remaining())
    clock.say("api-server answers; waiting for the dag-processor to parse the DAGs")
    parsed = airflow.wait_for_dags(timeout=clock.remaining())
    result.import_errors = parsed.import_errors
    for filename, trace in parsed.import_errors.items():
        clock.say(f"[red]import error in {filename}[/red]\n{trace}")
    # Usually healthy by now; a deferred task would otherwise wait for the triggerer's start.
    airflow.wait_until_healthy(timeout=clock.remaining())
    clock.say(f"triggering {len(parsed.dag_ids)} DAG(s): {', '.join(parsed.dag_ids)}")
    runs = _wait_for_runs(airflow, airflow.trigger_all(parsed.dag_ids), clock, stack.check)
    unfinished = [run.dag_id for run in runs if run.state not in TERMINAL_RUN_STATES]
    result.timed_out = bool(unfinished)
    if unfinished:
        clock.say(f"[red]timed out[/red]; still not ended: {', '.join(unfinished)}")
    result.runs = collect_outcomes(airflow, runs, stack.start_attempts())
    result.alerts = _wait_for_alerts(stack.alerts, result.runs, stack.config.max_run_task_attempts)


class _Clock:
    """The demo's one deadline, and progress lines stamped with the time since the start."""

    def __init__(self, deadline: float, console: Console) -> None:
        self.started = time.monotonic()
        self.deadline = deadline
        self.console = console

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def remaining(self) -> float:
        return max(self.deadline - time.monotonic(), 1.0)

    def expired(self) -> bool:
        return time.monotonic() >= self.deadline

    def say(self, message: str) -> None:
        self.console.print(f"[dim][{self.elapsed():5.1f} s][/dim] {message}", highlight=False)


def _prepare_state_dir(state_dir: Path | None) -> tuple[Path, bool]:
    """A fresh directory: a new temporary one, or the caller's if it is new or empty."""
    if state_dir is None:
        return Path(tempfile.mkdtemp(prefix="ecscp-demo-")), True
    state = state_dir.resolve()
    if state.exists() and any(state.iterdir()):
        raise AirflowError(f"--state-dir {state} is not empty; give a new or empty directory")
    state.mkdir(parents=True, exist_ok=True)
    return state, False


def _wait_for_runs(
    airflow: LocalAirflow, runs: list[DagRun], clock: _Clock, check_stack: Callable[[], None]
) -> list[DagRun]:
    last_line = ""
    while True:
        airflow.check_services()
        check_stack()
        runs = airflow.poll_runs(runs)
        line = _progress_line(runs)
        if line != last_line:
            clock.say(line)
            last_line = line
        if all(run.state in TERMINAL_RUN_STATES for run in runs) or clock.expired():
            return runs
        time.sleep(_POLL_SECONDS)


def _wait_for_alerts(
    read_alerts: Callable[[], list[str]], runs: Sequence[RunOutcome], max_attempts: int
) -> list[str]:
    """Alerts travel EventBridge -> SNS on their own path: give them a moment to arrive.

    One is due for each task that failed without starting: every start failed, or none was
    made (refused before RunTask, as a task setting what its queue profile does not allow).
    """
    never_started = sum(
        task.state == "failed" and (not task.starts or any(count >= max_attempts for count in task.starts))
        for run in runs
        for task in run.tasks
    )
    deadline = time.monotonic() + _ALERT_WAIT_SECONDS
    alerts = read_alerts()
    while len(alerts) < never_started and time.monotonic() < deadline:
        time.sleep(0.5)
        alerts = read_alerts()
    return alerts


def render(result: DemoResult, console: Console) -> None:
    """For people: one table with a row per task instance, then the alerts and the wall time."""
    table = Table(title="Task instances", title_justify="left")
    columns: list[tuple[str, JustifyMethod]] = [
        ("dag", "left"),
        ("task", "left"),
        ("state", "left"),
        ("try", "right"),
        ("starts", "right"),
        ("submissions", "right"),
        ("duration", "right"),
    ]
    for name, justify in columns:
        table.add_column(name, justify=justify, no_wrap=True)
    for run in result.runs:
        for task in run.tasks:
            name = task.task_id if task.map_index < 0 else f"{task.task_id}[{task.map_index}]"
            table.add_row(
                run.dag_id,
                name,
                _coloured(task.state),
                str(task.try_number),
                str(task.start_attempts),
                str(task.submissions),
                "" if task.duration is None else f"{task.duration:.1f} s",
            )
        table.add_section()
    console.print(table)
    for run in result.runs:
        console.print(f"run {run.dag_id} / {run.run_id}: {_coloured(run.state)}", highlight=False)
    if result.alerts:
        console.print("[bold]Alerts published to the failed-start topic:[/bold]")
        for alert in result.alerts:
            console.print(f"  - {alert_summary(alert)}", highlight=False, markup=False)
    else:
        console.print("No alerts were published.")
    for filename, trace in result.import_errors.items():
        last_line = trace.strip().splitlines()[-1] if trace.strip() else ""
        console.print(f"[red]Import error in {filename}:[/red] {last_line}", highlight=False)
    if result.error:
        console.print(f"[red]The demo failed:[/red] {result.error}", highlight=False)
    if result.timed_out:
        console.print("[red]The demo timed out before every run ended.[/red]")
    console.print(f"Total wall time: {result.wall_seconds:.1f} s")


def alert_summary(alert: str) -> str:
    """The alert's one-line message when it is the control plane's JSON alert, else the text."""
    try:
        body = json.loads(alert)
    except ValueError:
        return alert
    message = body.get("alert") if isinstance(body, dict) else None
    if not isinstance(message, str):
        return alert
    reason = body.get("reason")
    return message + (f" Reason: {reason}" if isinstance(reason, str) else "")


def _coloured(state: str | None) -> str:
    colour = {"success": "green", "failed": "red", "upstream_failed": "red"}.get(state or "", "yellow")
    return f"[{colour}]{state}[/{colour}]"
