"""One local "Lambda container": runs one deployed function's real handler.

Started by the local stack as ``python -m ecscp.local.lambda_runtime.worker SPEC.json`` (a
:class:`~ecscp.local.spec.FunctionSpec`) with the function's deployed environment (plus the
local endpoint and fake credentials), its stdout and stderr going to the function's log file.
Like a Lambda container it has its own process, its own environment and its own module-level
state, and it runs one invocation at a time, logged with Lambda's START/END/REPORT lines.

It polls what invokes the function on AWS, read from the deployed stack:

- SQS event source mappings (:mod:`.sqs_source`);
- EventBridge rules targeting the function, as asynchronous invocations with their retries and
  dead letters (:mod:`.async_invoke`);
- ``rate(...)`` and ``cron(...)`` schedules (:mod:`.schedules`): a Scheduled Event on time,
  delivered like a rule's events. Only the function's first worker runs them.

An invocation that runs out of time ends the worker, as Lambda ends the runtime; the stack
starts a new one (the next invocation starts cold). The worker exits when its stdin reaches end
of file (the stack went away) or on SIGTERM.

Departs from AWS: the handler runs from the function's source directory (with its layers'
directories on ``sys.path``), not from the deployed package; memory is reported, not limited;
errors are reported with the workload's commands redacted (:mod:`.redaction`).
"""

from __future__ import annotations

import importlib.util
import logging
import os
import signal
import sys
import threading
import time
import traceback
import uuid
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import boto3
from botocore.config import Config

from ecscp.local.lambda_context import LambdaContext
from ecscp.local.moto_patches.events_targets import render_target_input
from ecscp.local.processes import exit_when_parent_goes
from ecscp.local.spec import FunctionSpec, ScheduleSource
from ecscp.local.timestamps import iso_seconds

from .async_invoke import poll_delivery_queue
from .redaction import redactor
from .schedules import next_run
from .sqs_source import poll_sqs

#: Exit code of a worker whose invocation ran out of time.
TIMEOUT_EXIT_CODE = 124
IDLE_SLEEP_MIN = 0.05
IDLE_SLEEP_MAX = 0.4
#: An idle worker with one event source waits this long in ReceiveMessage (SQS long polling):
#: a message is handed over as it arrives, and an empty queue costs moto no repeated scans.
LONG_POLL_SECONDS = 1

#: The runtime's logger; its modules log below it.
log = logging.getLogger("ecscp.local.lambda_runtime")
Handler = Callable[[Any, Any], Any]


def load_handler(code_dir: Path, handler: str, unique_name: str) -> Handler:
    """Import ``module.function`` from the function's code directory under a unique name."""
    module_path, _, function_name = handler.rpartition(".")
    file = code_dir / (module_path.replace(".", "/") + ".py")
    if not file.is_file():
        file = code_dir / module_path.replace(".", "/") / "__init__.py"
    spec = importlib.util.spec_from_file_location(unique_name, file)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load handler module {module_path!r} from {code_dir}")
    module: ModuleType = importlib.util.module_from_spec(spec)
    sys.modules[unique_name] = module
    spec.loader.exec_module(module)
    function: Handler = getattr(module, function_name)
    return function


