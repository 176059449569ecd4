"""EcsControlPlaneExecutor on moto, driven through Airflow's executor API.

Real workloads go in through ``queue_workload`` + ``heartbeat``; the real run_task handler
consumes the executor's messages and starts tasks on moto's ECS; synthetic ECS task events go
through the real task_state handler; ``sync`` turns the table into Airflow events.
"""

from __future__ import annotations

import gc
import logging
import os
import subprocess
import sys
import tempfile
import uuid
import weakref
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="airflow-home-"))

from airflow.models.taskinstance import TaskInstance
from airflow.models.taskinstancekey import TaskInstanceKey
from airflow.providers.standard.operators.empty import EmptyOperator
from airflow.sdk import DAG
from airflow.sdk.exceptions import AirflowException
from airflow.utils.state import TaskInstanceState
from botocore.exceptions import ClientError
from sqlalchemy import insert as sa_insert
from sqlalchemy.orm import attributes as sa_attributes

from ecs_control_plane.contract import RunRequest, TaskKey, TaskState
from ecs_control_plane.store import Page
from executor_client import EcsControlPlaneExecutor
from executor_client import config as cfg
from tests.support.airflow_release import (
    PRE_ASSIGNS_EXTERNAL_EXECUTOR_ID,
    BundleInfo,
    CallbackDTO,
    CallbackState,
    DagSerialization,
    ExecuteCallback,
    ExecuteTask,
    TaskInstanceDTO,
    callback_key,
    requires_runnable_callbacks,
)
from tests.support.aws import MockedControlPlane, mocked_control_plane
from tests.support.doubles import recheck

DAG_ID = "example"
RUN_ID = "manual__2026-11-25T10:00:00+00:00"
EXECUTOR_PATH = "executor_client.EcsControlPlaneExecutor"
TOKEN = "eyJhbGciOiJIUzUxMiJ9.EXECUTOR-TEST-WORKLOAD-TOKEN.c2ln"


# -- helpers --------------------------------------------------------------------------------------


def configure(monkeypatch: pytest.MonkeyPatch, plane: MockedControlPlane, **options: str) -> None:
    """Point the executor's [ecs_control_plane] section at the moto stack (env form)."""
    values = {
        cfg.QUEUE_URL: plane.queue_url,
        cfg.STATE_TABLE: plane.table_name,
        cfg.REGION_NAME: "us-east-1",
        cfg.END_TIMEOUT_SECONDS: "0",
        **options,
    }
    for key, value in values.items():
        monkeypatch.setenv(cfg.env_name(key), value)
    # The executor's AWS clients come from this Airflow connection (no metadata DB needed).
    monkeypatch.setenv("AIRFLOW_CONN_AWS_DEFAULT", '{"conn_type": "aws"}')


def make_executor(owner: str | None = None) -> EcsControlPlaneExecutor:
    """A started executor; ``owner`` sets owner_id for this instance only (None: generated)."""
    with pytest.MonkeyPatch.context() as patch:
        if owner:
            patch.setenv(cfg.env_name(cfg.OWNER_ID), owner)
        executor = EcsControlPlaneExecutor()
        note_submissions(executor)
        executor.start()
    return executor


def note_submissions(executor: EcsControlPlaneExecutor) -> None:
    """Remember the id the executor gives each named submission it accepts (see ``encoded``)."""
    hand_over = executor.execute_async

    def execute_async(key: Any, command: Any, *args: Any, **kwargs: Any) -> bool:
        accepted = hand_over(key, command, *args, **kwargs)
        ti = getattr(command[0], "ti", None) if command else None
        current = executor.current_submission(key)
        if accepted and current and ti is not None and ti.id in _NAMES:
            _MADE[(ti.key, _NAMES[ti.id])] = TaskKey.parse(current).submission
        return accepted

    executor.execute_async = execute_async  # type: ignore[method-assign]


def submission_of(task_id: str, try_number: int = 1, map_index: int = -1, n: int = 1) -> str:
    """The id the scheduler (Airflow 3.2.2 on) pre-assigns to the ``n``-th queueing of a try, here."""
    return f"sub-{task_id}-{try_number}-{map_index + 1}-{n}"


#: The test's name for each workload's submission (by task instance id): the id the scheduler
#: pre-assigns where it does; elsewhere (Airflow 3.1) a name for the id the executor makes.
_NAMES: dict[uuid.UUID, str] = {}
#: The id the executor gave each named submission, by (task instance key, name).
_MADE: dict[tuple[TaskInstanceKey, str], str] = {}


