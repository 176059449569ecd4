"""Scenario: steady state. N tasks in flight; on every heartbeat 1% of them end and as many start.

What a scheduler operator feels is the worst heartbeat, not the average one. For each N and
each executor, heartbeats run for a fixed time at Airflow's pace (one a second at most: the
scheduler loop idles ``scheduler_idle_sleep_time`` = 1 s), each one exactly as the scheduler
makes it (``heartbeat()``: trigger_tasks, then sync). Between heartbeats, untimed and uncounted,
the world moves on: k = 1% of the tasks end (ours: the control plane's SUCCESS items; the
provider's: its ECS tasks stop) and k new workloads are queued; after the heartbeat that hands
them over, ours get the RUNNING items the control plane would write (the provider's tasks are
started inside its heartbeat, by RunTask).

Per heartbeat: wall and CPU time of this process (moto runs in a child process), the AWS calls
by service, and for ours the items the change feed returned and the items it deserialized. Our
executor runs with its default settings (the safety net every 60 s, so its passes fall inside
the window); the provider's with ``max_run_task_attempts`` = 1, because moto's stopped tasks
carry no ``startedAt`` and the provider would otherwise retry each as a failed start (it
reports them FAILED instead: the same describe-and-report work).

The two executors run one after the other on the same moto server, ours first.
"""

# Airflow, moto and the handlers are imported where used: the environment (AIRFLOW_HOME,
# fake credentials, endpoints) must be set before they read it.
# ruff: noqa: PLC0415

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from ecs_control_plane.contract import TaskState, now_ms

from . import ours, provider
from .env import COUNTER, AwsFixture, MotoServer
from .stats import percentile
from .sync_bench import OurSide, ProviderSide, SyncPlan, _queue
from .workloads import make_workloads

Say = Callable[[str], None]
CHURN = 0.01
#: Airflow's scheduler loop idles this long between iterations when it has nothing to do.
HEARTBEAT_PERIOD_S = 1.0


@dataclass(frozen=True)
class SteadyPlan:
    n: int
    duration_s: float
    period_s: float = HEARTBEAT_PERIOD_S

    @property
    def k(self) -> int:
        return max(1, round(self.n * CHURN))


@dataclass
class Heartbeats:
    """Per-heartbeat figures of one executor."""

    wall_ms: list[float] = field(default_factory=list)
    cpu_ms: list[float] = field(default_factory=list)
    #: CPU of reading the state of tasks in flight (ours: the change feed and safety net; the
    #: provider: DescribeTasks), the part of the heartbeat that grows with N.
    read_cpu_ms: list[float] = field(default_factory=list)
    calls: list[dict[str, int]] = field(default_factory=list)
    query_items: list[int] = field(default_factory=list)
    parsed: list[int] = field(default_factory=list)
    changed: list[int] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        def spread(values: list[float]) -> dict[str, float]:
            return {
                "p50": round(percentile(values, 50), 2),
                "p99": round(percentile(values, 99), 2),
                "max": round(max(values), 2),
            }

        def by_service(service: str) -> list[int]:
            return [sum(n for op, n in c.items() if op.startswith(f"{service}.")) for c in self.calls]

        dynamodb = by_service("dynamodb")
        hand_over = [c.get("sqs.SendMessageBatch", 0) + c.get("ecs.RunTask", 0) for c in self.calls]
        out: dict[str, Any] = {
            "heartbeats": len(self.wall_ms),
            "wall_ms": spread(self.wall_ms),
            "cpu_ms": spread(self.cpu_ms),
            "read_cpu_ms": spread(self.read_cpu_ms),
            "cpu_ms_samples": [round(v, 1) for v in self.cpu_ms],
            "max_aws_calls": max(sum(c.values()) for c in self.calls),
            "max_aws_calls_besides_hand_over": max(
                sum(c.values()) - h for c, h in zip(self.calls, hand_over, strict=True)
            ),
            "max_dynamodb_calls": max(dynamodb),
            "heartbeats_over_2_dynamodb_calls": sum(1 for n in dynamodb if n > 2),
            "calls_in_worst_heartbeat": max(self.calls, key=lambda c: sum(c.values())),
        }
        if any(self.changed):
            out["query_items"] = spread([float(n) for n in self.query_items])
            changed, parsed = sum(self.changed), sum(self.parsed)
            out["items_changed"] = changed
            out["items_parsed"] = parsed
            out["parsed_per_changed"] = round(parsed / changed, 3) if changed else None
        return out


@contextmanager
def _counting_parses() -> Iterator[list[int]]:
    """Count the state items our executor deserializes (``ItemVersion.parse``)."""
    from ecs_control_plane.store import ItemVersion

    count = [0]
    original = ItemVersion.parse

    def parse(self: ItemVersion) -> Any:
        count[0] += 1
        return original(self)

    ItemVersion.parse = parse  # type: ignore[method-assign]
    try:
        yield count
    finally:
        ItemVersion.parse = original  # type: ignore[method-assign]


@contextmanager
def _cpu_of(obj: Any, method: str) -> Iterator[list[float]]:
    """The CPU ms each call of ``obj.method`` took, appended to the yielded list."""
    spent: list[float] = []
    original = getattr(obj, method)

    def timed(*args: Any, **kwargs: Any) -> Any:
        start = time.process_time()
        try:
            return original(*args, **kwargs)
        finally:
            spent.append((time.process_time() - start) * 1000)

    setattr(obj, method, timed)
    try:
        yield spent
    finally:
        delattr(obj, method)


