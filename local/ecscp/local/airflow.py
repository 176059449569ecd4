"""Run real Airflow 3 (api-server, scheduler, dag-processor, triggerer) on this machine, and drive it.

This is the deployment shape the executor meets in production, minus the database server:
the four services run as separate processes with one SQLite metadata database, DAG runs are
triggered through the public REST API (the client is :mod:`ecscp.local.airflow_api`), and task
processes (started by whatever executor the environment names) talk to the api-server's
execution API. The triggerer runs the triggers of deferred tasks, so deferrable operators
resume (as a new hand-over of the same try).

Every process started here gets its own session and a marker in its environment, so that
``stop()`` can end the whole tree, including task processes that left it, and leave nothing
behind after an error or Ctrl-C.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import psutil

from .airflow_api import AirflowApi, AirflowError, DagRun, ParsedDags
from .dag_files import candidate_dag_files
from .endpoint import free_port
from .processes import kill_tree, log_tail, marked_processes, process_tree, terminate, wait_until

#: Environment variable that marks every process of one local run (value: the run's id).
RUN_MARKER_ENV = "ECSCP_LOCAL_RUN_ID"

SERVICES = ("api-server", "scheduler", "dag-processor", "triggerer")
#: The file in ``AIRFLOW_HOME`` that holds the api-server's URL once it was started.
API_URL_FILE = "api-server.url"
#: Extra command-line arguments per service.
_SERVICE_ARGS: dict[str, tuple[str, ...]] = {
    # No log server: it would be one more process and a fixed port (8794) two runs would share;
    # the api-server reads trigger logs from the shared log folder instead.
    "triggerer": ("--skip-serve-logs",),
}
#: Components the api-server's health endpoint reports; each must be "healthy" before runs start
#: (a deferred task would otherwise wait for a triggerer that is still starting).
HEALTH_COMPONENTS = ("metadatabase", "scheduler", "dag_processor", "triggerer")

_STOP_GRACE_SECONDS = 10.0
# ---------------------------------------------------------------------------------------------
# Processes
# ---------------------------------------------------------------------------------------------


@dataclass
class Service:
    """One long-running Airflow service in its own session, logging to a file."""

    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path
    log_file: IO[bytes]

    def exited(self) -> int | None:
        return self.popen.poll()


# ---------------------------------------------------------------------------------------------
# The local Airflow
# ---------------------------------------------------------------------------------------------


class LocalAirflow:
    """Airflow 3 with a fresh ``AIRFLOW_HOME`` and SQLite database under ``state_dir``.

    Usage: build it, hand ``worker_environment()`` to whatever runs task processes, then
    ``start(environment)`` with the executor's settings; use ``api``; ``stop()`` (or leave
    the ``with`` block) ends every process the run started.
    """

    def __init__(
        self,
        state_dir: Path,
        dags_folder: Path,
        *,
        port: int = 0,
        run_id: str | None = None,
        parallelism: int = 8,
        log: Any = None,
    ) -> None:
        self.home = (state_dir / "airflow").resolve()
        self.dags_folder = dags_folder.resolve()
        self.port = port or free_port()
        self.run_id = run_id or secrets.token_hex(8)
        self.parallelism = parallelism
        self._log = log
        self._services: list[Service] = []
        self._migration: Service | None = None
        self._api: AirflowApi | None = None
        self._environment: dict[str, str] | None = None
        # One random secret per run, shared by api-server and scheduler (≥64 bytes, or
        # Airflow warns on every token).
        self._jwt_secret = secrets.token_urlsafe(64)

    # -- configuration ----------------------------------------------------------------------

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def execution_api_url(self) -> str:
        return f"{self.api_url}/execution/"

    @property
    def logs_dir(self) -> Path:
        return self.home / "logs"

    @property
    def api_url_file(self) -> Path:
        """Where ``start()`` writes the api-server's URL."""
        return self.home / API_URL_FILE

    def worker_environment(self) -> dict[str, str]:
        """What a task process (an ECS container here) needs: no database, no secrets."""
        venv_bin = str(Path(sys.executable).parent)
        return {
            "AIRFLOW_HOME": str(self.home),
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": self.execution_api_url,
            "AIRFLOW__CORE__DAGS_FOLDER": str(self.dags_folder),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(self.logs_dir / "tasks"),
            # The container command starts with a bare "python": it must be this environment's.
            "PATH": os.pathsep.join([venv_bin, os.environ.get("PATH", "")]),
            RUN_MARKER_ENV: self.run_id,
        }

    def service_environment(self, extra: Mapping[str, str]) -> dict[str, str]:
        """Environment of the three services: a clean Airflow config plus ``extra``."""
        base = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
        settings = {
            **self.worker_environment(),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{self.home / 'airflow.db'}",
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API__PORT": str(self.port),
            "AIRFLOW__API__BASE_URL": self.api_url,
            "AIRFLOW__API__WORKERS": "1",
            "AIRFLOW__API__SECRET_KEY": secrets.token_urlsafe(32),
            "AIRFLOW__API_AUTH__JWT_SECRET": self._jwt_secret,
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
            "AIRFLOW__CORE__PARALLELISM": str(self.parallelism),
            "AIRFLOW__CORE__MAX_ACTIVE_TASKS_PER_DAG": str(self.parallelism),
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
            # New files show up within seconds; unchanged ones are not re-parsed all the time.
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
            "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "60",
            "AIRFLOW__DAG_PROCESSOR__PARSING_PROCESSES": "1",
            "AIRFLOW__DAG_PROCESSOR__PRINT_STATS_INTERVAL": "300",
            # A wide fan-out is queued in one scheduler loop, so the executor sends it as a batch.
            "AIRFLOW__SCHEDULER__MAX_TIS_PER_QUERY": "32",
            "AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK": "False",
            # Only the runs triggered through the API: unpausing a scheduled DAG adds none.
            "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "False",
            "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
        }
        return {**base, **settings, **extra}

    # -- lifecycle --------------------------------------------------------------------------

    def __enter__(self) -> LocalAirflow:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _say(self, message: str) -> None:
        if self._log is not None:
            self._log(message)

    def _spawn(
        self, name: str, args: list[str], env: Mapping[str, str], log_name: str | None = None
    ) -> Service:
        log_path = self.logs_dir / f"{log_name or name}.log"
        log_file = log_path.open("ab")
        popen = subprocess.Popen(
            [str(Path(sys.executable).parent / "airflow"), *args],
            env=dict(env),
            stdout=log_file,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        return Service(name, popen, log_path, log_file)

    def begin_migration(self) -> None:
        """Start ``airflow db migrate`` in the background; it needs only the database URL,
        so it can overlap with starting the AWS side."""
        if self._migration is not None:
            return
        self.home.mkdir(parents=True, exist_ok=True)
        self.logs_dir.mkdir(parents=True, exist_ok=True)
        self._say("migrating the Airflow database (SQLite)")
        self._migration = self._spawn("db-migrate", ["db", "migrate"], self.service_environment({}))

    def _finish_migration(self, timeout: float) -> None:
        self.begin_migration()
        assert self._migration is not None
        try:
            code = self._migration.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired as exc:
            raise TimeoutError(f"airflow db migrate did not finish within {timeout:.0f} s") from exc
        if code != 0:
            log = log_tail(self._migration.log_path)
            raise AirflowError(f"airflow db migrate failed (exit {code}):\n{log}")

    def cli(self, args: Sequence[str], extra_environment: Mapping[str, str], timeout: float = 120.0) -> str:
        """Run ``airflow <args>`` once the database is migrated (e.g. ``teams create``); its output.

        It runs with the services' environment plus ``extra_environment``; a failure raises
        AirflowError with the command's output.
        """
        self._finish_migration(timeout)
        done = subprocess.run(
            [str(Path(sys.executable).parent / "airflow"), *args],
            env=self.service_environment(extra_environment),
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
            timeout=timeout,
            check=False,
        )
        if done.returncode != 0:
            raise AirflowError(
                f"airflow {' '.join(args)} failed (exit {done.returncode}):\n{done.stdout}{done.stderr}"
            )
        return done.stdout

    def start(self, extra_environment: Mapping[str, str], ready_timeout: float = 180.0) -> None:
        """Migrate the database, start the services, return once the api-server answers."""
        deadline = time.monotonic() + ready_timeout
        self._finish_migration(ready_timeout)
        env = self._environment = self.service_environment(extra_environment)
        self._services.extend(
            self._spawn(name, [name, *_SERVICE_ARGS.get(name, ())], env) for name in SERVICES
        )
        self._say(f"started {', '.join(SERVICES)}; api-server on {self.api_url}")
        # For programs watching a run (the e2e tests read the demo's log view through it).
        self.api_url_file.write_text(self.api_url)
        self._api = AirflowApi(self.api_url)
        self.wait_until(
            lambda: self.api.healthy() is not None,
            max(deadline - time.monotonic(), 1.0),
            "the api-server to answer",
        )

    def kill_service(self, name: str) -> None:
        """SIGKILL every running instance of service ``name`` and its process tree.

        No clean shutdown, as when a host dies or the kernel's OOM killer strikes: a killed
        scheduler's executor never runs ``end()``, and its job row stays ``running`` until a
        scheduler sees its heartbeat go stale. Tests use it to show what a replacement takes over.
        """
        killed = [service for service in self._services if service.name == name]
        if not killed:
            raise AirflowError(f"no running airflow {name} to kill")
        for service in killed:
            kill_tree(service.popen.pid, timeout=_STOP_GRACE_SECONDS)
            service.popen.wait(timeout=_STOP_GRACE_SECONDS)
            service.log_file.close()
            self._services.remove(service)
        self._say(f"killed airflow {name} (SIGKILL)")

    def start_service(self, name: str, log_name: str | None = None) -> Service:
        """Start one more instance of service ``name`` with the environment ``start()`` used,
        logging to ``<log_name>.log`` (default: the service's own log), e.g. a scheduler
        that replaces a killed one, with a log of its own."""
        if self._environment is None:
            raise AirflowError("Airflow is not started")
        service = self._spawn(name, [name, *_SERVICE_ARGS.get(name, ())], self._environment, log_name)
        self._services.append(service)
        self._say(f"started airflow {name}; log {service.log_path}")
        return service

    @property
    def api(self) -> AirflowApi:
        if self._api is None:
            raise AirflowError("Airflow is not started")
        return self._api

    def unhealthy_components(self) -> list[str]:
        """Components of ``HEALTH_COMPONENTS`` the api-server does not report healthy (all of them
        while it does not answer)."""
        health = self.api.healthy() or {}
        return [name for name in HEALTH_COMPONENTS if (health.get(name) or {}).get("status") != "healthy"]

    def wait_until_healthy(self, timeout: float) -> None:
        """Wait until the scheduler, dag-processor and triggerer heartbeat (as the health
        endpoint sees them), so every kind of task can make progress once runs start."""
        unhealthy: list[str] = []

        def healthy() -> bool:
            unhealthy[:] = self.unhealthy_components()
            return not unhealthy

        try:
            self.wait_until(healthy, timeout, "every Airflow component to report healthy")
        except TimeoutError as exc:
            raise TimeoutError(f"{exc}; not healthy: {', '.join(unhealthy)}") from None

    def check_services(self) -> None:
        """Raise if a service has exited: every later wait would only time out."""
        for service in self._services:
            code = service.exited()
            if code is not None:
                raise AirflowError(
                    f"airflow {service.name} exited with code {code}; log {service.log_path}:\n"
                    f"{log_tail(service.log_path)}"
                )

    def wait_until(self, condition: Any, timeout: float, what: str, interval: float = 0.5) -> None:
        """:func:`ecscp.local.processes.wait_until`, raising at once when a service has exited."""
        wait_until(condition, timeout, what, interval=interval, check=self.check_services)

    def stop(self) -> None:
        """End every process of this run (idempotent)."""
        if self._api is not None:
            self._api.close()
            self._api = None
        processes: dict[int, psutil.Process] = {}
        services = [*self._services, *([self._migration] if self._migration else [])]
        for service in services:
            for proc in process_tree(service.popen.pid):
                processes[proc.pid] = proc
        for proc in marked_processes(RUN_MARKER_ENV, self.run_id):
            processes.setdefault(proc.pid, proc)
        # Services first (SIGTERM lets the scheduler end its executor), then stragglers.
        terminate(list(processes.values()), _STOP_GRACE_SECONDS)
        for service in services:
            with contextlib.suppress(subprocess.TimeoutExpired):
                service.popen.wait(timeout=1)
            service.log_file.close()
        self._services.clear()
        self._migration = None
        leftovers = marked_processes(RUN_MARKER_ENV, self.run_id)
        if leftovers:
            terminate(leftovers, grace_seconds=2)

    # -- DAGs and runs ----------------------------------------------------------------------

    def wait_for_dags(self, timeout: float, settle_seconds: float = 15.0) -> ParsedDags:
        """Wait until every DAG file in the folder produced a DAG or an import error.

        A file can pass Airflow's text heuristic and still define no DAG; once nothing new
        has appeared for ``settle_seconds`` after the first DAG, such files are given up on.
        """
        files = {str(p.relative_to(self.dags_folder)) for p in candidate_dag_files(self.dags_folder)}
        if not files:
            raise AirflowError(f"no DAG files in {self.dags_folder}")
        deadline = time.monotonic() + timeout
        seen: tuple[int, int] = (0, 0)
        last_change = time.monotonic()
        while True:
            self.check_services()
            dags = self.api.dags()
            errors = {str(e["filename"]): str(e["stack_trace"]) for e in self.api.import_errors()}
            # Both are paths relative to the DAGs folder (the "dags-folder" bundle).
            accounted = {str(d["relative_fileloc"]) for d in dags} | set(errors)
            if (len(dags), len(errors)) != seen:
                seen = (len(dags), len(errors))
                last_change = time.monotonic()
            settled = bool(dags) and time.monotonic() - last_change >= settle_seconds
            if files <= accounted or settled:
                return ParsedDags(sorted(d["dag_id"] for d in dags), errors)
            if time.monotonic() >= deadline:
                missing = ", ".join(sorted(files - accounted))
                raise TimeoutError(
                    f"gave up after {timeout:.0f} s waiting for the dag-processor to parse {missing}"
                )
            time.sleep(1)

    def trigger_all(self, dag_ids: Sequence[str]) -> list[DagRun]:
        runs = []
        for dag_id in dag_ids:
            self.api.unpause(dag_id)
            runs.append(DagRun(dag_id, self.api.trigger(dag_id), "queued"))
        return runs

    def poll_runs(self, runs: Sequence[DagRun]) -> list[DagRun]:
        return [DagRun(r.dag_id, r.run_id, self.api.run_state(r.dag_id, r.run_id)) for r in runs]
