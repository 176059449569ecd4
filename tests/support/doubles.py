"""Test doubles around the moto control plane: an ECS RunTask that keeps ECS's idempotency
promise, scripted RunTask answers, a second run_task invocation, and the delays of re-sent
run requests.

Moto's RunTask ignores ``clientToken``; real ECS answers a repeated token with the task it
already started. ``RunTaskDouble`` adds that, so "one ECS task per submission" is checked the
way ECS would count it, and lets a test act *inside* a RunTask call (another invocation of the
same record, an ECS event, a stop, the reconciler) to reproduce the races the design rules guard.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from botocore.exceptions import ClientError
from moto.moto_api import state_manager

from ecs_control_plane.contract import RunRequest, TaskKey, now_ms
from ecs_control_plane.runtime import control_plane
from ecscp.local.lambda_context import LambdaContext
from functions.run_task import app as run_task_app
from tests.support.aws import CLUSTER, MockedControlPlane
from tests.support.requests import run_request

#: What a scripted RunTask call does instead of starting a task: ``behaviour(double, kwargs)``.
Behaviour = Callable[["RunTaskDouble", dict[str, Any]], Any]


def env_of(kwargs_or_task: dict[str, Any]) -> dict[str, str]:
    """The reserved environment of the container carrying the task key (any container name)."""
    for override in kwargs_or_task.get("overrides", {}).get("containerOverrides", []):
        env = {e["name"]: e["value"] for e in override.get("environment", [])}
        if "ECSCP_TASK_KEY" in env:
            return env
    return {}


@dataclass
class RunTaskDouble:
    """``ecs.run_task`` of the control plane's client: moto, plus ECS's clientToken idempotency."""

    client: Any
    real: Callable[..., Any]
    calls: list[dict[str, Any]] = field(default_factory=list)
    by_token: dict[str, str] = field(default_factory=dict)
    script: list[Behaviour | None] = field(default_factory=list)

    def then(self, *behaviours: Behaviour | None) -> RunTaskDouble:
        """The next calls do these, in order (None: start the task); later calls start tasks."""
        self.script.extend(behaviours)
        return self

    def __call__(self, **kwargs: Any) -> Any:
        self.calls.append(kwargs)
        behaviour = self.script.pop(0) if self.script else None
        return behaviour(self, kwargs) if behaviour is not None else self.start(kwargs)

    def start(self, kwargs: dict[str, Any]) -> Any:
        """What ECS does: a token seen before gets the task it started, else a new task."""
        token = kwargs.get("clientToken")
        if token and token in self.by_token:
            tasks = self.client.describe_tasks(cluster=kwargs["cluster"], tasks=[self.by_token[token]])
            return {"tasks": tasks["tasks"], "failures": []}
        response = self.real(**kwargs)
        if token and response.get("tasks"):
            self.by_token[token] = response["tasks"][0]["taskArn"]
        return response

    def tokens_for(self, key: str) -> list[str]:
        return [c["clientToken"] for c in self.calls if env_of(c).get("ECSCP_TASK_KEY") == key]


def install_run_task(monkeypatch: pytest.MonkeyPatch) -> RunTaskDouble:
    """Put a RunTaskDouble in front of the ECS client of the functions' (cached) control plane."""
    client = control_plane().ecs._client
    double = RunTaskDouble(client=client, real=client.run_task)
    monkeypatch.setattr(client, "run_task", double)
    return double


# -- scripted answers ----------------------------------------------------------------------------


def client_error(code: str, message: str, status: int = 400) -> ClientError:
    response = {"Error": {"Code": code, "Message": message}, "ResponseMetadata": {"HTTPStatusCode": status}}
    return ClientError(response, "RunTask")  # type: ignore[arg-type]


def raising(code: str, message: str) -> Behaviour:
    def behaviour(_: RunTaskDouble, __: dict[str, Any]) -> Any:
        raise client_error(code, message)

    return behaviour


