"""The baseline: apache-airflow-providers-amazon's ``AwsEcsExecutor``, driven without an Airflow DB."""

# Airflow, moto and the handlers are imported where used: the environment (AIRFLOW_HOME,
# fake credentials, endpoints) must be set before they read it.
# ruff: noqa: PLC0415

from __future__ import annotations

import os
from typing import Any

from .env import CLUSTER, CONTAINER, REGION, TASK_FAMILY, AwsFixture

ENV_PREFIX = "AIRFLOW__AWS_ECS_EXECUTOR__"


def configure(fixture: AwsFixture) -> None:
    """The provider's documented configuration, as environment variables (no airflow.cfg)."""
    assert fixture.network is not None
    os.environ.update(
        {
            f"{ENV_PREFIX}CLUSTER": CLUSTER,
            f"{ENV_PREFIX}CONTAINER_NAME": CONTAINER,
            f"{ENV_PREFIX}TASK_DEFINITION": TASK_FAMILY,
            f"{ENV_PREFIX}LAUNCH_TYPE": "FARGATE",
            f"{ENV_PREFIX}REGION_NAME": REGION,
            f"{ENV_PREFIX}SUBNETS": fixture.network.subnet,
            f"{ENV_PREFIX}SECURITY_GROUPS": fixture.network.security_group,
            f"{ENV_PREFIX}ASSIGN_PUBLIC_IP": "False",
            f"{ENV_PREFIX}CHECK_HEALTH_ON_STARTUP": "False",
            f"{ENV_PREFIX}MAX_RUN_TASK_ATTEMPTS": "3",
            "AIRFLOW_CONN_AWS_DEFAULT": fixture.server.airflow_connection(),
        }
    )


def make_executor(parallelism: int) -> Any:
    """A fresh ``AwsEcsExecutor``; its ECS client is made here, so it is counted."""
    from airflow.providers.amazon.aws.executors.ecs.ecs_executor import AwsEcsExecutor

    executor = AwsEcsExecutor(parallelism=parallelism)  # type: ignore[no-untyped-call]
    # What start() + check_health() would conclude against a healthy cluster; the health call
    # itself is not part of any figure here.
    executor.IS_BOTO_CONNECTION_HEALTHY = True
    return executor


def task_key(executor: Any, workload: Any) -> Any:
    """The key the provider's own ``_process_workloads`` would use for this workload."""
    return executor.get_task_key(workload.ti) if executor.supports_task_instance_uuid else workload.ti.key


def hand_over(executor: Any, workloads: list[Any]) -> list[Any]:
    """What the scheduler's ``_process_workloads`` does per workload: execute_async, then running."""
    keys = []
    for workload in workloads:
        key = task_key(executor, workload)
        executor.execute_async(
            key=key,
            command=[workload],
            queue=workload.ti.queue,
            executor_config=workload.ti.executor_config or {},
        )
        executor.running.add(key)
        keys.append(key)
    return keys


def launch(executor: Any, workloads: list[Any]) -> list[Any]:
    """Hand over and start every workload (RunTask per task, inside the scheduler's heartbeat)."""
    keys = hand_over(executor, workloads)
    executor.attempt_workload_runs()
    return keys


def in_flight(executor: Any) -> int:
    return len(executor.active_workers)


def task_arns(executor: Any) -> list[str]:
    return list(executor.active_workers.get_all_arns())
