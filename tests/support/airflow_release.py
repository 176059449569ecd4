"""The running Airflow release and what it offers an executor: the tests' version gates.

``make test-compat`` runs the unit and executor tests on each supported release (3.1, 3.2, 3.3).
Workload classes moved between releases; they are imported here, once, from where the running
release keeps them. A test that needs what an older release lacks skips by one of the marks
below, whose reason names the release; the mark is inert on the releases that have it.
"""

from __future__ import annotations

import importlib.util
from importlib.metadata import version
from typing import Any

import pytest
from airflow.executors import workloads as _workloads
from airflow.executors.base_executor import BaseExecutor
from packaging.version import Version

__all__ = [
    "AIRFLOW_VERSION",
    "EXECUTOR_CALLBACKS",
    "PRE_ASSIGNS_EXTERNAL_EXECUTOR_ID",
    "RELEASE",
    "WORKLOADS_PACKAGE",
    "BundleInfo",
    "CallbackDTO",
    "CallbackState",
    "DagSerialization",
    "ExecuteCallback",
    "ExecuteTask",
    "TaskInstanceDTO",
    "callback_key",
    "requires",
    "requires_executor_callbacks",
    "requires_pre_assigned_ids",
    "requires_runnable_callbacks",
    "task_workload",
]

#: The running release, e.g. "3.1.8", and its (major, minor).
AIRFLOW_VERSION = version("apache-airflow-core")
RELEASE = Version(AIRFLOW_VERSION).release[:2]

#: The workload models are a package (base, task, callback, ...) from 3.2 on; one module in 3.1.
WORKLOADS_PACKAGE = hasattr(_workloads, "__path__")
#: The scheduler queues ExecuteCallback workloads for executors that support them (3.2 on).
EXECUTOR_CALLBACKS = (
    WORKLOADS_PACKAGE and importlib.util.find_spec("airflow.executors.workloads.callback") is not None
)
#: The scheduler gives each queueing of a task instance its external_executor_id before handing it
#: over (3.2.2 and 3.3 do; 3.1 records the id the executor reports with RUNNING instead).
PRE_ASSIGNS_EXTERNAL_EXECUTOR_ID = hasattr(BaseExecutor, "pre_assigns_external_executor_id")

ExecuteTask: Any
BundleInfo: Any
TaskInstanceDTO: Any
ExecuteCallback: Any = None
CallbackDTO: Any = None
CallbackState: Any = None
if WORKLOADS_PACKAGE:
    from airflow.executors.workloads.base import BundleInfo
    from airflow.executors.workloads.task import ExecuteTask, TaskInstanceDTO
else:  # Airflow 3.1
    from airflow.executors.workloads import BundleInfo, ExecuteTask
    from airflow.executors.workloads import TaskInstance as TaskInstanceDTO
if EXECUTOR_CALLBACKS:
    from airflow.executors.workloads.callback import CallbackDTO, ExecuteCallback
    from airflow.utils.state import CallbackState

DagSerialization: Any
try:  # renamed in 3.2
    from airflow.serialization.serialized_objects import DagSerialization
except ImportError:  # Airflow 3.1
    from airflow.serialization.serialized_objects import SerializedDAG as DagSerialization


def callback_key(callback_id: str) -> Any:
    """Airflow's key of a callback workload: a ``CallbackKey`` with ``.id`` from 3.3, the id in 3.2."""
    from airflow.models.callback import CallbackKey  # noqa: PLC0415 - absent before 3.2

    return callback_id if CallbackKey is str else CallbackKey(id=callback_id)


def requires(available: object, what: str) -> pytest.MarkDecorator:
    """Skip on a release without ``what`` (which says which releases have it)."""
    return pytest.mark.skipif(not available, reason=f"Airflow {AIRFLOW_VERSION} has no {what}")


requires_executor_callbacks = requires(EXECUTOR_CALLBACKS, "executor callbacks (ExecuteCallback, 3.2 on)")
requires_runnable_callbacks = requires(
    EXECUTOR_CALLBACKS and hasattr(BaseExecutor, "run_workload"),
    "task runner that runs a callback in a container (3.3 on; 3.2's callbacks are failed at once)",
)
requires_pre_assigned_ids = requires(
    PRE_ASSIGNS_EXTERNAL_EXECUTOR_ID,
    "external_executor_id pre-assigned by the scheduler at queueing (3.2.2 and 3.3 have it)",
)


def task_workload(
    dag_id: str, task_id: str, *, executor_config: Any = None, token: str = "", try_number: int = 1
) -> Any:
    """An ExecuteTask as this release's scheduler hands one over (a pre-assigned id where it does)."""
    import uuid  # noqa: PLC0415
    from pathlib import Path  # noqa: PLC0415

    assigned = {"external_executor_id": uuid.uuid4().hex} if PRE_ASSIGNS_EXTERNAL_EXECUTOR_ID else {}
    ti = TaskInstanceDTO(
        id=uuid.uuid4(),
        dag_id=dag_id,
        task_id=task_id,
        run_id="manual__2026-12-02T10:00:00+00:00",
        try_number=try_number,
        map_index=-1,
        dag_version_id=uuid.uuid4(),
        pool_slots=1,
        priority_weight=1,
        queue="default",
        executor_config=executor_config,
        **assigned,
    )
    return ExecuteTask(
        ti=ti,
        dag_rel_path=Path(f"{dag_id}.py"),
        token=token,
        log_path=f"dag_id={dag_id}/task_id={task_id}/attempt={try_number}.log",
        bundle_info=BundleInfo(name="dags-folder"),
    )
