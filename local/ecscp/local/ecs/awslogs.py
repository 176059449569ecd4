"""The ``awslogs`` log driver of the local ECS host: containers' output into CloudWatch Logs.

On ECS the container agent's ``awslogs`` driver reads a container's stdout and stderr, stamps
each line with the time it read it, and sends the lines in batches to the stream
``<awslogs-stream-prefix>/<container name>/<task id>`` of ``awslogs-group`` (the naming rule is
``ecs_control_plane.log_location``'s), which it creates as the container starts. Here:

- :class:`ContainerOutput` is one container's stdout+stderr pipe. A thread reads it, writes
  every byte to ``tasks/<n>/container.log`` as it comes, and hands each line (stamped when it
  was read; longer than 16 KiB split, as Docker splits it) to the driver;
- :class:`AwsLogsDriver` is one thread for the whole host. It sends what is waiting every
  ``interval_seconds`` (1 s), or as soon as ``batch_lines`` lines wait for one stream, one
  ``PutLogEvents`` per stream within CloudWatch's limits (10,000 events, 1 MiB), and creates
  each stream with its first lines. When a container's output ends, its last lines are sent
  before the host records the task STOPPED.

So a running task's lines reach moto's CloudWatch Logs about a second after it prints them, at
a cost of one call per second per container that printed something, on threads of their own
(the host's loop never waits for CloudWatch).

Where it departs from AWS: a log group that does not exist is not a failed start (ECS fails it
with ``CannotStartContainerError`` unless ``awslogs-create-group`` is true): its lines are
dropped, said once in the stack's log. stdout and stderr share one pipe, so their relative order
is kept (ECS's driver reads them separately). Empty lines are not sent (CloudWatch refuses
empty messages). The ``mode``, ``max-buffer-size``, ``awslogs-datetime-format`` and
``awslogs-multiline-pattern`` options are ignored.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import IO, Any

from ecs_control_plane.log_location import TaskLogLocation
from ecscp.local.endpoint import aws_client

logger = logging.getLogger(__name__)

#: Docker splits a line longer than this into several log messages.
MAX_LINE_BYTES = 16 * 1024
#: PutLogEvents: at most this many events, and this many bytes (each message + 26).
MAX_BATCH_EVENTS = 10_000
MAX_BATCH_BYTES = 1_048_576
EVENT_OVERHEAD_BYTES = 26
_READ_BYTES = 65_536

#: What a container's output hands the driver: (epoch ms, line) pairs.
Sink = Callable[[list[tuple[int, str]]], None]


@dataclass
class _Stream:
    location: TaskLogLocation
    pending: list[tuple[int, str]] = field(default_factory=list)
    created: bool = False
    dropped: bool = False
    closing: bool = False
    done: threading.Event = field(default_factory=threading.Event)


class AwsLogsDriver:
    """Sends every container's lines to its awslogs stream, batched, from one thread."""

    def __init__(self, endpoint_url: str, *, interval_seconds: float = 1.0, batch_lines: int = 1000) -> None:
        self.endpoint_url = endpoint_url
        self.interval_seconds = interval_seconds
        self.batch_lines = batch_lines
        self.error: BaseException | None = None
        self._changed = threading.Condition()
        self._streams: dict[TaskLogLocation, _Stream] = {}
        self._clients: dict[str, Any] = {}
        self._stopping = False
        self._thread: threading.Thread | None = None
        #: PutLogEvents calls made (what the driver costs moto).
        self.calls = 0

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="ecscp-local-awslogs", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Send what is waiting, then stop; idempotent."""
        with self._changed:
            self._stopping = True
            self._changed.notify_all()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=timeout)

    # -- from the containers' output threads ---------------------------------------------------

    def open(self, location: TaskLogLocation) -> Sink:
        """Where one container's lines go: the returned function takes (epoch ms, line) pairs."""
        with self._changed:
            stream = self._streams.setdefault(location, _Stream(location))

        def sink(lines: list[tuple[int, str]]) -> None:
            with self._changed:
                stream.pending.extend((stamp, line) for stamp, line in lines if line)
                if len(stream.pending) >= self.batch_lines:
                    self._changed.notify_all()

        return sink

    def close(self, location: TaskLogLocation, timeout: float = 5.0) -> bool:
        """The container's output ended: send its last lines now; whether they went in time."""
        with self._changed:
            stream = self._streams.get(location)
            if stream is None:
                return True
            stream.closing = True
            self._changed.notify_all()
        return stream.done.wait(timeout)

    # -- the driver's thread ---------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            with self._changed:
                self._changed.wait_for(self._due, timeout=self.interval_seconds)
                stopping = self._stopping
                work = [(s, s.pending) for s in self._streams.values() if s.pending or s.closing]
                for stream, _ in work:
                    stream.pending = []
            for stream, lines in work:
                self._send(stream, lines)
                if stream.closing:
                    with self._changed:
                        if not stream.pending:
                            self._streams.pop(stream.location, None)
                            stream.done.set()
            if stopping:
                with self._changed:
                    if not any(s.pending for s in self._streams.values()):
                        for stream in self._streams.values():
                            stream.done.set()
                        return

    def _due(self) -> bool:
        return self._stopping or any(
            s.closing or len(s.pending) >= self.batch_lines for s in self._streams.values()
        )

    def _client(self, region: str) -> Any:
        if region not in self._clients:
            self._clients[region] = aws_client("logs", self.endpoint_url, region)
        return self._clients[region]

    def _send(self, stream: _Stream, lines: list[tuple[int, str]]) -> None:
        if stream.dropped or not lines:
            return
        location = stream.location
        try:
            client = self._client(location.region)
            if not stream.created:
                with contextlib.suppress(client.exceptions.ResourceAlreadyExistsException):
                    client.create_log_stream(logGroupName=location.group, logStreamName=location.stream)
                stream.created = True
            for batch in _batches(lines):
                client.put_log_events(
                    logGroupName=location.group,
                    logStreamName=location.stream,
                    logEvents=[{"timestamp": stamp, "message": line} for stamp, line in batch],
                )
                self.calls += 1
        except Exception as exc:  # noqa: BLE001 - the containers must not notice: say it, drop
            missing = type(exc).__name__ == "ResourceNotFoundException"
            stream.dropped = missing
            why = "its log group does not exist" if missing else f"{type(exc).__name__}: {exc}"
            logger.warning(
                "local ECS awslogs: %d line(s) for %s/%s not sent: %s",
                len(lines),
                location.group,
                location.stream,
                why,
            )
            if not missing:
                self.error = exc


