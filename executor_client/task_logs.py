"""``get_task_log``: each submission's ECS container log, for Airflow's task log view (opt-in).

Who calls it (Airflow 3.3, ``airflow/utils/log/file_task_handler.py``, ``FileTaskHandler._read``):
the process that serves the log view, the api-server, on an executor it loads for that
(``ExecutorLoader``; never ``start()``-ed, so none of the scheduler's state or clients), only
while the task instance is ``RUNNING``, and from several request threads at once. Its
``(messages, lines)`` are added to what the handler reads itself: the messages go into the
"Log message source details" group (and, being there, stop the handler asking a worker log
server, which an ECS container does not run), and the lines are merged by timestamp with the
local and remote logs. A finished try's log is never asked of the executor: it comes from
Airflow's own logging (remote logging on ECS).

What it reads: the try's submissions (try index, keys only, oldest first; the newest
``MAX_SUBMISSIONS``), their items by key (one BatchGetItem, only ``TASK_LOG_ATTRIBUTES``), and
each recorded ``awslogs`` stream with ``GetLogEvents`` from its head, at most ``MAX_LINES``
lines and ``MAX_BYTES`` in all. Each submission's part starts with a header line (ECS task,
state, start attempt, stream); a failed submission ends with its exit code, stop code and ECS
reason. Container lines that are Airflow's structured log records (JSON with an ``event``) pass
through as they are, so the view shows them as it shows the task's own log; other lines become
records stamped with their CloudWatch time.

Nothing here raises into Airflow: a failed read is a message saying what failed and which
setting or permission to check. With ``read_task_logs`` off nothing is read at all.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from ecs_control_plane.contract import TASK_LOG_ATTRIBUTES, TRY_INDEX, TaskKey, TaskState, TaskStateItem
from ecs_control_plane.log_location import task_id_of
from ecs_control_plane.store import StateTable

from . import config as cfg
from .aws import describe_error, is_credential_error, make_log_reader_table, make_logs_client

log = logging.getLogger(__name__)

#: Submissions of one try shown, the newest (a reschedule sensor may poke hundreds of times).
MAX_SUBMISSIONS = 20
#: Container log lines and bytes returned in all, per call (the view asks again and again while
#: the task runs): the first ones of each stream, then a line saying where the rest is.
MAX_LINES = 10_000
MAX_BYTES = 5 * 1024 * 1024
#: GetLogEvents pages read per stream at most.
MAX_PAGES = 10
#: BatchGetItem calls for the items (DynamoDB may leave keys unprocessed).
ITEM_READS = 3
#: The logger name of the lines this module writes itself (headers, outcomes, notes).
LOGGER = "ecs_control_plane"
SOURCE = "EcsControlPlaneExecutor"

_READ_ITEMS_HINT = (
    f"this process needs the [{cfg.SECTION}] settings of the scheduler (state_table, region_name, "
    f"conn_id), and dynamodb:Query on the table's index {TRY_INDEX} and dynamodb:BatchGetItem on the "
    "table (the stack's SchedulerPolicy grants both)"
)


def _iso(epoch_ms: int) -> str:
    return datetime.fromtimestamp(epoch_ms / 1000, tz=timezone.utc).isoformat(timespec="milliseconds")


def _record(epoch_ms: int, event: str, logger_name: str = LOGGER, **extra: Any) -> str:
    return json.dumps({"timestamp": _iso(epoch_ms), "event": event, "logger": logger_name, **extra})


def container_line(event: dict[str, Any], logger_name: str) -> str:
    """One CloudWatch log event as a line of Airflow's log view (one JSON record, one line)."""
    message = str(event.get("message", "")).rstrip("\r\n")
    stamp = int(event.get("timestamp") or 0)
    if message.startswith("{"):
        try:
            parsed = json.loads(message)
        except ValueError:
            parsed = None
        if isinstance(parsed, dict) and isinstance(parsed.get("event"), str):
            # Airflow's own structured record (the supervisor echoes the task's log to stdout in
            # an executor container): as it is, so it reads (and de-duplicates) like the task log.
            if "timestamp" in parsed and "\n" not in message:
                return message
            parsed.setdefault("timestamp", _iso(stamp))
            return json.dumps(parsed)
    return _record(stamp, message, logger_name)


#: Error codes that mean "not allowed"; any HTTP 403 does too.
_DENIED = frozenset({"AccessDeniedException", "AccessDenied", "UnauthorizedOperation"})


def _error_code(exc: BaseException) -> str:
    if isinstance(exc, ClientError):
        return str(exc.response.get("Error", {}).get("Code", ""))
    return ""


def _is_denied(exc: ClientError) -> bool:
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return _error_code(exc) in _DENIED or status == 403  # HTTP Forbidden


@dataclass
class _Budget:
    """What one read may still return."""

    lines: int
    size: int

    def take(self, line: str) -> bool:
        if self.lines <= 0 or self.size <= 0:
            return False
        self.lines -= 1
        self.size -= len(line)
        return True


