"""Run requests as the executor sends them, with a workload token to hunt for."""

from __future__ import annotations

import json
from typing import Any

from ecs_control_plane.contract import RunRequest, TaskKey

#: A recognisable fake workload token: it must never appear in the table or the logs.
SECRET_TOKEN = "eyJhbGciOiJIUzUxMiJ9.SECRET-WORKLOAD-TOKEN.c2lnbmF0dXJl"


def task_key(
    task_id: str = "extract", *, dag_id: str = "example", try_number: int = 1, map_index: int = -1
) -> str:
    return TaskKey(dag_id, task_id, "manual__2026-11-25T10:00:00+00:00", map_index, try_number).encode()


def workload_command(key: str) -> list[str]:
    workload = {"token": SECRET_TOKEN, "ti": {"key": key}, "dag_rel_path": "example.py"}
    return [
        "python",
        "-m",
        "airflow.sdk.execution_time.execute_workload",
        "--json-string",
        json.dumps(workload),
    ]


def run_request(
    key: str | None = None,
    *,
    owner: str = "scheduler-a",
    attempt: int = 1,
    queue: str | None = "default",
    **fields: Any,
) -> RunRequest:
    key = key or task_key()
    return RunRequest(
        kind="run",
        key=key,
        owner=owner,
        command=workload_command(key),
        queue=queue,
        attempt=attempt,
        **fields,
    )


def stop_request(key: str, *, owner: str = "scheduler-a") -> RunRequest:
    return RunRequest(kind="stop", key=key, owner=owner, reason="revoked by the scheduler")
