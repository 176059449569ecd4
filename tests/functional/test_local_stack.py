"""The embedded local stack: the real template on a real moto server, run by the real handlers.

One stack serves the module (starting it deploys the template, which takes a few seconds);
the last test stops it and checks that nothing it started is left running.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

import psutil
import pytest

from ecs_control_plane.contract import RunRequest, TaskStateItem
from ecs_control_plane.store import item_from_dynamodb
from ecscp.local.ecs.host import SPOT_UNAVAILABLE_ENV
from ecscp.local.ecs.profiles import (
    LARGE_CONTAINER_NAME,
    LARGE_QUEUE,
    LARGE_TASK_FAMILY,
    ON_DEMAND,
    QUEUE_PROFILES,
    SPOT,
    SPOT_QUEUE,
    TASK_SIZE_ENV,
)
from ecscp.local.lambda_runtime.schedules import next_run
from ecscp.local.processes import is_alive, wait_until
from ecscp.local.stack import LocalStack, LocalStackConfig
from ecscp.project import PROJECT_ROOT
from tests.support.requests import SECRET_TOKEN, task_key

pytestmark = pytest.mark.timeout(300)

WAIT_SECONDS = 60


def exits_with(code: int) -> list[str]:
    # The token rides along as an argument, as it does in an Airflow workload command.
    return [sys.executable, "-c", f"import sys; sys.exit({code})", SECRET_TOKEN]


def fail_starts(times: int) -> dict[str, Any]:
    return {
        "overrides": {
            "containerOverrides": [
                {"name": "airflow", "environment": [{"name": "ECSCP_LOCAL_FAIL_STARTS", "value": str(times)}]}
            ]
        }
    }


def wait_for(what: str, condition: Callable[[], Any]) -> Any:
    """What ``condition`` returns once it is truthy, within WAIT_SECONDS; fails naming ``what``."""
    return wait_until(condition, WAIT_SECONDS, what, interval=0.2)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    config = LocalStackConfig(
        project_root=PROJECT_ROOT,
        state_dir=tmp_path_factory.mktemp("local-stack"),
        max_run_task_attempts=3,
        start_retry_base_seconds=1,
        stop_grace_seconds=2,
    )
    with LocalStack(config) as running:
        yield running


class Plane:
    """The stack as the executor sees it: a queue to send to and a table to read."""

    def __init__(self, stack: LocalStack) -> None:
        self.stack = stack
        self.sqs = stack.client("sqs")
        self.ddb = stack.client("dynamodb")
        self.queue_url = stack.outputs["RunRequestQueueUrl"]
        self.table = stack.outputs["StateTableName"]

    def send(self, request: RunRequest) -> None:
        self.sqs.send_message(QueueUrl=self.queue_url, MessageBody=request.model_dump_json())

    def item(self, key: str) -> TaskStateItem | None:
        raw = self.ddb.get_item(TableName=self.table, Key={"key": {"S": key}}, ConsistentRead=True).get(
            "Item"
        )
        return item_from_dynamodb(raw) if raw else None

    def wait_final(self, key: str) -> TaskStateItem:
        def final() -> TaskStateItem | None:
            item = self.item(key)
            return item if item is not None and item.is_terminal else None

        result: TaskStateItem = wait_for(f"{key} to finish", final)
        return result

    def run(
        self,
        name: str,
        command: list[str],
        executor_config: dict[str, Any] | None = None,
        queue: str | None = None,
    ) -> str:
        key = task_key(name, dag_id="local_stack_dag")
        self.send(
            RunRequest(
                kind="run",
                key=key,
                owner="scheduler-a",
                command=command,
                queue=queue,
                executor_config=executor_config or {},
            )
        )
        return key


@pytest.fixture(scope="module")
def plane(stack: LocalStack) -> Plane:
    return Plane(stack)


def test_container_that_exits_zero_ends_success(plane: Plane) -> None:
    # GIVEN a run request whose container exits 0
    key = plane.run("succeeds", exits_with(0))

    # WHEN the stack has handled it
    item = plane.wait_final(key)

    # THEN the task try succeeded, after one ECS task that ran and exited
    assert item.state.value == "SUCCESS"
    assert item.exit_code == 0
    assert item.stop_code == "EssentialContainerExited"
    assert plane.stack.start_attempts()[key] == 1


def test_container_that_exits_non_zero_ends_failed_with_its_exit_code(plane: Plane) -> None:
    # GIVEN a run request whose container exits 3
    key = plane.run("exits_three", exits_with(3))

    # WHEN the stack has handled it
    item = plane.wait_final(key)

    # THEN the try failed, and the reason names the exit code
    assert item.state.value == "FAILED"
    assert item.exit_code == 3
    assert "exited with code 3" in (item.reason or "")


def test_failed_start_is_retried_and_the_second_start_succeeds(plane: Plane) -> None:
    # GIVEN a task whose first ECS start fails as a failed image pull does
    key = plane.run("pulls_once_wrong", exits_with(0), fail_starts(1))

    # WHEN the stack has handled it
    item = plane.wait_final(key)

    # THEN the control plane started it again and the second attempt succeeded
    records = [r for r in plane.stack.task_records() if r["key"] == key]
    assert item.state.value == "SUCCESS", (item, records)
    assert item.attempt == 2, (item, records)
    assert plane.stack.start_attempts()[key] == 2, records
    first = next(r for r in records if r["attempt"] == 1)
    assert first["stop_code"] == "TaskFailedToStart"
    assert first["started_at"] is None


def test_task_that_never_starts_fails_and_alerts_a_human_naming_dag_and_task(plane: Plane) -> None:
    # GIVEN a task whose every start fails
    key = plane.run("never_starts", exits_with(0), fail_starts(99))

    # WHEN the stack has handled it
    item = plane.wait_final(key)

    # THEN it is FAILED after MaxRunTaskAttempts starts, and the alert topic says which task
    assert item.state.value == "FAILED"
    assert plane.stack.start_attempts()[key] == 3
    alerts = wait_for("the failed-start alert", lambda: [a for a in plane.stack.alerts() if key in a])
    alert = json.loads(alerts[0])
    assert alert["dag_id"] == "local_stack_dag"
    assert alert["task_id"] == "never_starts"
    assert "local_stack_dag.never_starts" in alert["alert"]
    assert "CannotPullContainerError" in alert["reason"]


def test_stop_request_stops_the_running_container(plane: Plane) -> None:
    # GIVEN a task whose container runs until it is stopped
    key = plane.run("runs_long", [sys.executable, "-c", "import time; time.sleep(120)"])
    wait_for("the container to run", lambda: (item := plane.item(key)) and item.state.value == "RUNNING")

    # WHEN Airflow asks to stop it
    plane.send(RunRequest(kind="stop", key=key, owner="scheduler-a", reason="killed by the user"))
    item = plane.wait_final(key)

    # THEN ECS stopped it as StopTask does: SIGTERM, exit code 143, stop code UserInitiated
    assert item.state.value == "FAILED"
    assert item.stop_code == "UserInitiated"
    assert item.exit_code == 143
    record = next(r for r in plane.stack.task_records() if r["key"] == key)
    assert record["stop_code"] == "UserInitiated"


def stream_messages(stack: LocalStack, item: TaskStateItem) -> list[str]:
    """The messages in the item's awslogs stream so far ([] before the stream exists)."""
    logs = stack.client("logs")
    try:
        events = logs.get_log_events(
            logGroupName=item.log_group, logStreamName=item.log_stream, startFromHead=True
        )["events"]
    except logs.exceptions.ResourceNotFoundException:
        return []
    return [e["message"] for e in events]


