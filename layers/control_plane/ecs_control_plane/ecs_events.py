"""ECS task state, and what an "ECS Task State Change" means for a task try (pure)."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from .contract import ACTIVE_STATES, ATTEMPT_ENV, TASK_KEY_ENV, TaskState, TaskStateItem

STARTING_STATUSES = frozenset({"PROVISIONING", "PENDING", "ACTIVATING"})
#: Statuses on the way down: they change nothing until STOPPED says how it ended.
STOPPING_STATUSES = frozenset({"DEACTIVATING", "STOPPING", "DEPROVISIONING"})
TASK_FAILED_TO_START = "TaskFailedToStart"
USER_INITIATED = "UserInitiated"


# Built on first use (pydantic ``defer_build``): run_task never reads an ECS task, the reconciler
# only when it describes tasks, and task_state builds them at import through its event model.
_ECS_MODEL = ConfigDict(extra="ignore", defer_build=True)


class EcsKeyValue(BaseModel):
    model_config = _ECS_MODEL
    name: str
    value: str = ""


class EcsContainerOverride(BaseModel):
    model_config = _ECS_MODEL
    name: str
    command: list[str] | None = Field(default=None, repr=False)
    environment: list[EcsKeyValue] = Field(default_factory=list)


class EcsOverrides(BaseModel):
    model_config = _ECS_MODEL
    containerOverrides: list[EcsContainerOverride] = Field(default_factory=list)  # noqa: N815


class EcsContainer(BaseModel):
    model_config = _ECS_MODEL
    name: str
    lastStatus: str | None = None  # noqa: N815
    exitCode: int | None = None  # noqa: N815
    reason: str | None = None


class EcsTask(BaseModel):
    """The fields of an ECS task (event detail or DescribeTasks entry) that decide its state."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True, defer_build=True)

    task_arn: str = Field(alias="taskArn")
    last_status: str = Field(alias="lastStatus")
    desired_status: str | None = Field(default=None, alias="desiredStatus")
    version: int = 0
    cluster_arn: str | None = Field(default=None, alias="clusterArn")
    started_by: str | None = Field(default=None, alias="startedBy")
    stop_code: str | None = Field(default=None, alias="stopCode")
    stopped_reason: str | None = Field(default=None, alias="stoppedReason")
    started_at: Any = Field(default=None, alias="startedAt")
    containers: list[EcsContainer] = Field(default_factory=list)
    overrides: EcsOverrides = Field(default_factory=EcsOverrides)

    def _override_named(self, name: str) -> EcsContainerOverride | None:
        return next((c for c in self.overrides.containerOverrides if c.name == name), None)

    def airflow_container(self, container_name: str) -> str:
        """The name of the container that carries the task key (the Airflow container).

        That is ``container_name`` unless the task was started before a stack update renamed the
        container (ContainerName): then it is the container the task was started with, so the
        task's events, exit code and command are still found.
        """
        carries_key = [
            c.name
            for c in self.overrides.containerOverrides
            if any(kv.name == TASK_KEY_ENV for kv in c.environment)
        ]
        if container_name in carries_key or not carries_key:
            return container_name
        return carries_key[0]

    def container_override(self, container_name: str) -> EcsContainerOverride | None:
        return self._override_named(self.airflow_container(container_name))

    def environment(self, container_name: str) -> dict[str, str]:
        override = self.container_override(container_name)
        return {kv.name: kv.value for kv in override.environment} if override else {}

    def task_key(self, container_name: str) -> str | None:
        """The task key carried in the Airflow container's environment."""
        return self.environment(container_name).get(TASK_KEY_ENV) or None

    def attempt(self, container_name: str) -> int | None:
        raw = self.environment(container_name).get(ATTEMPT_ENV)
        try:
            return int(raw) if raw else None
        except ValueError:
            return None

    def _container(self, container_name: str) -> EcsContainer | None:
        name = self.airflow_container(container_name)
        return next((c for c in self.containers if c.name == name), None)

    def exit_code(self, container_name: str) -> int | None:
        container = self._container(container_name)
        return container.exitCode if container else None

    def container_reason(self, container_name: str) -> str | None:
        container = self._container(container_name)
        return container.reason if container else None


class Action(str, Enum):
    IGNORE = "IGNORE"
    PROGRESS = "PROGRESS"  # STARTING/RUNNING, or a status with no state change
    FINISH = "FINISH"  # terminal SUCCESS or FAILED after the container ran
    RETRY_START = "RETRY_START"  # failed to start; try again with attempt + 1
    GIVE_UP = "GIVE_UP"  # failed to start for the last time: FAILED + failed-start event


@dataclass(frozen=True)
class Transition:
    action: Action
    state: TaskState | None = None
    reason: str | None = None
    exit_code: int | None = None
    next_attempt: int | None = None
    changes: dict[str, Any] = field(default_factory=dict)


def ecs_fields(task: EcsTask) -> dict[str, Any]:
    """The ECS facts worth keeping on the item."""
    return {
        "task_arn": task.task_arn,
        "ecs_last_status": task.last_status,
        "ecs_version": task.version,
        "stop_code": task.stop_code,
        "stopped_reason": task.stopped_reason,
    }