def workload(
    task_id: str = "extract",
    *,
    try_number: int = 1,
    map_index: int = -1,
    executor_config: Any = None,
    submission: str | None = None,
) -> Any:
    name = submission or submission_of(task_id, try_number, map_index)
    assigned = {"external_executor_id": name} if PRE_ASSIGNS_EXTERNAL_EXECUTOR_ID else {}
    ti = TaskInstanceDTO(
        id=uuid.uuid4(),
        dag_id=DAG_ID,
        task_id=task_id,
        run_id=RUN_ID,
        try_number=try_number,
        map_index=map_index,
        dag_version_id=uuid.uuid4(),
        pool_slots=1,
        priority_weight=1,
        queue="default",
        executor_config=executor_config,
        **assigned,
    )
    _NAMES[ti.id] = name
    return ExecuteTask(
        ti=ti,
        dag_rel_path=Path("example.py"),
        token=TOKEN,
        log_path=f"dag_id={DAG_ID}/task_id={task_id}/attempt={try_number}.log",
        bundle_info=BundleInfo(name="dags-folder"),
    )


def submit(executor: EcsControlPlaneExecutor, *items: Any) -> None:
    """What the scheduler does: queue the workloads, then heartbeat (trigger_tasks + sync)."""
    for item in items:
        executor.queue_workload(item, session=None)  # type: ignore[arg-type]
    executor.heartbeat()


def submission_id(key: TaskInstanceKey, submission: str | None = None) -> str:
    """The id of a named submission of ``key`` (by default its first, see submission_of): the
    name itself where the scheduler pre-assigns it, else the id the executor made for it."""
    name = submission or submission_of(key.task_id, key.try_number, key.map_index)
    if PRE_ASSIGNS_EXTERNAL_EXECUTOR_ID:
        return name
    assert (key, name) in _MADE, f"submission {name!r} of {key} was not handed to an executor"
    return _MADE[(key, name)]


def encoded(key: TaskInstanceKey, submission: str | None = None) -> str:
    """The contract's key of one submission of ``key`` (by default its first, see submission_of)."""
    return TaskKey(
        key.dag_id,
        key.task_id,
        key.run_id,
        key.map_index,
        key.try_number,
        submission=submission_id(key, submission),
    ).encode()


def encoded_of(work: Any) -> str:
    """The contract's key of the submission a workload made (by whatever name the test gave it)."""
    return encoded(work.ti.key, _NAMES[work.ti.id])


def recorded_id(work: Any) -> str:
    """The external_executor_id Airflow holds for a workload's task instance: the one it
    pre-assigned, or (Airflow 3.1) the one the executor reported with RUNNING."""
    return submission_id(work.ti.key, _NAMES[work.ti.id])


def events(executor: EcsControlPlaneExecutor) -> dict[Any, tuple[Any, Any]]:
    executor.sync()
    return executor.get_event_buffer()


def task_events(executor: EcsControlPlaneExecutor) -> list[tuple[str, str]]:
    return [(str(log.event), str(log.extra)) for log in executor._task_event_logs]


def queued_requests(plane: MockedControlPlane) -> list[RunRequest]:
    messages = plane.receive(visibility_timeout=0)
    return [RunRequest.from_message(m["Body"]) for m in messages]


def task_instance(
    task_id: str, *, try_number: int = 1, external_executor_id: str | None = None
) -> TaskInstance:
    """A real TaskInstance of a serialized DAG, as the scheduler passes for adoption (no DB)."""
    with DAG(DAG_ID) as dag:
        EmptyOperator(task_id=task_id)
    serialized = DagSerialization.from_dict(DagSerialization.to_dict(dag))
    ti = TaskInstance(task=serialized.get_task(task_id), run_id=RUN_ID, dag_version_id=uuid.uuid4())
    ti.try_number = try_number
    ti.external_executor_id = external_executor_id
    return ti


@pytest.fixture
def plane(control_plane_aws: MockedControlPlane, monkeypatch: pytest.MonkeyPatch) -> MockedControlPlane:
    configure(monkeypatch, control_plane_aws)
    return control_plane_aws


# -- outcomes -------------------------------------------------------------------------------------


def test_task_that_exits_0_is_reported_running_then_success(plane: MockedControlPlane):
    # GIVEN an executor and a task submitted on a heartbeat
    executor = make_executor()
    work = workload("extract")
    submit(executor, work)
    key = work.ti.key
    sent = executor.get_event_buffer()
    # WHEN the control plane starts it and ECS runs it
    plane.deliver()
    started = events(executor)
    task_arn = plane.task_for(encoded(key))["taskArn"]
    plane.run_to_exit(encoded(key), 0)
    finished = events(executor)
    # THEN Airflow first records the submission as the external executor id (adoption finds the
    # item from it), then learns of the success, and nothing is tracked any more
    assert sent == {key: (TaskInstanceState.RUNNING, recorded_id(work))}
    assert started == {}
    assert finished == {key: (TaskInstanceState.SUCCESS, task_arn)}
    assert executor.tracked == {}
    assert key not in executor.running


