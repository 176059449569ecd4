"""End to end: ``ecscp demo`` runs real Airflow 3 through the local control plane.

Each test starts the whole system in a subprocess (moto with the deployed template, the Lambda
workers, the local ECS host, api-server, scheduler and dag-processor) exactly as a user would,
and reads the ``--json`` document. A few minutes each on two cores.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import textwrap
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
import pytest

from ecscp.local.stack import LocalStackConfig

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(1200)]

DEMO_TIMEOUT_SECONDS = 600
MAX_START_ATTEMPTS = LocalStackConfig(project_root=Path(), state_dir=Path()).max_run_task_attempts

FAN_OUT = {("ecscp_fan_out", f"work_{i:02d}", -1): ("success", 1, 1) for i in range(20)}
MAPPING = {
    ("ecscp_mapping", "numbers", -1): ("success", 1, 1),
    **{("ecscp_mapping", "square", i): ("success", 1, 1) for i in range(5)},
    ("ecscp_mapping", "total", -1): ("success", 1, 1),
}
TASK_OUTCOMES = {
    ("ecscp_task_outcomes", "always_fails", -1): ("failed", 1, 1),
    ("ecscp_task_outcomes", "passes_on_retry", -1): ("success", 2, 1),
    ("ecscp_task_outcomes", "reads_executor_config", -1): ("success", 1, 1),
}
START_FAILURES = {
    ("ecscp_start_failures", "starts_on_second_attempt", -1): ("success", 1, 2),
    ("ecscp_start_failures", "never_starts", -1): ("failed", 1, MAX_START_ATTEMPTS),
}
#: (dag_id, task_id, map_index) -> (state, try_number, control-plane start attempts)
EXPECTED_TASKS = {**FAN_OUT, **MAPPING, **TASK_OUTCOMES, **START_FAILURES}
EXPECTED_RUNS = {
    "ecscp_fan_out": "success",
    "ecscp_mapping": "success",
    "ecscp_task_outcomes": "failed",
    "ecscp_start_failures": "failed",
}


@dataclass
class DemoRun:
    exit_code: int
    document: dict[str, Any]
    stderr: str

    def tasks(self) -> dict[tuple[str, str, int], tuple[str, int, int]]:
        return {
            (run["dag_id"], task["task_id"], task["map_index"]): (
                task["state"],
                task["try_number"],
                task["start_attempts"],
            )
            for run in self.document["runs"]
            for task in run["tasks"]
        }


def run_demo_cli(*args: str) -> DemoRun:
    """``ecscp demo --json ...`` in its own process, bounded in time."""
    completed = subprocess.run(
        [sys.executable, "-m", "ecscp", "demo", "--json", "--timeout", str(DEMO_TIMEOUT_SECONDS), *args],
        capture_output=True,
        text=True,
        timeout=DEMO_TIMEOUT_SECONDS + 300,
        check=False,
    )
    try:
        document = json.loads(completed.stdout)
    except json.JSONDecodeError:
        pytest.fail(
            f"stdout is not one JSON document (exit {completed.returncode}):\n{completed.stdout}\n"
            f"stderr:\n{completed.stderr[-5000:]}"
        )
    return DemoRun(completed.returncode, document, completed.stderr)


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
def example_demo() -> DemoRun:
    return run_demo_cli()


def test_demo_on_example_dags_ends_every_run(example_demo: DemoRun):
    # GIVEN the bundled example DAGs / WHEN the demo runs them (fixture)
    # THEN every run ended, with the state its DAG documents
    assert example_demo.exit_code == 0, example_demo.stderr[-5000:]
    runs = {run["dag_id"]: run["state"] for run in example_demo.document["runs"]}
    assert runs == EXPECTED_RUNS


def test_every_example_task_ends_as_documented(example_demo: DemoRun):
    # GIVEN the example DAGs' documented outcomes
    # WHEN the demo has run them through the control plane
    # THEN each task instance has the documented state, try number and number of ECS starts
    assert example_demo.tasks() == EXPECTED_TASKS


def test_task_that_never_starts_raises_an_alert_naming_it(example_demo: DemoRun):
    # GIVEN never_starts fails every container start
    # WHEN the control plane gives up on it
    # THEN exactly one alert was published, and it names the task
    alerts = example_demo.document["alerts"]
    assert len(alerts) == 1, alerts
    assert "never_starts" in alerts[0]
    assert "ecscp_start_failures" in alerts[0]


def test_demo_runs_a_dag_folder_it_has_never_seen(tmp_path: Path):
    # GIVEN a folder with one new DAG file: a producer, a mapped consumer and a check
    dag_id = f"unseen_{uuid.uuid4().hex[:8]}"
    dags = tmp_path / "dags"
    dags.mkdir()
    (dags / "unseen.py").write_text(
        textwrap.dedent(
            f'''
            import pendulum
            from airflow.sdk import dag, task

            @dag(dag_id="{dag_id}", schedule=None, start_date=pendulum.datetime(2024, 1, 1, tz="UTC"))
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

    # WHEN the demo runs that folder
    demo = run_demo_cli("--dags", str(dags), "--state-dir", str(tmp_path / "state"))

    # THEN its one run succeeded, every task started once on try 1, and nothing alerted
    assert demo.exit_code == 0, demo.stderr[-5000:]
    assert [(run["dag_id"], run["state"]) for run in demo.document["runs"]] == [(dag_id, "success")]
    assert demo.tasks() == {
        (dag_id, "words", -1): ("success", 1, 1),
        (dag_id, "shout", 0): ("success", 1, 1),
        (dag_id, "shout", 1): ("success", 1, 1),
        (dag_id, "check", -1): ("success", 1, 1),
    }
    assert demo.document["alerts"] == []
    # AND no process of that run outlived the command
    assert processes_using(tmp_path / "state") == []