def test_a_containers_output_reaches_its_awslogs_stream_while_it_runs_and_all_of_it_by_its_end(
    plane: Plane, tmp_path_factory: pytest.TempPathFactory
) -> None:
    # GIVEN a container that prints a line, waits for a go, prints more and exits 0
    go = tmp_path_factory.mktemp("go") / "go"
    script = (
        "import os, sys, time\n"
        "print('first line', flush=True)\n"
        "print('to stderr', file=sys.stderr, flush=True)\n"
        f"while not os.path.exists({str(go)!r}): time.sleep(0.1)\n"
        "print('x' * 20000)\n"
        "print('last line', end='')\n"
    )
    key = plane.run("prints", [sys.executable, "-c", script])

    # WHEN it runs: THEN its first lines are in the stream its task definition names, while it runs
    running = wait_for(
        "the container to run", lambda: (i := plane.item(key)) and i.state.value == "RUNNING" and i
    )
    assert running.log_group == plane.stack.ecs.log_group
    assert running.log_stream == f"ecs/airflow/{running.task_arn.rsplit('/', 1)[-1]}"
    wait_for("the first lines in CloudWatch", lambda: len(stream_messages(plane.stack, running)) == 2)
    assert stream_messages(plane.stack, running) == ["first line", "to stderr"]
    assert plane.item(key).state.value == "RUNNING"

    # WHEN it goes on and exits: THEN by the time the task is over every line is there (a line
    # over 16 KiB split as Docker splits it, the unterminated last line too), and in its log file
    go.touch()
    item = plane.wait_final(key)
    assert item.state.value == "SUCCESS"
    assert stream_messages(plane.stack, item) == [
        "first line",
        "to stderr",
        "x" * 16384,
        "x" * (20000 - 16384),
        "last line",
    ]
    [task_dir] = [
        d.parent
        for d in (plane.stack.config.state_dir / "tasks").glob("*/task.json")
        if json.loads(d.read_text())["task_arn"] == item.task_arn
    ]
    assert (task_dir / "container.log").read_text() == "first line\nto stderr\n" + "x" * 20000 + "\nlast line"


