"""moto's ECS tasks start RUNNING with exit code 0, advance one state per DescribeTasks, emit no events.

moto creates a task RUNNING, its containers with exit code 0, and (as released) moves it one
state further on each DescribeTasks; it emits no ``ECS Task State Change`` event, and leaves out
the task's ``cpu``/``memory`` (from the task definition) and ``availabilityZone`` (the subnet's).
On AWS a task starts in PROVISIONING with ``version`` 1 and ``createdAt``, its containers have
no exit code until they exit, the agent moves it on, and every change is an event. The control
plane sees the difference: it takes a RUNNING task for started and a stopped one with exit code
0 for a success, it learns of every change from the events, and the reconciler compares
DescribeTasks with them.

Patched: tasks start PROVISIONING, containers PENDING without an exit code and named after the
task, with the task definition's cpu and memory and the subnet's zone; moto's state machine is
pinned; and each task RunTask creates goes to the local ECS (:mod:`ecscp.local.ecs.backend`),
which emits its events and tells the local ECS host to run it. Only the host's records move a
task on.
"""

# moto is imported lazily: the parent process imports this module only for its names.
# ruff: noqa: PLC0415

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

from ._replace import replace

#: Pins moto's ECS task state machine: tasks change state only when the host says so.
PINNED_TRANSITION = {"progression": "manual", "times": 10**12}


def now() -> datetime:
    return datetime.now(timezone.utc)


def find_task(backend: Any, cluster_name: str, task_str: str) -> Any:
    """The task of a cluster named by ARN (or, failing that, by task id); None if there is none."""
    tasks: dict[str, Any] = backend.tasks.get(cluster_name) or {}
    if task_str in tasks:
        return tasks[task_str]
    task_id = task_str.rsplit("/", maxsplit=1)[-1]
    return next((t for arn, t in tasks.items() if arn.split("/")[-1] == task_id), None)


def apply() -> None:
    from moto.ec2.models import ec2_backends
    from moto.ecs import models as ecs_models
    from moto.moto_api import state_manager

    from ecscp.local.ecs.backend import BACKEND

    state_manager.set_transition(model_name="ecs::task", transition=PINNED_TRANSITION)

    def make_init(task_init: Callable[..., None]) -> Callable[..., None]:
        def init(self: Any, cluster: Any, task_definition: Any, *args: Any, **kwargs: Any) -> None:
            task_init(self, cluster, task_definition, *args, **kwargs)
            self._status = "PROVISIONING"
            self.version = 1
            self.created_at = now()
            self.stop_code = None
            self.cpu, self.memory = task_definition.cpu, task_definition.memory
            subnet = next(
                (d["value"] for a in self.attachments for d in a["details"] if d["name"] == "subnetId"), None
            )
            if subnet:
                ec2 = ec2_backends[self._account_id][self.region_name]
                self.availability_zone = ec2.get_subnet(subnet).availability_zone
            for container in self.containers:
                # moto names containers after the task definition; ECS after the task.
                container.task_arn = self.task_arn
                container.container_arn = (
                    f"arn:aws:ecs:{self.region_name}:{self._account_id}:container/"
                    f"{self.cluster_name}/{self.id}/{container.container_arn.rsplit('/', 1)[-1]}"
                )
                container.exitCode = None
                container.last_status = "PENDING"

        return init

    def make_run_task(run_task: Callable[..., list[Any]]) -> Callable[..., list[Any]]:
        def run_task_and_tell_the_host(self: Any, *args: Any, **kwargs: Any) -> list[Any]:
            tasks = run_task(self, *args, **kwargs)
            for task in tasks:
                if not task.container_instance_arn:  # Fargate-like: the local host runs it
                    BACKEND.task_created(task)
            return tasks

        return run_task_and_tell_the_host

    replace(ecs_models.Task, "__init__", __name__, make_init)
    replace(ecs_models.EC2ContainerServiceBackend, "run_task", __name__, make_run_task)