def _heartbeats(
    plan: SteadyPlan,
    heartbeat: Callable[[], None],
    before: Callable[[int], int],
    after: Callable[[], None],
    *,
    parses: list[int] | None = None,
    read_cpu: list[float] | None = None,
) -> Heartbeats:
    """Heartbeats for ``plan.duration_s``: ``before(i)`` (untimed) returns the items it changed.

    One heartbeat first, untimed: the scheduler's first heartbeat pays one-off costs (Airflow's
    ORM mappers, first imports) that are not the steady state's.
    """
    before(-1)
    heartbeat()
    after()
    figures = Heartbeats()
    end = time.monotonic() + plan.duration_s
    i = 0
    while time.monotonic() < end:
        started = time.monotonic()
        changed = before(i)
        COUNTER.reset()
        parsed_before = parses[0] if parses else 0
        read_before = sum(read_cpu) if read_cpu is not None else 0.0
        cpu, wall = time.process_time(), time.perf_counter()
        heartbeat()
        figures.wall_ms.append((time.perf_counter() - wall) * 1000)
        figures.cpu_ms.append((time.process_time() - cpu) * 1000)
        figures.read_cpu_ms.append((sum(read_cpu) - read_before) if read_cpu is not None else 0.0)
        figures.calls.append(COUNTER.snapshot())
        figures.query_items.append(COUNTER.query_items)
        figures.parsed.append((parses[0] if parses else 0) - parsed_before)
        figures.changed.append(changed)
        after()
        i += 1
        time.sleep(max(0.0, plan.period_s - (time.monotonic() - started)))
    return figures


def _ours(fixture: AwsFixture, plan: SteadyPlan, say: Say) -> dict[str, Any]:
    side = OurSide(fixture, SyncPlan(n=plan.n, repeats=0, provider_repeats=0))
    executor = side.executor
    # Defaults, not the sync scenario's "safety net off": its passes belong to the steady state.
    from executor_client.safety_net import SafetyNet

    executor.safety_net = SafetyNet.every(60_000)
    say(f"  ours: launching {plan.n}")
    side.launch()
    # The items were written as if long ago (the feed never returned them); in a steady state the
    # executor has applied every item's version, so one safety-net pass first, untimed.
    ours.full_resync(executor)
    executor.event_buffer.clear()
    # That pass read every key by key (none was applied yet): its length says nothing of a pass
    # in the steady state, whose first starts an interval into the run.
    executor.safety_net.idle(now_ms())
    batches = iter(range(1, 1_000_000))
    started_last: list[str] = []
    passes: list[int] = []
    was_in_progress = [False]

    def before(_: int) -> int:
        oldest = [key for key in executor.tracked if key not in started_last][: plan.k]
        ours.write_items(fixture.dynamodb, oldest, TaskState.SUCCESS)
        _queue(executor, make_workloads(plan.k, batch=f"s{next(batches)}"))
        # Changes since the last heartbeat: the tasks that ended, and those started after it.
        return len(oldest) + len(started_last)

    known = set(executor.tracked)

    def after() -> None:
        executor.event_buffer.clear()
        new = [key for key in executor.tracked if key not in known]
        known.clear()
        known.update(executor.tracked)
        ours.write_items(fixture.dynamodb, new, TaskState.RUNNING)
        started_last[:] = new
        net = executor.safety_net
        if was_in_progress[0] and not net.in_progress:
            passes.append(net.last_duration_ms)
        was_in_progress[0] = net.in_progress

    say(f"  ours: {plan.duration_s:.0f} s of heartbeats, {plan.k} tasks ending and starting in each")
    with _counting_parses() as parses, _cpu_of(executor, "_read_changes") as read_cpu:
        figures = _heartbeats(plan, executor.heartbeat, before, after, parses=parses, read_cpu=read_cpu)
    return figures.summary() | {
        "safety_net_passes": len(passes),
        "safety_net_pass_s": {"max": round(max(passes) / 1000, 1)} if passes else None,
        "safety_net_interval_s": 60,
        "tracked_at_end": len(executor.tracked),
    }


def _provider(fixture: AwsFixture, plan: SteadyPlan, say: Say) -> dict[str, Any]:
    os.environ[f"{provider.ENV_PREFIX}MAX_RUN_TASK_ATTEMPTS"] = "1"
    try:
        side = ProviderSide(fixture, SyncPlan(n=plan.n, repeats=0, provider_repeats=0))
    finally:
        os.environ[f"{provider.ENV_PREFIX}MAX_RUN_TASK_ATTEMPTS"] = "3"
    executor = side.executor
    say(f"  provider: launching {plan.n}")
    side.launch()
    batches = iter(range(1, 1_000_000))

    def before(_: int) -> int:
        side.finish_some()
        _queue(executor, make_workloads(plan.k, batch=f"q{next(batches)}"))
        return 0

    def after() -> None:
        executor.event_buffer.clear()

    say(f"  provider: {plan.duration_s:.0f} s of heartbeats, {plan.k} tasks ending and starting in each")
    with _cpu_of(executor, "sync_running_workloads") as read_cpu:
        figures = _heartbeats(plan, executor.heartbeat, before, after, read_cpu=read_cpu)
    return figures.summary() | {"in_flight_at_end": provider.in_flight(executor)}


def run(server: MotoServer, plans: list[SteadyPlan], say: Say) -> list[dict[str, Any]]:
    results = []
    for plan in plans:
        say(f"steady state, N = {plan.n}")
        server.reset()
        fixture = AwsFixture(server)
        fixture.create_all()
        results.append(
            {
                "n": plan.n,
                "churn_per_heartbeat": plan.k,
                "duration_s": plan.duration_s,
                "period_s": plan.period_s,
                "ours": _ours(fixture, plan, say),
                "provider": _provider(fixture, plan, say),
            }
        )
    return results
