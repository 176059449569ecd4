"""moto's ECS DescribeTasks matches a task whenever its id is a substring of a requested string.

moto compares every task in every cluster with every requested string by substring search:
one call costs tasks x requested string searches (the reconciler's sync of N tasks grows with
N squared), and a string that merely contains a task id returns that task. AWS matches a full
ARN or a task id. Patched: the same full-ARN and task-id matches, as set look-ups; a string
that only contains an id matches nothing. The benchmarks' moto applies it too.
"""

# ruff: noqa: PLC0415

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ._replace import replace


def apply() -> None:
    from moto.ecs.exceptions import InvalidParameterException
    from moto.ecs.models import EC2ContainerServiceBackend

    def describe_tasks(self: Any, cluster_str: str, tasks: list[str]) -> list[Any]:
        self._get_cluster(cluster_str)
        if not tasks:
            raise InvalidParameterException("Tasks cannot be empty.")
        wanted = set(tasks)
        wanted_ids = {t.split("/")[-1] for t in tasks}
        response = []
        for cluster_tasks in self.tasks.values():
            for task_arn, task in cluster_tasks.items():
                if task_arn in wanted or task.task_arn in wanted or task_arn.split("/")[-1] in wanted_ids:
                    task.advance()
                    response.append(task)
        return response

    def make(original: Callable[..., Any]) -> Callable[..., Any]:
        return describe_tasks

    replace(EC2ContainerServiceBackend, "describe_tasks", __name__, make)
