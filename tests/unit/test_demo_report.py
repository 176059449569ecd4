"""What `ecscp demo` reports: exit codes, the --json document, alert lines, DAG discovery."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ecscp.demo import DemoResult, RunOutcome, TaskOutcome, alert_summary, starts_per_try, try_key_of
from ecscp.local.dag_files import candidate_dag_files


def run(state: str) -> RunOutcome:
    return RunOutcome("dag", "manual__1", state, [TaskOutcome("t", -1, state, 1, (2,), duration=1.5)])


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
                    {
                        "task_id": "t",
                        "map_index": -1,
                        "state": "failed",
                        "try_number": 1,
                        "start_attempts": 2,
                        "submissions": 1,
                    }
                ],
            }
        ],
        "alerts": ["Airflow task failed to start"],
    }


TRY = "ti|dag|sensor|manual__2024-01-01T00%3A00%3A00%2B00%3A00|-1|1"


def test_starts_of_every_submission_count_for_their_try() -> None:
    # GIVEN ECS starts per task key: three pokes of one sensor try (one retried start), another
    # try of it, a v1 key without a submission, and keys that name no task try
    starts = {
        f"{TRY}|poke-a": 1,
        f"{TRY}|poke-b": 2,
        "ti|dag|sensor|run|-1|2|poke-c": 1,
        f"{TRY}|poke-d": 1,
        "ti|dag|legacy|run|-1|1": 3,
        "cb|callback-1": 1,
        "arn:aws:ecs:us-east-1:123456789012:task/c/abc": 1,
    }

    # WHEN they are grouped per try
    grouped = starts_per_try(starts)

    # THEN each try has the starts of each of its submissions, in order; a v1 key is one submission
    assert grouped == {
        TRY: (1, 2, 1),
        "ti|dag|sensor|run|-1|2": (1,),
        "ti|dag|legacy|run|-1|1": (3,),
    }
    outcome = TaskOutcome("sensor", -1, "success", 1, grouped[TRY])
    assert (outcome.start_attempts, outcome.submissions) == (4, 3)


@pytest.mark.parametrize(
    ("key", "try_key"),
    [
        (f"{TRY}|0b7c5d2e-1f3a-4c6b-9d8e-7a6b5c4d3e2f", TRY),
        (TRY, TRY),
        ("ti|dag|task|run|-1", None),
        ("cb|callback-1", None),
        ("not a key", None),
    ],
    ids=["submission", "v1-try", "too-short", "callback", "garbage"],
)
def test_try_key_reads_both_key_forms(key: str, try_key: str | None) -> None:
    assert try_key_of(key) == try_key


def test_task_without_starts_reports_none() -> None:
    assert (TaskOutcome("t", -1, None, 0).start_attempts, TaskOutcome("t", -1, None, 0).submissions) == (0, 0)


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
