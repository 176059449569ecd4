"""Scenario 5: cold-start proxy of the Lambda functions, and their cost per record.

Import time: ``python -X importtime -c "import app"`` in a fresh process, with the function's
folder and the layer on ``sys.path`` as in Lambda (``/var/task`` and ``/opt/python``); the
figure is the cumulative time of the top-level ``app`` import.

Import CPU is the figure the target is set on (each handler <= 200 ms), measured with tracing
off (``POWERTOOLS_TRACE_DISABLED``): the X-Ray SDK is loaded only when tracing is on.

Per record: the real handlers, with ECS answered by a botocore Stubber (ECS is not what is
measured) and DynamoDB on the moto server, so a record's time is the handler's own work plus
its table calls over loopback HTTP. AWS calls per record are counted by service and operation
(botocore's ``before-call`` events): run_task per run request, task_state per ECS event in the
common case (RUNNING, then STOPPED exit 0).
"""

# Airflow, moto and the handlers are imported where used: the environment (AIRFLOW_HOME,
# fake credentials, endpoints) must be set before they read it.
# ruff: noqa: PLC0415

from __future__ import annotations

import contextlib
import copy
import io
import json
import os
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

from botocore.stub import Stubber

from ecs_control_plane.contract import ATTEMPT_ENV, OWNER_ENV, TASK_KEY_ENV, RunRequest, TaskKey
from ecscp.local.lambda_context import LambdaContext
from ecscp.local.lambda_runtime.sqs_source import sqs_record
from ecscp.local.processes import temporary_environment

from .env import CLUSTER, CONTAINER, COUNTER, PROJECT_ROOT, REGION, TABLE, TASK_FAMILY, AwsFixture, MotoServer
from .stats import Timing

FUNCTIONS_DIR = PROJECT_ROOT / "functions"
LAYER_DIR = PROJECT_ROOT / "layers" / "control_plane"
EVENTS_DIR = PROJECT_ROOT / "events"
CONTROL_PLANE_ID = "ecscp-bench"
_IMPORTTIME = re.compile(r"^import time:\s+(\d+)\s+\|\s+(\d+)\s+\|(\s*)(\S+)\s*$")


def function_names() -> list[str]:
    return sorted(p.parent.name for p in FUNCTIONS_DIR.glob("*/app.py"))


#: Timed in the fresh interpreter without ``-X importtime`` (which slows imports down): wall and
#: CPU time; CPU time is what the load of other processes on a shared machine barely changes.
_TIMED_IMPORT = (
    "import time; c = time.process_time(); w = time.perf_counter(); import app; "
    "print(time.perf_counter() - w, time.process_time() - c)"
)


def _interpreter(function: str, *args: str) -> subprocess.CompletedProcess[str]:
    folder = FUNCTIONS_DIR / function
    env = {
        "PATH": os.environ.get("PATH", ""),
        "PYTHONPATH": os.pathsep.join([str(folder), str(LAYER_DIR)]),
        "AWS_REGION": REGION,
        "AWS_DEFAULT_REGION": REGION,
        "POWERTOOLS_SERVICE_NAME": function,
        "POWERTOOLS_METRICS_NAMESPACE": "bench",
        "POWERTOOLS_TRACE_DISABLED": "true",
    }
    done = subprocess.run(
        [sys.executable, *args], cwd=folder, env=env, capture_output=True, text=True, check=False, timeout=120
    )
    if done.returncode != 0:
        raise RuntimeError(f"import app failed for {function}: {done.stderr[-2000:]}")
    return done


def _heaviest_imports(function: str) -> list[tuple[str, float]]:
    """``-X importtime``: the direct imports of ``app`` by cumulative time (ms)."""
    rows = []
    for line in _interpreter(function, "-X", "importtime", "-c", "import app").stderr.splitlines():
        match = _IMPORTTIME.match(line)
        if match:
            rows.append((len(match.group(3)), match.group(4), int(match.group(2)) / 1000))
    app_depth = next((depth for depth, name, _ in reversed(rows) if name == "app"), None)
    if app_depth is None:
        raise RuntimeError(f"no importtime line for app in {function}")
    # -X importtime lists children before their parent, one indent level deeper.
    children: list[tuple[str, float]] = []
    for depth, name, cum in rows:
        if name == "app":
            break
        if depth == app_depth + 2:
            children.append((name, cum))
    children.sort(key=lambda c: c[1], reverse=True)
    return children[:6]


