"""Every workload type an Airflow release may hand over: run, refused the way Airflow expects, or
failed alone; never an exception out of ``heartbeat()`` (the scheduler loop does not catch one).
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest
from airflow.executors.base_executor import BaseExecutor
from airflow.utils.state import TaskInstanceState

from ecs_control_plane.contract import TaskKey
from executor_client import EcsControlPlaneExecutor, workloads
from executor_client import config as cfg
from executor_client.workloads import callbacks_runnable, key_of_workload, task_key_for
from tests.support.airflow_release import task_workload
from tests.support.aws import MockedControlPlane

TOKEN = "eyJhbGciOiJIUzUxMiJ9.KINDS-TEST-WORKLOAD-TOKEN.c2ln"


class Unknown:
    """A workload type of some future Airflow this executor knows nothing about."""

    key = "unknown-1"
    display_name = "unknown"


@pytest.fixture
def executor(
    control_plane_aws: MockedControlPlane, monkeypatch: pytest.MonkeyPatch
) -> EcsControlPlaneExecutor:
    monkeypatch.setenv("AIRFLOW_CONN_AWS_DEFAULT", '{"conn_type": "aws"}')
    for key, value in {
        cfg.QUEUE_URL: control_plane_aws.queue_url,
        cfg.STATE_TABLE: control_plane_aws.table_name,
        cfg.REGION_NAME: "us-east-1",
    }.items():
        monkeypatch.setenv(cfg.env_name(key), value)
    started = EcsControlPlaneExecutor()
    started.start()
    return started


def test_unknown_workload_type_is_dropped_with_a_reason_not_raised(
    executor: EcsControlPlaneExecutor, capsys: pytest.CaptureFixture[str]
):
    # GIVEN a workload of a type this executor cannot run, already handed over
    executor.running.add(Unknown.key)
    # WHEN the executor processes it (what trigger_tasks does on a heartbeat)
    executor._process_workloads([Unknown()])
    # THEN nothing raises, nothing is tracked or sent, and the log says why
    assert executor.tracked == {}
    assert executor._outbox == {}
    assert Unknown.key not in executor.running
    assert "cannot run Unknown workloads" in capsys.readouterr().out


def test_a_workload_that_raises_while_handed_over_fails_alone(executor: EcsControlPlaneExecutor):
    # GIVEN two task workloads, the first of which cannot be read
    good = task_workload("kinds", "good")
    bad = task_workload("kinds", "bad")
    bad_key = bad.ti.key
    executor.queued_tasks[bad_key] = bad
    object.__setattr__(bad, "ti", None)  # reading bad.ti (its key, its queue) raises AttributeError
    key = good.ti.key
    # WHEN both are processed in one heartbeat
    executor._process_workloads([bad, good])
    # THEN the good one is sent and running; the bad one left Airflow's queue, failed
    assert executor.current_submission(key) is not None
    assert key in executor.running
    assert bad_key not in executor.queued_tasks
    assert executor.get_event_buffer()[bad_key][0] == TaskInstanceState.FAILED


@pytest.mark.skipif(
    not hasattr(BaseExecutor, "supports_connection_test"), reason="connection tests arrived in Airflow 3.3"
)
def test_connection_tests_are_refused_the_way_airflow_expects(executor: EcsControlPlaneExecutor):
    from airflow.executors.workloads import TestConnection  # noqa: PLC0415 - Airflow >= 3.3

    # GIVEN the executor does not claim connection tests: the scheduler fails such a request with
    # "does not support connection testing" instead of queueing it (scheduler_job_runner)
    assert executor.supports_connection_test is False
    with pytest.raises(NotImplementedError):
        executor.queue_workload(_connection_test(TestConnection), session=None)  # type: ignore[arg-type]
    # WHEN one reaches the executor anyway
    work = _connection_test(TestConnection)
    executor.queued_connection_tests[work.key] = work
    executor._process_workloads([work])
    # THEN it leaves Airflow's queue with no event (Airflow's reaper fails it) and is not sent
    assert executor.queued_connection_tests == {}
    assert executor.get_event_buffer() == {}
    assert executor._outbox == {}


def test_a_plain_string_callback_key_of_airflow_3_2_names_its_callback():
    callback_id = str(uuid.uuid4())
    assert task_key_for(callback_id) == TaskKey.for_callback(callback_id)
    with pytest.raises(TypeError):
        task_key_for("")
    with pytest.raises(TypeError):
        task_key_for(42)


def release_callback_key(callback_id: str) -> Any:
    """The key this Airflow files a callback under: 3.2's plain str, 3.3's CallbackKey."""
    callback = pytest.importorskip("airflow.models.callback", reason="callbacks arrived in Airflow 3.2")
    key_type = callback.CallbackKey
    return callback_id if key_type is str else key_type(id=callback_id)


def test_a_failed_callback_is_reported_under_its_release_key_with_the_reason(
    executor: EcsControlPlaneExecutor, control_plane_aws: MockedControlPlane
):
    # GIVEN a callback handed over under the key this release uses
    callback_id = str(uuid.uuid4())
    key = release_callback_key(callback_id)
    assert executor.execute_async(key=key, command=["python", "-c", "pass"])
    executor.running.add(key)
    executor.sync()
    encoded = executor.current_submission(key)
    assert encoded is not None
    assert TaskKey.parse(encoded) == TaskKey.for_callback(callback_id, TaskKey.parse(encoded).submission)
    # WHEN its container fails
    control_plane_aws.deliver()
    control_plane_aws.run_to_exit(encoded, 3)
    executor.sync()
    # THEN it is reported failed with the reason as its info (Airflow stores it as the callback's
    # output), and no audit-log record was made (3.2's Log() takes task instances only)
    state, info = executor.get_event_buffer()[key]
    assert str(state) == "failed"
    assert "exit code 3" in str(info)
    assert len(executor._task_event_logs) == 0


def test_no_audit_record_is_made_for_a_key_that_is_not_a_task_instance(executor: EcsControlPlaneExecutor):
    executor.log_task_event(event="ecs control plane task failed", extra="why", ti_key=str(uuid.uuid4()))
    assert len(executor._task_event_logs) == 0


@pytest.mark.skipif(workloads.ExecuteCallback is None, reason="callbacks arrived in Airflow 3.2")
def test_a_callback_this_airflow_cannot_run_in_a_container_fails_with_the_reason(
    executor: EcsControlPlaneExecutor, monkeypatch: pytest.MonkeyPatch
):
    # GIVEN an Airflow whose task runner cannot run a callback in a container (3.2); callbacks are
    # still claimed, since the scheduler routes them here whatever the executor claims
    monkeypatch.setattr(workloads, "CALLBACKS_RUNNABLE", False)
    assert executor.supports_callbacks is True
    callback_id = str(uuid.uuid4())
    work = _callback(callback_id)
    key = workload_key(work)
    executor.queue_workload(work, session=None)  # type: ignore[arg-type]
    # WHEN it is handed over on a heartbeat
    executor.heartbeat()
    # THEN it is failed at once, with the reason as its output, and nothing is sent
    state, info = executor.get_event_buffer()[key]
    assert str(state) == "failed"
    assert "cannot run an executor callback in a container" in str(info)
    assert executor._outbox == {}
    assert executor.tracked == {}


def test_callbacks_are_claimed_only_where_a_container_can_run_them():
    class Release33:
        run_workload = staticmethod(lambda: None)

    class Release32:  # hands callbacks over, but its task runner refuses them in a container
        pass

    assert callbacks_runnable(Release33, object) is True
    assert callbacks_runnable(Release32, object) is False
    assert callbacks_runnable(Release33, None) is False  # 3.1: no ExecuteCallback at all


def test_a_refused_executor_config_fails_only_its_task(executor: EcsControlPlaneExecutor):
    config = {"overrides": {"containerOverrides": [{"command": ["sh"]}]}}
    bad = task_workload("kinds", "bad_config", executor_config=config)
    good = task_workload("kinds", "fine")
    executor._process_workloads([bad, good])
    buffered = executor.get_event_buffer()
    assert buffered[bad.ti.key][0] == TaskInstanceState.FAILED
    assert executor.current_submission(good.ti.key) is not None


# -- workloads ------------------------------------------------------------------------------------


def _connection_test(cls: Any) -> Any:
    return cls(connection_test_id=uuid.uuid4(), connection_id="aws_default", timeout=60, token=TOKEN)


def _callback(callback_id: str) -> Any:
    from tests.support.airflow_release import BundleInfo, CallbackDTO, ExecuteCallback  # noqa: PLC0415

    return ExecuteCallback(
        callback=CallbackDTO(id=callback_id, fetch_method="import_path", data={"path": "mod.notify"}),
        dag_rel_path=Path("kinds.py"),
        token=TOKEN,
        log_path="callbacks/kinds.log",
        bundle_info=BundleInfo(name="dags-folder"),
    )


def workload_key(work: Any) -> Any:
    key = key_of_workload(work)
    assert key is not None
    return key
