"""Adoption on moto: a scheduler taking over the task instances of one that died loses nothing.

A try that finished since the old scheduler's last sync is reported, not handed back; a try whose
run request is still on the queue is claimed and starts under the adopter; a DynamoDB error is
retried, never taken as "no item"; a v1 task is found under its v1 key; and at scale every try
is reported exactly once to the new executor, none started twice, none reset.
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import pytest
from airflow.utils.state import TaskInstanceState
from botocore.exceptions import ClientError

from ecs_control_plane.contract import RunRequest, TaskState, now_ms
from executor_client import EcsControlPlaneExecutor
from executor_client import adoption as adoption_module
from tests.functional.test_executor import (
    configure,
    encoded,
    events,
    make_executor,
    recorded_id,
    submit,
    task_events,
    task_instance,
    workload,
)
from tests.support.airflow_release import requires_pre_assigned_ids
from tests.support.aws import MockedControlPlane
from tests.support.doubles import env_of, finish, recheck, recorded_task, send
from tests.support.requests import task_key, workload_command


@pytest.fixture
def plane(control_plane_aws: MockedControlPlane, monkeypatch: pytest.MonkeyPatch) -> MockedControlPlane:
    configure(monkeypatch, control_plane_aws)
    return control_plane_aws


def adoptable(work: Any) -> Any:
    """The task instance the scheduler passes for adoption: external_executor_id = the submission."""
    return task_instance(work.ti.task_id, external_executor_id=recorded_id(work))


def adopt(new: EcsControlPlaneExecutor, plane: MockedControlPlane, *works: Any) -> list[Any]:
    """The scheduler adopts; its adopt requests are sent and handled by run_task."""
    not_adopted = list(new.try_adopt_task_instances([adoptable(w) for w in works]))
    new.sync()
    plane.deliver()
    return not_adopted


def throttled_dynamodb() -> ClientError:
    error = {"Code": "ProvisionedThroughputExceededException", "Message": "Rate of requests exceeds"}
    response = {"Error": error, "ResponseMetadata": {"HTTPStatusCode": 400}}
    return ClientError(response, "GetItem")  # type: ignore[arg-type]


class FlakyReads:
    """The adopter's DynamoDB GetItem, failing while ``failures`` lasts (None: for ever)."""

    def __init__(self, executor: EcsControlPlaneExecutor, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setattr(adoption_module, "ADOPT_RETRY_SECONDS", 0.01)  # keep the test quick
        client = executor.clients.table._client
        self.real = client.get_item
        self.failures: int | None = 0
        self.calls = 0
        monkeypatch.setattr(client, "get_item", self)

    def __call__(self, **kwargs: Any) -> Any:
        self.calls += 1
        if self.failures is None or self.failures > 0:
            self.failures = None if self.failures is None else self.failures - 1
            raise throttled_dynamodb()
        return self.real(**kwargs)


def test_try_that_finished_after_the_last_sync_is_adopted_and_reported(plane: MockedControlPlane):
    # GIVEN a try whose task finished after its scheduler's last sync, and the scheduler died
    old = make_executor(owner="scheduler-old")
    work = workload("finished_unseen")
    submit(old, work)
    plane.deliver()
    events(old)
    key = encoded(work.ti.key)
    arn = plane.task_for(key)["taskArn"]
    plane.run_to_exit(key, 0)

    # WHEN a new scheduler adopts the task instance
    new = make_executor(owner="scheduler-new")
    not_adopted = adopt(new, plane, work)

    # THEN it is adopted (not handed back to be reset and run again) and its success reported
    assert not_adopted == []
    assert plane.item(key).owner == "scheduler-new"
    assert events(new) == {work.ti.key: (TaskInstanceState.SUCCESS, arn)}
    assert len(plane.tasks()) == 1


def test_try_whose_run_request_is_still_queued_starts_under_the_adopter(plane: MockedControlPlane):
    # GIVEN a try whose run request is on the queue (no item yet) when its scheduler dies
    old = make_executor(owner="scheduler-old")
    config = {"overrides": {"containerOverrides": [{"name": "airflow", "memory": 2048}]}}
    work = workload("still_queued", executor_config=config)
    submit(old, work)
    old.get_event_buffer()
    key = encoded(work.ti.key)
    assert plane.item(key) is None

    # WHEN a new scheduler adopts it
    new = make_executor(owner="scheduler-new")
    not_adopted = new.try_adopt_task_instances([adoptable(work)])

    # THEN the scheduler wrote nothing itself: it asked the control plane to adopt the submission
    assert not_adopted == []
    assert plane.item(key) is None
    new.sync()
    # AND once that request is handled (before the run request, as SQS may order them), the
    # submission is the adopter's, waiting for its run request
    plane.deliver_only("adopt")
    claimed = plane.item(key)
    assert (claimed.state, claimed.owner) == (TaskState.QUEUED, "scheduler-new")
    assert claimed.awaiting_request

    # AND when the request arrives, its task starts with the request's settings, under the adopter
    plane.deliver()
    item = plane.item(key)
    assert (item.state, item.owner, item.awaiting_request) == (TaskState.STARTING, "scheduler-new", False)
    assert (item.queue, item.executor_config) == ("default", config)
    assert item.token_expires_at is not None
    task = plane.task_for(key)
    assert task["overrides"]["containerOverrides"][0]["memory"] == 2048
    # AND its outcome reaches the new scheduler, not the old one
    plane.run_to_exit(key, 0)
    assert events(new) == {work.ti.key: (TaskInstanceState.SUCCESS, task["taskArn"])}
    recheck(old)
    assert events(old) == {}
    assert old.tracked == {}


def test_adopt_request_handled_after_the_run_request_moves_the_started_try(plane: MockedControlPlane):
    # GIVEN a try whose run request is on the queue when its scheduler dies, adopted by another
    old = make_executor(owner="scheduler-old")
    work = workload("request_first")
    submit(old, work)
    key = encoded(work.ti.key)
    new = make_executor(owner="scheduler-new")
    assert new.try_adopt_task_instances([adoptable(work)]) == []
    new.sync()

    # WHEN SQS hands the control plane the run request first, then the adopt request
    plane.deliver_only("run")
    started = plane.item(key)
    assert (started.state, started.owner) == (TaskState.STARTING, "scheduler-old")
    plane.deliver_only("adopt")

    # THEN the started try is the adopter's, one task runs, and its outcome reaches the adopter
    assert plane.item(key).owner == "scheduler-new"
    assert len(plane.tasks()) == 1
    plane.run_to_exit(key, 0)
    assert events(new) == {work.ti.key: (TaskInstanceState.SUCCESS, started.task_arn)}


@requires_pre_assigned_ids  # without it, a try never handed over has no id to adopt it by
def test_adopted_try_whose_run_request_never_arrives_fails_once_overdue(plane: MockedControlPlane):
    # GIVEN a try adopted before its run request arrived, and the request never does (it is in the DLQ)
    new = make_executor(owner="scheduler-new")
    work = workload("request_lost")
    key = encoded(work.ti.key)
    assert new.try_adopt_task_instances([adoptable(work)]) == []
    new.sync()
    plane.deliver()
    plane.age(key, 3600)

    # WHEN the reconciler runs
    report = plane.reconcile()

    # THEN the try fails with an alert saying what happened, and the adopter reports it
    assert report["timed_out"] == 1
    item = plane.item(key)
    assert item.state == TaskState.FAILED
    assert "did not arrive" in (item.reason or "")
    assert [a["detail"]["key"] for a in plane.alerts()] == [key]
    assert events(new)[work.ti.key][0] == TaskInstanceState.FAILED
    assert "did not arrive" in task_events(new)[0][1]


def test_dynamodb_error_during_adoption_is_retried_not_taken_as_no_item(
    plane: MockedControlPlane, monkeypatch: pytest.MonkeyPatch
):
    # GIVEN a running try of a dead scheduler, and DynamoDB throttling the adopter's first read
    old = make_executor(owner="scheduler-old")
    work = workload("throttled_adoption")
    submit(old, work)
    plane.deliver()
    key = encoded(work.ti.key)
    new = make_executor(owner="scheduler-new")
    reads = FlakyReads(new, monkeypatch)
    reads.failures = 1

    # WHEN the new scheduler adopts it
    not_adopted = new.try_adopt_task_instances([adoptable(work)])

    # THEN the read was tried again and the try adopted at once
    assert not_adopted == []
    assert reads.calls == 2
    new.sync()
    plane.deliver()
    assert plane.item(key).owner == "scheduler-new"
    plane.run_to_exit(key, 0)
    assert events(new)[work.ti.key][0] == TaskInstanceState.SUCCESS


def test_adoption_that_keeps_failing_is_tracked_and_completes_on_a_later_sync(
    plane: MockedControlPlane, monkeypatch: pytest.MonkeyPatch
):
    # GIVEN a running try of a dead scheduler, and DynamoDB refusing every read of the adopter
    old = make_executor(owner="scheduler-old")
    work = workload("patient_adoption")
    submit(old, work)
    plane.deliver()
    key = encoded(work.ti.key)
    new = make_executor(owner="scheduler-new")
    reads = FlakyReads(new, monkeypatch)
    reads.failures = None

    # WHEN the new scheduler adopts it, and syncs while DynamoDB still refuses
    not_adopted = new.try_adopt_task_instances([adoptable(work)])
    plane.run_to_exit(key, 0)
    during = events(new)

    # THEN the try is neither handed back nor reported yet: it is tracked, its item not moved
    assert not_adopted == []
    assert during == {}
    assert plane.item(key).owner == "scheduler-old"
    assert key in new.tracked

    # AND once DynamoDB recovers, a sync completes the adoption and reports the outcome
    reads.failures = 0
    new.sync()  # reads the item, asks the control plane to move it
    plane.deliver()
    assert events(new) == {work.ti.key: (TaskInstanceState.SUCCESS, plane.item(key).task_arn)}
    assert plane.item(key).owner == "scheduler-new"
    assert new.tracked == {}


def test_v1_task_is_adopted_under_its_v1_key(plane: MockedControlPlane):
    # GIVEN a task started from a v1 run request (no submission), whose scheduler died after
    # recording the ECS task ARN as the external_executor_id (as v1 did)
    key = task_key("legacy")
    body = {"version": 1, "kind": "run", "key": key, "owner": "scheduler-v1", "attempt": 1}
    send(
        plane, json.dumps(body | {"command": workload_command(key), "sent_at": now_ms(), "queue": "default"})
    )
    plane.deliver()
    arn = plane.item(key).task_arn

    # WHEN a v2 scheduler adopts the task instance
    new = make_executor(owner="scheduler-new")
    ti = task_instance("legacy", external_executor_id=arn)
    not_adopted = new.try_adopt_task_instances([ti])
    new.sync()
    plane.deliver()

    # THEN it found the v1 item, and reports the task's outcome
    assert not_adopted == []
    assert plane.item(key).owner == "scheduler-new"
    plane.run_to_exit(key, 1)
    assert events(new)[ti.key] == (TaskInstanceState.FAILED, arn)


# -- at scale -------------------------------------------------------------------------------------


def test_scheduler_replaced_mid_run_loses_and_repeats_nothing(
    plane: MockedControlPlane, monkeypatch: pytest.MonkeyPatch
):
    # GIVEN 60 tries sent by one scheduler: 10 finished and reported, 16 finished after its last
    # sync (every 4th exit 1), 16 running, 18 whose run requests are still on the queue
    groups = {
        "reported": [f"reported_{i}" for i in range(10)],
        "unseen": [f"unseen_{i}" for i in range(16)],
        "running": [f"running_{i}" for i in range(16)],
        "queued": [f"queued_{i}" for i in range(18)],
    }
    works = {task_id: workload(task_id) for ids in groups.values() for task_id in ids}
    exits = {task_id: (1 if n % 4 == 0 else 0) for n, task_id in enumerate(works)}
    old = make_executor(owner="scheduler-old")
    old.parallelism = 200
    for work in works.values():
        old.queue_workload(work, session=None)  # type: ignore[arg-type]
    old.heartbeat()
    keys = {task_id: encoded(work.ti.key) for task_id, work in works.items()}
    old.get_event_buffer()

    messages: list[dict[str, Any]] = []
    while batch := plane.receive(visibility_timeout=600):
        messages += batch
    assert len(messages) == 60
    queued_keys = {keys[t] for t in groups["queued"]}
    to_run = [m for m in messages if RunRequest.from_message(m["Body"]).key not in queued_keys]
    for start in range(0, len(to_run), 10):
        chunk = to_run[start : start + 10]
        assert plane.invoke_run_task(plane.sqs_event(chunk)) == {"batchItemFailures": []}
        for m in chunk:
            plane.sqs.delete_message(QueueUrl=plane.queue_url, ReceiptHandle=m["ReceiptHandle"])
    for m in messages:
        if m not in to_run:
            plane.sqs.change_message_visibility(
                QueueUrl=plane.queue_url, ReceiptHandle=m["ReceiptHandle"], VisibilityTimeout=0
            )
    for task_id in groups["reported"]:
        finish(plane, keys[task_id], 0)
    assert set(events(old)) == {works[t].ti.key for t in groups["reported"]}
    for task_id in groups["unseen"]:
        finish(plane, keys[task_id], exits[task_id])
    for task_id in groups["running"]:
        plane.apply(plane.ecs_event(recorded_task(plane, keys[task_id]), "RUNNING"))
    del old  # the scheduler dies: no end(), no further sync

    # WHEN a new scheduler adopts every task instance Airflow still has in flight
    new = make_executor(owner="scheduler-new")
    reports: Counter[Any] = Counter()
    outcome: dict[Any, Any] = {}
    change_state = new.change_state

    def counting_change_state(key: Any, state: Any, info: Any = None, remove_running: bool = True) -> None:
        if state in (TaskInstanceState.SUCCESS, TaskInstanceState.FAILED):
            reports[key] += 1
            outcome[key] = state
        change_state(key, state, info, remove_running)

    monkeypatch.setattr(new, "change_state", counting_change_state)
    in_flight = [t for group in ("unseen", "running", "queued") for t in groups[group]]
    not_adopted = new.try_adopt_task_instances([adoptable(works[t]) for t in in_flight])
    events(new)

    # ... and everything is driven to its end: the queued requests delivered, all tasks exit
    plane.deliver()
    report = plane.reconcile()
    for task_id in groups["running"] + groups["queued"]:
        finish(plane, keys[task_id], exits[task_id])
    events(new)
    recheck(new)
    events(new)

    # THEN nothing was handed back for reset, and no task is an orphan
    assert not_adopted == []
    assert (report["orphans_stopped"], report["timed_out"], report["lost"]) == (0, 0, 0)
    # AND every adopted try was reported exactly once to the new scheduler, as it ended
    expected = {works[t].ti.key: exits[t] for t in in_flight}
    assert reports == Counter(dict.fromkeys(expected, 1))
    assert outcome == {
        key: TaskInstanceState.FAILED if code else TaskInstanceState.SUCCESS for key, code in expected.items()
    }
    assert all(plane.item(keys[t]).owner == "scheduler-new" for t in in_flight)
    # AND no submission was started twice: one ECS task each, at attempt 1
    started = Counter(env_of(task)["ECSCP_TASK_KEY"] for task in plane.tasks())
    assert started == Counter(dict.fromkeys(keys.values(), 1))
    assert all(plane.item(key).attempt == 1 for key in keys.values())
    assert new.tracked == {}
    assert plane.alerts() == []


def test_adopter_keeps_a_try_the_control_plane_has_not_moved_yet_and_asks_again(
    plane: MockedControlPlane, monkeypatch: pytest.MonkeyPatch
):
    # GIVEN a running try adopted by a new scheduler, whose adopt request run_task has not handled
    old = make_executor(owner="scheduler-old")
    work = workload("slow_move")
    submit(old, work)
    plane.deliver()
    key = encoded(work.ti.key)
    new = make_executor(owner="scheduler-new")
    assert new.try_adopt_task_instances([adoptable(work)]) == []
    new.sync()

    # WHEN its safety net reads the item, still the old scheduler's, long after it asked
    monkeypatch.setattr(adoption_module, "ADOPT_RESEND_MS", 0)
    recheck(new)
    seen = events(new)
    new.sync()

    # THEN it keeps the try (not "adopted by another"), and asks the control plane again
    assert seen == {}
    assert key in new.tracked
    adopt_requests = [
        m for m in plane.receive(visibility_timeout=0) if json.loads(m["Body"])["kind"] == "adopt"
    ]
    assert len(adopt_requests) >= 2
    # AND once the move is done, the outcome reaches it
    plane.deliver()
    plane.run_to_exit(key, 0)
    assert [state for state, _ in events(new).values()] == [TaskInstanceState.SUCCESS]
