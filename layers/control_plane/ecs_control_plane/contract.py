"""Contract v2 between the Airflow executor and the control plane.

Both sides import these definitions; nothing here may be defined a second time elsewhere.
The module is pure: no boto3, no Airflow.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Annotated, Any, Literal
from urllib.parse import quote, unquote

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from .placements import AttemptPlacement

CONTRACT_VERSION: Literal[2] = 2
#: Versions of run requests this control plane still reads (v1 messages in flight during an
#: upgrade keep working: their keys name a try without a submission).
READABLE_VERSIONS = (1, 2)

#: Container environment variables that travel with every ECS task the control plane starts.
TASK_KEY_ENV = "ECSCP_TASK_KEY"
ATTEMPT_ENV = "ECSCP_ATTEMPT"
OWNER_ENV = "ECSCP_OWNER"
EXECUTOR_CONTAINER_ENV = "AIRFLOW_IS_EXECUTOR_CONTAINER"
RESERVED_ENV_NAMES = frozenset({TASK_KEY_ENV, ATTEMPT_ENV, OWNER_ENV, EXECUTOR_CONTAINER_ENV})

#: Tag on every ECS task the control plane starts (value: the control plane id); IAM lets the
#: functions stop only tasks that carry it.
CONTROL_PLANE_TAG = "ecscp:control-plane"

#: EventBridge identity of the failed-start event.
EVENT_SOURCE = "airflow.ecs-control-plane"
FAILED_START_DETAIL_TYPE = "Airflow Task Start Failed"

#: Name of the state table's owner index: the executor's change feed.
OWNER_INDEX = "owner-updated_at-index-v2"
#: Sparse index of the items still in flight (only they carry ``active_shard``), for the reconciler
#: and the executor's safety net.
ACTIVE_INDEX = "active_shard-updated_at-index-v2"
ACTIVE_SHARDS = 4
#: What the executor reads of an item (its change feed and safety net): the owner index projects
#: these and nothing else, so a write never copies an ``executor_config`` into it.
SYNC_ATTRIBUTES = (
    "key",
    "owner",
    "updated_at",
    "state",
    "attempt",
    "task_arn",
    "reason",
    "exit_code",
    "stop_code",
    "stopped_reason",
)
#: What the reconciler reads of an item in flight, besides what the executor reads.
RECONCILE_ATTRIBUTES = (*SYNC_ATTRIBUTES, "token_expires_at", "awaiting_request", "start_failed", "alerted")
#: Index of every submission of a try (``try_key`` is the key without its submission).
TRY_INDEX = "try_key-created_at-index"
#: Where an item says its ECS task's Airflow container logs (see ``log_location.py``).
LOG_ATTRIBUTES = ("log_group", "log_stream", "log_region")
#: What the executor's ``get_task_log`` reads of each submission of a try (by key, never
#: ``executor_config``).
TASK_LOG_ATTRIBUTES = (
    "key",
    "owner",
    "state",
    "attempt",
    "task_arn",
    "reason",
    "exit_code",
    "stop_code",
    "stopped_reason",
    "start_failed",
    "created_at",
    "updated_at",
    *LOG_ATTRIBUTES,
)


def active_shard(key: str) -> str:
    """The active-index partition of ``key``: spread over a few partitions to avoid a hot one."""
    return f"A{int(hashlib.sha256(key.encode()).hexdigest(), 16) % ACTIVE_SHARDS}"


def now_ms() -> int:
    return int(time.time() * 1000)


class TaskState(str, Enum):
    """Lifecycle of one Airflow task try in the control plane."""

    QUEUED = "QUEUED"
    STARTING = "STARTING"
    RUNNING = "RUNNING"
    SUCCESS = "SUCCESS"
    FAILED = "FAILED"

    @property
    def is_terminal(self) -> bool:
        return self in TERMINAL_STATES


TERMINAL_STATES = frozenset({TaskState.SUCCESS, TaskState.FAILED})
ACTIVE_STATES = frozenset({TaskState.QUEUED, TaskState.STARTING, TaskState.RUNNING})

# ---------------------------------------------------------------------------------------------
# Task key
# ---------------------------------------------------------------------------------------------

_SEP = "|"
# Characters Airflow allows in ids stay readable; everything else (and the separator) is quoted.
_SAFE = "-_.~:+@=,"


def _q(part: str) -> str:
    return quote(part, safe=_SAFE)


class InvalidTaskKeyError(ValueError):
    """A string that is not a task key of this contract."""


#: A submission id: what Airflow pre-assigns as ``external_executor_id`` (a UUID) or what the
#: executor generates; readable in a key without quoting.
SUBMISSION_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


def is_submission_id(value: object) -> bool:
    return isinstance(value, str) and SUBMISSION_PATTERN.fullmatch(value) is not None


#: Control, format (bidirectional overrides, zero-width), and line and paragraph separators.
_UNPRINTABLE = frozenset({"Cc", "Cf", "Zl", "Zp"})
#: Bounds of a key's numbers: far beyond any real try or mapped index, far below absurd.
MAX_TRY_NUMBER = 100_000
MAX_MAP_INDEX = 10_000_000


def unprintable(text: str) -> str | None:
    """The first control or format character of ``text`` (as ``U+XXXX``), or None.

    Control characters (newlines, escapes) and format characters (bidirectional overrides,
    zero-width joiners) make a name read as something it is not in logs, consoles and alerts.
    """
    # Every character of those categories is one str.isprintable() refuses: a printable text
    # (nearly all) is answered at C speed; the rest is looked at character by character.
    if text.isprintable():
        return None
    for char in text:
        if unicodedata.category(char) in _UNPRINTABLE:
            return f"U+{ord(char):04X}"
    return None


def printable(text: str, limit: int) -> str:
    """``text`` as a human may be shown it: control and format characters replaced, at most ``limit``."""
    cleaned = "".join("?" if unicodedata.category(c) in _UNPRINTABLE else c for c in text)
    return cleaned if len(cleaned) <= limit else cleaned[: limit - 1] + "…"


@dataclass(frozen=True, slots=True)
class TaskKey:
    """Identifies one submission of one Airflow task try (or of one executor callback).

    Encoded as ``ti|dag|task|run|map_index|try|submission`` (parts percent-quoted), so it is
    stable, reversible and, given the submission id Airflow stores as the task instance's
    ``external_executor_id``, computable from a TaskInstance again when a scheduler adopts it.
    Airflow hands the executor the same try more than once (reschedule pokes, resumes after a
    deferral, requeues); each hand-over is a new submission with its own key and item. Keys
    without a submission (contract v1, ``ti|dag|task|run|map_index|try``) are still read.
    """

    dag_id: str
    task_id: str
    run_id: str
    map_index: int = -1
    try_number: int = 1
    kind: Literal["ti", "cb"] = "ti"
    submission: str = ""

    def __post_init__(self) -> None:
        if self.submission and not is_submission_id(self.submission):
            raise InvalidTaskKeyError(f"not a submission id: {self.submission!r}")
        for name in ("dag_id", "task_id", "run_id"):
            if bad := unprintable(getattr(self, name)):
                raise InvalidTaskKeyError(f"{name} holds the control or format character {bad}")
        if not 0 <= self.try_number <= MAX_TRY_NUMBER:
            raise InvalidTaskKeyError(f"try number {self.try_number} is out of range 0..{MAX_TRY_NUMBER}")
        if not -1 <= self.map_index <= MAX_MAP_INDEX:
            raise InvalidTaskKeyError(f"map index {self.map_index} is out of range -1..{MAX_MAP_INDEX}")

    @classmethod
    def for_callback(cls, callback_id: str, submission: str = "") -> TaskKey:
        return cls(dag_id="", task_id=str(callback_id), run_id="", kind="cb", submission=submission)

    def with_submission(self, submission: str) -> TaskKey:
        """The same try, as the submission ``submission`` (empty: the try itself, the v1 key)."""
        return TaskKey(
            self.dag_id, self.task_id, self.run_id, self.map_index, self.try_number, self.kind, submission
        )

    @property
    def try_key(self) -> str:
        """The encoded key of the try, whatever the submission (the v1 key)."""
        return self.with_submission("").encode()

    def encode(self) -> str:
        if self.kind == "cb":
            parts = ["cb", _q(self.task_id)]
        else:
            parts = [
                "ti",
                _q(self.dag_id),
                _q(self.task_id),
                _q(self.run_id),
                str(self.map_index),
                str(self.try_number),
            ]
        if self.submission:
            parts.append(self.submission)
        return _SEP.join(parts)

    @classmethod
    def parse(cls, value: str) -> TaskKey:
        parts = value.split(_SEP)
        try:
            if parts[0] == "cb" and len(parts) in (2, 3):
                return cls.for_callback(unquote(parts[1]), parts[2] if len(parts) == 3 else "")
            if parts[0] == "ti" and len(parts) in (6, 7):
                return cls(
                    dag_id=unquote(parts[1]),
                    task_id=unquote(parts[2]),
                    run_id=unquote(parts[3]),
                    map_index=int(parts[4]),
                    try_number=int(parts[5]),
                    submission=parts[6] if len(parts) == 7 else "",
                )
        except (ValueError, InvalidTaskKeyError) as exc:
            raise InvalidTaskKeyError(f"not a task key: {value!r} ({exc})") from exc
        raise InvalidTaskKeyError(f"not a task key: {value!r}")

    def describe(self) -> str:
        """A short human label for logs and alerts."""
        if self.kind == "cb":
            return f"callback {self.task_id}"
        mapped = f"[{self.map_index}]" if self.map_index >= 0 else ""
        return f"{self.dag_id}.{self.task_id}{mapped} run {self.run_id} try {self.try_number}"

    def __str__(self) -> str:
        return self.encode()


def client_token(key: str, attempt: int, scope: str = "") -> str:
    """ECS ``clientToken`` (at most 64 characters) for one start attempt of one submission.

    The same (key, attempt) always gives the same token, so a redelivered run request makes
    ECS return the task it already started instead of starting a second one; the key names the
    submission, so another submission of the same try gets a task of its own. ``scope`` (the
    control plane id) keeps two stacks sharing a cluster from colliding on repeated run ids.
    """
    return hashlib.sha256(f"{scope}#{key}#{attempt}".encode()).hexdigest()


# ---------------------------------------------------------------------------------------------
# Run requests (SQS message bodies)
# ---------------------------------------------------------------------------------------------

ExecutorConfig = dict[str, Any]
#: No start is retried anywhere near this often; a larger number is bad input, not a counter.
MAX_ATTEMPT = 1000


class RunRequest(BaseModel):
    """A request to start (``run``) or stop (``stop``) the ECS task of one submission, or to move
    it to an adopting scheduler (``adopt``).

    Adoption goes through the control plane so that a scheduler writes nothing to the state
    table: its policy allows it reads only.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    version: Literal[1, 2] = CONTRACT_VERSION
    kind: Literal["run", "stop", "adopt"]
    key: Annotated[str, Field(min_length=1, max_length=1024)]
    owner: Annotated[str, Field(min_length=1, max_length=256)]
    command: list[str] = Field(default_factory=list, repr=False)
    queue: str | None = None
    executor_config: ExecutorConfig = Field(default_factory=dict)
    attempt: Annotated[int, Field(ge=1, le=MAX_ATTEMPT)] = 1
    sent_at: int = Field(default_factory=now_ms)
    reason: str | None = None
    #: When the workload's token expires (epoch ms; v2): a container started after that can only
    #: fail, so no start is made past it. The token lives for ``[scheduler] task_queued_timeout``.
    token_expires_at: Annotated[int, Field(ge=0, lt=2**53)] | None = None
    #: How many times ECS throttled this start attempt (v2): grows the jittered backoff.
    throttled: Annotated[int, Field(ge=0, le=MAX_ATTEMPT)] = 0
    #: Start this attempt on the queue profile's fallback capacity (set by the control plane
    #: after a capacity failure; an executor never sets it). Left out of the message when false,
    #: so readers of before the field (a stack not yet updated) still read every message.
    fallback: bool = Field(default=False, exclude_if=lambda value: not value)

    @field_validator("key")
    @classmethod
    def _key_is_a_task_key(cls, value: str) -> str:
        if TaskKey.parse(value).encode() != value:
            raise ValueError("not in canonical form (parse(key).encode() must give the key back)")
        return value

    @field_validator("owner")
    @classmethod
    def _owner_is_printable(cls, value: str) -> str:
        if bad := unprintable(value):
            raise ValueError(f"holds the control or format character {bad}")
        return value

    @field_validator("command")
    @classmethod
    def _command_strings_non_empty(cls, value: list[str]) -> list[str]:
        if any(not part for part in value):
            raise ValueError("command parts must be non-empty strings")
        return value

    @model_validator(mode="after")
    def _run_needs_command(self) -> RunRequest:
        if self.kind == "run" and not self.command:
            raise ValueError("a run request needs a non-empty command")
        return self

    @property
    def task_key(self) -> TaskKey:
        return TaskKey.parse(self.key)

    def redacted(self) -> dict[str, Any]:
        """What may be logged: everything but the command, which carries the workload token."""
        return self.model_dump(exclude={"command"}) | {"command_parts": len(self.command)}

    @classmethod
    def from_message(cls, body: str) -> RunRequest:
        """Parse an SQS message body; a bad one raises with the key when the key is readable."""
        try:
            return cls.model_validate_json(body)
        except ValidationError as exc:
            key: str | None = None
            owner: str | None = None
            try:
                raw = json.loads(body)
                candidate = raw.get("key") if isinstance(raw, dict) else None
                if isinstance(candidate, str):
                    TaskKey.parse(candidate)
                    key = candidate
                    candidate_owner = raw.get("owner")
                    if isinstance(candidate_owner, str) and 0 < len(candidate_owner) <= 256:
                        owner = None if unprintable(candidate_owner) else candidate_owner
            except (ValueError, InvalidTaskKeyError, RecursionError):
                key = None
            # Only locations and messages: pydantic's own text quotes the input, i.e. the token.
            problems = "; ".join(
                f"{'.'.join(str(p) for p in err['loc']) or 'body'}: {err['msg']}" for err in exc.errors()
            )
        raise MalformedRequestError(f"malformed run request: {problems}", key, owner) from None


