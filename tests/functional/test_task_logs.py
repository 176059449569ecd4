"""``EcsControlPlaneExecutor.get_task_log`` on moto: the ECS container logs of a try's submissions.

The reading executor is made the way Airflow's api-server makes it for the log view
(``EcsControlPlaneExecutor()``, never started); a started executor of the scheduler submits the
work, the real run_task handler starts the tasks and records their streams, and the containers'
output is put into moto's CloudWatch Logs as the awslogs driver would.
"""

from __future__ import annotations

import json
import time
from datetime import datetime, timezone
from typing import Any

import boto3
import pytest
from airflow.utils.log.file_task_handler import _get_compatible_log_stream, _interleave_logs
from botocore.exceptions import ClientError

from ecs_control_plane.contract import TaskState
from executor_client import EcsControlPlaneExecutor, task_logs
from executor_client import config as cfg
from tests.functional.test_executor import (
    configure,
    encoded_of,
    make_executor,
    submit,
    task_instance,
    workload,
)
from tests.support.aws import REGION, MockedControlPlane, aws_calls, mocked_control_plane


def airflow_record() -> dict[str, Any]:
    """One record of Airflow's structured task log as the supervisor echoes it to the container's
    stdout, stamped as the container writes it (after run_task recorded the start)."""
    return {
        "timestamp": datetime.now(timezone.utc).isoformat().replace("+00:00", "Z"),
        "level": "info",
        "event": "Task instance is in running state",
        "logger": "task",
    }


#: The api-server's settings for these tests (the scheduler's health check is tested elsewhere).
LOG_VIEW = {cfg.READ_TASK_LOGS: "True", cfg.CHECK_HEALTH_ON_STARTUP: "False"}


@pytest.fixture
def plane(control_plane_aws: MockedControlPlane, monkeypatch: pytest.MonkeyPatch) -> MockedControlPlane:
    configure(monkeypatch, control_plane_aws, **LOG_VIEW)
    return control_plane_aws


def log_view_executor() -> EcsControlPlaneExecutor:
    """The executor as the api-server loads it to serve task logs: constructed, never started."""
    return EcsControlPlaneExecutor()


def started(plane: MockedControlPlane, task_id: str = "extract", **kwargs: Any) -> Any:
    """A workload the scheduler's executor sent and run_task started: its item (with its stream)."""
    work = workload(task_id, **kwargs)
    submit(make_executor(owner=f"scheduler-{task_id}"), work)
    plane.deliver()
    return plane.item(encoded_of(work))


def write(item: Any, *messages: str, at_ms: int | None = None) -> None:
    """The container's output in its awslogs stream, one event a line, 1 ms apart (from now)."""
    at_ms = at_ms or int(time.time() * 1000)
    logs = boto3.client("logs", region_name=REGION)
    logs.create_log_stream(logGroupName=item.log_group, logStreamName=item.log_stream)
    events = [{"timestamp": at_ms + i, "message": m} for i, m in enumerate(messages)]
    logs.put_log_events(logGroupName=item.log_group, logStreamName=item.log_stream, logEvents=events)


def denied(action: str, operation: str) -> ClientError:
    error = {"Error": {"Code": "AccessDeniedException", "Message": f"not authorized to perform {action}"}}
    return ClientError(error, operation)  # type: ignore[arg-type]


def records(lines: list[str]) -> list[dict[str, Any]]:
    return [json.loads(line) for line in lines]


def test_a_running_tasks_container_log_comes_after_a_header_naming_its_stream(
    plane: MockedControlPlane,
) -> None:
    # GIVEN a running task whose container wrote an Airflow log record and a plain line
    item = started(plane)
    at_ms = int(time.time() * 1000)
    record = airflow_record()
    write(item, json.dumps(record), "plain output of the entrypoint", at_ms=at_ms)

    # WHEN the log view asks for try 1 of that task instance
    messages, lines = log_view_executor().get_task_log(task_instance("extract"), 1)

    # THEN a header names the ECS task and its stream, the Airflow record passes as it is, and
    # the plain line is a record with its CloudWatch time and the container's name
    header, airflow_line, plain = records(lines)
    task_id = item.task_arn.rsplit("/", 1)[-1]
    assert header["event"].startswith(f"submission 1 of 1 of try 1: ECS task {task_id} (STARTING")
    assert item.log_stream in header["event"]
    assert lines[1] == json.dumps(record)
    assert plain == {
        "timestamp": task_logs._iso(at_ms + 1),
        "event": "plain output of the entrypoint",
        "logger": "ecs.airflow",
    }
    assert airflow_line == record
    # AND the messages say where the lines came from
    assert len(messages) == 1
    assert f"2 lines from CloudWatch Logs group '/ecs/airflow' stream '{item.log_stream}'" in messages[0]


