"""One ECS task as the local container host runs it: what RunTask asked and what happened since.

The host (:mod:`.host`) owns the transitions; this is the record it keeps per task, the summary
the stack reports (``LocalStack.task_records``) and the identity each task's folder holds.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ecs_control_plane.log_location import TaskLogLocation

from .awslogs import ContainerOutput

#: The fields of a task's identity (``tasks/<n>/task.json``).
IDENTITY = (
    "task_arn",
    "key",
    "attempt",
    "cluster_arn",
    "task_definition_arn",
    "container_name",
    "capacity_provider",
)


@dataclass
class LocalTask:
    """One ECS task as the host runs it."""

    number: int
    arn: str
    #: Where ECS runs it: the cluster and the task definition revision RunTask named, the
    #: capacity provider it was placed on (None: a launch type), and its Airflow container.
    cluster_arn: str
    task_definition_arn: str
    container_name: str
    capacity_provider: str | None
    key: str | None
    attempt: int | None
    created_at: float
    image: str
    command: list[str] = field(repr=False)
    environment: dict[str, str] = field(repr=False)
    fail_start: bool = False
    spot_interrupted: bool = False
    #: Where the container's output goes (its awslogs stream), if its task definition says.
    log_location: TaskLogLocation | None = None
    last_status: str = "PROVISIONING"
    started_at: float | None = None
    stopping_at: float | None = None
    stopped_at: float | None = None
    stop_code: str | None = None
    stopped_reason: str | None = None
    exit_code: int | None = None
    process: Any = None
    output: ContainerOutput | None = None
    stop_deadline: float | None = None
    killed: bool = False

    def summary(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "attempt": self.attempt,
            "task_arn": self.arn,
            "cluster_arn": self.cluster_arn,
            "task_definition_arn": self.task_definition_arn,
            "container_name": self.container_name,
            "capacity_provider": self.capacity_provider,
            "last_status": self.last_status,
            "exit_code": self.exit_code,
            "stop_code": self.stop_code,
            "stopped_reason": self.stopped_reason,
            "created_at": self.created_at,
            "started_at": self.started_at,
            "stopped_at": self.stopped_at,
        }

    def identity(self) -> dict[str, Any]:
        """What ``tasks/<n>/task.json`` says of its task: which one, and where ECS ran it."""
        summary = self.summary()
        return {name: summary[name] for name in IDENTITY}