def test_the_stack_tells_executors_to_read_task_logs(stack: LocalStack) -> None:
    # The local task definition logs with awslogs, so the stack is deployed with TaskLogGroupName:
    # SchedulerPolicy reads that group, and AirflowEnvironment turns read_task_logs on.
    assert stack.airflow_environment()["AIRFLOW__ECS_CONTROL_PLANE__READ_TASK_LOGS"] == "True"


def test_the_stack_deploys_its_dashboard_with_its_own_names(stack: LocalStack) -> None:
    # moto's CloudFormation creates AWS::CloudWatch::Dashboard, resolving its body's Fn::Sub with
    # the deployed queues and functions; the fix-ups draw it again once the alarms exist.
    name = stack.outputs["DashboardUrl"].rsplit("#dashboards:name=", 1)[1]
    body = json.loads(stack.client("cloudwatch").get_dashboard(DashboardName=name)["DashboardBody"])
    metrics = [row for w in body["widgets"] for row in w["properties"].get("metrics", [])]
    assert stack.outputs["RunRequestQueueUrl"].rsplit("/", 1)[1] in {
        r[3] for r in metrics if r[0] == "AWS/SQS"
    }
    # the status row names the alarms the local stack made (moto's CloudFormation skips alarms)
    shown = {a for w in body["widgets"] for a in w["properties"].get("alarms", [])}
    made = {a["AlarmArn"] for a in stack.client("cloudwatch").describe_alarms()["MetricAlarms"]}
    assert shown == made
    assert "ControlPlaneDashboard" not in stack.deployment.skipped_resources


def test_the_cluster_offers_spot_and_a_second_task_definition_for_the_queue_profiles(
    stack: LocalStack,
) -> None:
    # GIVEN the ECS side created before the stack
    ecs = stack.client("ecs")
    (cluster,) = ecs.describe_clusters(clusters=[stack.ecs.cluster_arn])["clusters"]
    standard = ecs.describe_task_definition(taskDefinition=stack.ecs.task_definition_arn)["taskDefinition"]
    large = ecs.describe_task_definition(taskDefinition=LARGE_TASK_FAMILY)["taskDefinition"]

    # THEN the cluster has Fargate's two capacity providers
    assert cluster["capacityProviders"] == ["FARGATE", "FARGATE_SPOT"]
    # AND the large profile's task definition is bigger, with its Airflow container named "worker",
    # the same roles and log group, and an environment that tells the two apart
    (worker,) = large["containerDefinitions"]
    (airflow,) = standard["containerDefinitions"]
    assert (large["cpu"], large["memory"], worker["name"], worker["memory"]) == (
        "1024",
        "4096",
        "worker",
        4096,
    )
    assert stack.ecs.profile_task_definition_arn == large["taskDefinitionArn"]
    assert (large["taskRoleArn"], large["executionRoleArn"]) == (
        standard["taskRoleArn"],
        standard["executionRoleArn"],
    )
    assert worker["logConfiguration"] == airflow["logConfiguration"]
    assert [worker["environment"], airflow["environment"]] == [
        [{"name": TASK_SIZE_ENV, "value": "large"}],
        [{"name": TASK_SIZE_ENV, "value": "standard"}],
    ]
    # AND a template that takes queue profiles is deployed with the local ones
    assert stack.deployment is not None
    if "QueueProfiles" in stack.deployment.parameters:
        assert json.loads(stack.deployment.parameters["QueueProfiles"]) == QUEUE_PROFILES
        assert stack.deployment.parameters["QueueProfileTaskDefinitionFamilies"] == LARGE_TASK_FAMILY


