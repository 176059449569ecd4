"""Scenarios 1-3: launch, idle sync and busy sync with N tasks in flight, ours vs the provider.

Each N starts from an empty moto server, so moto's per-call scans (a GSI Query walks every item)
see exactly N items. Both executors are set up first; then their syncs are measured
alternately, so that the load of the machine's other processes hits both alike.
"""

# Airflow, moto and the handlers are imported where used: the environment (AIRFLOW_HOME,
# fake credentials, endpoints) must be set before they read it.
# ruff: noqa: PLC0415

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ecs_control_plane.contract import TaskState

from . import ours, provider
from .env import CLUSTER, TABLE, AwsFixture, MotoServer
from .measure import Task, measure, round_robin
from .stats import Timing
from .workloads import make_workloads

EMPTY_TABLE = "bench-empty"
#: Share of the in-flight tasks that finish (and are replaced) between two busy syncs.
BUSY_SHARE = 0.01

Say = Callable[[str], None]


@dataclass(frozen=True)
class SyncPlan:
    n: int
    repeats: int
    #: The provider's sync is slow at large N: fewer repeats there keep the run short.
    provider_repeats: int
    #: Launches are one-shot (they change the state): each round starts from an empty server.
    launch_rounds: int = 1


def _queue(executor: Any, workloads: list[Any]) -> None:
    """The scheduler's side of the hand-over, identical for both executors (untimed)."""
    for workload in workloads:
        executor.queue_workload(workload, session=None)


def _check_finished(executor: Any, expected: int, side: str) -> None:
    """The sync reported exactly the tasks that finished; then drain the buffer as the scheduler does."""
    from airflow.utils.state import TaskInstanceState

    finished = [
        key for key, (state, _) in executor.event_buffer.items() if state == TaskInstanceState.SUCCESS
    ]
    executor.event_buffer.clear()
    if len(finished) != expected:
        raise RuntimeError(f"{side} reported {len(finished)} finished tasks, expected {expected}")


class ProviderSide:
    """The provider's executor with N tasks started in moto ECS (pinned RUNNING)."""

    def __init__(self, fixture: AwsFixture, plan: SyncPlan) -> None:
        self.fixture = fixture
        self.n = plan.n
        self.k = max(1, math.ceil(plan.n * BUSY_SHARE))
        provider.configure(fixture)
        self.executor = provider.make_executor(parallelism=10 * plan.n + 100)
        # One empty heartbeat first: Airflow loads its metrics registry (a YAML file, ~0.3 s) on
        # the first one, a one-off cost that is not the launch's.
        self.executor.heartbeat()
        self._batches = iter(range(1, 1_000_000))
        self._stopped: list[Any] = []

    def launch(self) -> dict[str, Any]:
        _queue(self.executor, make_workloads(self.n, batch="p0"))
        launched = measure(self.executor.heartbeat, 1)
        if provider.in_flight(self.executor) != self.n:
            raise RuntimeError(f"provider launched {provider.in_flight(self.executor)} of {self.n} tasks")
        self.executor.event_buffer.clear()
        return launched.as_dict()

    def sync(self) -> None:
        self.executor.sync_running_workloads()

    def finish_some(self) -> None:
        for arn in provider.task_arns(self.executor)[: self.k]:
            self._stopped.append(self.executor.active_workers.arn_to_key[arn])
            self.fixture.ecs.stop_task(cluster=CLUSTER, task=arn, reason="bench: finished")

    def replace_them(self) -> None:
        # moto's tasks have no startedAt, so the provider reads a stopped task as one that
        # failed to start (REMOVED): it drops it from its active set and re-queues it for a
        # retry instead of reporting success. The sync did the same work either way; the
        # retry is dropped here and fresh tasks take the finished ones' places.
        executor = self.executor
        if provider.in_flight(executor) != self.n - self.k:
            raise RuntimeError(
                f"provider still tracks {provider.in_flight(executor)}, expected {self.n - self.k}"
            )
        executor.pending_workloads.clear()
        executor.event_buffer.clear()
        for key in self._stopped:
            executor.running.discard(key)
        self._stopped.clear()
        _queue(executor, make_workloads(self.k, batch=f"p{next(self._batches)}"))
        executor.trigger_tasks(executor.parallelism - len(executor.running))
        executor.attempt_workload_runs()
        executor.event_buffer.clear()
        if provider.in_flight(executor) != self.n:
            raise RuntimeError(
                f"provider has {provider.in_flight(executor)} tasks in flight, expected {self.n}"
            )