def test_the_lines_are_what_airflows_log_handler_merges(plane: MockedControlPlane) -> None:
    # GIVEN a container log read through get_task_log
    item = started(plane)
    write(item, json.dumps(airflow_record()), "second", "third")
    _, lines = log_view_executor().get_task_log(task_instance("extract"), 1)

    # WHEN Airflow 3.3's FileTaskHandler merges them as it merges executor logs
    merged = list(_interleave_logs(_get_compatible_log_stream(lines)))

    # THEN every line is a structured message with a time, in order, nothing lost or split
    assert [m.event for m in merged][1:] == ["Task instance is in running state", "second", "third"]
    assert all(m.timestamp is not None for m in merged)


def test_every_submission_of_the_try_is_shown_oldest_first(plane: MockedControlPlane) -> None:
    # GIVEN a reschedule sensor's try: its first poke ran and ended, its second poke runs
    first = started(plane, "sensor", submission="poke-1")
    plane.run_to_exit(first.key, 0)
    write(first, "poke 1 said no")
    second = started(plane, "sensor", submission="poke-2")
    write(second, "poke 2 is running")

    # WHEN the log view asks for the try
    messages, lines = log_view_executor().get_task_log(task_instance("sensor"), 1)

    # THEN each submission's header comes before its own lines, the older submission first
    events = [r["event"] for r in records(lines)]
    assert events[0].startswith("submission 1 of 2 of try 1: ECS task ")
    assert "(SUCCESS, start attempt 1)" in events[0]
    assert events[1] == "poke 1 said no"
    assert events[2].startswith("submission 2 of 2 of try 1: ECS task ")
    assert events[3] == "poke 2 is running"
    assert len(messages) == 2


def test_a_failed_start_ends_with_its_stop_code_and_reason(monkeypatch: pytest.MonkeyPatch) -> None:
    with mocked_control_plane(monkeypatch, max_attempts=1) as plane:
        configure(monkeypatch, plane, **LOG_VIEW)
        # GIVEN a try whose first submission never started (its image could not be pulled),
        # requeued by the scheduler as a second submission that runs
        failed = started(plane, "flaky", submission="queued-1")
        plane.fail_to_start(failed.key, "CannotPullContainerError: pull access denied for airflow")
        assert plane.item(failed.key).state == TaskState.FAILED
        running = started(plane, "flaky", submission="queued-2")
        write(running, "the second submission runs")

        # WHEN the log view asks for the try
        messages, lines = log_view_executor().get_task_log(task_instance("flaky"), 1)

    # THEN the failed submission's part ends with its stop code and ECS's reason, as an error
    parts = records(lines)
    outcome = parts[1]
    assert outcome["level"] == "error"
    assert outcome["event"].startswith("submission 1 of 2 of try 1: ECS task ")
    assert "stop code TaskFailedToStart" in outcome["event"]
    assert "CannotPullContainerError: pull access denied for airflow" in outcome["event"]
    assert [p["event"] for p in parts[3:]] == ["the second submission runs"]
    assert len(messages) == 2


def test_a_task_that_failed_ends_with_its_exit_code(plane: MockedControlPlane) -> None:
    item = started(plane, "breaks", submission="only")
    write(item, "Traceback (most recent call last):")
    plane.run_to_exit(item.key, 3)

    _, lines = log_view_executor().get_task_log(task_instance("breaks"), 1)

    *_, outcome = records(lines)
    assert "exit code 3" in outcome["event"]
    assert "stop code EssentialContainerExited" in outcome["event"]
    assert outcome["timestamp"] >= records(lines)[1]["timestamp"]  # after the container's last line


def test_a_stream_not_written_yet_gives_the_header_and_says_so(plane: MockedControlPlane) -> None:
    started(plane)
    messages, lines = log_view_executor().get_task_log(task_instance("extract"), 1)
    assert len(lines) == 1
    assert "0 lines from CloudWatch Logs" in messages[0]
    assert "(no log stream yet)" in messages[0]


def test_a_task_definition_without_awslogs_is_said_in_a_message(plane: MockedControlPlane) -> None:
    # GIVEN the task definition's latest revision logs with no awslogs configuration
    boto3.client("ecs", region_name=REGION).register_task_definition(
        family="airflow",
        networkMode="awsvpc",
        requiresCompatibilities=["FARGATE"],
        cpu="512",
        memory="1024",
        containerDefinitions=[{"name": "airflow", "image": "apache/airflow:3.3.2", "memory": 1024}],
    )
    started(plane)

    messages, lines = log_view_executor().get_task_log(task_instance("extract"), 1)

    assert len(lines) == 1
    assert "no CloudWatch Logs stream is recorded" in messages[0]
    assert "awslogs-stream-prefix" in messages[0]


def test_a_try_without_submissions_is_said_in_a_message(plane: MockedControlPlane) -> None:
    messages, lines = log_view_executor().get_task_log(task_instance("never_sent"), 1)
    assert lines == []
    assert messages == [
        "EcsControlPlaneExecutor: no submission of try 1 is in the state table 'task-state' "
        "(its items expire ItemRetentionDays after the try ended)"
    ]


