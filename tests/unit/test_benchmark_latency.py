"""The benchmarks' AWS-latency model: it adds its latency to the right call, and only when applied."""

from __future__ import annotations

import time
from typing import Any

import botocore.session
import pytest
from botocore.awsrequest import AWSResponse, HTTPHeaders

from benchmarks.latency import AWS_ONE_REGION, AddedLatency, CallLatency, LatencyModel

GET_ITEM_MS = 80.0
#: One call in this test takes well under this without the model (no network: answered in-process).


class _Raw:
    """The smallest urllib3-like body botocore's AWSResponse reads."""

    def __init__(self, body: bytes) -> None:
        self._body = body

    def stream(self, *_: Any, **__: Any) -> Any:
        yield self._body


def _answer(request: Any, **_: Any) -> Any:
    headers = HTTPHeaders()
    headers["Content-Type"] = "application/x-amz-json-1.0"
    return AWSResponse(request.url, 200, headers, _Raw(b"{}"))


def _dynamodb(hook: AddedLatency) -> Any:
    client = botocore.session.get_session().create_client(
        "dynamodb",
        region_name="us-east-1",
        endpoint_url="http://127.0.0.1:9",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    hook.register(client)
    # Registered after the latency hook, so the latency is slept before the (fake) request is sent.
    client.meta.events.register("before-send.dynamodb.*", _answer)
    return client


def _wall_ms(call: Any) -> float:
    start = time.perf_counter()
    call()
    return (time.perf_counter() - start) * 1000


@pytest.fixture
def hook() -> AddedLatency:
    return AddedLatency()


def _model() -> LatencyModel:
    return LatencyModel(
        calls={"dynamodb.GetItem": CallLatency(GET_ITEM_MS, GET_ITEM_MS, "test")},
        default=CallLatency(0, 0, "test"),
        spread=False,
    )


def test_applied_model_adds_its_latency_to_the_modelled_call_only(hook: AddedLatency) -> None:
    # GIVEN a client hooked, and a model where only GetItem has a latency
    client = _dynamodb(hook)
    get_item = lambda: client.get_item(TableName="t", Key={"k": {"S": "a"}})  # noqa: E731
    query = lambda: client.query(TableName="t", KeyConditionExpression="k = :k")  # noqa: E731

    # WHEN each call is made under the model
    with hook.applied(_model()):
        get_item_ms = _wall_ms(get_item)
        query()

    # THEN GetItem's wall time includes the modelled latency; Query was not delayed (one delayed
    # call in all: counted, since a wall-time upper bound fails on a busy shared machine)
    assert get_item_ms >= GET_ITEM_MS
    assert hook.calls == 1
    assert hook.slept_s == pytest.approx(GET_ITEM_MS / 1000)


def test_hook_adds_nothing_unless_applied(hook: AddedLatency) -> None:
    # GIVEN a hooked client, before and after a block with the model applied
    client = _dynamodb(hook)
    get_item = lambda: client.get_item(TableName="t", Key={"k": {"S": "a"}})  # noqa: E731

    # WHEN GetItem is called outside the block
    get_item()
    with hook.applied(_model()):
        pass
    get_item()

    # THEN the hook delayed no call (a count, not a wall time: these machines are shared)
    assert hook.calls == 0
    assert hook.model is None


def test_draws_repeat_for_a_seed_and_stay_near_the_median() -> None:
    # GIVEN two hooks applying the same spread model
    first, second = AddedLatency(sleep=lambda _: None), AddedLatency(sleep=lambda _: None)
    model = LatencyModel(seed=7)

    # WHEN each draws 2,000 RunTask latencies
    with first.applied(model):
        a = [first.draw_s("ecs.RunTask") for _ in range(2000)]
    with second.applied(model):
        b = [second.draw_s("ecs.RunTask") for _ in range(2000)]

    # THEN the draws are identical, centred on the median, with the p99 where the model puts it
    assert a == b
    run_task = AWS_ONE_REGION["ecs.RunTask"]
    ordered = sorted(a)
    assert ordered[1000] * 1000 == pytest.approx(run_task.median_ms, rel=0.1)
    assert ordered[1980] * 1000 == pytest.approx(run_task.p99_ms, rel=0.25)


def test_every_modelled_call_names_its_source() -> None:
    # GIVEN the model's table, WHEN read, THEN each figure has a source and a p99 at or above its median
    for operation, latency in AWS_ONE_REGION.items():
        assert latency.source, operation
        assert latency.p99_ms >= latency.median_ms > 0, operation
