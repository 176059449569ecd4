"""The executor's own Airflow metrics, driven through moto and the real handlers.

A recording stand-in takes the place of Airflow's stats backend; each test asserts the metrics a
scheduler operator would graph: sends, send failures, sync duration and items read, tries by
state, ends, adoption counts, all tagged with the team.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import pytest

from ecs_control_plane.gateways import BatchSendResult
from executor_client import EcsControlPlaneExecutor
from executor_client import config as cfg
from executor_client.metrics import ExecutorMetrics
from tests.support.airflow_release import task_workload
from tests.support.aws import MockedControlPlane


class RecordingStats:
    """Airflow's Stats calls (incr, gauge, timing), recorded with their tags."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, float, dict[str, Any]]] = []

    def incr(self, stat: str, count: int = 1, rate: float | None = None, *, tags: dict[str, Any]) -> None:
        self.calls.append(("incr", stat, count, tags))

    def gauge(self, stat: str, value: float, rate: float | None = None, *, tags: dict[str, Any]) -> None:
        self.calls.append(("gauge", stat, value, tags))

    def timing(self, stat: str, dt: float, *, tags: dict[str, Any]) -> None:
        self.calls.append(("timing", stat, dt, tags))

    def total(self, stat: str, **tags: str) -> float:
        return sum(v for kind, s, v, t in self.calls if kind == "incr" and s == stat and _has(t, tags))

    def last_gauges(self, prefix: str) -> dict[str, float]:
        """The latest value of each gauge named ``<prefix>.<state>``, by state; its tag agrees."""
        latest: dict[str, float] = {}
        for kind, s, v, t in self.calls:
            if kind == "gauge" and s.startswith(f"{prefix}."):
                state = s[len(prefix) + 1 :]
                assert t["state"] == state
                latest[state] = v
        return latest

    def tags_of(self) -> dict[str, set[Any]]:
        seen: dict[str, set[Any]] = defaultdict(set)
        for _, stat, _, tags in self.calls:
            seen[stat].add(tags.get("team_name"))
        return seen


def _has(tags: dict[str, Any], wanted: dict[str, str]) -> bool:
    return all(tags.get(k) == v for k, v in wanted.items())


@pytest.fixture
def recorded(monkeypatch: pytest.MonkeyPatch) -> RecordingStats:
    stats = RecordingStats()
    monkeypatch.setattr("executor_client.metrics.airflow_stats", lambda: stats)
    return stats


def _executor(
    monkeypatch: pytest.MonkeyPatch, plane: MockedControlPlane, team: str | None
) -> EcsControlPlaneExecutor:
    monkeypatch.setenv("AIRFLOW_CONN_AWS_DEFAULT", '{"conn_type": "aws"}')
    for key, value in {
        cfg.QUEUE_URL: plane.queue_url,
        cfg.STATE_TABLE: plane.table_name,
        cfg.REGION_NAME: "us-east-1",
    }.items():
        monkeypatch.setenv(cfg.env_name(key, team), value)
    executor = EcsControlPlaneExecutor(team_name=team) if team else EcsControlPlaneExecutor()
    executor.start()
    return executor


def test_a_teams_task_is_counted_from_send_to_end_with_the_team_tag(
    control_plane_aws: MockedControlPlane, monkeypatch: pytest.MonkeyPatch, recorded: RecordingStats
):
    # GIVEN team_a's executor and two tasks
    plane = control_plane_aws
    executor = _executor(monkeypatch, plane, "team_a")
    works = [task_workload("metrics", "first"), task_workload("metrics", "second")]
    for work in works:
        executor.queue_workload(work, session=None)  # type: ignore[arg-type]
    # WHEN they are sent, started, and one succeeds while the other still runs
    executor.heartbeat()
    submitted = recorded.last_gauges("ecs_control_plane.tries")
    plane.deliver()
    executor.sync()
    started = recorded.last_gauges("ecs_control_plane.tries")
    first = executor.current_submission(works[0].ti.key)
    second = executor.current_submission(works[1].ti.key)
    assert first
    assert second
    plane.run_to_exit(first, 0)
    plane.apply(plane.ecs_event(plane.task_for(second), "RUNNING"))
    executor.sync()
    # THEN sends, reads, ends and the per-state gauge tell that story, every metric tagged team_a
    assert recorded.total("ecs_control_plane.requests.sent.run", kind="run") == 2
    assert submitted["submitted"] == 2
    assert started == {"submitted": 0, "queued": 0, "starting": 2, "running": 0}
    assert recorded.last_gauges("ecs_control_plane.tries") == {
        "submitted": 0,
        "queued": 0,
        "starting": 0,
        "running": 1,
    }
    assert recorded.total("ecs_control_plane.tries.ended.success", state="success") == 1
    assert recorded.total("ecs_control_plane.sync.items_read.changes", source="changes") >= 3
    assert any(
        kind == "timing" and stat == "ecs_control_plane.sync.duration" for kind, stat, _, _ in recorded.calls
    )
    assert all(teams == {"team_a"} for teams in recorded.tags_of().values())


