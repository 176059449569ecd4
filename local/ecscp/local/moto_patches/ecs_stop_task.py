"""moto's ECS StopTask stops a task at once (``lastStatus`` STOPPED) and sets no ``stopCode``.

On AWS StopTask sets ``desiredStatus`` STOPPED and ``stopCode`` UserInitiated; the task stays
RUNNING until its container has stopped (SIGTERM, then SIGKILL after the grace period), and
the final event carries the exit code. The control plane sees the difference: a stop it asked
for must end with ``UserInitiated`` and the container's exit code, not as a task that vanished.
Patched: StopTask records the request and tells the local ECS (:mod:`ecscp.local.ecs.backend`),
which emits the task's event (desired STOPPED) and the host's notice; the host stops the
container and records how the task ended. Tasks placed on a container instance keep moto's
behaviour.
"""

# ruff: noqa: PLC0415

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ._replace import replace
from .ecs_task_lifecycle import find_task, now


def apply() -> None:
    from moto.ecs.models import EC2ContainerServiceBackend

    from ecscp.local.ecs.backend import BACKEND

    def make(stop_task_original: Callable[..., Any]) -> Callable[..., Any]:
        def stop_task(self: Any, cluster_str: str, task_str: str, reason: str) -> Any:
            cluster = self._get_cluster(cluster_str)
            task = find_task(self, cluster.name, task_str)
            if task is None or task.container_instance_arn:
                return stop_task_original(self, cluster_str, task_str, reason)
            with BACKEND.lock:  # not while the host's record of this task is being applied
                if task.desired_status != "STOPPED" and task.last_status != "STOPPED":
                    task.desired_status = "STOPPED"
                    task.stopped_reason = reason or "Task stopped by user"
                    task.stop_code = "UserInitiated"
                    task.stopping_at = now()
                    task.version = int(getattr(task, "version", 1)) + 1
                    BACKEND.stop_requested(task)
            return task

        return stop_task

    replace(EC2ContainerServiceBackend, "stop_task", __name__, make)
