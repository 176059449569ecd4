"""One local "Lambda container": runs one deployed function's real handler.

Started by the local stack as ``python -m ecscp.local.lambda_worker SPEC.json`` with the
function's deployed environment (plus the local endpoint and fake credentials), its stdout and
stderr going to the function's log file. Like a Lambda container it has its own process, its
own environment and its own module-level state, and it runs one invocation at a time.

It polls what invokes the function on AWS, read from the deployed stack:

- SQS event source mappings: batches of up to ``BatchSize`` records shaped as Lambda delivers
  them; with ``ReportBatchItemFailures`` only the records not reported as failed are deleted;
  a handler error leaves the whole batch to reappear after the visibility timeout.
- EventBridge rules targeting the function: the delivery queue moto's patched EventBridge
  fills; each event is one asynchronous invocation, retried twice, then sent to the
  function's dead-letter queue when it has one.
- ``rate(...)`` and ``cron(...)`` schedules: a Scheduled Event on time, delivered like a rule's
  events.

It exits when its stdin reaches end of file (the stack went away) or on SIGTERM.
"""

from __future__ import annotations

import base64
import importlib.util
import json
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

from .lambda_context import LambdaContext
from .moto_patches.events_targets import render_target_input
from .processes import exit_when_parent_goes
from .schedules import next_run
from .spec import FunctionSpec, RuleSource, ScheduleSource, SqsSource
from .timestamps import iso_seconds

#: Delay before an asynchronous invocation is retried (AWS waits about a minute; locally short).
ASYNC_RETRY_SECONDS = 1
#: Exit code of a worker whose invocation ran out of time.
TIMEOUT_EXIT_CODE = 124
IDLE_SLEEP_MIN = 0.05
IDLE_SLEEP_MAX = 0.4
#: An idle worker with one event source waits this long in ReceiveMessage (SQS long polling):
#: a message is handed over as it arrives, and an empty queue costs moto no repeated scans.
LONG_POLL_SECONDS = 1

log = logging.getLogger("ecscp.local.lambda")
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


def sqs_record(message: dict[str, Any], queue_arn: str, region: str) -> dict[str, Any]:
    """An SQS message as a Lambda SQS event record."""
    attributes: dict[str, Any] = {}
    for name, value in (message.get("MessageAttributes") or {}).items():
        attribute: dict[str, Any] = {
            "stringListValues": [],
            "binaryListValues": [],
            "dataType": value.get("DataType", "String"),
        }
        if "StringValue" in value:
            attribute["stringValue"] = value["StringValue"]
        if "BinaryValue" in value:
            attribute["binaryValue"] = base64.b64encode(value["BinaryValue"]).decode()
        attributes[name] = attribute
    return {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message["Body"],
        "attributes": dict(message.get("Attributes") or {}),
        "messageAttributes": attributes,
        "md5OfBody": message.get("MD5OfBody", ""),
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": region,
    }