def test_run_request_carries_the_workload_as_the_contract_says(plane: MockedControlPlane):
    # GIVEN a mapped task with an executor_config
    executor = make_executor(owner="scheduler-a")
    config = {"overrides": {"containerOverrides": [{"name": "airflow", "memory": 2048}]}}
    work = workload("transform", try_number=2, map_index=3, executor_config=config)
    # WHEN it is submitted
    submit(executor, work)
    # THEN one run request is on the queue with the task's key, owner, command, queue and config
    [request] = queued_requests(plane)
    assert request.kind == "run"
    assert request.key == TaskKey(DAG_ID, "transform", RUN_ID, 3, 2, submission=recorded_id(work)).encode()
    assert request.owner == "scheduler-a"
    assert request.command[:4] == [
        "python",
        "-m",
        "airflow.sdk.execution_time.execute_workload",
        "--json-string",
    ]
    assert ExecuteTask.model_validate_json(request.command[4]).ti.id == work.ti.id
    assert request.queue == "default"
    assert request.executor_config == config
    assert request.attempt == 1


def test_task_that_exits_1_fails_with_its_reason(plane: MockedControlPlane):
    # GIVEN a started task
    executor = make_executor()
    work = workload("load")
    submit(executor, work)
    plane.deliver()
    # WHEN its container exits with 1
    plane.run_to_exit(encoded(work.ti.key), 1)
    buffered = events(executor)
    # THEN Airflow is told it failed, and the task's log says why
    assert buffered[work.ti.key][0] == TaskInstanceState.FAILED
    [(event, extra)] = task_events(executor)
    assert event == "ecs control plane task failed"
    assert "exit code 1" in extra
    assert executor.tracked == {}


def test_start_retried_after_task_failed_to_start_then_succeeds(plane: MockedControlPlane):
    # GIVEN a task whose first ECS task fails to start
    executor = make_executor()
    work = workload("flaky")
    submit(executor, work)
    key = encoded(work.ti.key)
    plane.deliver()
    first_arn = plane.task_for(key)["taskArn"]
    plane.fail_to_start(key)
    assert plane.item(key).state == TaskState.QUEUED
    # WHEN the control plane retries the start and the second task runs to exit 0
    plane.deliver()
    second_arn = plane.task_for(key)["taskArn"]
    plane.run_to_exit(key, 0)
    buffered = events(executor)
    # THEN Airflow only ever hears success, with the second task's ARN, and no failure
    assert second_arn != first_arn
    assert buffered == {work.ti.key: (TaskInstanceState.SUCCESS, second_arn)}
    assert plane.item(key).attempt == 2
    assert task_events(executor) == []


def test_start_failing_for_good_fails_the_task_and_alerts(
    monkeypatch: pytest.MonkeyPatch,
):
    with mocked_control_plane(monkeypatch, max_attempts=1) as plane:
        configure(monkeypatch, plane)
        # GIVEN a task whose only allowed start attempt fails
        executor = make_executor()
        work = workload("doomed")
        submit(executor, work)
        key = encoded(work.ti.key)
        plane.deliver()
        # WHEN ECS reports TaskFailedToStart
        plane.fail_to_start(key, "CannotPullContainerError: pull access denied")
        buffered = events(executor)
        # THEN the task fails with the reason, and the failed-start event was put once
        assert buffered[work.ti.key][0] == TaskInstanceState.FAILED
        [(_, extra)] = task_events(executor)
        assert "CannotPullContainerError" in extra
        [alert] = plane.alerts()
        assert alert["detail"]["key"] == key


def test_refused_executor_config_fails_the_task_at_once_without_sending(plane: MockedControlPlane):
    # GIVEN a task whose executor_config tries to pick the cluster
    executor = make_executor()
    work = workload("sneaky", executor_config={"cluster": "someone-elses"})
    # WHEN it is submitted
    submit(executor, work)
    # THEN it fails on this heartbeat with the contract's reason, and nothing reaches the queue
    assert executor.get_event_buffer() == {work.ti.key: (TaskInstanceState.FAILED, None)}
    [(event, extra)] = task_events(executor)
    assert event == "ecs control plane task refused"
    assert "may not set 'cluster'" in extra
    assert queued_requests(plane) == []
    assert work.ti.key not in executor.running
    assert executor.tracked == {}


def test_executor_config_replacing_the_command_is_refused(plane: MockedControlPlane):
    executor = make_executor()
    config = {"overrides": {"containerOverrides": [{"name": "airflow", "command": ["sh"]}]}}
    work = workload("sneaky", executor_config=config)
    submit(executor, work)
    assert executor.get_event_buffer()[work.ti.key][0] == TaskInstanceState.FAILED
    assert "command" in task_events(executor)[0][1]