def import_times(repeats: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for function in function_names():
        samples = [_interpreter(function, "-c", _TIMED_IMPORT).stdout.split() for _ in range(repeats)]
        out[function] = {
            "import_app": Timing.of([float(s[0]) for s in samples]).as_dict(),
            "import_app_cpu": Timing.of([float(s[1]) for s in samples]).as_dict(),
            "heaviest_imports_ms": {name: round(ms, 1) for name, ms in _heaviest_imports(function)},
        }
    return out


def _context(function_name: str) -> LambdaContext:
    """The context of a 512 MB function with a minute to run, as the benchmark has measured."""
    return LambdaContext(function_name=function_name, memory_limit_in_mb=512, timeout_seconds=60)


def _function_env(fixture: AwsFixture) -> dict[str, str]:
    assert fixture.network is not None
    return {
        "ECSCP_CLUSTER": CLUSTER,
        "ECSCP_CONTAINER_NAME": CONTAINER,
        "ECSCP_TASK_DEFINITION": TASK_FAMILY,
        "ECSCP_LAUNCH_TYPE": "FARGATE",
        "ECSCP_PLATFORM_VERSION": "LATEST",
        "ECSCP_ASSIGN_PUBLIC_IP": "false",
        "ECSCP_SUBNETS": fixture.network.subnet,
        "ECSCP_SECURITY_GROUPS": fixture.network.security_group,
        "ECSCP_RUN_TASK_KWARGS": "{}",
        "ECSCP_CAPACITY_PROVIDER_STRATEGY": "",
        "ECSCP_STATE_TABLE": TABLE,
        "ECSCP_QUEUE_URL": fixture.queue_url,
        "ECSCP_CONTROL_PLANE_ID": CONTROL_PLANE_ID,
        "ECSCP_EVENT_BUS": "default",
        "AWS_ENDPOINT_URL": fixture.server.endpoint,
        "POWERTOOLS_SERVICE_NAME": "bench",
    }


@contextlib.contextmanager
def function_environment(fixture: AwsFixture) -> Iterator[None]:
    """The functions' environment, pointing at the moto server; restored afterwards."""
    with temporary_environment(_function_env(fixture)):
        from ecs_control_plane.runtime import control_plane

        control_plane.cache_clear()
        try:
            yield
        finally:
            control_plane.cache_clear()


def _sqs_event(bodies: list[str]) -> dict[str, Any]:
    """A batch of messages as Lambda's SQS event source delivers it (as the local runtime builds it)."""
    queue_arn = f"arn:aws:sqs:{REGION}:123456789012:bench-run-requests"
    messages = [
        {
            "MessageId": str(uuid.uuid4()),
            "ReceiptHandle": f"bench-{uuid.uuid4().hex}",
            "Body": body,
            "Attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": str(int(time.time() * 1000))},
            "MD5OfBody": "0" * 32,
        }
        for body in bodies
    ]
    return {"Records": [sqs_record(message, queue_arn, REGION) for message in messages]}


def _ecs_event(template: dict[str, Any], arn: str, key: str, version: int) -> dict[str, Any]:
    event = copy.deepcopy(template)
    detail = event["detail"]
    event["id"] = str(uuid.uuid4())
    event["resources"] = [arn]
    detail["taskArn"] = arn
    detail["clusterArn"] = f"arn:aws:ecs:{REGION}:123456789012:cluster/{CLUSTER}"
    detail["startedBy"] = CONTROL_PLANE_ID
    detail["version"] = version
    for container in detail.get("containers", []):
        container["taskArn"] = arn
    override = detail["overrides"]["containerOverrides"][0]
    override["environment"] = [
        {"name": TASK_KEY_ENV, "value": key},
        {"name": ATTEMPT_ENV, "value": "1"},
        {"name": OWNER_ENV, "value": "bench-scheduler"},
    ]
    return event


def _per_record(invoke: Callable[[Any], Any], events: list[Any], records: int) -> dict[str, Any]:
    sink = io.StringIO()
    seconds = []
    calls: dict[str, int] = {}
    COUNTER.reset()
    for event in events:
        with contextlib.redirect_stdout(sink):  # Powertools writes logs and EMF metrics to stdout
            start = time.perf_counter()
            invoke(event)
            seconds.append(time.perf_counter() - start)
        sink.seek(0)
        sink.truncate()
    calls = COUNTER.snapshot()
    per_invoke = len(events) and records // len(events)
    return {
        "per_record_ms": round(sum(seconds) * 1000 / records, 3),
        "per_invocation": Timing.of(seconds).as_dict(),
        "records_per_invocation": per_invoke,
        "invocations": len(events),
        "aws_calls_per_record": calls_by_service(calls, records),
    }


