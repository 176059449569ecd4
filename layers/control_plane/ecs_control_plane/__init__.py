"""Shared package of the Airflow ECS control plane: contract v1, pure domain logic, adapters.

Shipped to Lambda by the layer and installed by pip for the scheduler: one source of truth.
"""

from .contract import (
    CONTRACT_VERSION,
    EVENT_SOURCE,
    FAILED_START_DETAIL_TYPE,
    FailedStartDetail,
    RunRequest,
    TaskKey,
    TaskState,
    TaskStateItem,
)

__all__ = [
    "CONTRACT_VERSION",
    "EVENT_SOURCE",
    "FAILED_START_DETAIL_TYPE",
    "FailedStartDetail",
    "RunRequest",
    "TaskKey",
    "TaskState",
    "TaskStateItem",
]