@dataclass
class _Part:
    """What one submission adds: source messages, and lines of the view."""

    messages: list[str] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)


@dataclass
class _Stream:
    lines: list[str] = field(default_factory=list)
    last_ms: int | None = None
    truncated: bool = False
    missing: bool = False


class TaskLogs:
    """Reads the ECS container logs of a try; one per executor, shared by the request threads."""

    def __init__(
        self,
        *,
        enabled: bool,
        state_table: str | None,
        conn_id: str | None,
        region_name: str | None,
        team_name: str | None = None,
        problem: str | None = None,
    ) -> None:
        self.enabled = enabled
        self.state_table = state_table
        self.conn_id = conn_id
        self.region_name = region_name
        self.team_name = team_name
        #: A setting that makes every read fail (said instead of reading).
        self.problem = problem
        self._lock = threading.Lock()
        self._table: StateTable | None = None
        self._logs: dict[str | None, Any] = {}

    @classmethod
    def for_executor(cls, executor: Any) -> TaskLogs:
        """From the executor's ``[ecs_control_plane]`` settings (never raises)."""
        team_name = getattr(executor, "team_name", None)
        settings = {
            "state_table": executor.state_table,
            "conn_id": executor.conn_id,
            "region_name": executor.region_name,
            "team_name": team_name,
        }
        try:
            enabled = executor.conf.getboolean(
                cfg.SECTION, cfg.READ_TASK_LOGS, fallback=cfg.DEFAULTS[cfg.READ_TASK_LOGS] == "True"
            )
        except Exception as exc:  # noqa: BLE001 - a bad value must not break the log view
            bad = f"{SOURCE}: {cfg.env_name(cfg.READ_TASK_LOGS, team_name)} is not a boolean ({exc})"
            return cls(enabled=True, problem=f"{bad}: nothing read", **settings)
        problem: str | None = None
        if enabled and not executor.state_table:
            problem = (
                f"{SOURCE}: {cfg.READ_TASK_LOGS} is on but this process has no "
                f"{cfg.env_name(cfg.STATE_TABLE, team_name)}: give the process serving task logs "
                f"(the api-server) the scheduler's [{cfg.section_name(team_name)}] settings"
            )
        return cls(enabled=enabled, problem=problem, **settings)

    # -- clients (made on first use, again after a credential error) --------------------------

    def _state_table(self) -> StateTable:
        with self._lock:
            if self._table is None:
                self._table = make_log_reader_table(
                    state_table=self.state_table or "",
                    conn_id=self.conn_id,
                    region_name=self.region_name,
                    team_name=self.team_name,
                )
            return self._table

    def _logs_client(self, region: str | None) -> Any:
        with self._lock:
            if region not in self._logs:
                self._logs[region] = make_logs_client(
                    conn_id=self.conn_id, region_name=region, team_name=self.team_name
                )
            return self._logs[region]

    def _failed(self, exc: BaseException) -> None:
        if is_credential_error(exc):
            with self._lock:
                self._table, self._logs = None, {}

    # -- reading ----------------------------------------------------------------------------

    def read(self, ti: Any, try_number: int) -> tuple[list[str], list[str]]:
        """``(messages, lines)`` for Airflow's log view of ``ti``'s try ``try_number``; never raises."""
        if not self.enabled:
            return [], []
        if self.problem:
            return [self.problem], []
        try:
            return self._read(ti, try_number)
        except Exception as exc:  # noqa: BLE001 - the log view must show the rest of the log
            self._failed(exc)
            why = describe_error(exc)
            log.warning("reading the ECS task logs of %s failed: %s", getattr(ti, "key", ti), why)
            return [f"{SOURCE}: reading the ECS task logs failed: {why}"], []

    def _read(self, ti: Any, try_number: int) -> tuple[list[str], list[str]]:
        map_index = ti.map_index if ti.map_index is not None else -1
        try_key = TaskKey(ti.dag_id, ti.task_id, ti.run_id, map_index, try_number).try_key
        table = self._state_table()
        try:
            keys = table.submissions_of(try_key)
            shown = keys[-MAX_SUBMISSIONS:]
            items = self._items(table, shown)
        except (ClientError, BotoCoreError) as exc:
            self._failed(exc)
            return [
                f"{SOURCE}: the state items of try {try_number} could not be read from table "
                f"{self.state_table!r}: {describe_error(exc)}: {_READ_ITEMS_HINT}"
            ], []
        if not keys:
            return [
                f"{SOURCE}: no submission of try {try_number} is in the state table {self.state_table!r} "
                "(its items expire ItemRetentionDays after the try ended)"
            ], []
        messages: list[str] = []
        if len(keys) > len(shown):
            hidden = len(keys) - len(shown)
            messages.append(f"{SOURCE}: the {hidden} oldest submissions of try {try_number} are not shown")
        lines: list[str] = []
        budget = _Budget(MAX_LINES, MAX_BYTES)
        first = len(keys) - len(shown) + 1
        for number, key in enumerate(shown, start=first):
            item = items.get(key)
            if item is None:
                messages.append(f"{SOURCE}: submission {number} of {len(keys)} has no readable state item")
                continue
            part = self._submission(item, f"submission {number} of {len(keys)} of try {try_number}", budget)
            messages.extend(part.messages)
            lines.extend(part.lines)
        return messages, lines

    def _items(self, table: StateTable, keys: Sequence[str]) -> dict[str, TaskStateItem]:
        found: dict[str, TaskStateItem] = {}
        pending = list(keys)
        for attempt in range(ITEM_READS):
            if not pending:
                break
            if attempt:
                time.sleep(0.1 * attempt)
            read = table.read_keys(pending, attributes=TASK_LOG_ATTRIBUTES)
            for version in read.items:
                item = version.parse()
                if item is not None:
                    found[item.key] = item
            pending = read.unprocessed
        return found

    def _submission(self, item: TaskStateItem, title: str, budget: _Budget) -> _Part:
        part = _Part()
        started_ms = item.created_at or item.updated_at
        task = f"ECS task {task_id_of(item.task_arn)}" if item.task_arn else "no ECS task yet"
        what = f"{task} ({item.state.value}, start attempt {item.attempt})"
        stream = _Stream()
        if item.log_group and item.log_stream:
            where = f"CloudWatch Logs group {item.log_group!r} stream {item.log_stream!r} ({item.log_region})"
            part.lines.append(_record(started_ms, f"{title}: {what}: container log from {where}"))
            stream, problem = self._stream(item, budget)
            if problem:
                part.messages.append(f"{SOURCE}: {title}: {what}: {problem}")
            else:
                note = " (no log stream yet)" if stream.missing else ""
                count = len(stream.lines)
                part.messages.append(f"{SOURCE}: {title}: {what}: {count} lines from {where}{note}")
            part.lines.extend(stream.lines)
            if stream.truncated:
                more = f"more of this container's log is in CloudWatch Logs: {where}"
                part.lines.append(_record(stream.last_ms or started_ms, more))
        else:
            part.lines.append(_record(started_ms, f"{title}: {what}"))
            part.messages.append(f"{SOURCE}: {title}: {what}: {self._no_stream(item)}")
        if item.state is TaskState.FAILED:
            ended_ms = max(item.updated_at, stream.last_ms or 0)
            part.lines.append(_record(ended_ms, f"{title}: {task} failed: {item.outcome()}", level="error"))
        return part

    def _check(self, item: TaskStateItem) -> str:
        return f"check that region {item.log_region!r} and connection {self.conn_id!r} reach CloudWatch Logs"

    @staticmethod
    def _no_stream(item: TaskStateItem) -> str:
        if not item.task_arn:
            return "no container log yet"
        return (
            "no CloudWatch Logs stream is recorded for it: the task definition's Airflow container "
            "has no awslogs log configuration with an awslogs-stream-prefix (or an older control "
            "plane started the task)"
        )

    def _stream(self, item: TaskStateItem, budget: _Budget) -> tuple[_Stream, str | None]:
        """The stream's events from its head, within the budget; or why it could not be read."""
        stream = _Stream()
        container = (item.log_stream or "").split("/")[-2:-1] or ["container"]
        logger_name = f"ecs.{container[0]}"
        kwargs: dict[str, Any] = {
            "logGroupName": item.log_group,
            "logStreamName": item.log_stream,
            "startFromHead": True,
        }
        try:
            client = self._logs_client(item.log_region or self.region_name)
            for _ in range(MAX_PAGES):
                if budget.lines <= 0 or budget.size <= 0:
                    stream.truncated = True
                    break
                page = client.get_log_events(**kwargs, limit=min(budget.lines, 10_000))
                for event in page.get("events", []):
                    line = container_line(event, logger_name)
                    if not budget.take(line):
                        stream.truncated = True
                        break
                    stream.lines.append(line)
                    stream.last_ms = int(event.get("timestamp") or 0) or stream.last_ms
                token = page.get("nextForwardToken")
                if stream.truncated or not token or token == kwargs.get("nextToken"):
                    break  # the same token again: the end of the stream, for now
                kwargs["nextToken"] = token
            else:
                stream.truncated = True
        except ClientError as exc:
            code = _error_code(exc)
            if code == "ResourceNotFoundException":
                stream.missing = True  # the container has not written yet (or the log expired)
                return stream, None
            self._failed(exc)
            if _is_denied(exc):
                return stream, (
                    f"not allowed to read its log ({describe_error(exc)}): this process needs "
                    f"logs:GetLogEvents on log group {item.log_group!r} (deploy the stack with "
                    f"TaskLogGroupName={item.log_group} and attach its SchedulerPolicy to this process's "
                    f"role), or set {cfg.env_name(cfg.READ_TASK_LOGS, self.team_name)}=False"
                )
            return stream, f"GetLogEvents failed ({describe_error(exc)}): {self._check(item)}"
        except BotoCoreError as exc:
            self._failed(exc)
            return stream, f"GetLogEvents failed ({describe_error(exc)}): {self._check(item)}"
        return stream, None
