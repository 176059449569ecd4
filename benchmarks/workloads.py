"""Airflow ``ExecuteTask`` workloads built without a metadata database.

Both executors receive the same objects, so the cost of serialising a workload (the command
carries it as JSON) is paid on both sides.
"""

# Airflow, moto and the handlers are imported where used: the environment (AIRFLOW_HOME,
# fake credentials, endpoints) must be set before they read it.
# ruff: noqa: PLC0415

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

#: A signed workload token is a JWT of a few hundred characters; the content is never used here.
_TOKEN = "eyJhbGciOiJIUzUxMiJ9." + "x" * 300 + ".signature"
_DAG_VERSION = uuid.UUID("00000000-0000-4000-8000-000000000001")


def make_workload(index: int, *, batch: str = "b0") -> Any:
    """One task try of a 'bench' DAG run; unique per (batch, index)."""
    from airflow.executors.workloads import BundleInfo, ExecuteTask
    from airflow.executors.workloads.task import TaskInstanceDTO

    run_id = f"manual__bench_{batch}"
    ti = TaskInstanceDTO(
        id=uuid.uuid4(),
        task_id=f"task_{index:05d}",
        dag_id="bench",
        run_id=run_id,
        try_number=1,
        map_index=-1,
        dag_version_id=_DAG_VERSION,
        queue="default",
        pool_slots=1,
        priority_weight=1,
        executor_config={},
    )
    return ExecuteTask(
        ti=ti,
        dag_rel_path=Path("bench.py"),
        token=_TOKEN,
        bundle_info=BundleInfo(name="dags-folder"),
        log_path=f"dag_id=bench/run_id={run_id}/task_id=task_{index:05d}/attempt=1.log",
    )


def make_workloads(count: int, *, batch: str = "b0") -> list[Any]:
    return [make_workload(i, batch=batch) for i in range(count)]