def test_a_queue_profile_runs_its_container_and_a_spot_shortage_falls_back_to_on_demand(plane: Plane) -> None:
    # GIVEN a task on the large profile, and one on the spot profile whose first Spot start
    # is interrupted before it starts
    spot_unavailable = {
        "overrides": {
            "containerOverrides": [
                {"name": "airflow", "environment": [{"name": SPOT_UNAVAILABLE_ENV, "value": "1"}]}
            ]
        }
    }
    checks_size = [
        sys.executable,
        "-c",
        f"import os, sys; sys.exit(os.environ['{TASK_SIZE_ENV}'] != 'large')",
    ]
    large = plane.run("on_large", checks_size, queue=LARGE_QUEUE)
    spot = plane.run("on_spot", exits_with(0), spot_unavailable, queue=SPOT_QUEUE)

    # WHEN the stack has handled them
    large_item, spot_item = plane.wait_final(large), plane.wait_final(spot)

    # THEN the large one ran its profile's task definition and container ("worker"), which saw
    # that task definition's environment
    ran: dict[str, list[dict[str, Any]]] = {}
    for record in plane.stack.task_records():
        ran.setdefault(record["key"], []).append(record)
    assert large_item.state.value == "SUCCESS", large_item.reason
    [large_task] = ran[large]
    assert (large_task["container_name"], large_task["exit_code"]) == (LARGE_CONTAINER_NAME, 0)
    assert f":task-definition/{LARGE_TASK_FAMILY}:" in large_task["task_definition_arn"]
    # AND the spot one was interrupted on FARGATE_SPOT, then ran on FARGATE, as its item records
    assert spot_item.state.value == "SUCCESS", spot_item.reason
    assert [(r["capacity_provider"], r["stop_code"]) for r in ran[spot]] == [
        (SPOT, "SpotInterruption"),
        (ON_DEMAND, "EssentialContainerExited"),
    ]
    assert [(p.attempt, p.placement, p.fallback) for p in spot_item.placements] == [
        (1, SPOT, False),
        (2, ON_DEMAND, True),
    ]
    assert (large_item.profile, spot_item.profile) == (LARGE_QUEUE, SPOT_QUEUE)


def test_describe_tasks_agrees_with_the_events(plane: Plane) -> None:
    # GIVEN a task that ran to completion
    key = plane.run("described", exits_with(0))
    item = plane.wait_final(key)

    # WHEN ECS is asked about it, as the reconciler would
    ecs = plane.stack.client("ecs")
    task = ecs.describe_tasks(cluster=plane.stack.ecs.cluster_name, tasks=[item.task_arn])["tasks"][0]

    # THEN moto says what the events said
    assert task["lastStatus"] == "STOPPED"
    assert task["stopCode"] == "EssentialContainerExited"
    assert task["version"] == item.ecs_version
    assert task["containers"][0]["exitCode"] == 0
    assert "startedAt" in task