THROTTLED = raising("ThrottlingException", "Rate exceeded")


def no_capacity(reason: str = "RESOURCE:MEMORY") -> Behaviour:
    def behaviour(_: RunTaskDouble, __: dict[str, Any]) -> Any:
        return {"tasks": [], "failures": [{"arn": "arn:aws:ecs:::container-instance/x", "reason": reason}]}

    return behaviour


def meanwhile(action: Callable[[], Any], answer: Behaviour | None = None) -> Behaviour:
    """``action`` happens while this call is in flight, before ECS answers; then ECS ``answer``s."""

    def behaviour(double: RunTaskDouble, kwargs: dict[str, Any]) -> Any:
        action()
        return answer(double, kwargs) if answer is not None else double.start(kwargs)

    return behaviour


def after_start(action: Callable[[dict[str, Any]], Any]) -> Behaviour:
    """ECS starts the task, then ``action(task)`` happens before run_task sees the answer."""

    def behaviour(double: RunTaskDouble, kwargs: dict[str, Any]) -> Any:
        response = double.start(kwargs)
        action(response["tasks"][0])
        return response

    return behaviour


def crash_after_start(double: RunTaskDouble, kwargs: dict[str, Any]) -> Any:
    """ECS started the task, but the invocation died (a Lambda timeout) before seeing the answer."""
    double.start(kwargs)
    raise TimeoutError("the run_task invocation timed out after RunTask")


# -- run_task invocations ------------------------------------------------------------------------


def send(plane: MockedControlPlane, *requests: RunRequest | str, delay_seconds: int = 0) -> None:
    for request in requests:
        body = request if isinstance(request, str) else request.model_dump_json()
        plane.sqs.send_message(QueueUrl=plane.queue_url, MessageBody=body, DelaySeconds=delay_seconds)


def another_invocation(plane: MockedControlPlane, messages: list[dict[str, Any]]) -> dict[str, Any]:
    """A second, concurrent invocation of the run_task function (its own batch processor)."""
    processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)
    return dict(
        process_partial_response(
            event=plane.sqs_event(messages),
            record_handler=run_task_app.record_handler,
            processor=processor,
            context=LambdaContext(function_name="run_task"),  # type: ignore[arg-type]
        )
    )


def acknowledge(plane: MockedControlPlane, messages: list[dict[str, Any]], response: dict[str, Any]) -> None:
    """What the event source mapping does after an invocation: delete what succeeded."""
    failed = {f["itemIdentifier"] for f in response.get("batchItemFailures", [])}
    for message in messages:
        if message["MessageId"] not in failed:
            plane.sqs.delete_message(QueueUrl=plane.queue_url, ReceiptHandle=message["ReceiptHandle"])


def stop_task_now(plane: MockedControlPlane, key: str, owner: str = "scheduler-a") -> None:
    """Deliver a stop request for ``key`` through another run_task invocation."""
    stop = RunRequest(kind="stop", key=key, owner=owner, reason="revoked by the scheduler")
    plane.sqs.send_message(QueueUrl=plane.queue_url, MessageBody=stop.model_dump_json())
    messages = [m for m in plane.receive() if RunRequest.from_message(m["Body"]).kind == "stop"]
    acknowledge(plane, messages, another_invocation(plane, messages))


# -- re-sent run requests ------------------------------------------------------------------------


@dataclass
class ResentRequests:
    """Run requests the control plane sent itself (throttling, start retries) and the delay it chose.

    They are put on the queue at once (delay 0) so that a test need not wait out the backoff.
    """

    sent: list[tuple[RunRequest, int]] = field(default_factory=list)

    @property
    def delays(self) -> list[int]:
        return [delay for _, delay in self.sent]


