"""Oversize input fails alone, on moto: SendMessageBatch calls stay within what SQS takes, a
request too large for SQS fails its own task (the other nine of its batch are sent and run), and
an executor_config too large for the state item fails its try at once with an alert.
"""

from __future__ import annotations

from typing import Any

import pytest
from airflow.utils.state import TaskInstanceState
from botocore.exceptions import ClientError

from ecs_control_plane import store
from ecs_control_plane.contract import TaskState
from ecs_control_plane.gateways import SQS_BATCH_LIMIT, SQS_MAX_BYTES
from tests.functional.test_executor import configure, encoded, make_executor, submit, task_events, workload
from tests.support.aws import MockedControlPlane
from tests.support.doubles import bodies, run_request_v2, send, submission_key, tasks_of


def with_environment(size: int) -> dict[str, Any]:
    """An executor_config the allow-list accepts that makes the run request about ``size`` bytes bigger."""
    count = -(-size // 8000)
    variables = [{"name": f"PAYLOAD_{i}", "value": "x" * (size // count)} for i in range(count)]
    return {"overrides": {"containerOverrides": [{"name": "airflow", "environment": variables}]}}


def tagged(count: int) -> dict[str, Any]:
    """A small executor_config the allow-list accepts: ``count`` RunTask tags."""
    return {"tags": [{"key": f"team-{i}", "value": "x" * 200} for i in range(count)]}


class SqsLimits:
    """The executor's SendMessageBatch, holding calls to SQS's limits as AWS does (moto allows 1 MiB)."""

    def __init__(self, client: Any, monkeypatch: pytest.MonkeyPatch) -> None:
        self.real = client.send_message_batch
        self.calls: list[tuple[int, int]] = []
        monkeypatch.setattr(client, "send_message_batch", self)

    def __call__(self, *, QueueUrl: str, Entries: list[dict[str, Any]]) -> Any:  # noqa: N803 - boto3 names
        size = sum(len(e["MessageBody"].encode()) for e in Entries)
        self.calls.append((len(Entries), size))
        if size > SQS_MAX_BYTES or len(Entries) > SQS_BATCH_LIMIT:
            raise ClientError(
                {"Error": {"Code": "AWS.SimpleQueueService.BatchRequestTooLong", "Message": f"{size} bytes"}},
                "SendMessageBatch",
            )
        return self.real(QueueUrl=QueueUrl, Entries=Entries)


@pytest.fixture
def plane(control_plane_aws: MockedControlPlane, monkeypatch: pytest.MonkeyPatch) -> MockedControlPlane:
    configure(monkeypatch, control_plane_aws)
    return control_plane_aws


def test_request_too_large_for_sqs_fails_alone_and_the_other_nine_run(
    plane: MockedControlPlane, monkeypatch: pytest.MonkeyPatch
):
    # GIVEN ten tasks queued at once, one of them with an executor_config larger than SQS takes
    executor = make_executor()
    sqs = SqsLimits(executor.clients.queue._client, monkeypatch)
    huge = workload("huge", executor_config=with_environment(SQS_MAX_BYTES))
    others = [workload(f"small_{i}") for i in range(9)]

    # WHEN one heartbeat sends them
    submit(executor, huge, *others)

    # THEN the large one fails at once, saying why, and the nine others are sent
    buffered = executor.get_event_buffer()
    assert buffered.get(huge.ti.key) == (TaskInstanceState.FAILED, None)
    assert {k: s for k, (s, _) in buffered.items() if k != huge.ti.key} == {
        w.ti.key: TaskInstanceState.RUNNING for w in others
    }
    [(event, extra)] = task_events(executor)
    assert event == "ecs control plane task refused"
    assert f"more than the {SQS_MAX_BYTES} bytes SQS accepts" in extra
    assert all(count <= SQS_BATCH_LIMIT and size <= SQS_MAX_BYTES for count, size in sqs.calls)
    # AND they run
    plane.deliver()
    assert [plane.item(encoded(w.ti.key)).state for w in others] == [TaskState.STARTING] * 9
    assert plane.item(encoded(huge.ti.key)) is None
    assert len(plane.tasks()) == 9


def test_requests_adding_up_to_more_than_one_call_takes_are_sent_in_several(
    plane: MockedControlPlane, monkeypatch: pytest.MonkeyPatch
):
    # GIVEN ten tasks of about 40 KB each (400 KB together, more than one SendMessageBatch takes)
    executor = make_executor()
    sqs = SqsLimits(executor.clients.queue._client, monkeypatch)
    works = [workload(f"wide_{i}", executor_config=with_environment(40_000)) for i in range(10)]

    # WHEN one heartbeat sends them
    submit(executor, *works)

    # THEN every request is on the queue, sent in calls that SQS takes, and no task failed
    assert len(sqs.calls) >= 2
    assert all(size <= SQS_MAX_BYTES for _, size in sqs.calls)
    assert sorted(b["key"] for b in bodies(plane)) == sorted(encoded(w.ti.key) for w in works)
    assert {s for s, _ in executor.get_event_buffer().values()} == {TaskInstanceState.RUNNING}
    assert task_events(executor) == []


def test_executor_config_too_large_for_the_state_item_fails_its_try_at_once_with_an_alert(
    control_plane_aws: MockedControlPlane, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a state item that holds at most 4,000 bytes of executor_config (the allow-list keeps
    # real configs far below MAX_STORED_CONFIG_BYTES, so the limit is lowered here), a run request
    # with a larger one in a batch with an ordinary request, and the same request once more
    monkeypatch.setattr(store, "MAX_STORED_CONFIG_BYTES", 4_000)
    plane = control_plane_aws
    too_big, ordinary = submission_key("too_big"), submission_key("ordinary")
    request = run_request_v2(too_big, executor_config=tagged(30))
    send(plane, request, run_request_v2(ordinary, executor_config=tagged(2)))

    # WHEN they are delivered, then the copy
    responses = plane.deliver()
    send(plane, request)
    responses += plane.deliver()

    # THEN the oversize try failed at its first attempt with a clear reason and one alert, and
    # nothing was retried; the ordinary one started
    assert all(r == {"batchItemFailures": []} for r in responses)
    item = plane.item(too_big)
    assert (item.state, item.attempt, item.executor_config) == (TaskState.FAILED, 1, {})
    assert "executor_config is" in (item.reason or "")
    assert "more than the 4000 the state item can hold" in (item.reason or "")
    [alert] = plane.alerts()
    assert (alert["detail"]["key"], alert["detail"]["reason"]) == (too_big, item.reason)
    assert tasks_of(plane, too_big) == []
    assert plane.item(ordinary).state == TaskState.STARTING
    assert bodies(plane) == []
