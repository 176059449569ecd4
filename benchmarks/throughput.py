"""Scenario 4: the whole control plane in the local stack, driven by the real executor.

``ecscp.local.stack.LocalStack`` deploys template.yaml into its own moto server and runs the
real Lambda handlers in worker processes and the local ECS host; this process plays the
scheduler: it hands N trivial tasks (container command ``true``) to
``EcsControlPlaneExecutor`` and calls ``sync()`` on a fixed cadence until every task's terminal
state has been reported. Path per task: SendMessageBatch -> SQS -> run_task -> RunTask (moto)
-> local container -> ECS Task State Change events -> EventBridge rule -> task_state ->
DynamoDB -> the executor's Query.
"""

# Airflow, moto and the handlers are imported where used: the environment (AIRFLOW_HOME,
# fake credentials, endpoints) must be set before they read it.
# ruff: noqa: PLC0415

from __future__ import annotations

import json
import re
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ecscp.local.endpoint import PrivatePath
from ecscp.local.moto_server import REQUESTS_PATH
from ecscp.local.processes import temporary_environment

from .env import PROJECT_ROOT
from .stats import Timing, percentile

#: The scheduler's loop calls the executor about this often when it has work.
SYNC_INTERVAL_S = 0.5
COMMAND = ["true"]


_REPORT = re.compile(r"^REPORT RequestId: \S+\s+Duration: ([\d.]+) ms")


def invocation_durations(logs_dir: Path) -> dict[str, Any]:
    """Per function, the durations the local Lambda workers logged (``REPORT ... Duration``)."""
    out: dict[str, Any] = {}
    for log in sorted(logs_dir.glob("*Function.log")):
        durations = [
            float(match.group(1)) / 1000
            for line in log.read_text(errors="replace").splitlines()
            if (match := _REPORT.match(line))
        ]
        if durations:
            out[log.stem] = {
                "invocations": len(durations),
                "duration": Timing.of(durations).as_dict(),
                "p90_ms": round(percentile(durations, 90) * 1000, 1),
            }
    return out


def moto_requests(endpoint_url: str) -> dict[str, int]:
    """How many requests the stack's moto server has answered so far, by operation."""
    channel = PrivatePath(endpoint_url)
    try:
        counts: dict[str, int] = json.loads(channel.request("GET", REQUESTS_PATH))
    finally:
        channel.close()
    return counts


def requests_per_task(before: dict[str, int], after: dict[str, int], n: int) -> dict[str, Any]:
    """moto requests per task between two counts: in all, and the operations above 0.05 per task."""
    made = {op: count - before.get(op, 0) for op, count in after.items()}
    by_operation = {op: round(count / n, 2) for op, count in sorted(made.items(), key=lambda i: -i[1])}
    return {
        "total": round(sum(made.values()) / n, 2),
        "by_operation": {op: per_task for op, per_task in by_operation.items() if per_task >= 0.05},
    }


