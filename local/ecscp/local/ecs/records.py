"""What crosses the process boundary between moto's ECS and the local ECS host, typed.

Two messages, one per direction, so that both sides validate the same shapes:

- :class:`TaskNotice` (moto -> host): RunTask created a task, or StopTask asked for a stop. moto
  keeps every notice until the host has read past it, so none is lost when the host reads late.
- :class:`TaskStateRecord` (host -> moto): the host's one record of a state change. moto applies
  it to its task and turns it into the ``ECS Task State Change`` event, so DescribeTasks and the
  events are two views of one record.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

#: Private paths of the local endpoint: the host long-polls notices and posts records.
NOTICES_PATH = "/_ecscp/ecs/notices"
RECORDS_PATH = "/_ecscp/ecs/records"


class _Message(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ContainerOverride(_Message):
    """One container's override in RunTask: what the host runs and with which environment."""

    name: str
    command: list[str] = Field(default_factory=list, repr=False)  # carries the workload's token
    environment: dict[str, str] = Field(default_factory=dict, repr=False)


class TaskNotice(_Message):
    """RunTask started a task (``run``) or StopTask asked to stop one (``stop``).

    ``log_configurations``: each container's ``logConfiguration`` in the task's task definition
    revision (by container name), which is where the host sends the container's output;
    ``environments``: each container's ``environment`` there, which the override's extends;
    ``capacity_provider``: the capacity provider ECS placed the task on (``FARGATE_SPOT``...),
    empty for a task started with a launch type.
    """

    seq: int
    kind: Literal["run", "stop"]
    task_arn: str
    cluster_arn: str
    task_definition_arn: str = ""
    started_by: str = ""
    created_at: float
    image: str = ""
    overrides: list[ContainerOverride] = Field(default_factory=list)
    stopped_reason: str = ""
    log_configurations: dict[str, dict[str, Any]] = Field(default_factory=dict)
    environments: dict[str, dict[str, str]] = Field(default_factory=dict, repr=False)
    capacity_provider: str = ""


class ContainerState(_Message):
    last_status: Literal["PENDING", "RUNNING", "STOPPED"]
    exit_code: int | None = None
    reason: str | None = None


class TaskStateRecord(_Message):
    """A task's move to ``last_status``, as the host decided it; times are epoch seconds.

    A StopTask that moto received first wins over the record's stop code and reason.
    """

    task_arn: str
    last_status: Literal["PENDING", "RUNNING", "STOPPED"]
    container: ContainerState
    stop_code: str | None = None
    stopped_reason: str | None = None
    pull_started_at: float | None = None
    pull_stopped_at: float | None = None
    started_at: float | None = None
    stopping_at: float | None = None
    stopped_at: float | None = None


NOTICES = TypeAdapter(list[TaskNotice])
RECORDS = TypeAdapter(list[TaskStateRecord])