def plan_transition(
    item: TaskStateItem | None,
    task: EcsTask,
    *,
    container_name: str,
    max_attempts: int,
) -> Transition:
    """Decide what one ECS task state change does to the item of its task try.

    Events arrive late, twice and out of order: an event for another attempt, one not newer
    than the version already applied, or one for a finished item changes nothing. The
    conditional write that applies the result guards the same conditions against races.
    """
    if item is None:
        return Transition(Action.IGNORE, reason="no item for this task key")
    if item.is_terminal:
        return Transition(Action.IGNORE, reason=f"item already {item.state.value}")
    attempt = task.attempt(container_name)
    if attempt is not None and attempt != item.attempt:
        return Transition(Action.IGNORE, reason=f"event for attempt {attempt}, item is at {item.attempt}")
    if item.task_arn and item.task_arn != task.task_arn:
        return Transition(Action.IGNORE, reason="event for another ECS task of this try")
    if item.ecs_version is not None and task.version <= item.ecs_version:
        return Transition(Action.IGNORE, reason=f"version {task.version} not newer than {item.ecs_version}")

    status = task.last_status
    changes = ecs_fields(task)
    if status in STARTING_STATUSES:
        state = item.state if item.state == TaskState.RUNNING else TaskState.STARTING
        return Transition(Action.PROGRESS, state=state, changes=changes)
    if status == "RUNNING":
        return Transition(Action.PROGRESS, state=TaskState.RUNNING, changes=changes)
    if status in STOPPING_STATUSES or status != "STOPPED":
        return Transition(Action.PROGRESS, state=item.state, changes=changes)

    exit_code = task.exit_code(container_name)
    if item.stop_requested or task.stop_code == USER_INITIATED:
        return _stopped_on_request(task, exit_code, changes)
    if _never_started(task, exit_code):
        reason = describe_start_failure(task, container_name)
        if item.attempt < max_attempts:
            return Transition(
                Action.RETRY_START,
                state=TaskState.QUEUED,
                reason=f"start attempt {item.attempt} of {max_attempts} failed: {reason}",
                next_attempt=item.attempt + 1,
                changes=changes,
            )
        return Transition(
            Action.GIVE_UP,
            state=TaskState.FAILED,
            reason=f"task failed to start after {item.attempt} attempt(s): {reason}",
            changes=changes,
        )
    return _finished(task, container_name, exit_code, changes)


@dataclass(frozen=True)
class Presumption:
    """What a transition decided without reading the item takes for granted of it.

    The conditional write that applies the transition checks all of it, so a wrong guess
    changes nothing: the item is then read and the event decided by ``plan_transition``.
    """

    attempt: int
    #: The item is in one of these states (always in flight: a finished item never changes).
    states: frozenset[TaskState] = ACTIVE_STATES
    #: No stop was requested for the try (a requested stop turns any exit into FAILED).
    no_stop_requested: bool = False


def plan_unread_transition(task: EcsTask, *, container_name: str) -> tuple[Transition, Presumption] | None:
    """What the event does to its item in the common case, decided without reading the item.

    The common case: the item is in flight at the event's attempt, for this ECS task or none
    yet, with no newer event applied. Then the outcome depends on the event alone, as
    ``plan_transition`` would decide it. ``state=None`` keeps the item's state. None when
    deciding needs the item: the event carries no attempt, or the task never started (a retry
    is built from the item).
    """
    attempt = task.attempt(container_name)
    if attempt is None:
        return None
    status = task.last_status
    changes = ecs_fields(task)
    if status in STARTING_STATUSES:
        # A RUNNING item stays RUNNING: presume it is not, so such an item is read instead.
        presumed = Presumption(attempt, states=frozenset({TaskState.QUEUED, TaskState.STARTING}))
        return Transition(Action.PROGRESS, state=TaskState.STARTING, changes=changes), presumed
    if status == "RUNNING":
        return Transition(Action.PROGRESS, state=TaskState.RUNNING, changes=changes), Presumption(attempt)
    if status != "STOPPED":
        return Transition(Action.PROGRESS, state=None, changes=changes), Presumption(attempt)
    exit_code = task.exit_code(container_name)
    if task.stop_code == USER_INITIATED:
        return _stopped_on_request(task, exit_code, changes), Presumption(attempt)
    if _never_started(task, exit_code):
        return None
    presumed = Presumption(attempt, no_stop_requested=True)
    return _finished(task, container_name, exit_code, changes), presumed


def _never_started(task: EcsTask, exit_code: int | None) -> bool:
    return task.stop_code == TASK_FAILED_TO_START or (task.started_at is None and exit_code is None)


def _stopped_on_request(task: EcsTask, exit_code: int | None, changes: dict[str, Any]) -> Transition:
    """Stopped on request (Airflow's revoke, or an operator): not a failed start, no retry."""
    why = task.stopped_reason or "stopped on request"
    return Transition(
        Action.FINISH, state=TaskState.FAILED, exit_code=exit_code, reason=f"stopped: {why}", changes=changes
    )


def _finished(
    task: EcsTask, container_name: str, exit_code: int | None, changes: dict[str, Any]
) -> Transition:
    """The container ran and the task stopped: SUCCESS on exit code 0, else FAILED with why."""
    if exit_code == 0:
        return Transition(Action.FINISH, state=TaskState.SUCCESS, exit_code=0, changes=changes)
    if exit_code is None:
        reason = (
            f"ECS task stopped without an exit code: {task.stopped_reason or task.stop_code or 'unknown'}"
        )
    else:
        reason = f"container {container_name!r} exited with code {exit_code}"
        detail = task.container_reason(container_name) or task.stopped_reason
        if detail:
            reason += f" ({detail})"
    return Transition(
        Action.FINISH, state=TaskState.FAILED, exit_code=exit_code, reason=reason, changes=changes
    )


def describe_start_failure(task: EcsTask, container_name: str) -> str:
    parts = [p for p in (task.stopped_reason, task.container_reason(container_name)) if p]
    return "; ".join(dict.fromkeys(parts)) or task.stop_code or "stopped before it started"