class Worker:
    """Polls the function's event sources and invokes its handler, one invocation at a time."""

    def __init__(self, spec: FunctionSpec) -> None:
        self.spec = spec
        self.region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
        self.account = spec.arn.split(":")[4]
        self.sqs = boto3.client(
            "sqs",
            region_name=self.region,
            config=Config(retries={"mode": "standard", "total_max_attempts": 5}),
        )
        for directory in reversed([str(spec.code_dir), *(str(d) for d in spec.layer_dirs)]):
            if directory not in sys.path:
                sys.path.insert(0, directory)
        self.handler = load_handler(spec.code_dir, spec.handler, f"ecscp_local_function_{spec.logical_id}")
        now = time.time()
        # Only the first instance of a function keeps its schedules (one event per tick).
        self.schedules: tuple[ScheduleSource, ...] = spec.schedules if spec.instance == 0 else ()
        self.next_run = {s.rule_arn: next_run(s.expression, now) for s in self.schedules}
        self.stopping = threading.Event()

    # -- invoking -------------------------------------------------------------------------------

    def context(self) -> LambdaContext:
        name = self.spec.name
        return LambdaContext(
            function_name=name,
            function_version="$LATEST",
            invoked_function_arn=self.spec.arn,
            memory_limit_in_mb=self.spec.memory_mb,
            aws_request_id=str(uuid.uuid4()),
            log_group_name=f"/aws/lambda/{name}",
            log_stream_name=os.environ.get("AWS_LAMBDA_LOG_STREAM_NAME", "local"),
            deadline=time.time() + self.spec.timeout_seconds,
        )

    def invoke(self, event: Any, what: str) -> tuple[bool, Any]:
        """Run the handler once; (succeeded, response). Logged as Lambda logs an invocation."""
        context = self.context()
        request = context.aws_request_id
        started = time.monotonic()
        _lambda_line(f"START RequestId: {request} Version: $LATEST")
        ok, response = True, None
        timeout = self.spec.timeout_seconds

        def timed_out(signum: int, frame: Any) -> None:
            # Lambda stops the runtime of an invocation that runs out of time; the next one
            # starts cold. The worker exits, and the stack starts a new one.
            elapsed_ms = (time.monotonic() - started) * 1000
            _lambda_line(f"END RequestId: {request}")
            _lambda_line(f"REPORT RequestId: {request}\tDuration: {elapsed_ms:.2f} ms\tStatus: timeout")
            _lambda_line(f"{iso_seconds(time.time())} {request} Task timed out after {timeout:.2f} seconds")
            os._exit(TIMEOUT_EXIT_CODE)

        signal.signal(signal.SIGALRM, timed_out)
        signal.setitimer(signal.ITIMER_REAL, timeout)
        try:
            response = self.handler(event, context)
        except Exception as exc:  # noqa: BLE001 - a handler error is an invocation result
            ok = False
            redact = redactor(event)
            log.error(
                "invocation %s (%s) failed: %s",
                request,
                what,
                redact(f"{type(exc).__name__}: {exc}\n{traceback.format_exc()}"),
            )
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
        elapsed = time.monotonic() - started
        _lambda_line(f"END RequestId: {request}")
        _lambda_line(
            f"REPORT RequestId: {request}\tDuration: {elapsed * 1000:.2f} ms\t"
            f"Memory Size: {self.spec.memory_mb} MB\tSource: {what}"
        )
        return ok, response

    # -- sources --------------------------------------------------------------------------------

    def run_schedules(self) -> int:
        ran = 0
        for schedule in self.schedules:
            due = self.next_run[schedule.rule_arn]
            if due is None or time.time() < due:
                continue
            self.next_run[schedule.rule_arn] = next_run(schedule.expression, due)
            event = {
                "version": "0",
                "id": str(uuid.uuid4()),
                "detail-type": "Scheduled Event",
                "source": "aws.events",
                "account": self.account,
                "time": time.time(),
                "region": self.region,
                "resources": [schedule.rule_arn],
                "detail": {},
            }
            # Delivered like a rule's events, so failed runs get the same retries and dead letters.
            self.sqs.send_message(
                QueueUrl=schedule.delivery_queue_url,
                MessageBody=render_target_input(schedule.target, event),
            )
            ran += 1
        return ran

    def run(self) -> None:
        idle = IDLE_SLEEP_MIN
        # Long polling blocks the loop, so only a worker with nothing else to watch uses it.
        single_source = not self.schedules and len(self.spec.sqs_sources) + len(self.spec.rule_sources) == 1
        wait = 0
        while not self.stopping.is_set():
            handled = self.run_schedules()
            for sqs_source in self.spec.sqs_sources:
                handled += poll_sqs(
                    self.sqs,
                    sqs_source,
                    self.invoke,
                    region=self.region,
                    stopping=self.stopping,
                    wait_seconds=wait,
                )
            for rule_source in self.spec.rule_sources:
                handled += poll_delivery_queue(self.sqs, rule_source, self.invoke, self.spec, wait)
            if handled:
                idle, wait = IDLE_SLEEP_MIN, 0
                continue
            if single_source:
                wait = LONG_POLL_SECONDS
                continue
            self.stopping.wait(idle)
            idle = min(IDLE_SLEEP_MAX, idle * 2)


def _lambda_line(text: str) -> None:
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    spec = FunctionSpec.model_validate_json(Path(args[0]).read_text())
    logging.basicConfig(
        level=logging.WARNING,
        stream=sys.stderr,
        format="%(asctime)s [ecscp-local lambda] %(levelname)s %(message)s",
    )
    log.setLevel(logging.INFO)
    worker = Worker(spec)

    def stop(signum: int, frame: Any) -> None:
        worker.stopping.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    threading.Thread(target=exit_when_parent_goes, args=(sys.stdin.buffer,), daemon=True).start()
    log.info("function %s ready (handler %s)", spec.name, spec.handler)
    if spec.ready_file:
        spec.ready_file.touch()
    worker.run()


if __name__ == "__main__":
    main()