def test_send_failures_and_refusals_are_counted_by_kind(
    control_plane_aws: MockedControlPlane, monkeypatch: pytest.MonkeyPatch, recorded: RecordingStats
):
    # GIVEN an executor (no team) whose queue refuses every send this heartbeat
    executor = _executor(monkeypatch, control_plane_aws, None)
    work = task_workload("metrics", "unlucky")
    executor.queue_workload(work, session=None)  # type: ignore[arg-type]
    queue = executor.clients.queue
    monkeypatch.setattr(
        queue,
        "send_batch",
        lambda requests: BatchSendResult(failed=[(r, "ServiceUnavailable") for r in requests]),
    )
    # WHEN it heartbeats, and a task with a refused executor_config comes in
    executor.heartbeat()
    executor.execute_async(
        key=task_workload("metrics", "bad").ti.key, command=["x"], executor_config={"nope": 1}
    )
    # THEN the failed send and the refusal are counted, and no metric carries a team tag
    assert recorded.total("ecs_control_plane.requests.send_failures.run", kind="run") == 1
    assert recorded.total("ecs_control_plane.requests.sent.run") == 0
    assert recorded.total("ecs_control_plane.tasks.refused") == 1
    assert all(teams == {None} for teams in recorded.tags_of().values())


def test_a_failing_metrics_backend_never_fails_a_heartbeat(
    control_plane_aws: MockedControlPlane, monkeypatch: pytest.MonkeyPatch
):
    class Broken:
        def __getattr__(self, name: str) -> Any:
            raise OSError("statsd is gone")

    monkeypatch.setattr("executor_client.metrics.airflow_stats", Broken)
    executor = _executor(monkeypatch, control_plane_aws, None)
    executor.queue_workload(task_workload("metrics", "still_sent"), session=None)  # type: ignore[arg-type]
    executor.heartbeat()
    assert executor.sync_failures == 0
    assert len(executor.tracked) == 1


def test_metrics_reach_the_backend_the_scheduler_initialised(monkeypatch: pytest.MonkeyPatch):
    """The scheduler initialises the stats module its BaseExecutor imports (3.3: ``airflow._shared``);
    a metric sent through any other copy (the task SDK's) would be dropped without a word."""
    from airflow.executors import base_executor  # noqa: PLC0415

    stats_module = vars(base_executor).get("stats")
    if stats_module is None or not hasattr(stats_module, "initialize"):
        pytest.skip("this release's executors use a Stats class initialised differently (3.1, 3.2)")

    class Backend:
        def __init__(self) -> None:
            self.sent: list[tuple[str, str, Any, dict[str, Any]]] = []

        def incr(self, stat: str, count: int = 1, rate: float = 1, *, tags: Any = None) -> None:
            self.sent.append(("incr", stat, count, tags or {}))

        def gauge(
            self, stat: str, value: float, rate: float = 1, delta: bool = False, *, tags: Any = None
        ) -> None:
            self.sent.append(("gauge", stat, value, tags or {}))

        def timing(self, stat: str, dt: Any, *, tags: Any = None) -> None:
            self.sent.append(("timing", stat, dt, tags or {}))

    backend = Backend()
    for name in ("_factory", "_backend", "_export_legacy_names"):
        monkeypatch.setattr(stats_module, name, getattr(stats_module, name))  # restored afterwards
    stats_module.initialize(factory=lambda: backend, export_legacy_names=False)
    metrics = ExecutorMetrics("team_a")
    metrics.requests_sent("run", 2)
    metrics.tries_by_state({"RUNNING": 3})
    assert (
        "incr",
        "ecs_control_plane.requests.sent.run",
        2,
        {"team_name": "team_a", "kind": "run"},
    ) in backend.sent
    assert (
        "gauge",
        "ecs_control_plane.tries.running",
        3,
        {"team_name": "team_a", "state": "running"},
    ) in backend.sent
