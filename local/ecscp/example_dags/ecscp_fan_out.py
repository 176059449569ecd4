"""Twenty independent tasks that become runnable at the same moment.

Expected outcome: every ``work_NN`` task succeeds on try 1 after one control-plane start;
the run succeeds. The executor sends the twenty run requests in batches and the tasks run
as far in parallel as ``[core] parallelism`` allows.
"""

from __future__ import annotations

import time

import pendulum
from airflow.sdk import dag, task

FAN_OUT_WIDTH = 20


@dag(
    dag_id="ecscp_fan_out",
    schedule=None,
    start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
    catchup=False,
    tags=["ecscp-example"],
    doc_md=__doc__,
)
def ecscp_fan_out() -> None:
    @task
    def work(index: int) -> int:
        time.sleep(1)
        return index

    for index in range(FAN_OUT_WIDTH):
        work.override(task_id=f"work_{index:02d}")(index)


ecscp_fan_out()