def run(  # noqa: PLR0915 - one linear script: start, submit, sync until done, account
    n: int, *, timeout_s: float, max_concurrent_tasks: int, say: Callable[[str], None]
) -> dict[str, Any]:
    from airflow.models.taskinstancekey import TaskInstanceKey
    from airflow.utils.state import TaskInstanceState

    from ecscp.local.stack import LocalStack, LocalStackConfig
    from executor_client import EcsControlPlaneExecutor

    state_dir = Path(tempfile.mkdtemp(prefix="ecscp-bench-stack-"))
    config = LocalStackConfig(
        project_root=PROJECT_ROOT,
        state_dir=state_dir,
        stack_name="ecscp-bench",
        max_concurrent_tasks=max_concurrent_tasks,
        stop_grace_seconds=2,
    )
    say(f"  starting the local stack (state in {state_dir})")
    started = time.perf_counter()
    with LocalStack(config) as stack:
        startup_s = time.perf_counter() - started
        env = stack.airflow_environment()
        env.update(
            {
                "AIRFLOW__ECS_CONTROL_PLANE__OWNER_ID": "bench-throughput",
                "AIRFLOW__ECS_CONTROL_PLANE__CHECK_HEALTH_ON_STARTUP": "True",
                "AIRFLOW__ECS_CONTROL_PLANE__CONN_ID": "",
            }
        )
        env.pop("AIRFLOW__CORE__EXECUTOR", None)
        with temporary_environment(env):
            executor = EcsControlPlaneExecutor(parallelism=n + 10)
            executor.start()
            say(
                f"  handing {n} tasks (`{' '.join(COMMAND)}`) to the executor; sync every {SYNC_INTERVAL_S} s"
            )
            submitted: dict[Any, float] = {}
            seen: dict[Any, tuple[float, str]] = {}
            requests_before = moto_requests(stack.endpoint_url)
            t0 = time.perf_counter()
            for i in range(n):
                key = TaskInstanceKey(
                    dag_id="bench_throughput", task_id=f"t{i:05d}", run_id="r1", try_number=1
                )
                submitted[key] = time.perf_counter()
                executor.execute_async(key=key, command=list(COMMAND), queue="default")
                executor.running.add(key)
            syncs = 0
            sync_seconds: list[float] = []
            deadline = t0 + timeout_s
            next_report = t0 + 10
            while len(seen) < n and time.perf_counter() < deadline:
                tick = time.perf_counter()
                executor.sync()
                now = time.perf_counter()
                sync_seconds.append(now - tick)
                syncs += 1
                for done, (state, _info) in executor.get_event_buffer().items():
                    if state in (TaskInstanceState.SUCCESS, TaskInstanceState.FAILED) and done not in seen:
                        seen[done] = (now, str(getattr(state, "value", state)))
                if now >= next_report:
                    say(f"    {len(seen)}/{n} finished after {now - t0:.0f} s")
                    next_report = now + 10
                stack.check()
                time.sleep(max(0.0, SYNC_INTERVAL_S - (time.perf_counter() - tick)))
            # All reported: up to the last one. Cut off: up to the cut-off, so the rate is not flattered.
            ended = max(at for at, _ in seen.values()) if len(seen) == n else time.perf_counter()
            elapsed = ended - t0
            requests = requests_per_task(requests_before, moto_requests(stack.endpoint_url), n)
            records = stack.task_records()
            attempts = stack.start_attempts()
            unfinished = [key for key in submitted if key not in seen]
            with_item = {
                item.key
                for item in executor.clients.table.batch_get(
                    [key for key in map(executor.current_submission, unfinished) if key]
                )
            }
            queued = int(
                stack.client("sqs").get_queue_attributes(
                    QueueUrl=stack.outputs["RunRequestQueueUrl"],
                    AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
                )["Attributes"]["ApproximateNumberOfMessages"]
            )

    latencies = [seen[key][0] - submitted[key] for key in seen]
    states: dict[str, int] = {}
    for _, state in seen.values():
        states[state] = states.get(state, 0) + 1
    return {
        "mode": "local stack (ecscp.local.stack.LocalStack)",
        "tasks": n,
        "command": COMMAND,
        "sync_interval_s": SYNC_INTERVAL_S,
        "max_concurrent_containers": max_concurrent_tasks,
        "stack_startup_s": round(startup_s, 2),
        "elapsed_s": round(elapsed, 2),
        "tasks_per_s": round(len(seen) / elapsed, 2) if elapsed > 0 else None,
        "latency_submit_to_terminal_seen": {
            "p50_ms": round(percentile(latencies, 50) * 1000, 1) if latencies else None,
            "p99_ms": round(percentile(latencies, 99) * 1000, 1) if latencies else None,
            "max_ms": round(max(latencies) * 1000, 1) if latencies else None,
        },
        "terminal_states": states,
        # Not reported by the cut-off: still in the control plane (an item exists, or the request
        # is on the queue), or lost (neither).
        "unfinished_at_cutoff": len(unfinished),
        "unfinished_with_item": len(with_item),
        "run_requests_still_queued": queued,
        "lost": max(0, len(unfinished) - len(with_item) - queued),
        "ecs_tasks_started": len(records),
        "keys_started_more_than_once": sum(1 for count in attempts.values() if count > 1),
        "lambda_invocations": invocation_durations(state_dir / "logs"),
        # Every call into moto from t0 to the end of the run (a few idle long-polls after the last
        # task included), per task handed over.
        "moto_requests_per_task": requests,
        "syncs": syncs,
        "sync_wall": Timing.of(sync_seconds).as_dict() if sync_seconds else None,
    }
