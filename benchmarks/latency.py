"""Per-call latency typical of AWS in one region, added to the benchmark's loopback calls.

On moto every call is a loopback round trip of a few milliseconds, so the side that makes more
calls (the provider: one RunTask per task, ⌈N/99⌉ DescribeTasks per sync) pays too little.
:class:`AddedLatency` is a botocore ``before-send`` hook that sleeps a modelled latency before
every HTTP request of every client in this process (ours from ``executor_client/aws.py``, the
provider's from its Amazon provider hooks: both come from ``botocore.session.Session.create_client``,
where the hook is installed, as ``env.COUNTER`` installs its call counting). It sleeps, so the
wall time includes the latency and the process's CPU time does not.

The latency is *added* to moto's own time, which stays in every figure: on AWS the service time
is part of the modelled latency, so both sides are over-estimated by what moto costs them.

Use it from any scenario (clients made inside the block get it; install() first covers clients
made earlier)::

    from benchmarks.latency import AWS_LATENCY
    with AWS_LATENCY.applied():          # the AWS_ONE_REGION model, seed 12
        ...                              # every botocore call sleeps its modelled latency
"""

from __future__ import annotations

import contextlib
import math
import random
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import botocore.session

#: z of the 99th percentile of a standard normal: a log-normal's p99 is median * exp(2.326 sigma).
_Z99 = 2.3263
#: Draws are cut at this multiple of the p99, so a short run is not decided by one rare outlier.
_TAIL_CAP = 2.0


@dataclass(frozen=True)
class CallLatency:
    """The latency of one API call seen by an EC2 client in the call's region (ms)."""

    median_ms: float
    p99_ms: float
    source: str
    #: True where no published per-call figure was found and the figure is our estimate.
    estimate: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {
            "median_ms": self.median_ms,
            "p99_ms": self.p99_ms,
            "estimate": self.estimate,
            "source": self.source,
        }


_DDB_SINGLE = (
    "AWS DynamoDB Developer Guide, 'Troubleshooting latency issues' (TroubleshootingLatency.html) and "
    "AWS re:Post 'dynamodb-high-latency': single-item operations have a single-digit-ms average "
    "service-side latency (SuccessfulRequestLatency), transport not included; plus ~1 ms for an "
    "in-region round trip on a kept-alive TLS connection (estimate)"
)
_DDB_MULTI = (
    "same sources: multi-item operations (Query, BatchGetItem, BatchWriteItem) 'depend on the size "
    "of the result set'; the figure is our estimate for the sizes these benchmarks use"
)
_SQS = (
    "Amazon's 2012 re-measurement of the Sion et al. 'Cloud Performance Benchmark Series: Amazon SQS' "
    "(EC2 in us-east-1): 16 ms to send a 1 KB message"
)
_ECS = (
    "estimate: no published per-call latency was found. ECS API calls are control-plane calls, "
    "throttled per account and Region by token buckets (Amazon ECS API Reference, 'Request "
    "throttling'); RunTask validates the task definition and places the task before it returns. "
    "The report gives the figure at which each target would flip, to check against any other figure"
)

#: The model: service.Operation (as env.COUNTER names calls) -> latency, with its source.
AWS_ONE_REGION: Mapping[str, CallLatency] = {
    "dynamodb.GetItem": CallLatency(4, 12, _DDB_SINGLE),
    "dynamodb.UpdateItem": CallLatency(6, 20, _DDB_SINGLE + "; a write waits for a replica quorum"),
    "dynamodb.PutItem": CallLatency(6, 20, _DDB_SINGLE + "; a write waits for a replica quorum"),
    "dynamodb.Query": CallLatency(6, 20, _DDB_MULTI + " (an empty or small page)", estimate=True),
    "dynamodb.BatchGetItem": CallLatency(12, 40, _DDB_MULTI + " (100 keys)", estimate=True),
    "dynamodb.BatchWriteItem": CallLatency(15, 50, _DDB_MULTI + " (25 items)", estimate=True),
    "sqs.SendMessage": CallLatency(16, 50, _SQS + "; p99 estimated"),
    "sqs.SendMessageBatch": CallLatency(
        20, 60, _SQS + "; +4 ms for ten ~1.5 KB messages in one request, p99 estimated", estimate=True
    ),
    "sqs.ReceiveMessage": CallLatency(16, 50, _SQS + " (a short poll answers as fast as a send)", True),
    "sqs.DeleteMessageBatch": CallLatency(16, 50, _SQS + " (a delete answers as fast as a send)", True),
    "ecs.RunTask": CallLatency(150, 500, _ECS, estimate=True),
    "ecs.DescribeTasks": CallLatency(40, 120, _ECS + " (up to 100 tasks a call)", estimate=True),
    "ecs.StopTask": CallLatency(60, 200, _ECS, estimate=True),
}
#: Every other call (setup, GetQueueAttributes, ...): a generic in-region AWS API call.
AWS_DEFAULT = CallLatency(15, 50, "estimate: a generic in-region AWS API call", estimate=True)


