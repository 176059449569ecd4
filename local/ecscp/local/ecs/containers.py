"""One task's container, run as a local process: what Fargate does with the task's command.

The Airflow container's command (the task's ``command`` override) runs in its own process
group, with the override's environment over the host's Airflow settings, its stdout and
stderr in one pipe, read by :class:`~.awslogs.ContainerOutput` into
``<state dir>/tasks/<n>/container.log`` and, with an ``awslogs`` log configuration, into its
CloudWatch Logs stream. Where it departs from AWS: no image, no isolation, no resource limits:
a process on this machine, started with this Python's ``bin`` first on ``PATH`` so that the
command's ``python`` is this environment's.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from ecscp.local.processes import host_environment

from .awslogs import ContainerOutput, Sink


class ContainerStartError(RuntimeError):
    """The container could not start; the message is the reason ECS would give."""


def exit_code_of(returncode: int) -> int:
    """A process return code as a container exit code (killed by signal N -> 128 + N)."""
    return 128 - returncode if returncode < 0 else returncode


def container_environment(
    region: str, host_env: Mapping[str, str], task_env: Mapping[str, str]
) -> dict[str, str]:
    """The container's environment: host basics, the ECS variables, then the host's settings for
    every task (``host_env``), then the task's own override."""
    env = host_environment()
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", os.defpath)])
    env.update({"AWS_EXECUTION_ENV": "AWS_ECS_FARGATE", "AWS_REGION": region, "AWS_DEFAULT_REGION": region})
    env.update(host_env)
    env.update(task_env)
    return env


def write_identity(workdir: Path, identity: Mapping[str, object]) -> None:
    """The task's folder, with ``task.json`` saying which ECS task it is (also one never started)."""
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "task.json").write_text(json.dumps(dict(identity), indent=1))


def start_container(
    workdir: Path,
    command: list[str],
    environment: Mapping[str, str],
    *,
    sink: Sink | None = None,
    on_output_end: Callable[[], Any] = lambda: None,
) -> tuple[subprocess.Popen[bytes], ContainerOutput]:
    """Start ``command`` in ``workdir`` (its log there); the process and its output, whose
    lines also go to ``sink`` (then ``on_output_end`` once the output ended)."""
    if not command:
        raise ContainerStartError("CannotStartContainerError: the task has no command override")
    workdir.mkdir(parents=True, exist_ok=True)
    log = (workdir / "container.log").open("ab")
    try:
        process = subprocess.Popen(
            command,
            cwd=workdir,
            env=dict(environment),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    except OSError as exc:
        log.close()
        raise ContainerStartError(f"CannotStartContainerError: {type(exc).__name__}: {exc.strerror}") from exc
    assert process.stdout is not None
    return process, ContainerOutput(process.stdout, log, sink, on_output_end).start()
