"""End to end: ``ecscp demo`` runs real Airflow 3 through the local control plane.

Each test starts the whole system in a subprocess (moto with the deployed template, the Lambda
workers, the local ECS host, api-server, scheduler, dag-processor and triggerer) exactly as a user
would, and reads the ``--json`` document. A few minutes each on two cores; the tests on the
example DAGs share one demo run, which is also watched while it runs: the log endpoint of
``logs_while_running`` is read through the api-server while that task sleeps in its container,
and the state items of ``ecscp_queue_profiles`` are read from the stack's table (found through
its discovery file) until they have ended. Its kept state directory says, for each ECS task, where
it ran (``stack/tasks/<n>/task.json``).
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest
from boto3.dynamodb.types import TypeDeserializer

from ecs_control_plane.contract import TaskKey
from ecscp.example_dags.ecscp_task_outcomes import LOG_MARKER
from ecscp.local.airflow import API_URL_FILE, SERVICES
from ecscp.local.airflow_api import AirflowApi, AirflowError
from ecscp.local.discovery import DISCOVERY_FILE, LocalStackDiscovery
from ecscp.local.ecs.profiles import (
    LARGE_CONTAINER_NAME,
    LARGE_QUEUE,
    LARGE_TASK_FAMILY,
    ON_DEMAND,
    SPOT,
    STANDARD_CONTAINER_NAME,
    STANDARD_TASK_FAMILY,
)
from ecscp.local.endpoint import aws_client
from ecscp.local.stack import LocalStackConfig

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(1200)]

DEMO_TIMEOUT_SECONDS = 600
MAX_START_ATTEMPTS = LocalStackConfig(project_root=Path(), state_dir=Path()).max_run_task_attempts

FAN_OUT = {("ecscp_fan_out", f"work_{i:02d}", -1): ("success", 1, 1, 1) for i in range(20)}
MAPPING = {
    ("ecscp_mapping", "numbers", -1): ("success", 1, 1, 1),
    **{("ecscp_mapping", "square", i): ("success", 1, 1, 1) for i in range(5)},
    ("ecscp_mapping", "total", -1): ("success", 1, 1, 1),
}
LOGS_WHILE_RUNNING = ("ecscp_task_outcomes", "logs_while_running", -1)
TASK_OUTCOMES = {
    ("ecscp_task_outcomes", "always_fails", -1): ("failed", 1, 1, 1),
    ("ecscp_task_outcomes", "passes_on_retry", -1): ("success", 2, 1, 1),
    ("ecscp_task_outcomes", "reads_executor_config", -1): ("success", 1, 1, 1),
    LOGS_WHILE_RUNNING: ("success", 1, 1, 1),
}
START_FAILURES = {
    # Start retries stay inside one submission of the try.
    ("ecscp_start_failures", "starts_on_second_attempt", -1): ("success", 1, 2, 1),
    ("ecscp_start_failures", "never_starts", -1): ("failed", 1, MAX_START_ATTEMPTS, 1),
}
SENSOR = ("ecscp_waiting_tasks", "passes_on_third_poke", -1)
DEFERRED = ("ecscp_waiting_tasks", "defers_and_resumes", -1)
AFTER_BOTH = ("ecscp_waiting_tasks", "runs_after_both", -1)
WAITING_TASKS = {
    # One submission, and one ECS task, per hand-over of the same try: each poke, each resume.
    SENSOR: ("success", 1, 3, 3),
    DEFERRED: ("success", 1, 2, 2),
    AFTER_BOTH: ("success", 1, 1, 1),
}
PROFILES_DAG = "ecscp_queue_profiles"
QUEUE_PROFILES = {
    (PROFILES_DAG, "on_the_stack_defaults", -1): ("success", 1, 1, 1),
    (PROFILES_DAG, "on_the_large_profile", -1): ("success", 1, 1, 1),
    # Interrupted on FARGATE_SPOT before it started, then run on FARGATE: one submission.
    (PROFILES_DAG, "falls_back_to_on_demand", -1): ("success", 1, 2, 1),
    # Refused before RunTask: nothing reached ECS.
    (PROFILES_DAG, "refused_by_its_profile", -1): ("failed", 1, 0, 0),
}
#: (dag_id, task_id, map_index) -> (state, try_number, ECS tasks started for the try, submissions)
EXPECTED_TASKS = {**FAN_OUT, **MAPPING, **TASK_OUTCOMES, **START_FAILURES, **WAITING_TASKS, **QUEUE_PROFILES}
EXPECTED_RUNS = {
    "ecscp_fan_out": "success",
    "ecscp_mapping": "success",
    "ecscp_task_outcomes": "failed",
    "ecscp_start_failures": "failed",
    "ecscp_waiting_tasks": "success",
    PROFILES_DAG: "failed",
}


@dataclass
class RunningLog:
    """What the api-server's log endpoint showed of ``logs_while_running`` while it ran."""

    #: The records of the first read that showed the container's lines, made while the task
    #: instance was running (before and after the read); empty if none did.
    content: list[dict[str, Any]] = field(default_factory=list)
    #: Seconds from the task instance's first ``running`` to that read.
    seconds_after_running: float | None = None
    reads: int = 0
    problem: str | None = None


