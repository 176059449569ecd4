"""Queue profiles: a task's ``queue`` chooses how and where the control plane runs it on ECS.

The local stack deploys two profiles (``ecscp.local.ecs.profiles``, template parameter
``QueueProfiles``): ``large`` runs the task definition ``airflow-large``, whose Airflow container
is named ``worker``, at a larger size, and lets its tasks set only ``overrides.memory`` and
``tags``; ``spot`` runs the stack's own task definition on ``FARGATE_SPOT`` and falls back to
``FARGATE`` for the next start after a capacity failure. Each local task definition tells its
container which one it is (``ECSCP_TASK_SIZE``). ``ECSCP_LOCAL_SPOT_UNAVAILABLE=N`` in a task's
container environment makes the local ECS host interrupt its first N starts placed on
``FARGATE_SPOT`` before they start (stop code ``SpotInterruption``), the way Fargate does when it
reclaims Spot capacity. A real ECS cluster ignores the variable.

Expected outcome (the run ends ``failed`` because of ``refused_by_its_profile``):

- ``on_the_stack_defaults``: no queue, so no profile: the stack's task definition and container;
  it checks ``ECSCP_TASK_SIZE`` is ``standard``. State ``success``, try 1, one ECS start.
- ``on_the_large_profile``: ``queue="large"``: ECS runs ``airflow-large`` and its container
  ``worker``; it checks ``ECSCP_TASK_SIZE`` is ``large``. State ``success``, try 1, one start.
- ``falls_back_to_on_demand``: ``queue="spot"``, and its executor_config sets
  ``ECSCP_LOCAL_SPOT_UNAVAILABLE=1`` in the ``airflow`` container's environment: the first start
  on ``FARGATE_SPOT`` is interrupted before it starts; the control plane starts the next attempt
  on the profile's fallback, ``FARGATE``, and the task runs there. State ``success``, try 1, two
  ECS starts (the item's ``placements``: attempt 1 FARGATE_SPOT, attempt 2 FARGATE, fallback).
- ``refused_by_its_profile``: ``queue="large"`` with an executor_config that sets
  ``overrides.containerOverrides`` (an environment variable), which the ``large`` profile does
  not allow: the control plane refuses it before RunTask, with a reason naming that key and the
  queue, and an "Airflow Task Start Failed" alert names it. State ``failed``, try 1, no ECS start.

An executor_config names the stack's Airflow container (``airflow``, its ``ContainerName``), also
for a profile whose container is named otherwise: the control plane applies it to the profile's
container (``worker``).
"""

from __future__ import annotations

import os
from typing import Any

import pendulum
from airflow.sdk import dag, task

from ecscp.local.ecs.profiles import (
    LARGE_QUEUE,
    LARGE_SIZE,
    SPOT_QUEUE,
    STANDARD_CONTAINER_NAME,
    STANDARD_SIZE,
    TASK_SIZE_ENV,
)

SPOT_UNAVAILABLE_ENV = "ECSCP_LOCAL_SPOT_UNAVAILABLE"


def container_environment(container: str, name: str, value: str) -> dict[str, Any]:
    """executor_config that adds ``name=value`` to ``container``'s environment."""
    return {
        "overrides": {
            "containerOverrides": [{"name": container, "environment": [{"name": name, "value": value}]}]
        }
    }


def check_task_size(expected: str) -> str:
    size = os.environ.get(TASK_SIZE_ENV)
    if size != expected:
        raise RuntimeError(f"{TASK_SIZE_ENV}={size!r}: expected the {expected!r} task definition")
    return size


@dag(
    dag_id="ecscp_queue_profiles",
    schedule=None,
    start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
    catchup=False,
    tags=["ecscp-example"],
    doc_md=__doc__,
)
def ecscp_queue_profiles() -> None:
    @task
    def on_the_stack_defaults() -> str:
        return check_task_size(STANDARD_SIZE)

    @task(queue=LARGE_QUEUE)
    def on_the_large_profile() -> str:
        return check_task_size(LARGE_SIZE)

    @task(
        queue=SPOT_QUEUE,
        executor_config=container_environment(STANDARD_CONTAINER_NAME, SPOT_UNAVAILABLE_ENV, "1"),
    )
    def falls_back_to_on_demand() -> str:
        return check_task_size(STANDARD_SIZE)

    @task(
        queue=LARGE_QUEUE,
        executor_config=container_environment(STANDARD_CONTAINER_NAME, "ECSCP_EXAMPLE_FLAG", "refused"),
    )
    def refused_by_its_profile() -> None:
        raise AssertionError("the large profile does not allow containerOverrides: this never starts")

    on_the_stack_defaults()
    on_the_large_profile()
    falls_back_to_on_demand()
    refused_by_its_profile()


ecscp_queue_profiles()
