"""The reconciler on moto, racing the functions it repairs after: it must never stop a task a
live item claims, nor fail a try that run_task is working on, and a ContainerName change by a
stack update must not turn running tasks into orphans or make their events unreadable.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from ecs_control_plane import store
from ecs_control_plane.contract import TaskState
from ecs_control_plane.runtime import control_plane
from ecs_control_plane.settings import ControlPlaneSettings
from tests.support.aws import MockedControlPlane
from tests.support.doubles import (
    THROTTLED,
    after_start,
    bodies,
    desired_status,
    ecs_tasks_hold_their_status,
    env_of,
    install_run_task,
    record_resent_requests,
    run_request_v2,
    send,
    submission_key,
    tasks_of,
)


def between_read_and_write(monkeypatch: pytest.MonkeyPatch, action: Callable[[], Any]) -> None:
    """``action`` happens after the reconciler read the stale items and before it acts on them."""
    table = control_plane().table
    read = table.stale_active

    def stale_active(older_than_ms: int) -> Any:
        items = list(read(older_than_ms))
        action()
        return iter(items)

    monkeypatch.setattr(table, "stale_active", stale_active)


def rename_container(monkeypatch: pytest.MonkeyPatch, name: str) -> ControlPlaneSettings:
    """A stack update that renames ContainerName: the functions start again with the new setting."""
    monkeypatch.setenv("ECSCP_CONTAINER_NAME", name)
    control_plane.cache_clear()
    settings = ControlPlaneSettings.from_env()
    assert control_plane().settings == settings
    return settings


@pytest.fixture
def steady_tasks() -> Iterator[None]:
    with ecs_tasks_hold_their_status():
        yield


# -- the orphan sweep ----------------------------------------------------------------------------


def test_sweep_while_run_task_records_a_start_leaves_the_new_task_alone(
    control_plane_aws: MockedControlPlane, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN the reconciler runs after ECS started a task and before run_task recorded it (the
    # item is still QUEUED, without the task's ARN)
    plane = control_plane_aws
    ecs = install_run_task(monkeypatch)
    key = submission_key()
    reports: list[dict[str, Any]] = []
    ecs.then(after_start(lambda _: reports.append(plane.reconcile())))
    send(plane, run_request_v2(key))

    # WHEN run_task is done
    assert plane.deliver() == [{"batchItemFailures": []}]

    # THEN the sweep did not take the new task for an orphan: it runs, recorded by its item
    [report] = reports
    assert report["orphans_stopped"] == 0
    [task] = tasks_of(plane, key)
    assert desired_status(plane, task["taskArn"]) == "RUNNING"
    item = plane.item(key)
    assert (item.state, item.task_arn) == (TaskState.STARTING, task["taskArn"])


def test_container_name_change_keeps_running_tasks_protected_and_their_exit_codes(
    control_plane_aws: MockedControlPlane, monkeypatch: pytest.MonkeyPatch, steady_tasks: None
) -> None:
    # GIVEN two tries started while the Airflow container was called "airflow", one RUNNING and
    # one whose item has not changed for an hour (its events were lost)
    plane = control_plane_aws
    quiet, running = submission_key("quiet"), submission_key("running")
    send(plane, run_request_v2(quiet), run_request_v2(running))
    plane.deliver()
    quiet_task, running_task = plane.task_for(quiet), plane.task_for(running)
    plane.apply(plane.ecs_event(running_task, "RUNNING"))
    plane.age(quiet, 3600)

    # WHEN a stack update renames the container, and the reconciler runs
    rename_container(monkeypatch, "base")
    report = plane.reconcile()

    # THEN no task of a try still running is stopped, and the quiet one is repaired from ECS
    assert report["orphans_stopped"] == 0
    assert report["repaired"] == 1
    assert desired_status(plane, quiet_task["taskArn"]) == "RUNNING"
    assert desired_status(plane, running_task["taskArn"]) == "RUNNING"
    assert plane.item(quiet).state == TaskState.RUNNING
    # AND their STOPPED events still apply, exit codes found in the container named at the start
    plane.apply(plane.ecs_event(running_task, "STOPPED", exit_code=0))
    plane.apply(plane.ecs_event(quiet_task, "STOPPED", exit_code=3))
    ok, failed = plane.item(running), plane.item(quiet)
    assert (ok.state, ok.exit_code) == (TaskState.SUCCESS, 0)
    assert (failed.state, failed.exit_code) == (TaskState.FAILED, 3)
    assert "exited with code 3" in (failed.reason or "")


def test_container_name_change_keeps_start_retries_of_tasks_started_before(
    control_plane_aws: MockedControlPlane, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a try started while the container was called "airflow"
    plane = control_plane_aws
    key = submission_key()
    send(plane, run_request_v2(key))
    plane.deliver()
    first = plane.task_for(key)

    # WHEN the container is renamed and then ECS reports that the task failed to start
    rename_container(monkeypatch, "base")
    plane.fail_to_start(key)

    # THEN the start is retried with the task's command, now in the renamed container
    item = plane.item(key)
    assert (item.state, item.attempt) == (TaskState.QUEUED, 2)
    plane.deliver()
    [second] = [t for t in tasks_of(plane, key) if t["taskArn"] != first["taskArn"]]
    [override] = [o for o in second["overrides"]["containerOverrides"] if o["name"] == "base"]
    assert override["command"] == first["overrides"]["containerOverrides"][0]["command"]
    assert env_of(second)["ECSCP_ATTEMPT"] == "2"
    assert plane.item(key).task_arn == second["taskArn"]
    assert plane.alerts() == []


def test_redelivered_request_refused_after_a_container_rename_never_fails_the_running_try(
    control_plane_aws: MockedControlPlane, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a RUNNING try whose executor_config overrides the Airflow container, named "airflow"
    plane = control_plane_aws
    key = submission_key()
    config = {"overrides": {"containerOverrides": [{"name": "airflow", "memory": 2048}]}}
    request = run_request_v2(key, executor_config=config)
    send(plane, request)
    plane.deliver()
    task = plane.task_for(key)
    plane.apply(plane.ecs_event(task, "RUNNING"))

    # WHEN the container is renamed, SQS delivers the run request once more, and the reconciler runs
    rename_container(monkeypatch, "base")
    send(plane, request)
    plane.deliver()
    report = plane.reconcile()

    # THEN the copy is dropped as a duplicate: the try keeps running, unalerted
    assert plane.item(key).state == TaskState.RUNNING
    assert report["orphans_stopped"] == 0
    assert desired_status(plane, task["taskArn"]) == "RUNNING"
    assert plane.alerts() == []


# -- the QUEUED timeout, decided from an earlier read -------------------------------------------


def test_queued_timeout_never_fails_a_try_run_task_touched_after_the_read(
    control_plane_aws: MockedControlPlane, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a QUEUED try that looks lost (unchanged for an hour), whose retry message run_task
    # handles (ECS throttles it again) after the reconciler read the item
    plane = control_plane_aws
    install_run_task(monkeypatch).then(THROTTLED, THROTTLED)
    record_resent_requests(monkeypatch)
    key = submission_key()
    send(plane, run_request_v2(key, token_ttl_s=7200))
    plane.deliver(max_batches=1)
    plane.age(key, 3600)
    between_read_and_write(monkeypatch, lambda: plane.deliver(max_batches=1))

    # WHEN the reconciler acts on what it read
    report = plane.reconcile()

    # THEN it does not fail the try (the item changed since the read), and its retry waits
    assert report["timed_out"] == 0
    item = plane.item(key)
    assert (item.state, item.attempt) == (TaskState.QUEUED, 1)
    assert [b["throttled"] for b in bodies(plane)] == [2]
    assert plane.alerts() == []


def test_queued_timeout_never_fails_a_try_that_started_after_the_read(
    control_plane_aws: MockedControlPlane, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a QUEUED try that looks lost, whose retry message run_task starts after the
    # reconciler read the item, writing in the same millisecond the reconciler saw (writers'
    # clocks are not the reconciler's)
    plane = control_plane_aws
    install_run_task(monkeypatch).then(THROTTLED)
    record_resent_requests(monkeypatch)
    key = submission_key()
    send(plane, run_request_v2(key, token_ttl_s=7200))
    plane.deliver(max_batches=1)
    plane.age(key, 3600)
    seen = plane.item(key).updated_at

    def start_in_the_same_millisecond() -> None:
        with monkeypatch.context() as clock:
            clock.setattr(store, "now_ms", lambda: seen)
            plane.deliver(max_batches=1)

    between_read_and_write(monkeypatch, start_in_the_same_millisecond)

    # WHEN the reconciler acts on what it read
    report = plane.reconcile()

    # THEN the started try is left alone: still STARTING with its running task, no alert
    assert report["timed_out"] == 0
    [task] = tasks_of(plane, key)
    item = plane.item(key)
    assert (item.state, item.task_arn, item.updated_at) == (TaskState.STARTING, task["taskArn"], seen)
    assert desired_status(plane, task["taskArn"]) == "RUNNING"
    assert plane.alerts() == []
