"""The queue profiles of the spec's example (issue 15), as an operator passes them to the stack.

Three queues: ``default`` on Fargate Spot falling back to Fargate, ``critical`` on Fargate with no
executor_config, and ``large`` on a task definition and task role of its own, which the two
lists beside ``QueueProfiles`` must name.
"""

from __future__ import annotations

import json
from typing import Any, Final

from tests.support.iam_policies import ACCOUNT

#: Capacity provider strategies of one provider each, as profiles and RunTask calls carry them.
SPOT: Final = [{"capacityProvider": "FARGATE_SPOT", "weight": 1}]
ON_DEMAND: Final = [{"capacityProvider": "FARGATE", "weight": 1}]

LARGE_FAMILY: Final = "airflow-large"
LARGE_TASK_ROLE: Final = f"arn:aws:iam::{ACCOUNT}:role/airflow-large-task"

EXAMPLE_PROFILES: Final[dict[str, Any]] = {
    "default": {
        "taskDefinition": "airflow-task",
        "capacityProviderStrategy": [{"capacityProvider": "FARGATE_SPOT", "weight": 1}],
        "fallbackCapacityProviderStrategy": [{"capacityProvider": "FARGATE", "weight": 1}],
    },
    "critical": {
        "taskDefinition": "airflow-task",
        "capacityProviderStrategy": [{"capacityProvider": "FARGATE", "weight": 1}],
        "allowedExecutorConfig": [],
    },
    "large": {
        "taskDefinition": LARGE_FAMILY,
        "containerName": "airflow",
        "launchType": "FARGATE",
        "cpu": "4096",
        "memory": "30720",
        "taskRoleArn": LARGE_TASK_ROLE,
        "allowedExecutorConfig": ["overrides.memory", "tags"],
    },
}

#: The parameters of a stack deployed with the example: compact JSON, as the description asks.
EXAMPLE_PARAMETERS: Final = {
    "QueueProfiles": json.dumps(EXAMPLE_PROFILES, separators=(",", ":")),
    "QueueProfileTaskDefinitionFamilies": LARGE_FAMILY,
    "QueueProfileRoleArns": LARGE_TASK_ROLE,
}
