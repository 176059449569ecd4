"""The operator's CLI against one running local stack: status, explain, doctor and redrive.

One stack serves the module; the commands find it as an operator's shell would, through its
discovery file (``--local --state-dir``), and run through typer's runner in this process.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from ecs_control_plane.contract import RunRequest, TaskStateItem
from ecs_control_plane.store import item_from_dynamodb
from ecscp.cli import app
from ecscp.local.processes import wait_until
from ecscp.local.stack import LocalStack, LocalStackConfig
from ecscp.operations.stack import TASK_STATE_RULE
from ecscp.project import PROJECT_ROOT
from tests.support.requests import task_key

pytestmark = pytest.mark.timeout(300)

WAIT_SECONDS = 60
SLEEPS = [sys.executable, "-c", "import time; time.sleep(120)"]
EXITS_ZERO = [sys.executable, "-c", "pass"]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    config = LocalStackConfig(
        project_root=PROJECT_ROOT, state_dir=tmp_path_factory.mktemp("operator-cli"), stop_grace_seconds=1
    )
    with LocalStack(config) as running:
        yield running


def ecscp(stack: LocalStack, *args: str) -> Any:
    """Run ``ecscp ARGS --local --state-dir DIR`` as an operator would."""
    return CliRunner().invoke(app, [*args, "--local", "--state-dir", str(stack.config.state_dir)])


def item(stack: LocalStack, key: str) -> TaskStateItem | None:
    raw = stack.client("dynamodb").get_item(
        TableName=stack.outputs["StateTableName"], Key={"key": {"S": key}}, ConsistentRead=True
    )
    return item_from_dynamodb(raw["Item"]) if "Item" in raw else None


def wait_for_state(stack: LocalStack, key: str, state: str) -> TaskStateItem:
    def reached() -> TaskStateItem | None:
        found = item(stack, key)
        return found if found is not None and found.state.value == state else None

    result = wait_until(reached, WAIT_SECONDS, f"{key} to be {state}", interval=0.2)
    assert result is not None
    return result


def request(key: str, command: list[str]) -> str:
    return RunRequest(kind="run", key=key, owner="scheduler-a", command=command).model_dump_json()


@pytest.fixture(scope="module")
def running(stack: LocalStack) -> TaskStateItem:
    """A try whose container runs for the whole module."""
    key = task_key("runs_long", dag_id="operator_cli")
    stack.client("sqs").send_message(
        QueueUrl=stack.outputs["RunRequestQueueUrl"], MessageBody=request(key, SLEEPS)
    )
    return wait_for_state(stack, key, "RUNNING")


def depth(stack: LocalStack, output: str) -> int:
    attributes = stack.client("sqs").get_queue_attributes(
        QueueUrl=stack.outputs[output],
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return sum(int(v) for v in attributes.values())


def test_status_lists_the_running_try_with_its_ecs_task(stack: LocalStack, running: TaskStateItem) -> None:
    result = ecscp(stack, "status", "--json")

    assert result.exit_code == 0, result.output
    document = json.loads(result.output)
    assert document["by_state"]["RUNNING"] >= 1
    row = next(t for t in document["tries"] if t["key"] == running.key)
    assert row["state"] == "RUNNING"
    assert running.task_arn is not None
    assert row["task_id"] == running.task_arn.rsplit("/", 1)[-1]


def test_explain_shows_the_item_its_ecs_task_and_why_by_key_and_by_task_id(
    stack: LocalStack, running: TaskStateItem
) -> None:
    assert running.task_arn is not None
    by_key = ecscp(stack, "explain", running.key)
    by_task = ecscp(stack, "explain", running.task_arn.rsplit("/", 1)[-1], "--json")

    assert by_key.exit_code == 0, by_key.output
    assert f"ECS task {running.task_arn}" in by_key.output
    assert "container airflow: RUNNING" in by_key.output
    assert "Why: Its Airflow container is running" in " ".join(by_key.output.split())
    assert by_task.exit_code == 0, by_task.output
    document = json.loads(by_task.output)
    assert document["key"] == running.key
    assert document["ecs_task"]["lastStatus"] == "RUNNING"
    by_arn = ecscp(stack, "explain", running.task_arn, "--json")
    assert by_arn.exit_code == 0, by_arn.output
    assert json.loads(by_arn.output)["key"] == running.key


def test_doctor_passes_on_a_healthy_stack_and_names_a_disabled_rule_with_its_fix(stack: LocalStack) -> None:
    # GIVEN a healthy stack
    healthy = ecscp(stack, "doctor", "--json")
    assert healthy.exit_code == 0, healthy.output
    assert not [c for c in json.loads(healthy.output)["checks"] if c["verdict"] == "FAIL"]

    # WHEN the task-state rule is disabled
    events = stack.client("events")
    rule = next(r["Name"] for r in events.list_rules()["Rules"] if TASK_STATE_RULE in r["Name"])
    events.disable_rule(Name=rule)
    try:
        broken = ecscp(stack, "doctor")
    finally:
        events.enable_rule(Name=rule)

    # THEN doctor fails, naming the rule and the command that enables it
    assert broken.exit_code == 1
    assert f"FAIL rule {TASK_STATE_RULE}: {rule} is DISABLED" in broken.output
    assert f"fix: aws events enable-rule --name {rule}\n" in broken.output
    assert f"--endpoint-url {stack.endpoint_url}" in broken.output


def test_redrive_moves_a_dead_run_request_back_and_a_dry_run_moves_nothing(stack: LocalStack) -> None:
    # GIVEN a run request in the dead-letter queue
    key = task_key("dead_letter", dag_id="operator_cli")
    sqs = stack.client("sqs")
    sqs.send_message(QueueUrl=stack.outputs["DeadLetterQueueUrl"], MessageBody=request(key, EXITS_ZERO))

    # WHEN a dry run lists it
    dry = ecscp(stack, "redrive", "--dry-run")

    # THEN it is named, still a dead letter, and no item was made for it
    assert dry.exit_code == 0, dry.output
    assert f"run {key} attempt 1 owner scheduler-a" in dry.output
    assert "1 would move" in dry.output
    assert depth(stack, "DeadLetterQueueUrl") == 1
    assert item(stack, key) is None

    # WHEN it is redriven
    moved = ecscp(stack, "redrive", "--json")

    # THEN it left the dead-letter queue, and run_task ran its try
    assert moved.exit_code == 0, moved.output
    assert json.loads(moved.output)["moved"] == 1
    assert depth(stack, "DeadLetterQueueUrl") == 0
    assert wait_for_state(stack, key, "SUCCESS").exit_code == 0


def test_redriven_task_event_reaches_task_state_which_ignores_a_stale_one(stack: LocalStack) -> None:
    # GIVEN a finished try, and an old RUNNING event of its task in the task-event dead-letter queue
    key = task_key("stale_event", dag_id="operator_cli")
    sqs = stack.client("sqs")
    sqs.send_message(QueueUrl=stack.outputs["RunRequestQueueUrl"], MessageBody=request(key, EXITS_ZERO))
    done = wait_for_state(stack, key, "SUCCESS")
    assert done.task_arn is not None
    task = stack.client("ecs").describe_tasks(cluster=stack.ecs.cluster_name, tasks=[done.task_arn])["tasks"][
        0
    ]
    stale = {**task, "lastStatus": "RUNNING", "version": 1}
    event = {
        "version": "0",
        "id": "operator-cli-stale-event",
        "detail-type": "ECS Task State Change",
        "source": "aws.ecs",
        "account": done.task_arn.split(":")[4],
        "time": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": stack.config.region,
        "resources": [done.task_arn],
        "detail": json.loads(json.dumps(stale, default=lambda t: t.isoformat())),
    }
    sqs.send_message(QueueUrl=stack.outputs["TaskEventDeadLetterQueueUrl"], MessageBody=json.dumps(event))

    # WHEN the task events are redriven
    result = ecscp(stack, "redrive", "--task-events")

    # THEN task_state got it and handled it (it did not come back), and the try is still SUCCESS
    assert result.exit_code == 0, result.output
    assert "1 moved" in result.output
    functions = {f.logical_id: f for f in stack.deployment.functions} if stack.deployment else {}
    delivery = functions["TaskStateFunction"].rule_sources[0].delivery_queue_url
    wait_until(
        lambda: (
            sum(
                int(v)
                for v in sqs.get_queue_attributes(
                    QueueUrl=delivery,
                    AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
                )["Attributes"].values()
            )
            == 0
        ),
        WAIT_SECONDS,
        "task_state to take the redriven event",
        interval=0.2,
    )
    assert depth(stack, "TaskEventDeadLetterQueueUrl") == 0
    still = item(stack, key)
    assert still is not None
    assert still.state.value == "SUCCESS"


def test_a_local_stack_that_is_not_running_is_a_clear_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["status", "--local", "--state-dir", str(tmp_path)])
    assert result.exit_code == 2
    assert "no local stack is running" in " ".join(result.output.split())


def test_exactly_one_of_stack_and_local_is_required() -> None:
    result = CliRunner().invoke(app, ["status"])
    assert result.exit_code == 2
    assert "--stack" in result.output
