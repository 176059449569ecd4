"""The executor's own Airflow metrics (``Stats``), tagged with its team.

Airflow's ``BaseExecutor`` already emits ``executor.open_slots`` / ``queued_tasks`` /
``running_tasks``. These say what only this executor knows: how the hand-over to SQS goes, what
each sync cost, where the tries it watches are, and what adoption did. Names and tags are
documented in ``docs/executor.md`` ("Metrics"). Every name starts with ``ecs_control_plane.``
and carries its dimension (request kind, state, source) in the name itself, since plain StatsD
drops tags; the same dimension is a tag too, and every metric carries ``team_name`` when the
executor belongs to a team (pruned otherwise, as Airflow prunes it), which a tagging backend
(Datadog, OpenTelemetry, StatsD with ``statsd_influxdb_enabled``) keeps.

Metrics never fail the heartbeat: a backend error is logged once at debug level and dropped.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, Final

from ecs_control_plane.contract import TaskState

PREFIX: Final = "ecs_control_plane"
#: Every state a tracked try can be in, as the gauge reports it: no item read yet
#: ("submitted"), then the state table's states until the try ends (ended tries are not tracked).
TRACKED_STATES: Final = ("submitted", *(s.value for s in TaskState if not s.is_terminal))

log = logging.getLogger(__name__)


def airflow_stats() -> Any:
    """The stats backend the scheduler initialised: the one Airflow's own ``BaseExecutor`` uses.

    3.1 and 3.2 import a ``Stats`` class there, 3.3 a ``stats`` module (same ``incr``/``gauge``/
    ``timing`` calls). The task SDK's copy (``airflow.sdk``'s ``Stats``, what common-compat
    resolves to on 3.3) is not initialised in the scheduler, so metrics sent through it would be
    dropped without a word.
    """
    from airflow.executors import base_executor  # noqa: PLC0415 - loaded with the executor anyway

    namespace = vars(base_executor)
    return namespace.get("Stats") or namespace["stats"]


class ExecutorMetrics:
    """Counters, timers and gauges of one executor instance."""

    def __init__(self, team_name: str | None, stats: Any = None) -> None:
        self._stats = stats
        self._tags: dict[str, str] = {"team_name": team_name} if team_name else {}

    @property
    def stats(self) -> Any:
        if self._stats is None:
            self._stats = airflow_stats()
        return self._stats

    def _emit(self, method: str, name: str, value: float, **tags: str) -> None:
        try:
            getattr(self.stats, method)(f"{PREFIX}.{name}", value, tags={**self._tags, **tags})
        except Exception as exc:  # noqa: BLE001 - a metrics backend must never stop a heartbeat
            log.debug("Could not emit metric %s.%s: %s", PREFIX, name, exc)

    def _incr(self, name: str, count: int, **tags: str) -> None:
        if count > 0:
            self._emit("incr", name, count, **tags)

    # -- the hand-over to SQS ----------------------------------------------------------------

    def requests_sent(self, kind: str, count: int) -> None:
        """Run, stop or adopt requests SQS accepted."""
        self._incr(f"requests.sent.{kind}", count, kind=kind)

    def send_failures(self, kind: str, count: int) -> None:
        """Requests SQS did not take this heartbeat (retried on the next one)."""
        self._incr(f"requests.send_failures.{kind}", count, kind=kind)

    def requests_refused(self, kind: str, count: int) -> None:
        """Requests SQS will never take (their task is failed)."""
        self._incr(f"requests.refused.{kind}", count, kind=kind)

    def tasks_refused(self, count: int = 1) -> None:
        """Workloads failed before sending: a bad executor_config, an unsupported workload."""
        self._incr("tasks.refused", count)

    # -- syncing -----------------------------------------------------------------------------

    def sync_duration(self, milliseconds: float) -> None:
        self._emit("timing", "sync.duration", milliseconds)

    def items_read(self, count: int, source: str) -> None:
        """State items DynamoDB returned, by reader (``changes`` feed or ``safety_net``)."""
        self._incr(f"sync.items_read.{source}", count, source=source)

    def sync_failed(self) -> None:
        self._incr("sync.failures", 1)

    def tries_by_state(self, counts: Mapping[str, int]) -> None:
        """How many tracked tries are in each state (every state is sent, zeros included)."""
        for state in TRACKED_STATES:
            self._emit("gauge", f"tries.{state.lower()}", counts.get(state, 0), state=state.lower())

    def tries_ended(self, state: str) -> None:
        """A try this executor reported finished (``success``/``failed``)."""
        self._incr(f"tries.ended.{state.lower()}", 1, state=state.lower())

    # -- adoption ----------------------------------------------------------------------------

    def adoption(self, adopted: int, pending: int, handed_back: int) -> None:
        """One ``try_adopt_task_instances`` call: tries taken over, still pending, handed back."""
        self._incr("adoption.adopted", adopted)
        self._incr("adoption.pending", pending)
        self._incr("adoption.handed_back", handed_back)
