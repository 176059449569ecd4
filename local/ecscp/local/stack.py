"""The embedded local stack: the project's template deployed into moto, run by real handlers.

``LocalStack`` starts, in order: moto in a child process (:mod:`ecscp.local.moto_server`),
the deployment of ``template.yaml`` into it (:mod:`ecscp.local.deploy`), one worker process per
deployed Lambda function (:mod:`ecscp.local.lambda_worker`) and the local ECS container host
(:mod:`ecscp.local.ecs_runner`). ``stop()`` ends all of it, process trees included.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import logging
import os
import shlex
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import IO, Any

from rich.console import Console

from ecs_control_plane.gateways import EcsGateway, FailedStartAlerts, RunRequestQueue
from ecs_control_plane.readiness import ReadinessReport
from ecs_control_plane.services import ControlPlane
from ecs_control_plane.settings import (
    ENV_CONTAINER_NAME,
    ENV_CONTROL_PLANE_ID,
    ControlPlaneSettings,
    SettingsError,
)
from ecs_control_plane.store import StateTable

from .cloudformation import DeployError
from .cloudformation.deployer import Deployment, StackDeployer
from .ecs.setup import EcsSetup
from .ecs_runner import EcsRunner
from .endpoint import FAKE_CREDENTIALS_ENV, aws_client
from .moto_server import MotoStartError, start_server
from .processes import host_environment, stop_child
from .spec import FunctionSpec

logger = logging.getLogger(__name__)

AIRFLOW_ENVIRONMENT_OUTPUT = "AirflowEnvironment"
#: Quick exits in a row after which a function worker is not replaced any more.
_WORKER_RESTARTS = 5
_CRASH_SECONDS = 5.0


class LocalStackError(RuntimeError):
    """The local stack could not start, or a part of it died."""


@dataclass
class LocalStackConfig:
    """Where the project is, where scratch goes, and the stack's local settings."""

    project_root: Path
    state_dir: Path
    port: int = 0
    region: str = "us-east-1"
    stack_name: str = "ecscp-local"
    max_run_task_attempts: int = 3
    start_retry_base_seconds: int = 1
    task_env: dict[str, str] = field(default_factory=dict)
    #: Cap of the start retry delay (the template's StartRetryMaxSeconds); short locally.
    start_retry_max_seconds: int = 8
    #: Template to deploy; ``project_root / "template.yaml"`` when not set.
    template: Path | None = None
    #: ECS cluster to create and run tasks in; the stack name when not set.
    cluster_name: str | None = None
    #: Extra or overriding values for the template's parameters.
    parameters: dict[str, str] = field(default_factory=dict)
    #: Worker processes per event-driven function (Lambda's concurrency, locally).
    function_concurrency: int = 2
    #: Containers running at once; further tasks wait in PENDING.
    max_concurrent_tasks: int = 8
    #: Seconds between SIGTERM and SIGKILL when StopTask stops a container.
    stop_grace_seconds: float = 10.0
    startup_timeout_seconds: float = 120.0
    #: Refuse to start when the stack's settings cannot run tasks (the readiness check), instead
    #: of recording the problems for the executor's health check and starting anyway.
    require_ready: bool = True

    @property
    def template_path(self) -> Path:
        return (self.template or self.project_root / "template.yaml").resolve()


def parse_environment_lines(text: str) -> dict[str, str]:
    """``KEY=value`` lines (``export`` and comments allowed) as a dict."""
    values: dict[str, str] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        line = line.removeprefix("export ").strip()
        name, sep, value = line.partition("=")
        if sep and name:
            values[name.strip()] = value.strip()
    return values


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