def test_run_task_with_the_same_client_token_returns_the_same_task(stack: LocalStack) -> None:
    # GIVEN the stack's cluster and task definition
    ecs, setup = stack.client("ecs"), stack.ecs
    call = {
        "cluster": setup.cluster_name,
        "taskDefinition": setup.task_definition,
        "launchType": "FARGATE",
        "networkConfiguration": {
            "awsvpcConfiguration": {"subnets": [setup.subnet_id], "securityGroups": [setup.security_group_id]}
        },
        "startedBy": "another-client",  # not the control plane's: the local host leaves it alone
        "clientToken": "same-token",
    }

    # WHEN RunTask is called twice with one client token, as a redelivered request would
    first = ecs.run_task(**call)["tasks"][0]
    second = ecs.run_task(**call)["tasks"][0]

    # THEN ECS started one task, as on AWS
    assert first["taskArn"] == second["taskArn"]
    assert ecs.run_task(**(call | {"clientToken": "other-token"}))["tasks"][0]["taskArn"] != first["taskArn"]


def test_the_host_runs_only_the_control_planes_tasks_of_its_cluster(plane: Plane) -> None:
    # GIVEN a task another client starts in the stack's cluster, with a command to run
    ecs, setup = plane.stack.client("ecs"), plane.stack.ecs
    foreign = ecs.run_task(
        cluster=setup.cluster_name,
        taskDefinition=setup.task_definition,
        launchType="FARGATE",
        networkConfiguration={
            "awsvpcConfiguration": {"subnets": [setup.subnet_id], "securityGroups": [setup.security_group_id]}
        },
        startedBy="another-client",
        overrides={"containerOverrides": [{"name": "airflow", "command": exits_with(0)}]},
    )["tasks"][0]["taskArn"]

    # WHEN a control-plane task started after it has run to its end (the host reads in order)
    plane.wait_final(plane.run("after-a-foreign-task", exits_with(0)))

    # THEN the host left the other client's task alone: not run, not moved on
    assert foreign not in {r["task_arn"] for r in plane.stack.task_records()}
    (task,) = ecs.describe_tasks(cluster=setup.cluster_name, tasks=[foreign])["tasks"]
    assert (task["lastStatus"], task["version"]) == ("PROVISIONING", 1)


def test_scheduled_functions_run_only_on_their_schedule(stack: LocalStack) -> None:
    # GIVEN the tasks above, whose ECS and failed-start events went through EventBridge
    scheduled = (
        [f for f in stack.deployment.functions if f.schedules and not f.sqs_sources]
        if stack.deployment
        else []
    )
    assert scheduled, "the template has a scheduled function"

    # WHEN the logs of the functions that only run on a schedule are read (none is due yet)
    now = time.time()
    due_soon = [
        f for f in scheduled if min(next_run(s.expression, now) or now for s in f.schedules) - now < 120
    ]
    logs = {
        f.logical_id: (stack.logs_dir / f"{f.logical_id}.log").read_text()
        for f in scheduled
        if f not in due_soon
    }

    # THEN none of them was invoked by those events (moto delivers every event to a schedule rule)
    assert logs
    assert {name: text.count("START RequestId") for name, text in logs.items()} == dict.fromkeys(logs, 0)


def test_the_workload_token_never_reaches_the_stack_logs(stack: LocalStack) -> None:
    # GIVEN the tasks above, whose commands all carried the token (their own output is theirs)
    # WHEN the stack's logs and records are read
    files = [*stack.logs_dir.glob("*.log"), stack.config.state_dir / "deployment.json"]

    # THEN the token is in none of them
    assert files
    for file in files:
        assert SECRET_TOKEN not in file.read_text(errors="replace"), file.name


def test_stopping_the_stack_leaves_no_process_behind(plane: Plane) -> None:
    # GIVEN a running container that started a child process of its own
    command = [
        sys.executable,
        "-c",
        "import subprocess, sys, time; "
        "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(300)']); time.sleep(300)",
    ]
    key = plane.run("has_a_child", command)
    wait_for("the container to run", lambda: (item := plane.item(key)) and item.state.value == "RUNNING")
    started = plane.stack.process_ids()
    descendants = [
        c.pid for pid in started if psutil.pid_exists(pid) for c in psutil.Process(pid).children(True)
    ]

    # WHEN the stack stops
    plane.stack.stop()

    # THEN moto, the function workers, the container and its child are all gone
    assert len(started) >= 4  # moto, two functions, at least one container
    assert [pid for pid in started + descendants if is_alive(pid)] == []
