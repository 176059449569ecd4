"""What `ecscp demo` reports: exit codes, the --json document, alert lines, DAG discovery."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ecscp.demo import DemoResult, RunOutcome, TaskOutcome, alert_summary
from ecscp.local.airflow import candidate_dag_files


def run(state: str) -> RunOutcome:
    return RunOutcome("dag", "manual__1", state, [TaskOutcome("t", -1, state, 1, 2, duration=1.5)])


@pytest.mark.parametrize(
    ("result", "code"),
    [
        (DemoResult(runs=[run("success"), run("failed")]), 0),
        (DemoResult(runs=[run("success"), run("running")]), 2),
        (DemoResult(runs=[run("success")], timed_out=True), 2),
        (DemoResult(runs=[run("success")], error="scheduler died"), 1),
        (DemoResult(runs=[run("success")], import_errors={"bad.py": "SyntaxError"}), 1),
    ],
    ids=["all-ended", "one-hung", "timed-out", "crashed", "import-error"],
)
def test_exit_code_says_whether_every_run_ended(result: DemoResult, code: int) -> None:
    assert result.exit_code == code


def test_json_document_has_the_documented_shape() -> None:
    # GIVEN a finished demo with one alert
    result = DemoResult(runs=[run("failed")], alerts=["Airflow task failed to start"])

    # WHEN it is rendered for --json
    document = json.loads(json.dumps(result.to_json()))

    # THEN it holds runs with their tasks (no durations) and the alerts, nothing else
    assert document == {
        "runs": [
            {
                "dag_id": "dag",
                "run_id": "manual__1",
                "state": "failed",
                "tasks": [
                    {"task_id": "t", "map_index": -1, "state": "failed", "try_number": 1, "start_attempts": 2}
                ],
            }
        ],
        "alerts": ["Airflow task failed to start"],
    }


@pytest.mark.parametrize(
    ("alert", "line"),
    [
        (
            json.dumps({"alert": "dag.task failed to start", "reason": "no capacity"}),
            "dag.task failed to start Reason: no capacity",
        ),
        (json.dumps({"alert": "dag.task failed to start"}), "dag.task failed to start"),
        ("plain text alert", "plain text alert"),
        (json.dumps(["not", "an", "object"]), json.dumps(["not", "an", "object"])),
    ],
)
def test_alert_summary_reads_the_control_planes_alert(alert: str, line: str) -> None:
    assert alert_summary(alert) == line


def test_dag_discovery_follows_airflows_safe_mode(tmp_path: Path) -> None:
    # GIVEN a folder with a DAG file, a helper module, and hidden/dunder paths
    (tmp_path / "pipeline.py").write_text("from airflow.sdk import dag\n@dag()\ndef p(): ...\np()\n")
    (tmp_path / "helpers.py").write_text("def helper(): return 1\n")
    (tmp_path / ".hidden").mkdir()
    (tmp_path / ".hidden" / "x.py").write_text("from airflow.sdk import dag\n")
    (tmp_path / "__pycache__").mkdir()
    (tmp_path / "__pycache__" / "y.py").write_text("from airflow.sdk import dag\n")

    # WHEN the demo looks for DAG files
    found = candidate_dag_files(tmp_path)

    # THEN only the file that may define a DAG is waited for
    assert found == [tmp_path / "pipeline.py"]