def _batches(lines: list[tuple[int, str]]) -> list[list[tuple[int, str]]]:
    """PutLogEvents-sized batches, in order."""
    batches: list[list[tuple[int, str]]] = [[]]
    size = 0
    for stamp, line in lines:
        cost = len(line.encode()) + EVENT_OVERHEAD_BYTES
        if batches[-1] and (len(batches[-1]) >= MAX_BATCH_EVENTS or size + cost > MAX_BATCH_BYTES):
            batches.append([])
            size = 0
        batches[-1].append((stamp, line))
        size += cost
    return batches


def split_lines(data: bytes) -> tuple[list[bytes], bytes]:
    """Complete lines of ``data`` (each at most MAX_LINE_BYTES) and the unfinished rest."""
    *complete, rest = data.split(b"\n")
    lines: list[bytes] = []
    for line in complete:
        lines.extend(line[i : i + MAX_LINE_BYTES] for i in range(0, max(len(line), 1), MAX_LINE_BYTES))
    while len(rest) > MAX_LINE_BYTES:
        lines.append(rest[:MAX_LINE_BYTES])
        rest = rest[MAX_LINE_BYTES:]
    return lines, rest


def _text(line: bytes) -> str:
    return line.decode("utf-8", errors="replace").rstrip("\r")


class ContainerOutput:
    """One container's stdout+stderr: to ``container.log`` as it comes, and line by line to a sink."""

    def __init__(self, pipe: IO[bytes], log_file: IO[bytes], sink: Sink | None, on_end: Callable[[], Any]):
        self._pipe = pipe
        self._log = log_file
        self._sink = sink
        self._on_end = on_end
        self._ended = threading.Event()
        self._thread = threading.Thread(target=self._run, name="ecscp-local-container-output", daemon=True)

    def start(self) -> ContainerOutput:
        self._thread.start()
        return self

    def wait(self, timeout: float) -> bool:
        """Whether the output ended (every writer closed it) and its last lines were handed on."""
        return self._ended.wait(timeout)

    def _run(self) -> None:
        fd = self._pipe.fileno()
        rest = b""
        try:
            while chunk := os.read(fd, _READ_BYTES):
                self._log.write(chunk)
                self._log.flush()
                if self._sink is not None:
                    lines, rest = split_lines(rest + chunk)
                    if lines:
                        stamp = int(time.time() * 1000)
                        self._sink([(stamp, _text(line)) for line in lines])
            if self._sink is not None and rest:
                self._sink([(int(time.time() * 1000), _text(rest))])
        except OSError as exc:
            logger.warning("local ECS: a container's output could not be read: %s", exc)
        finally:
            for closable in (self._pipe, self._log):
                with contextlib.suppress(OSError):
                    closable.close()
            try:
                self._on_end()
            finally:
                self._ended.set()
