"""The benchmark's target for issue 11: 1,000 tasks drained at 25 tasks/s or more, none lost or
started twice. A run of fewer tasks does not count for it."""

from __future__ import annotations

from typing import Any

import pytest

from benchmarks.report import targets

DRAIN_TARGET = ">=25 tasks/s draining 1,000 tasks locally, 0 lost, 0 started twice (issue 11)"


def _drain(**overrides: Any) -> dict[str, Any]:
    run = {
        "tasks": 1000,
        "tasks_per_s": 28.9,
        "lost": 0,
        "keys_started_more_than_once": 0,
        "terminal_states": {"success": 1000},
        "moto_requests_per_task": {"total": 10.3, "by_operation": {}},
    }
    return {"throughput": {**run, **overrides}}


def _drain_target(results: dict[str, Any]) -> dict[str, Any] | None:
    return next((t for t in targets(results) if t["target"] == DRAIN_TARGET), None)


def test_a_fast_drain_with_nothing_lost_or_started_twice_meets_it() -> None:
    target = _drain_target(_drain())
    assert target is not None
    assert target["met"] is True
    assert target["figure"] == {
        "tasks_per_s": 28.9,
        "lost": 0,
        "started_twice": 0,
        "moto_calls_per_task": 10.3,
    }


@pytest.mark.parametrize(
    "overrides",
    [{"tasks_per_s": 24.99}, {"lost": 1}, {"keys_started_more_than_once": 1}, {"lost": None}],
    ids=["too slow", "one lost", "one started twice", "loss not measured"],
)
def test_a_slow_or_lossy_drain_misses_it(overrides: dict[str, Any]) -> None:
    target = _drain_target(_drain(**overrides))
    assert target is not None
    assert target["met"] is False


def test_a_run_of_fewer_tasks_is_not_judged_against_it() -> None:
    assert _drain_target(_drain(tasks=200)) is None
    assert _drain_target({}) is None
