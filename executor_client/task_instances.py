"""What the scheduler's metadata database says about task instances the executor reports on.

The one read the executor makes of Airflow's database: whether a try was already moved past a
hand-over (the next reschedule poke, a resume), so that a late finish is not reported for it.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from airflow.models.taskinstancekey import TaskInstanceKey

from .workloads import AirflowKey

#: Task instance states in which a finished hand-over of the same try is no news to Airflow.
MOVED_ON_STATES = ("scheduled", "up_for_reschedule", "deferred")


def moved_on(keys: Sequence[AirflowKey], log: logging.Logger | Any) -> set[AirflowKey]:
    """The task instances among ``keys`` that Airflow already moved past this hand-over.

    A reschedule poke's container ends after its task instance went to UP_FOR_RESCHEDULE; by
    the time its exit reaches the executor the scheduler may have put it in SCHEDULED for the
    next poke. Airflow 3.3 then fails the task instance on a finished report for the same try
    (only resumes after a deferral are exempt), so such a report must not be sent. One query
    per sync that has finished items; if the metadata database cannot be read, every outcome
    is reported as before.
    """
    tis = [key for key in keys if isinstance(key, TaskInstanceKey)]
    if not tis:
        return set()
    try:
        from airflow.models.taskinstance import TaskInstance as TI  # noqa: N817, PLC0415
        from airflow.utils.session import create_session  # noqa: PLC0415
        from sqlalchemy import select  # noqa: PLC0415

        condition = TI.filter_for_tis(tis)
        if condition is None:
            return set()
        with create_session() as session:
            rows = session.execute(
                select(TI.dag_id, TI.task_id, TI.run_id, TI.map_index, TI.try_number, TI.state).where(
                    condition
                )
            ).all()
    except Exception as exc:  # noqa: BLE001 - without the database, report as before
        log.debug("Could not read task instance states (%s); reporting every outcome", exc)
        return set()
    waiting = {str(state) for state in MOVED_ON_STATES}
    moved = {
        TaskInstanceKey(dag_id, task_id, run_id, try_number, map_index)
        for dag_id, task_id, run_id, map_index, try_number, state in rows
        if state is not None and str(getattr(state, "value", state)) in waiting
    }
    return {key for key in tis if key in moved}