@requires_runnable_callbacks  # 3.2's refusal: tests/functional/test_workload_kinds.py
def test_callback_workload_runs_through_the_control_plane(plane: MockedControlPlane):
    # GIVEN an executor callback
    executor = make_executor()
    callback_id = str(uuid.uuid4())
    work = ExecuteCallback(
        callback=CallbackDTO(id=callback_id, fetch_method="import_path", data={"path": "mod.notify"}),
        dag_rel_path=Path("example.py"),
        token=TOKEN,
        log_path="callbacks/x.log",
        bundle_info=BundleInfo(name="dags-folder"),
    )
    # WHEN it is submitted, started and exits 0
    submit(executor, work)
    plane.deliver()
    key = executor._current[callback_key(callback_id)]
    assert TaskKey.parse(key) == TaskKey.for_callback(callback_id, TaskKey.parse(key).submission)
    plane.run_to_exit(key, 0)
    buffered = events(executor)
    # THEN the callback is reported with Airflow's callback states
    assert buffered[callback_key(callback_id)][0] == CallbackState.SUCCESS


@pytest.fixture
def metadata_db() -> Iterator[Any]:
    """The task_instance table of Airflow's metadata database (SQLite, in this run's AIRFLOW_HOME)."""
    from airflow import settings  # noqa: PLC0415
    from airflow.models import import_all_models  # noqa: PLC0415
    from airflow.models.base import Base  # noqa: PLC0415
    from airflow.utils.session import create_session  # noqa: PLC0415
    from sqlalchemy import String, delete, text  # noqa: PLC0415

    import_all_models()  # type: ignore[no-untyped-call]
    Base.metadata.create_all(settings.engine)
    # Airflow 3.1 keeps the ids as str(UUID); later releases in a Uuid column.
    as_stored = str if isinstance(TaskInstance.__table__.c.id.type, String) else (lambda u: u)

    def set_state(key: TaskInstanceKey, state: str) -> None:
        with create_session() as session:
            session.execute(text("PRAGMA foreign_keys=OFF"))  # no DAG run rows in this test
            session.execute(delete(TaskInstance).where(TaskInstance.task_id == key.task_id))
            session.execute(
                sa_insert(TaskInstance.__table__).values(
                    id=as_stored(uuid.uuid4()),
                    dag_id=key.dag_id,
                    task_id=key.task_id,
                    run_id=key.run_id,
                    map_index=key.map_index,
                    try_number=key.try_number,
                    state=state,
                    pool="default_pool",
                    pool_slots=1,
                    priority_weight=1,
                    queue="default",
                    dag_version_id=as_stored(uuid.uuid4()),
                    custom_operator_name="",
                    executor_config={},
                    max_tries=0,
                )
            )

    yield set_state
    with create_session() as session:
        session.execute(delete(TaskInstance))


def test_late_finish_of_a_poke_is_not_reported_once_airflow_scheduled_the_next(
    plane: MockedControlPlane, metadata_db: Any
):
    # GIVEN a reschedule sensor's first poke, whose container exits 0 after the task instance
    # went UP_FOR_RESCHEDULE and the scheduler already moved it to SCHEDULED for the next poke
    executor = make_executor()
    first = workload("sensor", submission="poke-1")
    submit(executor, first)
    plane.deliver()
    plane.run_to_exit(encoded(first.ti.key, "poke-1"), 0)
    metadata_db(first.ti.key, "scheduled")
    executor.get_event_buffer()
    # WHEN the executor syncs the finished poke
    late = events(executor)
    # THEN it reports nothing (Airflow 3.3 would fail a SCHEDULED try on a success), frees the slot
    assert late == {}
    assert first.ti.key not in executor.running
    # AND the next poke, once running, is reported as usual
    second = workload("sensor", submission="poke-2")
    submit(executor, second)
    plane.deliver()
    metadata_db(second.ti.key, "running")
    plane.run_to_exit(encoded(second.ti.key, "poke-2"), 0)
    assert [state for state, _ in events(executor).values()] == [TaskInstanceState.SUCCESS]


# -- isolation and adoption -----------------------------------------------------------------------


def test_two_owners_side_by_side_only_see_their_own_tasks(plane: MockedControlPlane):
    # GIVEN two schedulers sharing one stack, each with one task
    a, b = make_executor(owner="scheduler-a"), make_executor(owner="scheduler-b")
    work_a, work_b = workload("from_a"), workload("from_b")
    submit(a, work_a)
    submit(b, work_b)
    plane.deliver()
    # WHEN both tasks finish (a's fails, b's succeeds)
    plane.run_to_exit(encoded(work_a.ti.key), 1)
    plane.run_to_exit(encoded(work_b.ti.key), 0)
    a_events, b_events = events(a), events(b)
    # THEN each scheduler hears only about its own task, and its safety net agrees
    assert {k: s for k, (s, _) in a_events.items()} == {work_a.ti.key: TaskInstanceState.FAILED}
    assert {k: s for k, (s, _) in b_events.items()} == {work_b.ti.key: TaskInstanceState.SUCCESS}
    recheck(a)
    recheck(b)
    assert events(a) == {}
    assert events(b) == {}