def record_resent_requests(monkeypatch: pytest.MonkeyPatch) -> ResentRequests:
    queue = control_plane().queue
    real_send = queue.send
    record = ResentRequests()

    def send_now(request: RunRequest, delay_seconds: int = 0) -> str:
        record.sent.append((request, delay_seconds))
        return real_send(request, delay_seconds=0)

    monkeypatch.setattr(queue, "send", send_now)
    return record


# -- ECS tasks -----------------------------------------------------------------------------------


@contextmanager
def ecs_tasks_hold_their_status() -> Iterator[None]:
    """Moto moves a task one status on (RUNNING, DEACTIVATING, ... STOPPED) at every DescribeTasks;
    here a task stays RUNNING until it is stopped, as a long Airflow task does."""
    state_manager.set_transition("ecs::task", {"progression": "manual", "times": 10**9})
    try:
        yield
    finally:
        state_manager.unset_transition("ecs::task")


def tasks_of(plane: MockedControlPlane, key: str) -> list[dict[str, Any]]:
    """Every ECS task (running or stopped) that carries ``key``, whatever its container's name."""
    return [t for t in plane.tasks() if env_of(t).get("ECSCP_TASK_KEY") == key]


def describe(plane: MockedControlPlane, arn: str) -> dict[str, Any]:
    return dict(plane.ecs.describe_tasks(cluster=CLUSTER, tasks=[arn])["tasks"][0])


def desired_status(plane: MockedControlPlane, arn: str) -> str:
    return str(describe(plane, arn)["desiredStatus"])


def run_task_to_exit(plane: MockedControlPlane, task: dict[str, Any], exit_code: int) -> None:
    """PROVISIONING, RUNNING, then STOPPED with ``exit_code``, for one given ECS task."""
    for status in ("PROVISIONING", "RUNNING"):
        plane.apply(plane.ecs_event(task, status))
    plane.apply(plane.ecs_event(task, "STOPPED", exit_code=exit_code))


def recorded_task(plane: MockedControlPlane, key: str) -> dict[str, Any]:
    """The ECS task the item of ``key`` records (cheaper than ``task_for`` among many tasks)."""
    arn = plane.item(key).task_arn
    assert arn, f"{key} has no ECS task"
    return describe(plane, arn)


def finish(plane: MockedControlPlane, key: str, exit_code: int) -> None:
    """The task the item of ``key`` records exits with ``exit_code``: ECS stops it and its STOPPED
    event is applied (the earlier ones are not needed to end the try)."""
    task = recorded_task(plane, key)
    plane.ecs.stop_task(cluster=CLUSTER, task=task["taskArn"], reason="Essential container in task exited")
    plane.apply(plane.ecs_event(task, "STOPPED", exit_code=exit_code))


def bodies(plane: MockedControlPlane) -> list[dict[str, Any]]:
    """The run requests waiting on the queue (made visible again at once)."""
    return [json.loads(m["Body"]) for m in plane.receive(visibility_timeout=0)]


def submission_key(
    task_id: str = "extract",
    submission: str = "sub-1",
    *,
    dag_id: str = "example",
    try_number: int = 1,
    map_index: int = -1,
) -> str:
    """The contract v2 key of one submission of one try."""
    run_id = "manual__2026-11-25T10:00:00+00:00"
    return TaskKey(dag_id, task_id, run_id, map_index, try_number, submission=submission).encode()


def run_request_v2(key: str, *, token_ttl_s: float = 600, **fields: Any) -> RunRequest:
    """A run request as the v2 executor sends it: with its workload token's expiry."""
    return run_request(key, token_expires_at=now_ms() + int(token_ttl_s * 1000), **fields)


def recheck(executor: Any, max_syncs: int = 100) -> None:
    """Run one whole safety-net pass now: it makes one call a sync, so sync until it is done."""
    executor.safety_net.restart()
    for _ in range(max_syncs):
        executor.sync()
        if not executor.safety_net.in_progress:
            return
    raise AssertionError(f"the safety net did not finish a pass in {max_syncs} syncs")