@dataclass
class StateItems:
    """The last state items of one DAG's tasks read from the running stack's table, by task id."""

    items: dict[str, dict[str, Any]] = field(default_factory=dict)
    reads: int = 0
    last_error: str | None = None


@dataclass
class DemoRun:
    exit_code: int
    document: dict[str, Any]
    stderr: str
    running_log: RunningLog = field(default_factory=RunningLog)
    profile_items: StateItems = field(default_factory=StateItems)

    def tasks(self) -> dict[tuple[str, str, int], tuple[str, int, int, int]]:
        return {
            (run["dag_id"], task["task_id"], task["map_index"]): (
                task["state"],
                task["try_number"],
                task["start_attempts"],
                task["submissions"],
            )
            for run in self.document["runs"]
            for task in run["tasks"]
        }


def start_demo_cli(*args: str) -> subprocess.Popen[str]:
    """``ecscp demo --json ...`` in its own process."""
    return subprocess.Popen(
        [sys.executable, "-m", "ecscp", "demo", "--json", "--timeout", str(DEMO_TIMEOUT_SECONDS), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish_demo_cli(process: subprocess.Popen[str]) -> DemoRun:
    """The demo's result once it ended, bounded in time."""
    try:
        stdout, stderr = process.communicate(timeout=DEMO_TIMEOUT_SECONDS + 300)
    except subprocess.TimeoutExpired:
        process.kill()
        stdout, stderr = process.communicate()
    try:
        document = json.loads(stdout)
    except json.JSONDecodeError:
        pytest.fail(
            f"stdout is not one JSON document (exit {process.returncode}):\n{stdout}\n"
            f"stderr:\n{stderr[-5000:]}"
        )
    return DemoRun(process.returncode, document, stderr)


def run_demo_cli(*args: str) -> DemoRun:
    return finish_demo_cli(start_demo_cli(*args))


def _container_lines_shown(content: list[dict[str, Any]]) -> bool:
    """Whether the log view shows the task's printed line and its container's first line."""
    events = [str(record.get("event")) for record in content]
    return LOG_MARKER in events and "Executing workload" in events


def watch_running_task_log(state_dir: Path, demo: subprocess.Popen[str], timeout: float) -> RunningLog:
    """Read ``logs_while_running``'s log through the api-server while it runs, as the UI does.

    Never raises (the demo must be allowed to finish): what went wrong is in ``problem``.
    """
    seen = RunningLog()
    deadline = time.monotonic() + timeout
    url_file = state_dir / "airflow" / API_URL_FILE
    dag_id, task_id, map_index = LOGS_WHILE_RUNNING
    api: AirflowApi | None = None
    running_since: float | None = None
    try:
        while time.monotonic() < deadline and demo.poll() is None:
            time.sleep(1)
            if api is None:
                if not url_file.exists():
                    continue
                api = AirflowApi(url_file.read_text().strip())
            try:
                runs = api.dag_runs(dag_id)
                tis = [t for run in runs for t in api.task_instances(dag_id, run.run_id)]
            except (AirflowError, httpx.HTTPError):
                continue  # still starting
            ti = next((t for t in tis if (t.task_id, t.map_index) == (task_id, map_index)), None)
            if ti is None or ti.state != "running":
                if ti is not None and ti.state in ("success", "failed"):
                    seen.problem = f"{task_id} ended ({ti.state}) before its container's lines showed"
                    return seen
                continue
            running_since = running_since or time.monotonic()
            content = api.task_log(dag_id, ti.run_id, task_id, ti.try_number, map_index)
            seen.reads += 1
            still = next(t for t in api.task_instances(dag_id, ti.run_id) if t.task_id == task_id)
            if still.state == "running" and _container_lines_shown(content):
                seen.content = content
                seen.seconds_after_running = round(time.monotonic() - running_since, 1)
                return seen
        seen.problem = f"no read of {task_id}'s log showed its container's lines while it ran"
    except Exception as exc:  # noqa: BLE001 - reported by the test, after the demo ended
        seen.problem = f"{type(exc).__name__}: {exc}"
    finally:
        if api is not None:
            api.close()
    return seen


def watch_state_items(
    state_dir: Path, dag_id: str, task_ids: set[str], stop: threading.Event, seen: StateItems
) -> None:
    """Read the items of ``dag_id``'s tasks from the stack's table every 2 s, until each of
    ``task_ids`` has an ended item or ``stop`` is set (the demo ended: its stack and table gone).

    The stack is found as operator commands find it: its discovery file and ``deployment.json``.
    Never raises; the last failed read is in ``last_error``.
    """
    stack_dir = state_dir / "stack"
    client: Any = None
    table = ""
    deserialize = TypeDeserializer().deserialize
    while not stop.wait(2):
        try:
            if client is None:
                discovery = LocalStackDiscovery.read(stack_dir / DISCOVERY_FILE)
                if discovery is None or not (stack_dir / "deployment.json").exists():
                    continue
                table = json.loads((stack_dir / "deployment.json").read_text())["outputs"]["StateTableName"]
                client = aws_client("dynamodb", discovery.endpoint_url, discovery.region, retries=1)
            kwargs: dict[str, Any] = {"TableName": table}
            while True:
                page = client.scan(**kwargs)
                for raw in page.get("Items", []):
                    item = {name: deserialize(value) for name, value in raw.items()}
                    with contextlib.suppress(ValueError):
                        key = TaskKey.parse(str(item.get("key", "")))
                        if key.dag_id == dag_id:
                            seen.items[key.task_id] = item
                if "LastEvaluatedKey" not in page:
                    break
                kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
            seen.reads += 1
        except Exception as exc:  # noqa: BLE001 - the stack starting or stopping: read again
            seen.last_error = f"{type(exc).__name__}: {exc}"
            continue
        if task_ids <= {t for t, item in seen.items.items() if item.get("state") in ("SUCCESS", "FAILED")}:
            return


def ecs_tasks_of(state_dir: Path, dag_id: str) -> dict[str, list[dict[str, Any]]]:
    """Each ECS task the local host ran for ``dag_id`` (``stack/tasks/<n>/task.json``), by task
    id, in the order of their attempts."""
    found: dict[str, list[dict[str, Any]]] = {}
    for path in (state_dir / "stack" / "tasks").glob("*/task.json"):
        record = json.loads(path.read_text())
        with contextlib.suppress(ValueError):
            key = TaskKey.parse(record.get("key") or "")
            if key.dag_id == dag_id:
                found.setdefault(key.task_id, []).append(record)
    return {task: sorted(records, key=lambda r: r["attempt"] or 0) for task, records in found.items()}


def family_of(task_definition_arn: str) -> str:
    """``arn:aws:ecs:...:task-definition/<family>:<revision>`` -> family."""
    return task_definition_arn.rsplit("/", 1)[-1].rsplit(":", 1)[0]


def processes_using(state_dir: Path) -> list[str]:
    """Processes whose command line or AIRFLOW_HOME points into ``state_dir``."""
    found = []
    for proc in psutil.process_iter(["pid", "cmdline"]):
        with contextlib.suppress(psutil.Error):
            cmdline = " ".join(proc.info["cmdline"] or [])
            home = proc.environ().get("AIRFLOW_HOME", "")
            if str(state_dir) in cmdline or home.startswith(str(state_dir)):
                found.append(f"{proc.pid}: {cmdline[:120]}")
    return found


@pytest.fixture(scope="module")
def example_state(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The example demo's state directory, kept so its logs and processes can be checked."""
    return tmp_path_factory.mktemp("example-demo") / "state"


@pytest.fixture(scope="module")
def example_demo(example_state: Path) -> DemoRun:
    profile_items, stop = StateItems(), threading.Event()
    items_watcher = threading.Thread(
        target=watch_state_items,
        args=(example_state, PROFILES_DAG, {task for _, task, _ in QUEUE_PROFILES}, stop, profile_items),
        daemon=True,
    )
    demo = start_demo_cli("--state-dir", str(example_state))
    items_watcher.start()
    running_log = watch_running_task_log(example_state, demo, timeout=DEMO_TIMEOUT_SECONDS)
    result = finish_demo_cli(demo)
    stop.set()
    items_watcher.join(timeout=30)
    result.running_log, result.profile_items = running_log, profile_items
    return result


def test_demo_on_example_dags_ends_every_run(example_demo: DemoRun):
    # GIVEN the bundled example DAGs / WHEN the demo runs them (fixture)
    # THEN every run ended, with the state its DAG documents
    assert example_demo.exit_code == 0, example_demo.stderr[-5000:]
    runs = {run["dag_id"]: run["state"] for run in example_demo.document["runs"]}
    assert runs == EXPECTED_RUNS


def test_every_example_task_ends_as_documented(example_demo: DemoRun):
    # GIVEN the example DAGs' documented outcomes
    # WHEN the demo has run them through the control plane
    # THEN each task instance has the documented state, try number, ECS starts and submissions
    assert example_demo.tasks() == EXPECTED_TASKS


def test_reschedule_sensor_succeeds_on_its_third_poke_within_one_try(example_demo: DemoRun):
    # GIVEN a reschedule-mode sensor that returns False on pokes 1 and 2 and True on poke 3
    # WHEN each poke is handed to the executor again for the same try
    # THEN every poke got its own submission and ECS task, and the sensor succeeded on try 1
    assert example_demo.tasks()[SENSOR] == ("success", 1, 3, 3), example_demo.stderr[-3000:]


def test_deferred_operator_resumes_in_a_new_container_within_one_try(example_demo: DemoRun):
    # GIVEN an operator that defers to a 3 s timer trigger and finishes in its resume method
    # WHEN the triggerer fires the trigger and the scheduler hands the same try over again
    # THEN the resume ran as a second submission with its own ECS task, and succeeded on try 1
    assert example_demo.tasks()[DEFERRED] == ("success", 1, 2, 2), example_demo.stderr[-3000:]


def test_task_downstream_of_the_sensor_and_the_deferred_operator_runs_after_both(example_demo: DemoRun):
    # GIVEN a task that needs both waiting tasks and checks their XComs (poke count, wait)
    # WHEN both have succeeded
    # THEN it ran once, on try 1, and succeeded, and so did its run
    assert example_demo.tasks()[AFTER_BOTH] == ("success", 1, 1, 1), example_demo.stderr[-3000:]
    runs = {run["dag_id"]: run["state"] for run in example_demo.document["runs"]}
    assert runs["ecscp_waiting_tasks"] == "success"


def test_demo_stops_every_airflow_service_and_keeps_each_log(example_demo: DemoRun, example_state: Path):
    # GIVEN the demo ran api-server, scheduler, dag-processor and triggerer (and the deferred
    # task's trigger ran in the triggerer)
    # WHEN it has returned
    # THEN none of its processes is left, and every service wrote its own log
    assert example_demo.exit_code == 0, example_demo.stderr[-5000:]
    assert processes_using(example_state) == []
    logs = example_state / "airflow" / "logs"
    assert {name: (logs / f"{name}.log").stat().st_size > 0 for name in SERVICES} == dict.fromkeys(
        SERVICES, True
    )
    assert list((logs / "tasks").rglob("task_id=defers_and_resumes/*.trigger.*")), "no trigger log"


def test_a_running_tasks_container_log_shows_through_the_api_servers_log_endpoint(
    example_demo: DemoRun, example_state: Path
):
    # GIVEN logs_while_running, which prints a line and sleeps 20 s in its ECS container, and the
    # stack deployed with TaskLogGroupName (read_task_logs on in the api-server)
    # WHEN its log is read through the api-server's log endpoint while it runs (fixture)
    log = example_demo.running_log
    assert log.problem is None, (log, example_demo.stderr[-3000:])
    events = [str(record.get("event")) for record in log.content]

    # THEN the read came through the executor's get_task_log: its messages name the ECS task and
    # the CloudWatch Logs stream, in the log's source details
    sources = [e for e in events if e.startswith("EcsControlPlaneExecutor: submission 1 of 1 of try 1")]
    assert len(sources) == 1, events[:20]
    assert "lines from CloudWatch Logs group '/ecs/" in sources[0]
    assert "/airflow' stream 'ecs/airflow/" in sources[0]
    assert events.index(sources[0]) < events.index("::endgroup::")
    # AND it shows the line the task printed, and its container's first line, the supervisor's
    # "Executing workload" for this task
    assert LOG_MARKER in events
    [first] = [r for r in log.content if r.get("event") == "Executing workload"]
    assert "task_id='logs_while_running'" in str(first.get("workload"))
    # AND that container line can only have come from the container's stream: the task's log
    # file in the shared log folder, which the api-server reads too, never has it
    [task_log] = (example_state / "airflow" / "logs" / "tasks").glob(
        "dag_id=ecscp_task_outcomes/run_id=*/task_id=logs_while_running/attempt=1.log"
    )
    assert "Executing workload" not in task_log.read_text()
    assert LOG_MARKER in task_log.read_text()
    print(f"container log shown {log.seconds_after_running} s after running, read {log.reads} time(s):")
    print(
        "\n".join(
            f"  {r.get('timestamp')} {r.get('logger', '')} {str(r.get('event'))[:160]}" for r in log.content
        )
    )


def test_task_that_never_starts_raises_an_alert_naming_it(example_demo: DemoRun):
    # GIVEN never_starts fails every container start, and refused_by_its_profile is refused
    # WHEN the control plane gives up on them
    # THEN exactly one alert was published for each, and it names its task
    alerts = example_demo.document["alerts"]
    assert len(alerts) == 2, alerts
    [never_starts] = [a for a in alerts if "never_starts" in a]
    assert "ecscp_start_failures" in never_starts
    [refused] = [a for a in alerts if "refused_by_its_profile" in a]
    assert PROFILES_DAG in refused


def test_a_task_without_a_queue_profile_runs_the_stacks_task_definition(
    example_demo: DemoRun, example_state: Path
):
    # GIVEN on_the_stack_defaults, with no queue (fixture), which checks it sees ECSCP_TASK_SIZE=standard
    assert example_demo.tasks()[(PROFILES_DAG, "on_the_stack_defaults", -1)] == ("success", 1, 1, 1)
    # THEN its one ECS task ran the stack's own task definition and container, with a launch type
    [ecs_task] = ecs_tasks_of(example_state, PROFILES_DAG)["on_the_stack_defaults"]
    assert (family_of(ecs_task["task_definition_arn"]), ecs_task["container_name"]) == (
        STANDARD_TASK_FAMILY,
        STANDARD_CONTAINER_NAME,
    )
    assert ecs_task["capacity_provider"] is None
    assert "profile" not in example_demo.profile_items.items["on_the_stack_defaults"]


def test_a_task_on_the_large_profile_runs_that_profiles_task_definition_and_container(
    example_demo: DemoRun, example_state: Path
):
    # GIVEN on_the_large_profile, queue "large", which checks it sees ECSCP_TASK_SIZE=large (fixture)
    assert example_demo.tasks()[(PROFILES_DAG, "on_the_large_profile", -1)] == ("success", 1, 1, 1)
    # THEN its one ECS task ran airflow-large, and the host ran that task definition's "worker"
    [ecs_task] = ecs_tasks_of(example_state, PROFILES_DAG)["on_the_large_profile"]
    assert (family_of(ecs_task["task_definition_arn"]), ecs_task["container_name"]) == (
        LARGE_TASK_FAMILY,
        LARGE_CONTAINER_NAME,
    )
    # AND its item names the profile
    assert example_demo.profile_items.items["on_the_large_profile"]["profile"] == LARGE_QUEUE


def test_a_spot_start_interrupted_before_it_started_is_retried_on_demand(
    example_demo: DemoRun, example_state: Path
):
    # GIVEN falls_back_to_on_demand, queue "spot" (FARGATE_SPOT, falling back to FARGATE), whose
    # first start on FARGATE_SPOT the local ECS host interrupts before it starts (fixture)
    # THEN the try succeeded after two ECS tasks: the first on FARGATE_SPOT, stopped by the
    # interruption without starting, the second on FARGATE
    assert example_demo.tasks()[(PROFILES_DAG, "falls_back_to_on_demand", -1)] == ("success", 1, 2, 1)
    ecs_tasks = ecs_tasks_of(example_state, PROFILES_DAG)["falls_back_to_on_demand"]
    assert [(t["attempt"], t["capacity_provider"]) for t in ecs_tasks] == [(1, SPOT), (2, ON_DEMAND)]
    assert {family_of(t["task_definition_arn"]) for t in ecs_tasks} == {STANDARD_TASK_FAMILY}
    # AND its item records both placements: attempt 2 on the profile's fallback
    watched = example_demo.profile_items
    item = watched.items.get("falls_back_to_on_demand")
    assert item is not None, watched
    assert item["state"] == "SUCCESS"
    placements = [(int(p["attempt"]), p["placement"], p["fallback"]) for p in item["placements"]]
    assert placements == [(1, SPOT, False), (2, ON_DEMAND, True)]


def test_a_task_setting_what_its_profile_does_not_allow_is_refused_naming_the_key_and_queue(
    example_demo: DemoRun, example_state: Path
):
    # GIVEN refused_by_its_profile, queue "large", whose executor_config sets
    # overrides.containerOverrides, which the large profile does not allow (fixture)
    # THEN it failed without any ECS task
    assert example_demo.tasks()[(PROFILES_DAG, "refused_by_its_profile", -1)] == ("failed", 1, 0, 0)
    assert "refused_by_its_profile" not in ecs_tasks_of(example_state, PROFILES_DAG)
    # AND the reason names the key it set and the queue, in its item and in its alert
    item = example_demo.profile_items.items.get("refused_by_its_profile")
    assert item is not None, example_demo.profile_items
    assert item["state"] == "FAILED"
    reason = str(item.get("reason"))
    assert "overrides.containerOverrides" in reason
    assert f"queue {LARGE_QUEUE!r}" in reason, reason
    [alert] = [a for a in example_demo.document["alerts"] if "refused_by_its_profile" in a]
    assert "overrides.containerOverrides" in alert


def test_demo_runs_a_dag_folder_it_has_never_seen(tmp_path: Path):
    # GIVEN a folder with two new DAG files: a producer, a mapped consumer and a check; and a
    # reschedule sensor that passes on poke 2 (a marker file), an operator that defers to a
    # DateTimeTrigger and resumes, and a task after both
    suffix = uuid.uuid4().hex[:8]
    mapped_id, waiting_id = f"unseen_{suffix}", f"unseen_waits_{suffix}"
    dags = tmp_path / "dags"
    dags.mkdir()
    (tmp_path / "pokes").mkdir()
    (dags / "unseen.py").write_text(
        textwrap.dedent(
            f'''
            import pendulum
            from airflow.sdk import dag, task

            @dag(dag_id="{mapped_id}", schedule=None, start_date=pendulum.datetime(2024, 1, 1, tz="UTC"))
            def unseen():
                @task
                def words() -> list[str]:
                    return ["control", "plane"]

                @task
                def shout(word: str) -> str:
                    return word.upper()

                @task
                def check(shouted: list[str]) -> None:
                    assert sorted(shouted) == ["CONTROL", "PLANE"], shouted

                check(shout.expand(word=words()))

            unseen()
            '''
        )
    )
    (dags / "waits.py").write_text(
        textwrap.dedent(
            f'''
            import datetime
            import hashlib
            import pathlib

            import pendulum
            from airflow.providers.standard.triggers.temporal import DateTimeTrigger
            from airflow.sdk import BaseOperator, dag, get_current_context, task

            POKES = pathlib.Path({str(tmp_path / "pokes")!r})

            class Waits(BaseOperator):
                def execute(self, context):
                    moment = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=2)
                    self.defer(trigger=DateTimeTrigger(moment=moment), method_name="finish")

                def finish(self, context, event=None):
                    assert event is not None, "resumed without the trigger's event"
                    return "resumed"

            @dag(dag_id="{waiting_id}", schedule=None, start_date=pendulum.datetime(2024, 1, 1, tz="UTC"))
            def waits():
                @task.sensor(mode="reschedule", poke_interval=2, timeout=300, retries=0)
                def second_poke() -> bool:
                    # The first poke leaves a marker for this run; the next one finds it.
                    run_id = get_current_context()["run_id"]
                    marker = POKES / hashlib.sha256(run_id.encode()).hexdigest()
                    if marker.exists():
                        return True
                    marker.touch()
                    return False

                @task(retries=0)
                def after(resumed: str) -> None:
                    assert resumed == "resumed", resumed

                poked = second_poke()
                waited = Waits(task_id="waits", retries=0)
                done = after(waited.output)
                poked >> done

            waits()
            '''
        )
    )

    # WHEN the demo runs that folder
    demo = run_demo_cli("--dags", str(dags), "--state-dir", str(tmp_path / "state"))

    # THEN both runs succeeded, every task ended on try 1 with one ECS start per hand-over of
    # the try (the sensor's two pokes, the deferred task's start and resume), nothing alerted
    assert demo.exit_code == 0, demo.stderr[-5000:]
    runs = sorted((run["dag_id"], run["state"]) for run in demo.document["runs"])
    assert runs == [(mapped_id, "success"), (waiting_id, "success")]
    assert demo.tasks() == {
        (mapped_id, "words", -1): ("success", 1, 1, 1),
        (mapped_id, "shout", 0): ("success", 1, 1, 1),
        (mapped_id, "shout", 1): ("success", 1, 1, 1),
        (mapped_id, "check", -1): ("success", 1, 1, 1),
        (waiting_id, "second_poke", -1): ("success", 1, 2, 2),
        (waiting_id, "waits", -1): ("success", 1, 2, 2),
        (waiting_id, "after", -1): ("success", 1, 1, 1),
    }
    assert demo.document["alerts"] == []
    # AND no process of that run outlived the command
    assert processes_using(tmp_path / "state") == []
