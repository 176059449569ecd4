"""The embedded local stack: the project's template deployed into moto, run by real handlers.

``LocalStack`` starts, in order: moto in a child process (:mod:`ecscp.local.moto_server`),
the deployment of ``template.yaml`` into it (:mod:`ecscp.local.cloudformation`), one worker
process per deployed Lambda function (:mod:`ecscp.local.lambda_runtime.worker`) and the local
ECS container host (:mod:`ecscp.local.ecs.host`). ``stop()`` ends all of it, process trees included.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import logging
import os
import subprocess
import threading
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import IO, Any

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

from .cloudformation.deployer import Deployment, StackDeployer
from .discovery import DISCOVERY_FILE, LocalStackDiscovery, remove_if_ours
from .ecs.host import EcsHost
from .ecs.setup import EcsSetup
from .endpoint import FAKE_CREDENTIALS_ENV, aws_client
from .errors import LocalStackError
from .lambda_runtime.pool import FunctionWorkers
from .moto_server import MotoStartError, start_server
from .processes import stop_child, temporary_environment

logger = logging.getLogger(__name__)

AIRFLOW_ENVIRONMENT_OUTPUT = "AirflowEnvironment"


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
        self._functions: FunctionWorkers | None = None
        self._host: EcsHost | None = None
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
            self._start_host()
            self.discovery.write(self.discovery_path)
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
        if self.endpoint_url:
            remove_if_ours(self.discovery_path, self.discovery)
        with contextlib.suppress(Exception):
            atexit.unregister(self.stop)
        if self._supervisor is not None and self._supervisor is not threading.current_thread():
            self._supervisor.join(timeout=5)  # it must not replace a worker being stopped
        if self._host is not None:
            self._host.stop()
        if self._functions is not None:
            self._functions.stop()
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
        with temporary_environment({"AWS_DEFAULT_REGION": config.region}):
            self.deployment = StackDeployer(self.endpoint_url, config.region).deploy(
                config.template_path,
                config.stack_name,
                config.cluster_name or config.stack_name,
                settings,
                dict(config.parameters),
            )
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
        self._functions = FunctionWorkers(
            self.deployment.functions,
            endpoint_url=self.endpoint_url,
            region=self.config.region,
            state_dir=self.config.state_dir,
            logs_dir=self.logs_dir,
            concurrency=self.config.function_concurrency,
        )
        self._functions.start(self.config.startup_timeout_seconds)

    def _start_host(self) -> None:
        assert self.deployment is not None
        envs = [f.environment for f in self.deployment.functions]
        started_by = next((e[ENV_CONTROL_PLANE_ID] for e in envs if e.get(ENV_CONTROL_PLANE_ID)), None)
        container = next(
            (e[ENV_CONTAINER_NAME] for e in envs if e.get(ENV_CONTAINER_NAME)),
            self.deployment.ecs.container_name,
        )
        self._host = EcsHost(
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
        self._host.start()

    def _supervise(self) -> None:
        """Replace dead function workers until the stack stops."""
        while not self._stopped.wait(0.5):
            if self._functions is not None:
                self._functions.replace_dead()

    # -- reading the stack ----------------------------------------------------------------------

    @property
    def discovery_path(self) -> Path:
        """Where the running stack says how to reach it (``ecscp ... --local --state-dir``)."""
        return self.config.state_dir / DISCOVERY_FILE

    @property
    def discovery(self) -> LocalStackDiscovery:
        """How operator commands reach this stack (see :mod:`ecscp.local.discovery`)."""
        return LocalStackDiscovery(
            endpoint_url=self.endpoint_url,
            stack_name=self.config.stack_name,
            region=self.config.region,
            state_dir=self.config.state_dir,
            pid=os.getpid(),
        )

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
        return self._host.start_attempts() if self._host else {}

    def task_records(self) -> list[dict[str, Any]]:
        """One record per ECS task the local host saw: key, attempt, ARN, exit and stop codes, times."""
        return self._host.task_records() if self._host else []

    def process_ids(self) -> list[int]:
        """Every process this stack started (moto, function workers, containers)."""
        pids = [self._moto.pid] if self._moto is not None else []
        pids += self._functions.process_ids() if self._functions else []
        return pids + (self._host.process_ids() if self._host else [])

    def check(self) -> None:
        """Raise if a part of the stack died."""
        if self._moto is not None and self._moto.poll() is not None:
            raise LocalStackError(
                f"moto exited with {self._moto.returncode}; see {self.logs_dir / 'moto.log'}"
            )
        if self._functions is not None:
            self._functions.check()
        if self._host is not None and self._host.error is not None:
            logger.warning("local ECS host reported: %s", self._host.error)
