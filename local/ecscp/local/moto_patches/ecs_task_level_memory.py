"""moto's ECS RunTask fails for a task definition whose containers have no memory of their own.

moto as released adds up each container's ``memory`` (or ``memoryReservation``) to place the
task, and a container without either makes RunTask fail with HTTP 500 (a ``TypeError``). On AWS
a Fargate task definition usually sets memory for the task only (``Memory`` at task level, as the
template's created task definition does), and RunTask starts it. Patched: such a container counts
for nothing, and the task needs at least its task definition's memory, as ECS reserves it.
"""

# ruff: noqa: PLC0415

from __future__ import annotations

from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

from ._replace import replace

_MEMORY_KEYS = ("memory", "memoryReservation", "Memory", "MemoryReservation")


def _has_memory(container: dict[str, Any]) -> bool:
    return any(container.get(key) is not None for key in _MEMORY_KEYS)


def apply() -> None:
    from moto.ecs.models import EC2ContainerServiceBackend

    def make(original: Any) -> Any:
        calculate: Callable[[Any], dict[str, Any]] = original.__func__

        def requirements(task_definition: Any) -> dict[str, Any]:
            containers = task_definition.container_definitions
            if all(_has_memory(c) for c in containers):
                return calculate(task_definition)
            counted = [c if _has_memory(c) else {**c, "memory": 0} for c in containers]
            needed = calculate(SimpleNamespace(container_definitions=counted))
            needed["MEMORY"] = max(needed["MEMORY"], int(task_definition.memory or 0))
            return needed

        return staticmethod(requirements)

    replace(EC2ContainerServiceBackend, "_calculate_task_resource_requirements", __name__, make)