class MalformedRequestError(ValueError):
    """A message that is not a run request of this contract; ``key`` is set when readable."""

    def __init__(self, reason: str, key: str | None, owner: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.key = key
        self.owner = owner


# ---------------------------------------------------------------------------------------------
# State items (DynamoDB)
# ---------------------------------------------------------------------------------------------


class TaskStateItem(BaseModel):
    """One row of the state table: the control plane's view of one task try."""

    model_config = ConfigDict(extra="ignore")

    key: str
    owner: str
    state: TaskState
    attempt: int = 1
    task_arn: str | None = None
    ecs_last_status: str | None = None
    ecs_version: int | None = None
    stop_code: str | None = None
    stopped_reason: str | None = None
    exit_code: int | None = None
    reason: str | None = None
    queue: str | None = None
    stop_requested: bool = False
    #: The task's executor_config (no secrets of ours: the command is never stored), kept so
    #: that a start retried from an ECS event is made with the same run_task call.
    executor_config: ExecutorConfig = Field(default_factory=dict)
    #: Set when the try failed to start, and once the failed-start event has been put.
    start_failed: bool = False
    alerted: bool = False
    #: When the submission's workload token expires (epoch ms): no start is made after it.
    token_expires_at: int | None = None
    #: Created by an adopting scheduler before the submission's run request arrived: the request
    #: starts it under the adopter (or the reconciler fails it once it is overdue).
    awaiting_request: bool = False
    #: Where the current ECS task's Airflow container writes its log: the ``awslogs`` stream of
    #: its task definition, recorded by run_task as it starts the task. None when the task
    #: definition's container has no ``awslogs`` configuration with a stream prefix.
    log_group: str | None = None
    log_stream: str | None = None
    log_region: str | None = None
    #: When the executor submitted the try (its first run request's ``sent_at``, the scheduler's
    #: clock): where the submit-to-RUNNING latency starts.
    submitted_at: int | None = None
    #: The state before the last ECS event was applied, written by the same write: its result
    #: tells whether that event moved the try to RUNNING (a repeated RUNNING event did not).
    previous_state: TaskState | None = None
    #: The queue profile the try runs with (None: the stack's own settings), and where each
    #: start attempt was placed, in order.
    profile: str | None = None
    placements: list[AttemptPlacement] = Field(default_factory=list)
    #: The current attempt runs on the queue profile's fallback capacity: written with the
    #: retry that scheduled it, so any message that starts the attempt (the retry, a redelivery,
    #: a redrive) starts it there.
    attempt_on_fallback: bool = False
    updated_at: int = Field(default_factory=now_ms)
    created_at: int | None = None
    expires_at: int | None = None

    @field_validator("executor_config", mode="before")
    @classmethod
    def _config_from_json(cls, value: Any) -> Any:
        return json.loads(value) if isinstance(value, str) else value

    @property
    def is_terminal(self) -> bool:
        return self.state.is_terminal

    @field_validator("placements", mode="after")
    @classmethod
    def _one_per_attempt(cls, value: list[AttemptPlacement]) -> list[AttemptPlacement]:
        """One entry per attempt: two deliveries of one run request may both record its start."""
        seen: set[int] = set()
        kept = []
        for placement in value:
            if placement.attempt not in seen:
                seen.add(placement.attempt)
                kept.append(placement)
        return kept

    def outcome(self) -> str:
        """Why this try failed, in one line: reason, exit code, stop code, ECS's stopped reason."""
        parts = [self.reason or "the ECS task failed"]
        if self.exit_code is not None:
            parts.append(f"exit code {self.exit_code}")
        if self.stop_code:
            parts.append(f"stop code {self.stop_code}")
        if self.stopped_reason and self.stopped_reason not in parts[0]:
            parts.append(f"ECS: {self.stopped_reason}")
        return "; ".join(parts)


# ---------------------------------------------------------------------------------------------
# Failed-start event (EventBridge)
# ---------------------------------------------------------------------------------------------


#: How much of a failure reason an alert carries; the state item keeps it whole.
ALERT_REASON_LIMIT = 2000
_ALERT_NAME_LIMIT = 300
#: The most start attempts an alert lists (MaxRunTaskAttempts is at most 20).
_ALERT_PLACEMENTS = 20


class FailedStartDetail(BaseModel):
    """Detail of the ``Airflow Task Start Failed`` event; names the task for a human reader.

    Every text in it is made here from checked values: names come from the parsed task key,
    the reason and owner are cut to size with control and format characters replaced, and the
    one-line ``summary`` the alert shows is written here, not pieced together by EventBridge,
    so no value can break out of the alert's JSON or pass itself off as another line.
    """

    model_config = ConfigDict(defer_build=True)  # only a failed start builds one: built on first use

    key: str
    owner: str
    attempt: int
    reason: str
    cluster: str
    control_plane: str
    summary: str = ""
    task_arn: str | None = None
    dag_id: str = ""
    task_id: str = ""
    run_id: str = ""
    map_index: int = -1
    try_number: int = 0
    submission: str = ""
    #: The queue profile, and where each start attempt was placed.
    profile: str | None = None
    placements: list[AttemptPlacement] = Field(default_factory=list)

    @classmethod
    def build(
        cls,
        *,
        key: str,
        owner: str,
        attempt: int,
        reason: str,
        cluster: str,
        control_plane: str,
        task_arn: str | None = None,
        profile: str | None = None,
        placements: Sequence[AttemptPlacement] = (),
    ) -> FailedStartDetail:
        names: dict[str, Any] = {}
        what = "An Airflow task"
        try:
            parsed = TaskKey.parse(key)
            names = {
                "dag_id": printable(parsed.dag_id, _ALERT_NAME_LIMIT),
                "task_id": printable(parsed.task_id, _ALERT_NAME_LIMIT),
                "run_id": printable(parsed.run_id, _ALERT_NAME_LIMIT),
                "map_index": parsed.map_index,
                "try_number": parsed.try_number,
                "submission": parsed.submission,
            }
            what = (
                f"Airflow task {names['dag_id']}.{names['task_id']} (map index {parsed.map_index}) "
                f"of run {names['run_id']}, try {parsed.try_number},"
            )
        except InvalidTaskKeyError:
            key = printable(key, 1024)
        where = ""
        if profile:  # a try of a queue profile may have moved capacity: say where each attempt ran
            shown = "; ".join(printable(p.describe(), 600) for p in placements[-_ALERT_PLACEMENTS:])
            where = f" (queue profile {printable(profile, _ALERT_NAME_LIMIT)!r}" + (
                f": {shown})" if shown else ")"
            )
        return cls(
            key=key,
            owner=printable(owner, 256),
            attempt=attempt,
            reason=printable(reason, ALERT_REASON_LIMIT),
            cluster=printable(cluster, _ALERT_NAME_LIMIT),
            control_plane=printable(control_plane, _ALERT_NAME_LIMIT),
            summary=f"{what} failed to start on ECS after start attempt {attempt}{where}.",
            task_arn=printable(task_arn, 2048) if task_arn else None,
            profile=printable(profile, _ALERT_NAME_LIMIT) if profile else None,
            placements=[
                p.model_copy(
                    update={
                        "placement": printable(p.placement, 600),
                        "failure": printable(p.failure, 600) if p.failure else None,
                    }
                )
                for p in placements[-_ALERT_PLACEMENTS:]
            ],
            **names,
        )
