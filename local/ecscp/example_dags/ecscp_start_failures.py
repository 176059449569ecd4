"""Container starts that fail, and the control plane's start retries.

``ECSCP_LOCAL_FAIL_STARTS=N`` in a task's container environment tells the local ECS runner
to fail the first N starts of that task (stop code ``TaskFailedToStart``), the way a
Fargate capacity shortage would. A real ECS cluster ignores the variable.

Expected outcome (the run ends ``failed`` because of ``never_starts``):

- ``starts_on_second_attempt``: the first start fails, the control plane retries it with
  back-off, the second start runs the task; state ``success``, try 1, two starts.
- ``never_starts``: every start fails; after ``MaxRunTaskAttempts`` (3 locally) the control
  plane marks it failed and publishes an "Airflow Task Start Failed" alert that names it;
  the executor reports the failure; state ``failed``, try 1, three starts.
"""

from __future__ import annotations

from typing import Any

import pendulum
from airflow.sdk import dag, task

FAIL_STARTS_ENV = "ECSCP_LOCAL_FAIL_STARTS"


def failing_starts(count: int) -> dict[str, Any]:
    """executor_config that makes the local ECS runner fail the first ``count`` starts."""
    return {
        "overrides": {
            "containerOverrides": [
                {"name": "airflow", "environment": [{"name": FAIL_STARTS_ENV, "value": str(count)}]}
            ]
        }
    }


@dag(
    dag_id="ecscp_start_failures",
    schedule=None,
    start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
    catchup=False,
    tags=["ecscp-example"],
    doc_md=__doc__,
)
def ecscp_start_failures() -> None:
    @task(executor_config=failing_starts(1))
    def starts_on_second_attempt() -> str:
        return "started after one failed start"

    @task(executor_config=failing_starts(99))
    def never_starts() -> None:
        raise AssertionError("the local ECS runner should never have started this task")

    starts_on_second_attempt()
    never_starts()


ecscp_start_failures()