class OurSide:
    """Our executor with N tasks handed over, and the items the control plane wrote for them."""

    def __init__(self, fixture: AwsFixture, plan: SyncPlan) -> None:
        self.fixture = fixture
        self.n = plan.n
        self.k = max(1, math.ceil(plan.n * BUSY_SHARE))
        ours.configure(fixture)
        self.executor = ours.make_executor(parallelism=10 * plan.n + 100)
        self.executor.heartbeat()  # as for the provider: the first heartbeat's one-off costs
        self._batches = iter(range(1, 1_000_000))

    def launch(self) -> dict[str, Any]:
        executor = self.executor
        _queue(executor, make_workloads(self.n, batch="o0"))
        launched = measure(executor.heartbeat, 1)
        if len(executor.tracked) != self.n or executor._outbox:
            raise RuntimeError(
                f"ours tracks {len(executor.tracked)} of {self.n}, {len(executor._outbox)} unsent"
            )
        on_queue = self.fixture.sqs.get_queue_attributes(
            QueueUrl=self.fixture.queue_url, AttributeNames=["ApproximateNumberOfMessages"]
        )["Attributes"]["ApproximateNumberOfMessages"]
        if int(on_queue) != self.n:
            raise RuntimeError(f"{on_queue} run requests on the queue, expected {self.n}")
        # The control plane started them all a while ago: RUNNING items, older than the read window.
        ours.settled_items(self.fixture.dynamodb, ours.encoded_keys(executor))
        return launched.as_dict() | {"messages_on_queue": int(on_queue)}

    def full_resync(self, repeats: int) -> dict[str, Any]:
        """One whole safety-net pass, which the executor spreads over heartbeats (one call each)."""
        heartbeats: list[int] = []
        resync = measure(
            lambda: heartbeats.append(ours.full_resync(self.executor)),
            repeats,
            after=self.executor.event_buffer.clear,
        )
        return resync.as_dict() | {"default_interval_s": 60, "heartbeats": max(heartbeats)}

    def sync(self) -> None:
        self.executor.sync()

    def finish_some(self) -> None:
        ours.write_items(self.fixture.dynamodb, ours.encoded_keys(self.executor)[: self.k], TaskState.SUCCESS)

    def replace_them(self) -> None:
        executor = self.executor
        _check_finished(executor, self.k, "ours")
        before = set(executor.tracked)
        _queue(executor, make_workloads(self.k, batch=f"o{next(self._batches)}"))
        executor.trigger_tasks(executor.parallelism - len(executor.running))
        executor.sync_outbox()
        # The control plane starts them: their RUNNING items are changes for the next sync.
        started = [key for key in executor.tracked if key not in before]
        ours.write_items(self.fixture.dynamodb, started, TaskState.RUNNING)
        if len(executor.tracked) != self.n:
            raise RuntimeError(f"ours tracks {len(executor.tracked)} tasks, expected {self.n}")


def _combine(samples: list[dict[str, Any]]) -> dict[str, Any]:
    """One figure from one-sample launch measurements of several rounds."""
    out = dict(samples[-1])
    out["wall"] = Timing.of([s["wall"]["median_ms"] / 1000 for s in samples]).as_dict()
    if any(s["calls"] != samples[0]["calls"] for s in samples):
        out["calls_varied"] = True
    return out


def run_one(server: MotoServer, plan: SyncPlan, say: Say) -> dict[str, Any]:
    launches: dict[str, list[dict[str, Any]]] = {"ours": [], "provider": []}
    for round_no in range(plan.launch_rounds):
        # Each round on an empty server; the sides take turns going first. The last round's
        # executors, with their N tasks in flight, are the ones whose syncs are measured.
        server.reset()
        fixture = AwsFixture(server)
        fixture.create_all()
        fixture.create_table(EMPTY_TABLE)
        mine, theirs = OurSide(fixture, plan), ProviderSide(fixture, plan)
        order: list[tuple[str, Callable[[], dict[str, Any]]]] = [
            ("ours", mine.launch),
            ("provider", theirs.launch),
        ]
        for side, launch in order if round_no % 2 == 0 else order[::-1]:
            say(f"  launch {plan.n} (round {round_no + 1} of {plan.launch_rounds}): {side}")
            launches[side].append(launch())
    launch_ours, launch_provider = _combine(launches["ours"]), _combine(launches["provider"])

    say("  ours: safety-net re-read of every tracked key")
    resync = mine.full_resync(1 if plan.n >= 10_000 else min(plan.repeats, 3))

    say(f"  idle sync: ours x{plan.repeats}, bare Query x{plan.repeats}, provider x{plan.provider_repeats}")
    idle = round_robin(
        {
            "ours": Task(mine.sync, plan.repeats),
            "floor_same_table": Task(lambda: ours.bare_query(fixture.dynamodb, TABLE), plan.repeats),
            "floor_empty_table": Task(lambda: ours.bare_query(fixture.dynamodb, EMPTY_TABLE), plan.repeats),
            "provider": Task(theirs.sync, plan.provider_repeats),
        }
    )
    say(
        f"  busy sync ({mine.k} tasks finish between syncs): "
        f"ours x{plan.repeats}, provider x{plan.provider_repeats}"
    )
    busy = round_robin(
        {
            "ours": Task(mine.sync, plan.repeats, before=mine.finish_some, after=mine.replace_them),
            "provider": Task(
                theirs.sync, plan.provider_repeats, before=theirs.finish_some, after=theirs.replace_them
            ),
        }
    )
    return {
        "n": plan.n,
        "repeats": plan.repeats,
        "provider_repeats": plan.provider_repeats,
        "changed_between_busy_syncs": mine.k,
        "ours": {
            "launch": launch_ours,
            "full_resync": resync,
            "idle": idle["ours"].as_dict(),
            "busy": busy["ours"].as_dict(),
        },
        "provider": {
            "launch": launch_provider,
            "idle": idle["provider"].as_dict(),
            "busy": busy["provider"].as_dict(),
        },
        "floor": {
            "query_same_table": idle["floor_same_table"].as_dict(),
            "query_empty_table": idle["floor_empty_table"].as_dict(),
        },
    }


def run(server: MotoServer, plans: list[SyncPlan], say: Say) -> list[dict[str, Any]]:
    results = []
    for plan in plans:
        say(f"N = {plan.n}")
        results.append(run_one(server, plan, say))
    return results
