"""End to end: a scheduler killed mid-run is replaced, and its replacement adopts what it left.

The real Airflow 3 services run against the local stack (as ``ecscp demo`` starts them). While
the tasks of one run sleep in their ECS containers, the scheduler's process tree is killed with
SIGKILL: no ``end()``, no clean shutdown, its job row left ``running``. A new scheduler, with an
executor owner of its own, sees the dead scheduler's heartbeat go stale, and Airflow hands it the
orphaned task instances (``adopt_or_reset_orphaned_tasks``). The run must end as if nothing had
happened: every task on try 1, every try started once in ECS, nothing reset.
"""

from __future__ import annotations

import contextlib
import re
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from ecs_control_plane.contract import InvalidTaskKeyError, TaskKey
from ecscp.demo import starts_per_try, task_key
from ecscp.local.airflow import RUN_MARKER_ENV, LocalAirflow
from ecscp.local.airflow_api import TERMINAL_RUN_STATES, TaskInstance
from ecscp.local.processes import is_alive, marked_processes
from ecscp.local.stack import LocalStack, LocalStackConfig
from ecscp.project import PROJECT_ROOT
from tests.e2e.test_demo import processes_using

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]

DAG_ID = "ecscp_scheduler_replacement"
#: Seconds each mapped task sleeps; the unmapped long task sleeps LONG_SLEEP_SECONDS.
MAPPED_SLEEPS = (40, 45, 50)
LONG_SLEEP_SECONDS = 60
#: (task_id, map_index) of the tasks that must be in flight in ECS when the scheduler dies.
IN_FLIGHT = {("long_sleep", -1), *(("sleeps", i) for i in range(len(MAPPED_SLEEPS)))}
EXPECTED_TASKS = {("quick", -1), ("after", -1), *IN_FLIGHT}
REPLACEMENT_LOG = "scheduler-replacement"

#: What makes a dead scheduler's task instances orphans within seconds instead of minutes.
#: ``adopt_or_reset_orphaned_tasks`` (every ``orphaned_tasks_check_interval``, and once at
#: start) marks a SchedulerJob failed once its ``latest_heartbeat`` is older than
#: ``scheduler_health_check_threshold``, then hands its queued/running task instances to
#: ``try_adopt_task_instances``. The live scheduler heartbeats every ``scheduler_heartbeat_sec``,
#: well inside the threshold, so it never takes itself for dead on a busy machine.
FAST_ADOPTION = {
    "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "2",
    "AIRFLOW__SCHEDULER__SCHEDULER_HEALTH_CHECK_THRESHOLD": "12",
    "AIRFLOW__SCHEDULER__ORPHANED_TASKS_CHECK_INTERVAL": "2",
}

STARTUP_TIMEOUT = 180.0
IN_FLIGHT_TIMEOUT = 120.0
RUN_TIMEOUT = 240.0

DAG_FILE = textwrap.dedent(
    f'''
    import time

    import pendulum
    from airflow.sdk import dag, task

    @dag(
        dag_id="{DAG_ID}",
        schedule=None,
        start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
        default_args={{"retries": 0}},
    )
    def scheduler_replacement():
        @task
        def quick() -> list[int]:
            return {list(MAPPED_SLEEPS)!r}

        @task
        def sleeps(seconds: int) -> int:
            time.sleep(seconds)
            return seconds

        @task
        def long_sleep() -> int:
            time.sleep({LONG_SLEEP_SECONDS})
            return {LONG_SLEEP_SECONDS}

        @task
        def after(mapped: list[int], single: int) -> None:
            assert sorted(mapped) == {sorted(MAPPED_SLEEPS)!r}, mapped
            assert single == {LONG_SLEEP_SECONDS}, single

        after(sleeps.expand(seconds=quick()), long_sleep())

    scheduler_replacement()
    '''
)


@dataclass
class Replacement:
    """What one run through a scheduler's death and replacement left behind."""

    run_state: str
    tasks: list[TaskInstance]
    start_attempts: dict[str, int]
    #: (task_id, map_index) of the task instances queued or running when the scheduler died.
    in_flight_at_kill: set[tuple[str, int]]
    old_log: str
    new_log: str
    state_dir: Path
    stack_pids: list[int]
    run_marker: str
    timings: dict[str, float]


def running_in_ecs(stack: LocalStack) -> set[tuple[str, int]]:
    """(task_id, map_index) of the task instances whose ECS task the local host runs now."""
    running = set()
    for record in stack.task_records():
        if record["last_status"] != "RUNNING":
            continue
        with contextlib.suppress(InvalidTaskKeyError):
            key = TaskKey.parse(str(record["key"]))
            running.add((key.task_id, key.map_index))
    return running


def owners_in(log: str) -> list[str]:
    return re.findall(r"EcsControlPlaneExecutor starting as owner (\S+)", log)


def adoptions_in(log: str) -> list[tuple[int, str]]:
    """(count, owner) of each "Adopted N task(s) as owner X" line of the executor."""
    return [(int(n), owner) for n, owner in re.findall(r"Adopted (\d+) task\(s\) as owner (\S+?):", log)]


