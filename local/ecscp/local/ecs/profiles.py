"""The queue profiles the local stack deploys with, in one place.

Two of them (the template parameter ``QueueProfiles``), each showing one thing a profile does:

- ``large``: a second task definition (``airflow-large``, created by :mod:`.setup`) whose
  Airflow container has another name (``worker``), so a task on it proves that the control plane
  and the local ECS host both run the profile's container; a larger task size; and a narrower
  executor_config allow-list.
- ``spot``: the stack's own task definition on ``FARGATE_SPOT``, falling back to ``FARGATE``
  for the next start after a capacity failure (the local ECS host's
  ``ECSCP_LOCAL_SPOT_UNAVAILABLE`` makes one).

Each container's task definition sets :data:`TASK_SIZE_ENV`, so a task can tell which one it
runs in. The setup, the parameters, the example DAG ``ecscp_queue_profiles`` and the e2e tests
read their names from here. No import beyond the standard library: a DAG file imports it.
"""

from __future__ import annotations

import json
from typing import Any

#: Set by each local task definition in its Airflow container's environment.
TASK_SIZE_ENV = "ECSCP_TASK_SIZE"
STANDARD_SIZE = "standard"
LARGE_SIZE = "large"

#: The stack's own task definition family and its Airflow container.
STANDARD_TASK_FAMILY = "airflow"
STANDARD_CONTAINER_NAME = "airflow"

LARGE_QUEUE = "large"
LARGE_TASK_FAMILY = "airflow-large"
LARGE_CONTAINER_NAME = "worker"
LARGE_CPU = "1024"
LARGE_MEMORY = "4096"

SPOT_QUEUE = "spot"
SPOT = "FARGATE_SPOT"
ON_DEMAND = "FARGATE"
#: The capacity providers the local cluster has.
CAPACITY_PROVIDERS = (ON_DEMAND, SPOT)

#: Queue name -> profile, as the template parameter QueueProfiles takes it.
QUEUE_PROFILES: dict[str, dict[str, Any]] = {
    LARGE_QUEUE: {
        "taskDefinition": LARGE_TASK_FAMILY,
        "containerName": LARGE_CONTAINER_NAME,
        "cpu": LARGE_CPU,
        "memory": LARGE_MEMORY,
        "allowedExecutorConfig": ["overrides.memory", "tags"],
    },
    SPOT_QUEUE: {
        "taskDefinition": STANDARD_TASK_FAMILY,
        "capacityProviderStrategy": [{"capacityProvider": SPOT, "weight": 1}],
        "fallbackCapacityProviderStrategy": [{"capacityProvider": ON_DEMAND, "weight": 1}],
        "allowedExecutorConfig": ["overrides.containerOverrides.environment"],
    },
}


def queue_profiles_parameter() -> str:
    """QueueProfiles as compact JSON (a CloudFormation parameter value)."""
    return json.dumps(QUEUE_PROFILES, separators=(",", ":"))