def failed_message_ids(response: Any, records: list[dict[str, Any]]) -> set[str] | None:
    """Ids reported in ``batchItemFailures``; None when the response fails the whole batch."""
    ids = {r["messageId"] for r in records}
    if not isinstance(response, dict) or not response.get("batchItemFailures"):
        return set()
    failed: set[str] = set()
    for failure in response["batchItemFailures"]:
        identifier = failure.get("itemIdentifier") if isinstance(failure, dict) else None
        if not identifier or identifier not in ids:
            return None  # AWS treats an unusable identifier as a failure of the whole batch
        failed.add(identifier)
    return failed


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
            redact = _redactor(event)
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

    def poll_sqs(self, source: SqsSource, wait_seconds: int = 0) -> int:
        messages: list[dict[str, Any]] = []
        wanted = source.batch_size
        deadline = time.monotonic() + source.maximum_batching_window_seconds
        while len(messages) < wanted:
            got = self.sqs.receive_message(
                QueueUrl=source.queue_url,
                MaxNumberOfMessages=min(10, wanted - len(messages)),
                AttributeNames=["All"],
                MessageAttributeNames=["All"],
                WaitTimeSeconds=0 if messages else wait_seconds,
            ).get("Messages", [])
            messages.extend(dict(m) for m in got)
            if not got and (not messages or time.monotonic() >= deadline):
                break
            if not got:  # inside the batching window: wait for more records
                self.stopping.wait(IDLE_SLEEP_MIN)
                continue
            if len(got) < 10 and time.monotonic() >= deadline:
                break
        if not messages:
            return 0
        records = [sqs_record(m, source.queue_arn, self.region) for m in messages]
        ok, response = self.invoke({"Records": records}, f"{len(records)} SQS record(s)")
        if not ok:
            return len(records)  # the whole batch becomes visible again after its timeout
        failed = failed_message_ids(response, records) if source.report_batch_item_failures else set()
        if failed is None:
            log.error("batchItemFailures names an unknown message: the whole batch is retried")
            return len(records)
        done = [r for r in records if r["messageId"] not in failed]
        for start in range(0, len(done), 10):
            chunk = done[start : start + 10]
            self.sqs.delete_message_batch(
                QueueUrl=source.queue_url,
                Entries=[{"Id": str(i), "ReceiptHandle": r["receiptHandle"]} for i, r in enumerate(chunk)],
            )
        return len(records)

    def poll_rule(self, source: RuleSource, wait_seconds: int = 0) -> int:
        messages = self.sqs.receive_message(
            QueueUrl=source.delivery_queue_url,
            MaxNumberOfMessages=10,
            AttributeNames=["ApproximateReceiveCount", "SentTimestamp"],
            WaitTimeSeconds=wait_seconds,
        ).get("Messages", [])
        done: list[str] = []
        for message in messages:
            try:
                event: Any = json.loads(message["Body"])
            except ValueError:
                event = message["Body"]
            ok, _ = self.invoke(event, f"event of rule {source.rule_name}")
            attributes = message.get("Attributes", {})
            attempts = int(attributes.get("ApproximateReceiveCount", "1"))
            age = time.time() - int(attributes.get("SentTimestamp", "0")) / 1000
            too_old = age > self.spec.async_max_event_age_seconds
            if ok or too_old or attempts > self.spec.async_max_retries:
                if not ok:
                    self.dead_letter(message["Body"], source.rule_name, attempts)
                done.append(message["ReceiptHandle"])
            else:
                self.sqs.change_message_visibility(
                    QueueUrl=source.delivery_queue_url,
                    ReceiptHandle=message["ReceiptHandle"],
                    VisibilityTimeout=ASYNC_RETRY_SECONDS,
                )
        if done:
            # One call for the batch: a delete per event was a third of the worker's calls. A
            # worker that dies mid-batch has its handled events delivered again (at least once).
            self.sqs.delete_message_batch(
                QueueUrl=source.delivery_queue_url,
                Entries=[{"Id": str(i), "ReceiptHandle": handle} for i, handle in enumerate(done)],
            )
        return len(messages)

    def dead_letter(self, body: str, rule_name: str, attempts: int) -> None:
        arn = self.spec.dead_letter_arn
        if not arn or ":sqs:" not in arn:
            log.error(
                "event of rule %s dropped after %d attempts (no dead-letter queue)", rule_name, attempts
            )
            return
        url = self.sqs.get_queue_url(QueueName=arn.rsplit(":", 1)[-1])["QueueUrl"]
        self.sqs.send_message(QueueUrl=url, MessageBody=body)
        log.error("event of rule %s sent to the dead-letter queue after %d attempts", rule_name, attempts)

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
                handled += self.poll_sqs(sqs_source, wait)
            for rule_source in self.spec.rule_sources:
                handled += self.poll_rule(rule_source, wait)
            if handled:
                idle, wait = IDLE_SLEEP_MIN, 0
                continue
            if single_source:
                wait = LONG_POLL_SECONDS
                continue
            self.stopping.wait(idle)
            idle = min(IDLE_SLEEP_MAX, idle * 2)


def _commands(value: Any, found: set[str]) -> set[str]:
    """Every string in a ``command`` list anywhere in an event, JSON bodies included."""
    if isinstance(value, str) and value[:1] in "{[":
        try:
            value = json.loads(value)
        except ValueError:
            return found
    if isinstance(value, dict):
        for key, item in value.items():
            if key == "command" and isinstance(item, list):
                for part in (p for p in item if isinstance(p, str) and len(p) >= 8):
                    found.update({part, json.dumps(part)[1:-1]})
                    found.update(_long_strings(part))
            else:
                _commands(item, found)
    elif isinstance(value, list):
        for item in value:
            _commands(item, found)
    return found


def _long_strings(text: str) -> set[str]:
    """String values of a JSON command argument (a workload's token among them)."""
    try:
        value = json.loads(text)
    except ValueError:
        return set()
    found: set[str] = set()
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, str) and len(item) >= 16:
            found.add(item)
    return found


def _redactor(event: Any) -> Callable[[str], str]:
    """Hides the workload commands of an event (they carry a token) in an error report."""
    secrets = sorted(_commands(event, set()), key=len, reverse=True)

    def redact(text: str) -> str:
        for secret in secrets:
            text = text.replace(secret, "<redacted command>")
            text = text.replace(secret[:40], "<redacted command>")  # error messages truncate values
        return text

    return redact


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