class LocalStack:
    """moto + the deployed template + local Lambda workers + a local ECS host; a context manager."""

    def __init__(self, config: LocalStackConfig) -> None:
        self.config = config
        self.endpoint_url = ""
        self.outputs: dict[str, str] = {}
        self.deployment: Deployment | None = None
        #: The readiness check made as the stack started (None before).
        self.readiness: ReadinessReport | None = None
        self._moto: subprocess.Popen[bytes] | None = None
        self._moto_log: IO[bytes] | None = None
        self._workers: list[_Worker] = []
        self._runner: EcsRunner | None = None
        self._alerts: list[str] = []
        self._alerts_lock = threading.Lock()
        self._stopped = threading.Event()
        self._supervisor: threading.Thread | None = None
        self._started = False

    # -- lifecycle ------------------------------------------------------------------------------

    def __enter__(self) -> LocalStack:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def logs_dir(self) -> Path:
        return self.config.state_dir / "logs"

    def start(self) -> None:
        """Start moto, deploy, start the function workers and the ECS host; return when ready."""
        if self._started:
            return
        self._started = True
        atexit.register(self.stop)
        try:
            self.config.state_dir.mkdir(parents=True, exist_ok=True)
            self.logs_dir.mkdir(parents=True, exist_ok=True)
            self._start_moto()
            self._deploy()
            self._check_readiness()
            self._start_workers()
            self._start_runner()
        except BaseException:
            self.stop()
            raise
        self._supervisor = threading.Thread(
            target=self._supervise, name="ecscp-local-supervisor", daemon=True
        )
        self._supervisor.start()

    def stop(self) -> None:
        """Stop everything this stack started, task process trees included; idempotent."""
        if self._stopped.is_set():
            return
        self._stopped.set()
        with contextlib.suppress(Exception):
            atexit.unregister(self.stop)
        if self._supervisor is not None and self._supervisor is not threading.current_thread():
            self._supervisor.join(timeout=5)  # it must not replace a worker being stopped
        if self._runner is not None:
            self._runner.stop()
        for worker in self._workers:
            stop_child(worker.process)
            if worker.log is not None and not worker.log.closed:
                worker.log.close()
        stop_child(self._moto)
        if self._moto_log is not None and not self._moto_log.closed:
            self._moto_log.close()

    # -- parts ----------------------------------------------------------------------------------

    def _start_moto(self) -> None:
        self._moto_log = (self.logs_dir / "moto.log").open("ab")
        try:
            self._moto, self.endpoint_url = start_server(
                self._moto_log, port=self.config.port, timeout=self.config.startup_timeout_seconds
            )
        except MotoStartError as exc:
            raise LocalStackError(f"moto did not start; see {self.logs_dir / 'moto.log'}") from exc
        logger.info("moto serves on %s", self.endpoint_url)

    def _deploy(self) -> None:
        config = self.config
        settings = {
            "MaxRunTaskAttempts": str(config.max_run_task_attempts),
            "StartRetryBaseSeconds": str(config.start_retry_base_seconds),
            "StartRetryMaxSeconds": str(config.start_retry_max_seconds),
        }
        # samtranslator needs a region from the environment to build ARNs.
        previous = os.environ.get("AWS_DEFAULT_REGION")
        os.environ["AWS_DEFAULT_REGION"] = config.region
        try:
            self.deployment = StackDeployer(self.endpoint_url, config.region).deploy(
                config.template_path,
                config.stack_name,
                config.cluster_name or config.stack_name,
                settings,
                dict(config.parameters),
            )
        finally:
            if previous is None:
                os.environ.pop("AWS_DEFAULT_REGION", None)
            else:
                os.environ["AWS_DEFAULT_REGION"] = previous
        self.outputs = dict(self.deployment.outputs)
        summary = {
            "endpoint_url": self.endpoint_url,
            "stack_name": self.deployment.stack_name,
            "parameters": self.deployment.parameters,
            "outputs": self.outputs,
            "functions": [f.model_dump(mode="json") for f in self.deployment.functions],
            "skipped_resources": self.deployment.skipped_resources,
            "fixups": self.deployment.fixups,
        }
        (config.state_dir / "deployment.json").write_text(json.dumps(summary, indent=1))

    def _check_readiness(self) -> None:
        """Check the deployed settings against ECS before any work, as the reconciler does.

        The result is recorded where the executor's health check reads it; with problems and
        ``require_ready`` the stack refuses to start, naming the template parameters to fix.
        """
        assert self.deployment is not None
        env = next(
            (f.environment for f in self.deployment.functions if f.environment.get(ENV_CONTROL_PLANE_ID)), {}
        )
        try:
            settings = ControlPlaneSettings.from_env(env)
        except SettingsError as exc:
            raise LocalStackError(f"the functions would refuse to start: {exc}") from exc
        plane = ControlPlane(
            settings,
            StateTable(self.client("dynamodb"), settings.state_table),
            EcsGateway(self.client("ecs")),
            RunRequestQueue(self.client("sqs"), settings.queue_url),
            FailedStartAlerts(self.client("events"), settings.event_bus),
            region=self.config.region,
        )
        self.readiness = plane.check_readiness()
        if self.readiness.problems:
            problems = "\n  ".join(str(p) for p in self.readiness.problems)
            message = f"the stack's parameters cannot run tasks:\n  {problems}"
            if self.config.require_ready:
                raise LocalStackError(message)
            logger.error("%s\n(starting anyway: executors' health checks will refuse to start)", message)

    def _start_workers(self) -> None:
        assert self.deployment is not None
        functions_dir = self.config.state_dir / "functions"
        functions_dir.mkdir(parents=True, exist_ok=True)
        for spec in self.deployment.functions:
            # Event-driven functions scale out to a few concurrent "containers", as Lambda does
            # (events then arrive concurrently and out of order, as on AWS); a schedule needs one.
            event_driven = bool(spec.sqs_sources) or len(spec.rule_sources) > len(spec.schedules)
            instances = max(1, self.config.function_concurrency) if event_driven else 1
            for instance in range(instances):
                suffix = "" if instance == 0 else f".{instance + 1}"
                ready = functions_dir / f"{spec.logical_id}{suffix}.ready"
                spec_file = functions_dir / f"{spec.logical_id}{suffix}.json"
                spec_file.write_text(
                    spec.model_copy(update={"ready_file": ready, "instance": instance}).model_dump_json(
                        indent=1
                    )
                )
                worker = _Worker(
                    spec=spec,
                    spec_file=spec_file,
                    ready_file=ready,
                    log_path=self.logs_dir / f"{spec.logical_id}.log",
                    env=self._function_env(spec, instance),
                )
                self._workers.append(worker)
                self._spawn_worker(worker)
        deadline = time.monotonic() + self.config.startup_timeout_seconds
        for worker in self._workers:
            while not worker.ready_file.exists():
                assert worker.process is not None
                if worker.process.poll() is not None:
                    raise LocalStackError(
                        f"function {worker.spec.logical_id} failed to start; see {worker.log_path}:\n"
                        + _tail(worker.log_path)
                    )
                if time.monotonic() > deadline:
                    raise LocalStackError(
                        f"function {worker.spec.logical_id} not ready; see {worker.log_path}"
                    )
                time.sleep(0.05)

    def _spawn_worker(self, worker: _Worker) -> None:
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

    def _function_env(self, spec: FunctionSpec, instance: int) -> dict[str, str]:
        """The deployed function's environment, as Lambda sets it, pointed at the local endpoint."""
        region = self.config.region
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
                "AWS_ENDPOINT_URL": self.endpoint_url,
                **FAKE_CREDENTIALS_ENV,
                "POWERTOOLS_TRACE_DISABLED": "true",  # no X-Ray daemon here
            }
        )
        env.setdefault("POWERTOOLS_METRICS_NAMESPACE", "EcscpLocal")
        env.setdefault("POWERTOOLS_SERVICE_NAME", spec.logical_id)
        return env

    def _start_runner(self) -> None:
        assert self.deployment is not None
        envs = [f.environment for f in self.deployment.functions]
        started_by = next((e[ENV_CONTROL_PLANE_ID] for e in envs if e.get(ENV_CONTROL_PLANE_ID)), None)
        container = next(
            (e[ENV_CONTAINER_NAME] for e in envs if e.get(ENV_CONTAINER_NAME)),
            self.deployment.ecs.container_name,
        )
        self._runner = EcsRunner(
            endpoint_url=self.endpoint_url,
            region=self.config.region,
            cluster=self.deployment.ecs.cluster_name,
            container_name=container,
            state_dir=self.config.state_dir,
            task_env=self.config.task_env,
            started_by=started_by,
            max_concurrent=self.config.max_concurrent_tasks,
            stop_grace_seconds=self.config.stop_grace_seconds,
        )
        self._runner.start()

    def _supervise(self) -> None:
        """Replace a dead function worker, as Lambda replaces a crashed or timed-out container.

        A worker that dies soon after it started counts as a crash; after a few crashes in a row
        the function is given up (``check()`` says so). One that ran a while (a handler timeout)
        is always replaced.
        """
        while not self._stopped.wait(0.5):
            for worker in self._workers:
                if self._stopped.is_set() or worker.process is None or worker.process.poll() is None:
                    continue
                if worker.restarts >= _WORKER_RESTARTS:
                    continue
                crashed = time.monotonic() - worker.started < _CRASH_SECONDS
                worker.restarts = worker.restarts + 1 if crashed else 0
                logger.warning(
                    "function %s worker exited with %s%s; starting a new one; see %s",
                    worker.spec.logical_id,
                    worker.process.returncode,
                    f" ({worker.restarts} quick exits in a row)" if crashed else "",
                    worker.log_path,
                )
                self._spawn_worker(worker)

    # -- reading the stack ----------------------------------------------------------------------

    @property
    def ecs(self) -> EcsSetup:
        """The cluster, network and task definition the stack runs tasks with."""
        if self.deployment is None:
            raise LocalStackError("the local stack is not started")
        return self.deployment.ecs

    def client(self, service: str) -> Any:
        """A boto3 client for the local endpoint."""
        return aws_client(service, self.endpoint_url, self.config.region)

    def airflow_environment(self) -> dict[str, str]:
        """Everything an Airflow scheduler needs to use this stack, as environment variables."""
        env = parse_environment_lines(self.outputs.get(AIRFLOW_ENVIRONMENT_OUTPUT, ""))
        env.update(
            {
                "AWS_ENDPOINT_URL": self.endpoint_url,
                **FAKE_CREDENTIALS_ENV,
                "AWS_DEFAULT_REGION": self.config.region,
            }
        )
        return env

    def alerts(self) -> list[str]:
        """Every alert published to the stack's topics so far, text as the rule made it."""
        if self.deployment is None or not self.deployment.alert_capture_queue_url or self._stopped.is_set():
            with self._alerts_lock:
                return list(self._alerts)
        sqs = self.client("sqs")
        url = self.deployment.alert_capture_queue_url
        with self._alerts_lock:
            while True:
                messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0).get(
                    "Messages", []
                )
                if not messages:
                    break
                for message in messages:
                    self._alerts.append(message["Body"])
                    sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
            return list(self._alerts)

    def start_attempts(self) -> dict[str, int]:
        """Task key -> number of ECS tasks started for it."""
        return self._runner.start_attempts() if self._runner else {}

    def task_records(self) -> list[dict[str, Any]]:
        """One record per ECS task the local host saw: key, attempt, ARN, exit and stop codes, times."""
        return self._runner.task_records() if self._runner else []

    def process_ids(self) -> list[int]:
        """Every process this stack started (moto, function workers, containers)."""
        pids = [p.pid for p in [self._moto, *(w.process for w in self._workers)] if p is not None]
        return pids + (self._runner.process_ids() if self._runner else [])

    def check(self) -> None:
        """Raise if a part of the stack died."""
        if self._moto is not None and self._moto.poll() is not None:
            raise LocalStackError(
                f"moto exited with {self._moto.returncode}; see {self.logs_dir / 'moto.log'}"
            )
        for worker in self._workers:
            if (
                worker.restarts >= _WORKER_RESTARTS
                and worker.process is not None
                and worker.process.poll() is not None
            ):
                raise LocalStackError(f"function {worker.spec.logical_id} keeps dying; see {worker.log_path}")
        if self._runner is not None and self._runner.error is not None:
            logger.warning("local ECS runner reported: %s", self._runner.error)


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def run_forever(config: LocalStackConfig, console: Console | None = None) -> bool:
    """Start the stack, print the Airflow environment to use, and run until Ctrl-C or SIGTERM.

    False (after saying why) when the stack refused to start: parameters that the template's
    rules, the functions' settings or the readiness check refuse.
    """
    out = console or Console()
    stack = LocalStack(config)

    def on_sigterm(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, on_sigterm)
    # A shell starts background jobs with SIGINT ignored; Ctrl-C must stop the stack all the same.
    previous_int = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        try:
            with out.status("Starting the local stack (moto, template, functions, ECS host)..."):
                stack.start()
        except (LocalStackError, DeployError) as exc:
            out.print(f"[bold red]The local stack did not start:[/] {exc}", highlight=False)
            return False
        if stack.readiness is not None and not stack.readiness.ready:
            out.print(f"[bold red]Started anyway; it cannot run tasks:[/] {stack.readiness.summary()}")
        out.print(f"[bold green]Local stack up[/] at {stack.endpoint_url} (stack {config.stack_name})")
        out.print(f"Logs: {stack.logs_dir}   Task logs: {config.state_dir / 'tasks'}")
        out.print("Use it from an Airflow scheduler with:")
        for name, value in stack.airflow_environment().items():
            out.print(f"export {name}={shlex.quote(value)}", markup=False, highlight=False, soft_wrap=True)
        out.print("Press Ctrl-C to stop.")
        while True:
            stack.check()
            time.sleep(1)
    except KeyboardInterrupt:
        out.print("Stopping the local stack...")
    finally:
        stack.stop()
        signal.signal(signal.SIGTERM, previous)
        signal.signal(signal.SIGINT, previous_int)
    return True
