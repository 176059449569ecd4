"""Airflow executor for the ECS control plane: ``executor_client.EcsControlPlaneExecutor``.

The executor class is loaded on first access, so that importing this package (which Airflow's
providers manager does to read ``provider.py``) pulls in neither Airflow's executor machinery
nor boto3.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .executor import EcsControlPlaneExecutor

__all__ = ["EcsControlPlaneExecutor"]


def __getattr__(name: str) -> Any:
    if name == "EcsControlPlaneExecutor":
        from .executor import EcsControlPlaneExecutor  # noqa: PLC0415 - lazy on purpose

        return EcsControlPlaneExecutor
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
