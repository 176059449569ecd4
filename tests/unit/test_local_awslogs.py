"""The local ECS host's awslogs driver (``ecscp.local.ecs.awslogs``), without moto.

The stack's functional test (tests/functional/test_local_stack.py) checks a real container's
output in moto's CloudWatch Logs; these check the pieces: line splitting, batches within
PutLogEvents' limits, the output reader, and the driver's timing, against a recording client.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from ecs_control_plane.log_location import TaskLogLocation
from ecscp.local.ecs import awslogs
from ecscp.local.ecs.awslogs import AwsLogsDriver, ContainerOutput, _batches, split_lines

LOCATION = TaskLogLocation("/ecs/local/airflow", "ecs/airflow/abc", "us-east-1")


def test_lines_are_split_at_newlines_and_every_16_kib_as_docker_splits_them() -> None:
    lines, rest = split_lines(b"one\n\ntwo\n" + b"x" * 20000 + b"\nunfinished")
    assert lines == [b"one", b"", b"two", b"x" * 16384, b"x" * (20000 - 16384)]
    assert rest == b"unfinished"
    lines, rest = split_lines(b"y" * 40000)  # no newline yet: only whole 16 KiB pieces go
    assert lines == [b"y" * 16384, b"y" * 16384]
    assert rest == b"y" * (40000 - 2 * 16384)


def test_batches_keep_within_put_log_events_limits_in_order() -> None:
    many = [(i, "m") for i in range(25_000)]
    assert [len(b) for b in _batches(many)] == [10_000, 10_000, 5_000]
    big = [(i, "z" * 100_000) for i in range(25)]  # 100 KB each: 10 fit in 1 MiB with overheads
    batches = _batches(big)
    assert [len(b) for b in batches] == [10, 10, 5]
    assert [stamp for batch in batches for stamp, _ in batch] == list(range(25))


def test_container_output_goes_to_its_file_as_it_comes_and_line_by_line_to_the_sink(tmp_path: Path) -> None:
    # GIVEN a container's pipe, read into its log file and a sink
    read_end, write_end = os.pipe()
    received: list[tuple[int, str]] = []
    ended = threading.Event()
    log_file = tmp_path / "container.log"
    output = ContainerOutput(
        os.fdopen(read_end, "rb"), log_file.open("ab"), received.extend, ended.set
    ).start()

    # WHEN the container writes a line and half of another
    before = int(time.time() * 1000)
    os.write(write_end, b"first\r\nsec")
    deadline = time.monotonic() + 5
    while not received and time.monotonic() < deadline:
        time.sleep(0.01)

    # THEN the whole line is handed on at once, stamped when read; the file has every byte
    assert [line for _, line in received] == ["first"]
    assert before <= received[0][0] <= int(time.time() * 1000)
    assert log_file.read_bytes() == b"first\r\nsec"
    assert not ended.is_set()

    # WHEN the container ends its output
    os.write(write_end, b"ond")
    os.close(write_end)

    # THEN the unfinished line goes too, and only then is the output over
    assert output.wait(5)
    assert ended.is_set()
    assert [line for _, line in received] == ["first", "second"]
    assert log_file.read_bytes() == b"first\r\nsecond"


class ResourceNotFoundException(Exception):  # noqa: N818 - named as botocore names it
    pass


class RecordingLogs:
    """What the driver sends, as a CloudWatch Logs client would receive it."""

    class exceptions:  # noqa: N801 - shaped like a botocore client's
        class ResourceAlreadyExistsException(Exception):  # noqa: N818
            pass

    def __init__(self, missing_group: bool = False) -> None:
        self.missing_group = missing_group
        self.streams: list[tuple[str, str]] = []
        self.puts: list[tuple[float, list[str]]] = []

    def create_log_stream(self, **call: Any) -> None:
        if self.missing_group:
            raise ResourceNotFoundException("The specified log group does not exist.")
        self.streams.append((call["logGroupName"], call["logStreamName"]))

    def put_log_events(self, **call: Any) -> None:
        self.puts.append((time.monotonic(), [e["message"] for e in call["logEvents"]]))


@pytest.fixture
def driver(monkeypatch: pytest.MonkeyPatch) -> Any:
    made: list[AwsLogsDriver] = []

    def make(client: RecordingLogs, **kwargs: Any) -> AwsLogsDriver:
        d = AwsLogsDriver("http://127.0.0.1:9", **kwargs)
        monkeypatch.setattr(d, "_client", lambda region: client)
        d.start()
        made.append(d)
        return d

    yield make
    for d in made:
        d.stop()


def test_lines_are_sent_in_one_call_per_interval_and_the_rest_at_the_containers_end(driver: Any) -> None:
    # GIVEN the driver sending every 0.3 s, and a container printing three lines at once
    logs = RecordingLogs()
    d = driver(logs, interval_seconds=0.3)
    sink = d.open(LOCATION)
    sink([(1, "a"), (2, "b"), (3, "")])
    sink([(4, "c")])

    # WHEN an interval passes: THEN one call carried them (not the empty line), into a new stream
    deadline = time.monotonic() + 5
    while not logs.puts and time.monotonic() < deadline:
        time.sleep(0.02)
    assert [messages for _, messages in logs.puts] == [["a", "b", "c"]]
    assert logs.streams == [(LOCATION.group, LOCATION.stream)]

    # WHEN the container's output ends with a last line: THEN it is sent at once, before close returns
    sink([(5, "last")])
    started = time.monotonic()
    assert d.close(LOCATION, timeout=5)
    assert [messages for _, messages in logs.puts] == [["a", "b", "c"], ["last"]]
    assert logs.puts[-1][0] - started < 0.25  # not a whole interval later
    assert logs.streams == [(LOCATION.group, LOCATION.stream)]  # created once


def test_a_burst_is_sent_without_waiting_for_the_interval(driver: Any) -> None:
    logs = RecordingLogs()
    d = driver(logs, interval_seconds=30, batch_lines=100)
    d.open(LOCATION)([(i, f"line {i}") for i in range(150)])
    deadline = time.monotonic() + 5
    while not logs.puts and time.monotonic() < deadline:
        time.sleep(0.02)
    assert len(logs.puts[0][1]) == 150


def test_lines_for_a_missing_log_group_are_dropped_and_said_once(
    driver: Any, caplog: pytest.LogCaptureFixture
) -> None:
    logs = RecordingLogs(missing_group=True)
    d = driver(logs, interval_seconds=0.1)
    sink = d.open(LOCATION)
    sink([(1, "lost")])
    time.sleep(0.3)
    sink([(2, "lost too")])
    assert d.close(LOCATION, timeout=5)
    assert logs.puts == []
    warnings = [r for r in caplog.records if r.name == awslogs.__name__]
    assert len(warnings) == 1
    assert "its log group does not exist" in warnings[0].getMessage()
    assert d.error is None  # a setting, not a failure of the host