def test_replacement_scheduler_adopts_running_task_and_reports_it(plane: MockedControlPlane):
    # GIVEN a task started by a scheduler that then died
    old = make_executor(owner="scheduler-old")
    work = workload("long_running")
    submit(old, work)
    plane.deliver()
    key = encoded(work.ti.key)
    task_arn = plane.task_for(key)["taskArn"]
    events(old)
    # WHEN a new scheduler adopts the task instance (plus one never started, one already finished)
    new = make_executor(owner="scheduler-new")
    running_ti = task_instance("long_running", external_executor_id=recorded_id(work))
    never_sent_ti = task_instance("never_sent")
    not_adopted = new.try_adopt_task_instances([running_ti, never_sent_ti])
    new.sync()  # its adopt request goes out, and run_task moves the item
    plane.deliver()
    plane.run_to_exit(key, 0)
    # THEN only the task with a live item is adopted, and its outcome goes to the new scheduler
    assert [ti.task_id for ti in not_adopted] == ["never_sent"]
    assert plane.item(key).owner == "scheduler-new"
    assert events(new) == {running_ti.key: (TaskInstanceState.SUCCESS, task_arn)}
    assert events(old) == {}


def test_task_instance_without_its_submission_id_is_adopted_through_its_newest_submission(
    plane: MockedControlPlane,
):
    # GIVEN a reschedule sensor's second poke running under a scheduler that then died before
    # Airflow recorded the poke's submission id (Airflow < 3.3, or a v1 TI whose id was an ARN)
    old = make_executor(owner="scheduler-old")
    first = workload("sensor", submission="poke-1")
    submit(old, first)
    plane.deliver()
    plane.run_to_exit(encoded(first.ti.key, "poke-1"), 0)
    events(old)
    second = workload("sensor", submission="poke-2")
    submit(old, second)
    plane.deliver()
    # WHEN a new scheduler adopts the running task instance, which names no submission
    new = make_executor(owner="scheduler-new")
    ti = task_instance("sensor", external_executor_id="arn:aws:ecs:us-east-1:123456789012:task/c/1")
    ti.state = TaskInstanceState.RUNNING
    not_adopted = new.try_adopt_task_instances([ti])
    new.sync()
    plane.deliver()
    plane.run_to_exit(encoded(second.ti.key, "poke-2"), 0)
    # THEN the newest submission is adopted and its outcome (not the first poke's) reported
    assert not_adopted == []
    assert plane.item(encoded(second.ti.key, "poke-2")).owner == "scheduler-new"
    assert plane.item(encoded(first.ti.key, "poke-1")).owner == "scheduler-old"
    assert [state for state, _ in events(new).values()] == [TaskInstanceState.SUCCESS]


def test_queued_task_instance_whose_newest_submission_succeeded_is_handed_back(plane: MockedControlPlane):
    # GIVEN a sensor poke that succeeded, then a scheduler that died after queueing the next
    # poke but before anything of it was recorded
    old = make_executor(owner="scheduler-old")
    first = workload("sensor", submission="poke-1")
    submit(old, first)
    plane.deliver()
    plane.run_to_exit(encoded(first.ti.key, "poke-1"), 0)
    # WHEN a new scheduler is asked to adopt the QUEUED task instance, which names no submission
    ti = task_instance("sensor")
    ti.state = TaskInstanceState.QUEUED
    not_adopted = make_executor(owner="scheduler-new").try_adopt_task_instances([ti])
    # THEN the earlier poke's success is not taken for it: the scheduler resets it
    assert not_adopted == [ti]
    assert plane.item(encoded(first.ti.key, "poke-1")).owner == "scheduler-old"


def test_old_scheduler_forgets_a_task_adopted_by_another(plane: MockedControlPlane):
    # GIVEN a task adopted away from a scheduler that is still alive
    old = make_executor(owner="scheduler-old")
    work = workload("contested")
    submit(old, work)
    old.get_event_buffer()  # the submission's id, as Airflow records it
    plane.deliver()
    new = make_executor(owner="scheduler-new")
    new.try_adopt_task_instances([task_instance("contested", external_executor_id=recorded_id(work))])
    new.sync()
    plane.deliver()
    # WHEN the old scheduler's safety net reads the item
    recheck(old)
    old_events = events(old)
    # THEN it stops tracking the task and reports nothing for it
    assert old_events == {}
    assert old.tracked == {}
    assert work.ti.key not in old.running


