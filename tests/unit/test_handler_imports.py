"""What each handler's ``import app`` loads: nothing that only a later call needs.

Each case runs in a fresh interpreter with the function's folder and the layer on ``sys.path``,
as Lambda has them, with tracing off (as outside Lambda): what a module imports is per process.
The import is the measured part of a cold start (issue 12: at most 200 ms of CPU per handler).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _python(function: str, code: str) -> subprocess.CompletedProcess[str]:
    folder = ROOT / "functions" / function
    env = {
        "PATH": os.environ.get("PATH", ""),
        "PYTHONPATH": os.pathsep.join([str(folder), str(ROOT / "layers" / "control_plane")]),
        "AWS_REGION": "us-east-1",
        "POWERTOOLS_SERVICE_NAME": function,
        "POWERTOOLS_METRICS_NAMESPACE": "EcsControlPlaneTests",
    }
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_run_task_import_builds_no_ecs_task_model() -> None:
    # WHEN run_task's module loads (it never reads an ECS task)
    done = _python(
        "run_task",
        "import app\nfrom ecs_control_plane.ecs_events import EcsTask\nprint(EcsTask.__pydantic_complete__)",
    )

    # THEN the ECS task model's schema was not built
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"