@dataclass(frozen=True)
class LatencyModel:
    calls: Mapping[str, CallLatency] = field(default_factory=lambda: AWS_ONE_REGION)
    default: CallLatency = AWS_DEFAULT
    #: Draws come from one seeded RNG per operation, so a run repeats exactly.
    seed: int = 12
    #: False: every call takes exactly its median (no tail).
    spread: bool = True

    def latency(self, operation: str) -> CallLatency:
        return self.calls.get(operation, self.default)

    def as_dict(self) -> dict[str, Any]:
        return {
            "seed": self.seed,
            "spread": "log-normal through median and p99, cut at 2x p99" if self.spread else "median only",
            "where": "botocore before-send hook, added to moto's loopback time (benchmarks/latency.py)",
            "calls": {op: c.as_dict() for op, c in self.calls.items()},
            "default": self.default.as_dict(),
        }


MEDIANS_ONLY = LatencyModel(spread=False)


class AddedLatency:
    """Sleeps the model's latency before each HTTP request of every botocore client, when applied.

    The hook sits on every client made after :meth:`install` and does nothing until a model is
    applied, so installing it early costs nothing and covers clients made before the block.
    """

    def __init__(self, sleep: Callable[[float], None] = time.sleep) -> None:
        self._sleep = sleep
        self._model: LatencyModel | None = None
        self._rngs: dict[str, random.Random] = {}
        self._lock = threading.Lock()
        self._installed = False
        #: Seconds slept so far, and how many calls slept (for the figures' "of which modelled").
        self.slept_s = 0.0
        self.calls = 0

    @property
    def model(self) -> LatencyModel | None:
        return self._model

    def install(self) -> None:
        if self._installed:
            return
        original = botocore.session.Session.create_client
        hook = self

        def create_client(session: botocore.session.Session, *args: Any, **kwargs: Any) -> Any:
            client = original(session, *args, **kwargs)
            hook.register(client)
            return client

        botocore.session.Session.create_client = create_client  # type: ignore[method-assign,assignment]
        self._installed = True

    def register(self, client: Any) -> None:
        """Hook one client made outside ``botocore.session.Session.create_client``."""
        client.meta.events.register("before-send.*.*", self._on_send)

    @contextlib.contextmanager
    def applied(self, model: LatencyModel | None = None) -> Iterator[LatencyModel]:
        """Every call in the block sleeps its modelled latency; the RNGs restart from the seed."""
        self.install()
        chosen = model or LatencyModel()
        with self._lock:
            self._model, self._rngs = chosen, {}
        try:
            yield chosen
        finally:
            with self._lock:
                self._model = None

    def draw_s(self, operation: str) -> float:
        """The next modelled latency (seconds) of ``operation`` (``service.Operation``)."""
        model = self._model
        if model is None:
            return 0.0
        latency = model.latency(operation)
        if not model.spread or latency.p99_ms <= latency.median_ms:
            return latency.median_ms / 1000
        with self._lock:
            rng = self._rngs.setdefault(operation, random.Random(f"{model.seed}:{operation}"))
            sigma = math.log(latency.p99_ms / latency.median_ms) / _Z99
            ms = rng.lognormvariate(math.log(latency.median_ms), sigma)
        return min(ms, _TAIL_CAP * latency.p99_ms) / 1000

    def _on_send(self, event_name: str = "", **_: Any) -> None:
        if self._model is None:
            return
        # event_name is "before-send.<service id>.<Operation>", e.g. before-send.dynamodb.Query.
        _event, service, operation = event_name.split(".", 2)
        seconds = self.draw_s(f"{service}.{operation}")
        if seconds > 0:
            self._sleep(seconds)
            with self._lock:
                self.slept_s += seconds
                self.calls += 1


AWS_LATENCY = AddedLatency()
