"""Each handler loads the X-Ray SDK only when tracing is on, and traces as before when it is.

Each case runs in a fresh interpreter with the function's folder and the layer on ``sys.path``,
as Lambda has them: what a module imports, and Powertools' tracer state, are per process.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FUNCTIONS = ("reconciler", "run_task", "task_state")
XRAY_CORE = "aws_xray_sdk.core"


def _python(function: str, code: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    folder = ROOT / "functions" / function
    full_env = {
        "PATH": os.environ.get("PATH", ""),
        "PYTHONPATH": os.pathsep.join([str(folder), str(ROOT / "layers" / "control_plane")]),
        "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": "us-east-1",
        "POWERTOOLS_SERVICE_NAME": function,
        "POWERTOOLS_METRICS_NAMESPACE": "EcsControlPlaneTests",
        **env,
    }
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=folder,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize("function", FUNCTIONS)
@pytest.mark.parametrize(
    "env",
    [{"POWERTOOLS_TRACE_DISABLED": "true", "LAMBDA_TASK_ROOT": "/var/task"}, {}],
    ids=["disabled", "outside-lambda"],
)
def test_handler_does_not_load_the_xray_sdk_when_tracing_is_off(function: str, env: dict[str, str]) -> None:
    # WHEN the function's module loads with tracing off
    done = _python(function, f"import sys, app; print({XRAY_CORE!r} in sys.modules)", env)

    # THEN the X-Ray SDK was not imported
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"


# The task_state handler with an event whose task carries no task key: it ignores it without
# any AWS call, so the only traffic is what the tracer sends.
_INVOKE_TASK_STATE = """
import json, sys
import app
from ecscp.local.lambda_context import LambdaContext
event = json.load(open(EVENT))
event["detail"]["overrides"] = {"containerOverrides": []}
print(json.dumps(app.lambda_handler(event, LambdaContext(function_name="task_state"))))
"""


def test_task_state_handler_sends_its_subsegment_to_xray_when_tracing_is_on() -> None:
    # GIVEN an X-Ray daemon address we listen on, and the environment of a traced Lambda function
    daemon = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    daemon.bind(("127.0.0.1", 0))
    daemon.settimeout(10)
    event = ROOT / "events" / "ecs_task_running.json"
    layer, local = ROOT / "layers" / "control_plane", ROOT / "local"
    env = {
        "LAMBDA_TASK_ROOT": str(ROOT / "functions" / "task_state"),
        "AWS_LAMBDA_FUNCTION_NAME": "task_state",
        "_X_AMZN_TRACE_ID": "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1",
        "AWS_XRAY_DAEMON_ADDRESS": f"127.0.0.1:{daemon.getsockname()[1]}",
        "PYTHONPATH": os.pathsep.join([str(ROOT / "functions" / "task_state"), str(layer), str(local)]),
        "ECSCP_CLUSTER": "airflow-cluster",
        "ECSCP_CONTAINER_NAME": "airflow",
        "ECSCP_TASK_DEFINITION": "airflow",
        "ECSCP_STATE_TABLE": "task-state",
        "ECSCP_QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/123456789012/run-requests",
        "ECSCP_CONTROL_PLANE_ID": "ecscp-test-stack",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
    }

    try:
        # WHEN the function handles an event with tracing on
        done = _python("task_state", f"EVENT = {str(event)!r}\n{_INVOKE_TASK_STATE}", env)
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout.strip().splitlines()[-1])["outcome"] == "IGNORED"

        # THEN the handler's subsegment reached the daemon, annotated as Powertools does
        datagram = daemon.recv(65536).decode()
    finally:
        daemon.close()
    header, _, body = datagram.partition("\n")
    subsegment = json.loads(body)
    assert json.loads(header) == {"format": "json", "version": 1}
    assert subsegment["name"] == "## lambda_handler"
    assert subsegment["annotations"]["ColdStart"] is True
