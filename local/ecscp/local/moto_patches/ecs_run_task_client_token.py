"""moto's ECS RunTask ignores ``clientToken``: two calls with one token start two tasks.

On AWS the same ``clientToken`` returns the task the first call started. The control plane
passes one token per start attempt, so a redelivered run request (SQS is at least once) would
start a second container on moto. Patched: the same token in the same cluster returns the
tasks it started.
"""

# ruff: noqa: PLC0415

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from ._replace import replace


def apply() -> None:
    from moto.core.responses import ActionResult
    from moto.ecs import responses as ecs_responses

    tokens: dict[tuple[str, str, str, str], list[Any]] = {}
    tokens_lock = threading.Lock()

    def run_task(self: Any) -> ActionResult:
        backend = self.ecs_backend
        cluster_str = self._get_param("cluster", "default")
        token = self._get_param("clientToken")

        def start() -> list[Any]:
            started: list[Any] = backend.run_task(
                cluster_str,
                self._get_param("taskDefinition"),
                self._get_int_param("count", 1),
                self._get_param("overrides"),
                self._get_param("startedBy"),
                self._get_param("tags"),
                self._get_param("launchType"),
                self._get_param("networkConfiguration"),
                self._get_param("group"),
                self._get_param("platformVersion"),
                self._get_param("capacityProviderStrategy"),
            )
            return started

        if not token:
            return ActionResult({"tasks": start(), "failures": []})
        cluster = backend._get_cluster(cluster_str)
        key = (backend.account_id, backend.region_name, cluster.name, str(token))
        with tokens_lock:
            tasks = tokens.get(key)
            if tasks is None:
                tasks = start()
                tokens[key] = tasks
        return ActionResult({"tasks": tasks, "failures": []})

    def make(original: Callable[..., Any]) -> Callable[..., Any]:
        return run_task

    replace(ecs_responses.EC2ContainerServiceResponse, "run_task", __name__, make)