def test_task_that_finished_before_adoption_is_adopted_and_its_outcome_reported(plane: MockedControlPlane):
    # GIVEN a task that finished after its scheduler's last sync, while no scheduler was watching
    old = make_executor(owner="scheduler-old")
    work = workload("done")
    submit(old, work)
    plane.deliver()
    plane.run_to_exit(encoded(work.ti.key), 1)
    # WHEN a new scheduler adopts it
    new = make_executor(owner="scheduler-new")
    ti = task_instance("done", external_executor_id=recorded_id(work))
    not_adopted = new.try_adopt_task_instances([ti])
    # THEN it is not handed back (a reset would run it again): once run_task has moved it to the
    # new scheduler, its outcome is reported
    assert not_adopted == []
    assert events(new) == {}
    plane.deliver()
    assert [state for state, _ in events(new).values()] == [TaskInstanceState.FAILED]
    assert "exit code 1" in task_events(new)[0][1]


# -- stopping -------------------------------------------------------------------------------------


def test_revoke_stops_the_ecs_task_and_forgets_it(plane: MockedControlPlane):
    # GIVEN a running task
    executor = make_executor()
    work = workload("to_revoke")
    submit(executor, work)
    key = encoded(work.ti.key)
    plane.deliver()
    plane.apply(plane.ecs_event(plane.task_for(key), "RUNNING"))
    events(executor)
    # WHEN the scheduler revokes it
    executor.revoke_task(ti=task_instance("to_revoke"))
    # THEN a stop request is sent, the control plane stops the ECS task, and no event is buffered
    [request] = queued_requests(plane)
    assert (request.kind, request.key) == ("stop", key)
    plane.deliver()
    assert plane.task_for(key)["lastStatus"] == "STOPPED"
    assert plane.item(key).stop_requested
    assert executor.tracked == {}
    assert work.ti.key not in executor.running
    assert executor.get_event_buffer() == {}


def test_revoke_before_sending_sends_nothing(plane: MockedControlPlane):
    # GIVEN a task accepted by the executor but not yet sent
    executor = make_executor()
    work = workload("queued_only")
    executor.queue_workload(work, session=None)  # type: ignore[arg-type]
    executor.trigger_tasks(open_slots=10)
    # WHEN it is revoked
    executor.revoke_task(ti=task_instance("queued_only"))
    executor.sync()
    # THEN neither a run nor a stop request reaches the queue
    assert queued_requests(plane) == []


def test_terminate_sends_stop_requests_for_everything_tracked(plane: MockedControlPlane):
    # GIVEN two started tasks
    executor = make_executor()
    works = [workload("one"), workload("two")]
    submit(executor, *works)
    plane.deliver()
    # WHEN the scheduler is terminated
    executor.terminate()
    # THEN one stop request per task is on the queue
    requests = queued_requests(plane)
    assert sorted((r.kind, r.key) for r in requests) == sorted(("stop", encoded(w.ti.key)) for w in works)


def test_end_sends_the_buffer_and_returns_within_its_bound(plane: MockedControlPlane):
    # GIVEN a task accepted but not yet sent, and end_timeout_seconds = 0
    executor = make_executor()
    work = workload("late")
    executor.queue_workload(work, session=None)  # type: ignore[arg-type]
    executor.trigger_tasks(open_slots=10)
    # WHEN the scheduler ends the executor
    executor.end()
    # THEN the run request was sent, and end() returned with the task still tracked (adoptable)
    assert [r.key for r in queued_requests(plane)] == [encoded(work.ti.key)]
    assert encoded(work.ti.key) in executor.tracked


def test_end_returns_once_tracked_tasks_finish(plane: MockedControlPlane, monkeypatch: pytest.MonkeyPatch):
    # GIVEN a generous end timeout and a task that has already finished in the control plane
    monkeypatch.setenv(cfg.env_name(cfg.END_TIMEOUT_SECONDS), "600")
    executor = make_executor()
    work = workload("quick")
    submit(executor, work)
    plane.deliver()
    plane.run_to_exit(encoded(work.ti.key), 0)
    # WHEN the executor ends
    executor.end()
    # THEN it synced the outcome (no waiting for the timeout)
    assert executor.get_event_buffer()[work.ti.key][0] == TaskInstanceState.SUCCESS


# -- robustness -----------------------------------------------------------------------------------


def test_safety_net_reports_what_the_incremental_read_missed(
    plane: MockedControlPlane, monkeypatch: pytest.MonkeyPatch
):
    # GIVEN an executor whose index reads return nothing (lost or lagging index updates)
    executor = make_executor()
    work = workload("missed")
    submit(executor, work)
    plane.deliver()
    monkeypatch.setattr(executor.clients.table, "changes_page", lambda owner, since, **_: Page([]))
    plane.run_to_exit(encoded(work.ti.key), 0)
    # WHEN the safety net is due
    recheck(executor)
    buffered = events(executor)
    # THEN the success is still reported, and the sync completed without an error
    assert buffered[work.ti.key][0] == TaskInstanceState.SUCCESS
    assert executor.sync_failures == 0


