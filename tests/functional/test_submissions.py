"""Submissions of one try, on moto: Airflow hands the executor the same try again for each
reschedule poke, deferral resume and requeue. Each submission runs its own ECS task, and nothing
of an earlier one (events, reconciler findings, alerts, stops) reaches a later one; messages of
contract v1 (keys without a submission) still in flight keep working.
"""

from __future__ import annotations

import json

import pytest
from airflow.utils.state import TaskInstanceState

from ecs_control_plane.contract import TaskKey, TaskState, now_ms
from tests.functional.test_executor import (
    configure,
    encoded,
    events,
    make_executor,
    submission_id,
    submit,
    task_events,
    workload,
)
from tests.support.airflow_release import requires_pre_assigned_ids
from tests.support.aws import CLUSTER, MockedControlPlane, mocked_control_plane
from tests.support.doubles import (
    desired_status,
    env_of,
    install_run_task,
    recheck,
    run_request_v2,
    send,
    submission_key,
    tasks_of,
)
from tests.support.requests import stop_request, task_key, workload_command

POKES = ("poke-1", "poke-2", "poke-3", "poke-4")


def test_each_submission_of_a_try_runs_its_own_task_and_a_redelivery_none(
    control_plane_aws: MockedControlPlane, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN two submissions of the same try (two pokes of a sensor), each delivered twice
    plane = control_plane_aws
    ecs = install_run_task(monkeypatch)
    first, second = submission_key("sensor", "poke-1"), submission_key("sensor", "poke-2")
    send(plane, run_request_v2(first), run_request_v2(second), run_request_v2(first), run_request_v2(second))

    # WHEN everything is delivered
    plane.deliver()

    # THEN each submission has one ECS task of its own, with its own client token and item
    tasks = {key: tasks_of(plane, key) for key in (first, second)}
    assert [len(t) for t in tasks.values()] == [1, 1]
    assert set(ecs.tokens_for(first)).isdisjoint(ecs.tokens_for(second))
    for key, [task] in tasks.items():
        item = plane.item(key)
        assert (item.state, item.task_arn) == (TaskState.STARTING, task["taskArn"])
        assert env_of(task)["ECSCP_TASK_KEY"] == key


def test_nothing_of_earlier_submissions_changes_the_latest_one(monkeypatch: pytest.MonkeyPatch) -> None:
    with mocked_control_plane(monkeypatch, max_attempts=1) as plane:
        # GIVEN four submissions of one try, all started, the latest one RUNNING
        keys = [submission_key("sensor", poke) for poke in POKES]
        send(plane, *(run_request_v2(key) for key in keys))
        plane.deliver()
        *earlier, latest = keys
        latest_task = plane.task_for(latest)
        plane.apply(plane.ecs_event(latest_task, "RUNNING"))
        before = plane.item(latest)

        # WHEN the earlier ones end every way they can: exit 1, failed start with its alert,
        # lost (the reconciler finds ECS no longer knows its task)
        plane.run_to_exit(earlier[0], 1)
        plane.fail_to_start(earlier[1])
        gone = f"arn:aws:ecs:us-east-1:123456789012:task/{CLUSTER}/gone"
        plane.dynamodb.update_item(
            TableName=plane.table_name,
            Key={"key": {"S": earlier[2]}},
            UpdateExpression="SET task_arn = :gone",
            ExpressionAttributeValues={":gone": {"S": gone}},
        )
        plane.age(earlier[2], 3600)
        report = plane.reconcile()

        # THEN each earlier submission ended on its own item ...
        assert [plane.item(k).state for k in earlier] == [TaskState.FAILED] * 3
        assert report["lost"] == 1
        [alert] = plane.alerts()
        assert (alert["detail"]["key"], alert["detail"]["submission"]) == (earlier[1], "poke-2")
        # ... and the latest one is untouched, its task the only one the sweep left running
        assert plane.item(latest) == before
        running = [t["taskArn"] for t in plane.tasks() if t["desiredStatus"] == "RUNNING"]
        assert running == [latest_task["taskArn"]]
        assert report["orphans_stopped"] == 3


def test_stop_for_an_earlier_submission_never_stops_a_later_one(
    control_plane_aws: MockedControlPlane,
) -> None:
    # GIVEN two started submissions of one try
    plane = control_plane_aws
    first, second = submission_key("sensor", "poke-1"), submission_key("sensor", "poke-2")
    send(plane, run_request_v2(first), run_request_v2(second))
    plane.deliver()

    # WHEN a stop request for the first one is delivered
    send(plane, stop_request(first))
    plane.deliver()

    # THEN only the first one's task is stopped
    assert desired_status(plane, plane.task_for(first)["taskArn"]) == "STOPPED"
    assert desired_status(plane, plane.task_for(second)["taskArn"]) == "RUNNING"
    assert plane.item(first).stop_requested
    later = plane.item(second)
    assert (later.state, later.stop_requested) == (TaskState.STARTING, False)


def test_contract_v1_messages_in_flight_still_work(control_plane_aws: MockedControlPlane) -> None:
    # GIVEN messages a v1 executor sent before the upgrade (6-part keys, no token expiry), and a
    # v2 submission of one of their tries
    plane = control_plane_aws
    finishing, stopping = task_key("legacy"), task_key("revoked")
    resubmitted = TaskKey.parse(finishing).with_submission("poke-1").encode()

    def v1(kind: str, key: str) -> str:
        body = {"version": 1, "kind": kind, "key": key, "owner": "scheduler-v1", "attempt": 1}
        body |= {"sent_at": now_ms(), "reason": None, "queue": "default", "executor_config": {}}
        body["command"] = workload_command(key) if kind == "run" else []
        return json.dumps(body)

    send(plane, v1("run", finishing), v1("run", stopping), run_request_v2(resubmitted))

    # WHEN they are delivered, a v1 stop follows for one, and the other runs to exit 0
    plane.deliver()
    send(plane, v1("stop", stopping))
    plane.deliver()
    plane.run_to_exit(finishing, 0)

    # THEN the v1 tries ran under their v1 keys, each with its own task beside the v2 submission
    done = plane.item(finishing)
    assert (done.state, done.owner, done.token_expires_at) == (TaskState.SUCCESS, "scheduler-v1", None)
    assert env_of(plane.task_for(finishing))["ECSCP_TASK_KEY"] == finishing
    assert desired_status(plane, plane.task_for(stopping)["taskArn"]) == "STOPPED"
    assert plane.item(stopping).stop_requested
    assert plane.item(resubmitted).state == TaskState.STARTING
    assert plane.task_for(resubmitted)["taskArn"] != plane.task_for(finishing)["taskArn"]
    assert plane.alerts() == []


# -- through the executor ------------------------------------------------------------------------


@pytest.fixture
def plane(control_plane_aws: MockedControlPlane, monkeypatch: pytest.MonkeyPatch) -> MockedControlPlane:
    configure(monkeypatch, control_plane_aws)
    return control_plane_aws


@pytest.mark.parametrize("first_exit", [0, 1], ids=["first-poke-succeeded", "first-poke-failed"])
def test_reschedule_poke_reports_only_the_current_submission(plane: MockedControlPlane, first_exit: int):
    # GIVEN a sensor's first poke, started, whose task ends before the executor syncs again
    executor = make_executor()
    first = workload("sensor", submission="poke-1")
    submit(executor, first)
    executor.get_event_buffer()
    plane.deliver()
    plane.run_to_exit(encoded(first.ti.key, "poke-1"), first_exit)

    # WHEN Airflow hands the same try over again for the next poke (same TaskInstanceKey)
    second = workload("sensor", submission="poke-2")
    assert second.ti.key == first.ti.key
    submit(executor, second)
    on_resubmission = executor.get_event_buffer()

    # THEN the first poke's outcome is not reported: Airflow only learns the new submission's id
    key = first.ti.key
    assert on_resubmission == {key: (TaskInstanceState.RUNNING, submission_id(key, "poke-2"))}
    # AND the second poke's outcome is what Airflow hears, with its own ECS task
    plane.deliver()
    current = encoded(key, "poke-2")
    arn = plane.task_for(current)["taskArn"]
    plane.run_to_exit(current, 0)
    recheck(executor)  # the safety net agrees
    assert events(executor) == {key: (TaskInstanceState.SUCCESS, arn)}
    assert task_events(executor) == []
    assert executor.tracked == {}


@requires_pre_assigned_ids  # without it, no hand-over carries an id: each gets a fresh one
def test_same_external_executor_id_handed_over_again_gets_a_fresh_submission(plane: MockedControlPlane):
    # GIVEN a try whose id Airflow keeps between two hand-overs (no pre-assigned id per queueing)
    executor = make_executor()
    first = workload("resumed", submission="kept-id")
    submit(executor, first)
    plane.deliver()
    plane.run_to_exit(encoded(first.ti.key, "kept-id"), 0)

    # WHEN the try is handed over again with the same external_executor_id (a deferral resume)
    submit(executor, workload("resumed", submission="kept-id"))
    buffered = executor.get_event_buffer()
    plane.deliver()

    # THEN it is a new submission, with a new id reported to Airflow and an ECS task of its own
    key = first.ti.key
    current = executor.current_submission(key)
    assert current is not None
    fresh = TaskKey.parse(current).submission
    assert fresh not in ("", "kept-id")
    assert buffered[key] == (TaskInstanceState.RUNNING, fresh)
    assert plane.item(current).state == TaskState.STARTING
    assert plane.task_for(current)["taskArn"] != plane.task_for(encoded(key, "kept-id"))["taskArn"]