def calls_by_service(calls: dict[str, int], records: int) -> dict[str, dict[str, float]]:
    """``{"dynamodb": {"UpdateItem": 2.0}, "ecs": {"RunTask": 1.0}}`` from ``service.Operation`` counts."""
    out: dict[str, dict[str, float]] = {}
    for name, n in sorted(calls.items()):
        service, operation = name.split(".", 1)
        out.setdefault(service, {})[operation] = round(n / records, 2)
    return out


#: DescribeTaskDefinition's answer for the stubbed ECS: the Airflow container logs with awslogs.
_TASK_DEFINITION = {
    "taskDefinition": {
        "family": TASK_FAMILY,
        "containerDefinitions": [
            {
                "name": CONTAINER,
                "image": "apache/airflow:3.3.2",
                "logConfiguration": {
                    "logDriver": "awslogs",
                    "options": {"awslogs-group": "/ecs/bench", "awslogs-stream-prefix": "ecs"},
                },
            }
        ],
    }
}


def handler_costs(server: MotoServer, records: int) -> dict[str, Any]:
    """run_task then task_state (RUNNING, then STOPPED exit 0) for ``records`` task tries."""
    from ecs_control_plane.gateways import EcsGateway
    from ecs_control_plane.runtime import control_plane
    from executor_client.workloads import workload_command
    from functions.run_task import app as run_task_app
    from functions.task_state import app as task_state_app

    from .workloads import make_workload

    server.reset()
    fixture = AwsFixture(server)
    fixture.create_all()
    results: dict[str, Any] = {}
    with function_environment(fixture):
        plane = control_plane()
        ecs_client = server.client("ecs")
        stubber = Stubber(ecs_client)
        arns = [
            f"arn:aws:ecs:{REGION}:123456789012:task/{CLUSTER}/{uuid.uuid4().hex}" for _ in range(records)
        ]
        for i, arn in enumerate(arns):
            stubber.add_response(
                "run_task", {"tasks": [{"taskArn": arn, "lastStatus": "PROVISIONING"}], "failures": []}
            )
            if i == 0:  # where the tasks' container logs: asked once per container
                stubber.add_response("describe_task_definition", _TASK_DEFINITION)
        stubber.activate()
        plane.ecs = EcsGateway(ecs_client)

        keys, bodies = [], []
        for i in range(records):
            workload = make_workload(i, batch="lambda")
            key = TaskKey(
                dag_id="bench", task_id=workload.ti.task_id, run_id=workload.ti.run_id, submission=f"bench{i}"
            ).encode()
            keys.append(key)
            bodies.append(
                RunRequest(
                    kind="run", key=key, owner="bench-scheduler", command=workload_command(workload)
                ).model_dump_json()
            )
        batches = [_sqs_event(bodies[i : i + 10]) for i in range(0, records, 10)]

        def run_task(event: Any) -> None:
            response = run_task_app.lambda_handler(event, _context("run_task"))
            if response.get("batchItemFailures"):
                raise RuntimeError(f"run_task reported failures: {response['batchItemFailures'][:3]}")

        results["run_task"] = _per_record(run_task, batches, records)
        stubber.assert_no_pending_responses()

        running = json.loads((EVENTS_DIR / "ecs_task_running.json").read_text())
        stopped = json.loads((EVENTS_DIR / "ecs_task_stopped_exit0.json").read_text())
        running_events = [_ecs_event(running, arn, key, 3) for arn, key in zip(arns, keys, strict=True)]
        stopped_events = [_ecs_event(stopped, arn, key, 5) for arn, key in zip(arns, keys, strict=True)]

        def task_state(event: Any) -> None:
            outcome = task_state_app.lambda_handler(event, _context("task_state"))
            if outcome.get("outcome") != "APPLIED":
                raise RuntimeError(f"task_state did not apply the event: {outcome}")

        results["task_state"] = _per_record(task_state, running_events + stopped_events, 2 * records)
        finished = plane.table.batch_get(keys)
        if len(finished) != records or any(item.state.value != "SUCCESS" for item in finished):
            raise RuntimeError("not every task try reached SUCCESS in the table")
    return results


def run(
    server: MotoServer, *, import_repeats: int, records: int, say: Callable[[str], None]
) -> dict[str, Any]:
    say(f"  import time of each function (x{import_repeats}, fresh interpreter each)")
    imports = import_times(import_repeats)
    say(f"  handler cost per record ({records} run requests, {2 * records} ECS events)")
    costs = handler_costs(server, records)
    return {"import": imports, "handlers": costs}


def _main() -> None:  # pragma: no cover - a quick manual check: python -m benchmarks.coldstart
    print(json.dumps(import_times(3), indent=2))


if __name__ == "__main__":
    _main()