def test_sent_task_without_item_is_reported_after_the_grace(
    plane: MockedControlPlane, monkeypatch: pytest.MonkeyPatch
):
    # GIVEN a zero grace and a run request that the control plane never received
    monkeypatch.setenv(cfg.env_name(cfg.MISSING_ITEM_GRACE_SECONDS), "0")
    executor = make_executor()
    work = workload("lost")
    submit(executor, work)
    plane.receive(visibility_timeout=600)  # hidden: run_task never gets it
    executor._sent_at[encoded(work.ti.key)] -= 1_000
    # WHEN the safety net runs (twice)
    for _ in range(2):
        recheck(executor)
        executor.sync()
    # THEN the task's log says so once, and the task is not failed by the executor
    assert [event for event, _ in task_events(executor)] == ["ecs control plane task not started"]
    assert [state for state, _ in executor.get_event_buffer().values()] == [TaskInstanceState.RUNNING]
    assert encoded(work.ti.key) in executor.tracked


def test_expired_credentials_keep_requests_and_reconnect(
    plane: MockedControlPlane, monkeypatch: pytest.MonkeyPatch
):
    # GIVEN SQS rejecting the executor's credentials as expired
    executor = make_executor()
    sqs = executor.clients.queue._client

    def expired(**_: Any) -> Any:
        error = {"Error": {"Code": "ExpiredTokenException", "Message": "The security token has expired"}}
        raise ClientError(error, "SendMessageBatch")  # type: ignore[arg-type]

    monkeypatch.setattr(sqs, "send_message_batch", expired)
    work = workload("patient")
    # WHEN a heartbeat tries to send
    submit(executor, work)
    # THEN nothing is raised or failed, the request stays buffered and the clients are dropped
    assert executor.get_event_buffer() == {}
    assert queued_requests(plane) == []
    assert executor._clients is None
    # AND the next sync makes new clients and sends it
    executor._next_reconnect_at = 0
    executor.sync()
    assert [r.key for r in queued_requests(plane)] == [encoded(work.ti.key)]


def test_sync_never_raises_into_the_scheduler(plane: MockedControlPlane, monkeypatch: pytest.MonkeyPatch):
    # GIVEN a table read that blows up
    executor = make_executor()
    submit(executor, workload("any"))

    def broken(owner: str, since: int, **_: Any) -> Page:
        raise RuntimeError("boom")

    monkeypatch.setattr(executor.clients.table, "changes_page", broken)
    # WHEN the scheduler syncs
    executor.sync()
    # THEN the failure is counted, not raised
    assert executor.sync_failures == 1


def refusing_sqs(code: str, *, sender_fault: bool) -> Any:
    def refuse(QueueUrl: str, Entries: list[dict[str, Any]]) -> Any:  # noqa: N803 - boto3 names
        return {
            "Successful": [],
            "Failed": [
                {"Id": e["Id"], "Code": code, "Message": "nope", "SenderFault": sender_fault} for e in Entries
            ],
        }

    return refuse


def test_send_failing_repeatedly_fails_the_task(plane: MockedControlPlane, monkeypatch: pytest.MonkeyPatch):
    # GIVEN SQS failing every message on its side and max_send_attempts = 2
    monkeypatch.setenv(cfg.env_name(cfg.MAX_SEND_ATTEMPTS), "2")
    executor = make_executor()
    sqs = executor.clients.queue._client
    monkeypatch.setattr(sqs, "send_message_batch", refusing_sqs("InternalError", sender_fault=False))
    work = workload("unsendable")
    # WHEN two heartbeats fail to send it
    submit(executor, work)
    first = executor.get_event_buffer()
    executor.heartbeat()
    # THEN it is retried once, then failed with the reason
    assert first == {}
    assert executor.get_event_buffer()[work.ti.key][0] == TaskInstanceState.FAILED
    assert "InternalError" in task_events(executor)[0][1]


def test_message_sqs_refuses_as_the_senders_fault_fails_the_task_at_once(
    plane: MockedControlPlane, monkeypatch: pytest.MonkeyPatch
):
    # GIVEN SQS refusing the message as the sender's fault (sending it again cannot help)
    executor = make_executor()
    sqs = executor.clients.queue._client
    monkeypatch.setattr(sqs, "send_message_batch", refusing_sqs("InvalidMessageContents", sender_fault=True))
    work = workload("unsendable")
    # WHEN one heartbeat tries to send it
    submit(executor, work)
    # THEN the task fails on this heartbeat with SQS's reason
    assert executor.get_event_buffer() == {work.ti.key: (TaskInstanceState.FAILED, None)}
    assert "InvalidMessageContents" in task_events(executor)[0][1]
    assert executor.tracked == {}


def test_more_than_ten_tasks_are_sent_in_one_heartbeat(plane: MockedControlPlane):
    # GIVEN 23 tasks queued at once
    executor = make_executor()
    works = [workload(f"t{i}") for i in range(23)]
    # WHEN one heartbeat runs
    submit(executor, *works)
    # THEN all 23 run requests are on the queue (three SendMessageBatch calls)
    keys: set[str] = set()
    while messages := plane.receive(visibility_timeout=600):
        keys.update(RunRequest.from_message(m["Body"]).key for m in messages)
    assert keys == {encoded(w.ti.key) for w in works}