def test_without_read_rights_on_the_log_group_a_message_names_the_permission(
    plane: MockedControlPlane, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN CloudWatch Logs refuses this process GetLogEvents
    item = started(plane)
    write(item, "a line it may not read")
    reader = log_view_executor()
    logs = reader._task_logs._logs_client(REGION)

    def refused(**_: Any) -> Any:
        raise denied("logs:GetLogEvents", "GetLogEvents")

    monkeypatch.setattr(logs, "get_log_events", refused)

    # WHEN the log view asks; THEN no exception: the header, and a message saying what to grant
    messages, lines = reader.get_task_log(task_instance("extract"), 1)
    assert len(lines) == 1
    [message] = messages
    assert "not allowed to read its log (AccessDeniedException" in message
    assert "logs:GetLogEvents on log group '/ecs/airflow'" in message
    assert "TaskLogGroupName=/ecs/airflow" in message
    assert cfg.env_name(cfg.READ_TASK_LOGS) in message


def test_without_read_rights_on_the_table_a_message_names_the_permission(
    plane: MockedControlPlane, monkeypatch: pytest.MonkeyPatch
) -> None:
    started(plane)
    reader = log_view_executor()
    table = reader._task_logs._state_table()

    def refused(_: str) -> Any:
        raise denied("dynamodb:Query", "Query")

    monkeypatch.setattr(table, "submissions_of", refused)
    messages, lines = reader.get_task_log(task_instance("extract"), 1)
    assert lines == []
    [message] = messages
    assert "could not be read from table 'task-state': AccessDeniedException" in message
    assert "dynamodb:Query on the table's index try_key-created_at-index" in message


def test_an_unexpected_error_is_a_message_never_an_exception(
    plane: MockedControlPlane, monkeypatch: pytest.MonkeyPatch
) -> None:
    started(plane)
    reader = log_view_executor()
    monkeypatch.setattr(reader._task_logs, "_state_table", lambda: 1 / 0)
    messages, lines = reader.get_task_log(task_instance("extract"), 1)
    assert lines == []
    assert messages == [
        "EcsControlPlaneExecutor: reading the ECS task logs failed: ZeroDivisionError: division by zero"
    ]


def test_with_the_option_off_nothing_is_read(
    control_plane_aws: MockedControlPlane, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN the default settings (read_task_logs off) and a running task with a log
    configure(monkeypatch, control_plane_aws)
    item = started(control_plane_aws)
    write(item, "not asked for")

    # WHEN the log view asks
    with aws_calls() as calls:
        result = log_view_executor().get_task_log(task_instance("extract"), 1)

    # THEN Airflow gets BaseExecutor's answer, and no AWS call was made
    assert result == ([], [])
    assert sum(calls.values()) == 0


def test_the_option_on_without_the_table_setting_says_which_setting(
    control_plane_aws: MockedControlPlane, monkeypatch: pytest.MonkeyPatch
) -> None:
    configure(monkeypatch, control_plane_aws, **LOG_VIEW)
    monkeypatch.delenv(cfg.env_name(cfg.STATE_TABLE))
    messages, lines = log_view_executor().get_task_log(task_instance("extract"), 1)
    assert lines == []
    assert cfg.env_name(cfg.STATE_TABLE) in messages[0]
    assert "api-server" in messages[0]


def test_a_long_log_is_cut_with_a_line_saying_where_the_rest_is(
    plane: MockedControlPlane, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a container log longer than what one read returns
    monkeypatch.setattr(task_logs, "MAX_LINES", 3)
    item = started(plane)
    write(item, *(f"line {i}" for i in range(10)))

    # WHEN the log view asks
    with aws_calls() as calls:
        messages, lines = log_view_executor().get_task_log(task_instance("extract"), 1)

    # THEN the first lines, then where to read the rest; one page was enough
    events = [r["event"] for r in records(lines)]
    assert events[1:4] == ["line 0", "line 1", "line 2"]
    assert events[4].startswith("more of this container's log is in CloudWatch Logs")
    assert len(events) == 5
    assert calls["logs.GetLogEvents"] == 1
    assert "3 lines from" in messages[0]


def test_a_short_log_costs_four_calls(plane: MockedControlPlane) -> None:
    # One Query (the try's submissions), one BatchGetItem (their items), and per stream two
    # GetLogEvents: the second returns the same token, which is how CloudWatch says "the end".
    item = started(plane)
    write(item, "one", "two")
    reader = log_view_executor()
    reader.get_task_log(task_instance("extract"), 1)  # clients made
    with aws_calls() as calls:
        reader.get_task_log(task_instance("extract"), 1)
    assert dict(calls) == {"dynamodb.Query": 1, "dynamodb.BatchGetItem": 1, "logs.GetLogEvents": 2}


def test_reads_from_several_threads_share_one_reader(plane: MockedControlPlane) -> None:
    # The api-server serves log requests from a thread pool, on one executor instance.
    from concurrent.futures import ThreadPoolExecutor  # noqa: PLC0415

    item = started(plane)
    write(item, "shared")
    reader = log_view_executor()
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(lambda _: reader.get_task_log(task_instance("extract"), 1), range(8)))
    assert {len(lines) for _, lines in results} == {2}
