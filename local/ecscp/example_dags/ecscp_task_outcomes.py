"""Task outcomes that Airflow decides: a failure, an Airflow retry, executor_config; and a log.

Expected outcome (the run ends ``failed`` because of ``always_fails``):

- ``always_fails``: raises on its only try; state ``failed``, try 1, one control-plane start.
- ``passes_on_retry``: ``retries=2``; raises on try 1, succeeds on try 2; state ``success``,
  try 2, one control-plane start for try 2 (each Airflow try is a new task key).
- ``reads_executor_config``: its ``executor_config`` adds ``ECSCP_EXAMPLE_FLAG`` to the
  container's environment through a ``containerOverrides`` entry; the task fails unless it
  sees the value. State ``success``, try 1, one start.
- ``logs_while_running``: prints ``LOG_MARKER`` and sleeps 20 s. While it sleeps, its log in
  the UI (and the REST API's log endpoint) shows its ECS container's log, read by the
  executor's ``get_task_log`` from the container's CloudWatch Logs stream (the local stack sets
  ``read_task_logs``). A high ``priority_weight``, so that it starts before the fan-out fills
  the slots. State ``success``, try 1, one start.
"""

from __future__ import annotations

import os
import time
from datetime import timedelta

import pendulum
from airflow.sdk import dag, get_current_context, task

FLAG_ENV = "ECSCP_EXAMPLE_FLAG"
FLAG_VALUE = "from-executor-config"
LOG_MARKER = "ecscp example: a line printed while the task runs"
LOG_SLEEP_SECONDS = 20


@dag(
    dag_id="ecscp_task_outcomes",
    schedule=None,
    start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
    catchup=False,
    tags=["ecscp-example"],
    doc_md=__doc__,
)
def ecscp_task_outcomes() -> None:
    @task
    def always_fails() -> None:
        raise RuntimeError("this task fails on purpose")

    @task(retries=2, retry_delay=timedelta(seconds=3))
    def passes_on_retry() -> int:
        try_number: int = get_current_context()["ti"].try_number
        if try_number < 2:
            raise RuntimeError(f"try {try_number} fails on purpose; Airflow retries it")
        return try_number

    @task(
        executor_config={
            "overrides": {
                "containerOverrides": [
                    {"name": "airflow", "environment": [{"name": FLAG_ENV, "value": FLAG_VALUE}]}
                ]
            }
        }
    )
    def reads_executor_config() -> str:
        value = os.environ.get(FLAG_ENV)
        if value != FLAG_VALUE:
            raise RuntimeError(f"{FLAG_ENV}={value!r}: executor_config did not reach the container")
        return value

    @task(priority_weight=100)
    def logs_while_running() -> None:
        print(LOG_MARKER, flush=True)
        time.sleep(LOG_SLEEP_SECONDS)

    always_fails()
    passes_on_retry()
    reads_executor_config()
    logs_while_running()


ecscp_task_outcomes()