def run_through_scheduler_replacement(state_dir: Path) -> Replacement:
    dags = state_dir.parent / "dags"
    dags.mkdir(parents=True)
    (dags / "scheduler_replacement.py").write_text(DAG_FILE)
    airflow = LocalAirflow(state_dir, dags)
    stack = LocalStack(
        LocalStackConfig(
            project_root=PROJECT_ROOT, state_dir=state_dir / "stack", task_env=airflow.worker_environment()
        )
    )
    started = time.monotonic()
    timings: dict[str, float] = {}

    def mark(name: str) -> None:
        timings[name] = round(time.monotonic() - started, 1)

    try:
        airflow.begin_migration()
        stack.start()
        airflow.start({**stack.airflow_environment(), **FAST_ADOPTION}, ready_timeout=STARTUP_TIMEOUT)
        parsed = airflow.wait_for_dags(timeout=STARTUP_TIMEOUT)
        assert parsed.import_errors == {}
        assert DAG_ID in parsed.dag_ids
        airflow.wait_until_healthy(timeout=STARTUP_TIMEOUT)
        [run] = airflow.trigger_all([DAG_ID])
        mark("triggered")

        airflow.wait_until(
            lambda: running_in_ecs(stack) >= IN_FLIGHT,
            IN_FLIGHT_TIMEOUT,
            "the sleeping tasks to run in ECS",
        )
        in_flight = {
            (ti.task_id, ti.map_index)
            for ti in airflow.api.task_instances(DAG_ID, run.run_id)
            if ti.state in ("queued", "running")
        }
        airflow.kill_service("scheduler")
        mark("scheduler_killed")
        airflow.start_service("scheduler", log_name=REPLACEMENT_LOG)
        mark("replacement_started")

        new_log_path = airflow.logs_dir / f"{REPLACEMENT_LOG}.log"

        def adopted() -> bool:
            stack.check()
            return bool(adoptions_in(new_log_path.read_text(errors="replace")))

        airflow.wait_until(adopted, RUN_TIMEOUT, "the new scheduler to adopt the orphaned tasks", interval=1)
        mark("adopted")

        def ended() -> bool:
            stack.check()
            return airflow.api.run_state(DAG_ID, run.run_id) in TERMINAL_RUN_STATES

        airflow.wait_until(ended, RUN_TIMEOUT, "the run to end", interval=1)
        mark("run_ended")
        run_state = airflow.api.run_state(DAG_ID, run.run_id)
        tasks = airflow.api.task_instances(DAG_ID, run.run_id)
        start_attempts = stack.start_attempts()
    finally:
        stack_pids = stack.process_ids()
        try:
            airflow.stop()
        finally:
            stack.stop()
        mark("stopped")
    return Replacement(
        run_state=run_state,
        tasks=tasks,
        start_attempts=start_attempts,
        in_flight_at_kill=in_flight,
        old_log=(airflow.logs_dir / "scheduler.log").read_text(errors="replace"),
        new_log=new_log_path.read_text(errors="replace"),
        state_dir=state_dir,
        stack_pids=stack_pids,
        run_marker=airflow.run_id,
        timings=timings,
    )


@pytest.fixture(scope="module")
def replacement(tmp_path_factory: pytest.TempPathFactory) -> Replacement:
    result = run_through_scheduler_replacement(tmp_path_factory.mktemp("scheduler-replacement") / "state")
    print(f"timings (s since start): {result.timings}")  # shown with -s, or on a failure
    return result


def test_run_succeeds_after_its_scheduler_is_killed_and_replaced(replacement: Replacement):
    # GIVEN a run whose sleeping tasks were in ECS when its scheduler was SIGKILLed
    # WHEN a new scheduler took over (fixture)
    # THEN the run succeeded, and so did every task instance, on its first try
    assert replacement.run_state == "success", replacement.new_log[-5000:]
    outcomes = {(ti.task_id, ti.map_index): (ti.state, ti.try_number) for ti in replacement.tasks}
    assert outcomes == dict.fromkeys(EXPECTED_TASKS, ("success", 1))


def test_every_try_was_started_once_in_ecs(replacement: Replacement):
    # GIVEN the run went through a scheduler's death and its replacement
    # WHEN the local ECS host's starts are grouped per task try
    # THEN each try had one submission with one ECS task: nothing was reset and run again
    starts = starts_per_try(replacement.start_attempts)
    assert {task_key(ti): starts.get(task_key(ti)) for ti in replacement.tasks} == {
        task_key(ti): (1,) for ti in replacement.tasks
    }
    assert set(replacement.start_attempts.values()) == {1}
    assert len(starts) == len(EXPECTED_TASKS)


def test_new_scheduler_adopts_what_the_dead_one_left_in_flight(replacement: Replacement):
    # GIVEN the sleeping tasks were queued or running when the scheduler died
    assert replacement.in_flight_at_kill == IN_FLIGHT
    # WHEN the new scheduler found the dead one's heartbeat stale
    # THEN its executor, under an owner of its own, adopted every one of them, and Airflow reset none
    [old_owner] = owners_in(replacement.old_log)
    [new_owner] = owners_in(replacement.new_log)
    assert new_owner != old_owner
    adoptions = adoptions_in(replacement.new_log)
    assert {owner for _, owner in adoptions} == {new_owner}
    assert sum(count for count, _ in adoptions) == len(IN_FLIGHT)
    assert "Marked 1 SchedulerJob instances as failed" in replacement.new_log
    assert "orphaned TaskInstances" not in replacement.new_log
    assert adoptions_in(replacement.old_log) == []


def test_nothing_is_left_running_after_the_replacement(replacement: Replacement):
    # GIVEN both schedulers, the other services, the stack and its containers were stopped
    # THEN no process of the run is left: none using its state directory, none carrying its
    # marker, none of the stack's
    assert processes_using(replacement.state_dir) == []
    assert marked_processes(RUN_MARKER_ENV, replacement.run_marker) == []
    assert [pid for pid in replacement.stack_pids if is_alive(pid)] == []