def test_workload_token_is_never_logged(plane: MockedControlPlane, caplog: pytest.LogCaptureFixture):
    # GIVEN every log record captured (botocore's DEBUG wire dumps aside: they print request bodies)
    caplog.set_level(logging.DEBUG)
    executor = make_executor()
    work = workload("secretive")
    # WHEN a task goes through submit, start and failure
    submit(executor, work)
    plane.deliver()
    plane.run_to_exit(encoded(work.ti.key), 1)
    events(executor)
    # THEN its workload token is in no log record and no task event of ours
    ours = [r.getMessage() for r in caplog.records if not r.name.startswith(("botocore", "urllib3"))]
    assert ours
    assert not [message for message in ours if TOKEN in message]
    assert all(TOKEN not in extra for _, extra in task_events(executor))


def test_audit_log_records_survive_the_schedulers_save(plane: MockedControlPlane):
    # GIVEN a failed task whose reason the executor queued as an audit-log record
    executor = make_executor()
    submit(executor, workload("sneaky", executor_config={"cluster": "x"}))
    record = weakref.ref(executor._task_event_logs[0])
    # WHEN the scheduler takes the records the way Airflow 3.3 does (a generator popping the
    # deque into bulk_save_objects, which keeps only weak references to the objects)
    records = executor._task_event_logs
    states = [sa_attributes.instance_state(r) for r in (records.popleft() for _ in range(len(records)))]
    gc.collect()
    # THEN each record is still alive and complete while it is saved
    assert record() is not None
    assert states[0].dict["event"] == "ecs control plane task refused"
    # AND it is let go on the next heartbeat
    del states
    executor.sync()
    gc.collect()
    assert record() is None


# -- start-up -------------------------------------------------------------------------------------


def test_health_check_names_the_queue_setting(plane: MockedControlPlane, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv(cfg.env_name(cfg.QUEUE_URL), plane.queue_url + "-missing")
    with pytest.raises(AirflowException, match="AIRFLOW__ECS_CONTROL_PLANE__QUEUE_URL"):
        make_executor()


def test_health_check_requires_the_owner_index(plane: MockedControlPlane, monkeypatch: pytest.MonkeyPatch):
    plane.dynamodb.create_table(
        TableName="no-index",
        BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[{"AttributeName": "key", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "key", "KeyType": "HASH"}],
    )
    monkeypatch.setenv(cfg.env_name(cfg.STATE_TABLE), "no-index")
    with pytest.raises(AirflowException, match=r"owner-updated_at-index.*AIRFLOW__ECS_CONTROL_PLANE__STATE"):
        make_executor()


def test_health_check_names_a_missing_table(plane: MockedControlPlane, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv(cfg.env_name(cfg.STATE_TABLE), "nowhere")
    with pytest.raises(AirflowException, match="AIRFLOW__ECS_CONTROL_PLANE__STATE_TABLE"):
        make_executor()


def test_missing_settings_are_named(plane: MockedControlPlane, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv(cfg.env_name(cfg.QUEUE_URL))
    monkeypatch.delenv(cfg.env_name(cfg.STATE_TABLE))
    with pytest.raises(AirflowException, match="QUEUE_URL and AIRFLOW__ECS_CONTROL_PLANE__STATE_TABLE"):
        make_executor()


def test_health_check_can_be_switched_off(plane: MockedControlPlane, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv(cfg.env_name(cfg.QUEUE_URL), plane.queue_url + "-missing")
    monkeypatch.setenv(cfg.env_name(cfg.CHECK_HEALTH_ON_STARTUP), "False")
    make_executor()


def test_owners_are_unique_per_executor_instance(plane: MockedControlPlane):
    assert make_executor().owner != make_executor().owner


def test_configured_owner_is_used(plane: MockedControlPlane, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv(cfg.env_name(cfg.OWNER_ID), "scheduler-blue")
    assert make_executor().owner == "scheduler-blue"


def test_executor_is_loadable_by_its_dotted_path(tmp_path: Path):
    # GIVEN a fresh Airflow process configured with the dotted path, as a deployment would be
    env = {**os.environ, "AIRFLOW_HOME": str(tmp_path), "AIRFLOW__CORE__EXECUTOR": EXECUTOR_PATH}
    code = (
        "from airflow.executors.executor_loader import ExecutorLoader\n"
        "print(type(ExecutorLoader.get_default_executor()).__name__)"
    )
    # WHEN Airflow loads its default executor
    result = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=False
    )
    # THEN it is this executor
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().splitlines()[-1] == "EcsControlPlaneExecutor"
