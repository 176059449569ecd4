"""Lambda's side of the deployed functions: warm containers, as worker processes, kept alive.

Each deployed function gets worker processes (:mod:`.worker`), each one warm Lambda container
with the function's deployed environment pointed at the local endpoint. An event-driven function
gets ``concurrency`` of them, so its events are handled concurrently and out of order, as on
AWS; a schedule-only function gets one. A worker that dies is replaced, as Lambda replaces a
crashed or timed-out container; one that keeps dying right after it starts is given up.
Where it departs from AWS: concurrency is fixed (no scaling to ``MaximumConcurrency``), and a
worker's log is the function's log file under the stack's ``logs/``.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from ecscp.local.endpoint import FAKE_CREDENTIALS_ENV
from ecscp.local.errors import LocalStackError
from ecscp.local.processes import host_environment, log_tail, stop_child
from ecscp.local.spec import FunctionSpec

logger = logging.getLogger(__name__)

#: Quick exits in a row after which a function worker is not replaced any more.
MAX_QUICK_RESTARTS = 5
#: A worker that exits sooner than this after it started counts as a crash.
CRASH_SECONDS = 5.0


@dataclass
class _Worker:
    spec: FunctionSpec
    spec_file: Path
    ready_file: Path
    log_path: Path
    env: dict[str, str]
    process: subprocess.Popen[bytes] | None = None
    log: IO[bytes] | None = None
    restarts: int = 0
    started: float = 0.0


def function_environment(spec: FunctionSpec, instance: int, endpoint_url: str, region: str) -> dict[str, str]:
    """The deployed function's environment, as Lambda sets it, pointed at the local endpoint."""
    env = host_environment()
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", os.defpath)])
    env.update(
        {
            "AWS_REGION": region,
            "AWS_DEFAULT_REGION": region,
            "AWS_LAMBDA_FUNCTION_NAME": spec.name,
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(spec.memory_mb),
            "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{spec.name}",
            "AWS_LAMBDA_LOG_STREAM_NAME": f"local/{spec.logical_id}/{instance + 1}",
            "AWS_EXECUTION_ENV": "AWS_Lambda_python3.11",
            "LAMBDA_TASK_ROOT": str(spec.code_dir),
            "_HANDLER": spec.handler,
            "PYTHONUNBUFFERED": "1",
            "PYTHONDONTWRITEBYTECODE": "1",
        }
    )
    env.update(spec.environment)
    env.update(
        {
            "AWS_ENDPOINT_URL": endpoint_url,
            **FAKE_CREDENTIALS_ENV,
            "POWERTOOLS_TRACE_DISABLED": "true",  # no X-Ray daemon here
        }
    )
    env.setdefault("POWERTOOLS_METRICS_NAMESPACE", "EcscpLocal")
    env.setdefault("POWERTOOLS_SERVICE_NAME", spec.logical_id)
    return env


class FunctionWorkers:
    """The worker processes of every deployed function."""

    def __init__(
        self,
        functions: list[FunctionSpec],
        *,
        endpoint_url: str,
        region: str,
        state_dir: Path,
        logs_dir: Path,
        concurrency: int,
    ) -> None:
        self.functions = functions
        self.endpoint_url = endpoint_url
        self.region = region
        self.specs_dir = state_dir / "functions"
        self.logs_dir = logs_dir
        self.concurrency = max(1, concurrency)
        self._workers: list[_Worker] = []

    def start(self, timeout_seconds: float) -> None:
        """Start every worker and wait until each says it is ready (its handler imported)."""
        self.specs_dir.mkdir(parents=True, exist_ok=True)
        for spec in self.functions:
            event_driven = bool(spec.sqs_sources) or len(spec.rule_sources) > len(spec.schedules)
            for instance in range(self.concurrency if event_driven else 1):
                suffix = "" if instance == 0 else f".{instance + 1}"
                ready = self.specs_dir / f"{spec.logical_id}{suffix}.ready"
                spec_file = self.specs_dir / f"{spec.logical_id}{suffix}.json"
                own = spec.model_copy(update={"ready_file": ready, "instance": instance})
                spec_file.write_text(own.model_dump_json(indent=1))
                worker = _Worker(
                    spec=spec,
                    spec_file=spec_file,
                    ready_file=ready,
                    log_path=self.logs_dir / f"{spec.logical_id}.log",
                    env=function_environment(spec, instance, self.endpoint_url, self.region),
                )
                self._workers.append(worker)
                self._spawn(worker)
        deadline = time.monotonic() + timeout_seconds
        for worker in self._workers:
            while not worker.ready_file.exists():
                assert worker.process is not None
                if worker.process.poll() is not None:
                    raise LocalStackError(
                        f"function {worker.spec.logical_id} failed to start; see {worker.log_path}:\n"
                        + log_tail(worker.log_path)
                    )
                if time.monotonic() > deadline:
                    raise LocalStackError(
                        f"function {worker.spec.logical_id} not ready; see {worker.log_path}"
                    )
                time.sleep(0.05)

    def _spawn(self, worker: _Worker) -> None:
        worker.ready_file.unlink(missing_ok=True)
        worker.started = time.monotonic()
        if worker.log is None or worker.log.closed:
            worker.log = worker.log_path.open("ab")
        worker.process = subprocess.Popen(
            [sys.executable, "-m", "ecscp.local.lambda_runtime.worker", str(worker.spec_file)],
            cwd=worker.spec.code_dir,
            env=worker.env,
            stdin=subprocess.PIPE,
            stdout=worker.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def replace_dead(self) -> None:
        """Start a new worker for each one that exited (unless its function keeps crashing).

        A worker that dies soon after it started counts as a crash; after a few in a row the
        function is given up (:meth:`check` says so). One that ran a while (a handler timeout)
        is always replaced.
        """
        for worker in self._workers:
            if (
                worker.process is None
                or worker.process.poll() is None
                or worker.restarts >= MAX_QUICK_RESTARTS
            ):
                continue
            crashed = time.monotonic() - worker.started < CRASH_SECONDS
            worker.restarts = worker.restarts + 1 if crashed else 0
            logger.warning(
                "function %s worker exited with %s%s; starting a new one; see %s",
                worker.spec.logical_id,
                worker.process.returncode,
                f" ({worker.restarts} quick exits in a row)" if crashed else "",
                worker.log_path,
            )
            self._spawn(worker)

    def check(self) -> None:
        """Raise if a function's workers keep dying."""
        for worker in self._workers:
            given_up = worker.restarts >= MAX_QUICK_RESTARTS
            if given_up and worker.process is not None and worker.process.poll() is not None:
                raise LocalStackError(f"function {worker.spec.logical_id} keeps dying; see {worker.log_path}")

    def process_ids(self) -> list[int]:
        return [w.process.pid for w in self._workers if w.process is not None]

    def stop(self) -> None:
        for worker in self._workers:
            stop_child(worker.process)
            if worker.log is not None and not worker.log.closed:
                worker.log.close()
