"""Tasks that wait without holding a worker: a reschedule-mode sensor and a deferring operator.

Both hand the same Airflow try to the executor more than once, so the control plane must start
one ECS task per hand-over (a new submission of the same try), not drop the later ones as
duplicates. ``retries=0`` everywhere: a failure shows as ``failed``, not as a second try.

Expected outcome (the run ends ``success``):

- ``passes_on_third_poke``: a sensor in ``mode="reschedule"`` with a 3 s ``poke_interval``. It
  counts its pokes from ``task_reschedule_count`` (kept in Airflow's database, so it survives
  between the separate containers of each poke): pokes 1 and 2 return False and give the slot
  back, poke 3 returns True and pushes ``3``. State ``success``, try 1, three ECS starts (one per
  poke), three submissions.
- ``defers_and_resumes``: ``execute`` defers to the standard provider's ``TimeDeltaTrigger``
  (3 s, run by the triggerer) and its container ends; when the trigger fires, the same try
  resumes in a new container in ``resume``, which checks that the timer's moment has passed. State
  ``success``, try 1, two ECS starts, two submissions.
- ``runs_after_both``: downstream of both; checks the sensor's poke count and the operator's
  measured wait through XCom. State ``success``, try 1, one ECS start.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any, NoReturn

import pendulum
from airflow.providers.standard.triggers.temporal import TimeDeltaTrigger
from airflow.sdk import BaseOperator, Context, PokeReturnValue, dag, get_current_context, task

POKE_INTERVAL_SECONDS = 3
SUCCESS_POKE = 3
DEFER_SECONDS = 3
#: Long enough for a busy machine, short enough that a lost poke or resume fails the demo in time.
WAIT_LIMIT = timedelta(minutes=5)


class DefersAndResumes(BaseOperator):
    """Defers to a timer trigger, then finishes in ``resume`` in a new container."""

    def execute(self, context: Context) -> NoReturn:
        self.defer(
            trigger=TimeDeltaTrigger(timedelta(seconds=DEFER_SECONDS)),
            method_name="resume",
            timeout=WAIT_LIMIT,
        )

    def resume(self, context: Context, event: datetime | None = None) -> dict[str, Any]:
        # The timer's event is the moment it was set for: DEFER_SECONDS after execute deferred.
        if not isinstance(event, datetime):
            raise RuntimeError(f"resumed without the timer's event (got {event!r})")
        now = datetime.now(timezone.utc)
        if now < event:
            raise RuntimeError(f"resumed at {now.isoformat()}, before the timer's {event.isoformat()}")
        waited = (now - event).total_seconds() + DEFER_SECONDS
        return {"waited_seconds": waited, "try_number": context["ti"].try_number}


@dag(
    dag_id="ecscp_waiting_tasks",
    schedule=None,
    start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
    catchup=False,
    tags=["ecscp-example"],
    doc_md=__doc__,
    default_args={"retries": 0},
)
def ecscp_waiting_tasks() -> None:
    @task.sensor(
        mode="reschedule",
        poke_interval=POKE_INTERVAL_SECONDS,
        timeout=WAIT_LIMIT.total_seconds(),
        retries=0,
    )
    def passes_on_third_poke() -> PokeReturnValue:
        # 0 on the first poke, one more for every reschedule of this try.
        poke = get_current_context()["task_reschedule_count"] + 1
        return PokeReturnValue(is_done=poke >= SUCCESS_POKE, xcom_value=poke)

    @task(retries=0)
    def runs_after_both(poke: int, resumed: dict[str, Any]) -> None:
        if poke != SUCCESS_POKE:
            raise RuntimeError(f"the sensor succeeded on poke {poke}, expected {SUCCESS_POKE}")
        if resumed["waited_seconds"] < DEFER_SECONDS or resumed["try_number"] != 1:
            raise RuntimeError(f"the deferred operator resumed unexpectedly: {resumed}")

    deferred = DefersAndResumes(task_id="defers_and_resumes", retries=0)
    runs_after_both(passes_on_third_poke(), deferred.output)  # type: ignore[arg-type]


ecscp_waiting_tasks()
