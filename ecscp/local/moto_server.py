"""The local AWS endpoint: moto in server mode, in its own process, with fidelity fixes.

Run as ``python -m ecscp.local.moto_server --port N``. It prints one JSON line
``{"port": N}`` on stdout when it serves, and exits when its stdin reaches end of file (the
parent went away) or on SIGTERM/SIGINT, so it can never outlive the stack that started it.

moto is patched here, before the server starts, where it differs from AWS in ways the control
plane can observe:

- ECS ``RunTask`` honours ``clientToken``: the same token returns the task it started before,
  as on AWS, so a redelivered run request never starts a second container.
- ECS tasks start in ``PROVISIONING`` with ``version`` 1 and ``createdAt``, containers without
  an exit code (moto says RUNNING and exit code 0 at once). The local ECS runner moves them on
  through a private endpoint (``POST /_ecscp/ecs/task``), so DescribeTasks agrees with the
  events the runner emits.
- ECS ``StopTask`` sets ``desiredStatus`` STOPPED (and ``stopCode`` UserInitiated) and leaves
  ``lastStatus`` alone: the container still has to be stopped, which is the runner's job.
- EventBridge delivers to Lambda and SNS targets (moto raises NotImplementedError): an SNS
  target publishes the (transformed) event to the topic; a Lambda target puts it on a delivery
  queue that the local Lambda runtime polls (see :func:`delivery_queue_name`). Targets stay as
  deployed, so ListTargetsByRule shows the template's targets.
- EventBridge rules without an event pattern (schedules) and disabled rules get no events
  from PutEvents (moto delivers every event to them).
- EventBridge's default event shape includes ``account`` (moto leaves it out; Powertools'
  ``EventBridgeModel`` requires it).
- DynamoDB requests are atomic (moto exposes a half-written item to concurrent requests).
- SQS event source mappings never invoke moto's Lambda inside SendMessage (moto's Docker-less
  backend would "succeed" and delete the message): the local Lambda runtime polls instead.

Two moto costs that grow with data AWS would not scan are removed (same results, less work),
because the local stack's throughput hit them first:

- SQS SendMessage rebuilt the queue's full attribute map, counting every message, just to read
  ``ContentBasedDeduplication``; the send path now reads the static attributes only
  (GetQueueAttributes counts as before).
- ECS DescribeTasks compared every task with every requested ARN by substring search; the same
  matches (full ARN, or task id) are now set look-ups, and the runner's task updates find
  their task by ARN before falling back to the id scan.

DynamoDB item results are dumped as the DynamoDB JSON they already are (moto's shape-walking
serialiser cost more than the operations), and the request dispatcher's list of moto's
services is read once rather than from disk on every request.
"""

# moto is imported lazily: the parent process imports this module only for its names.
# ruff: noqa: PLC0415

from __future__ import annotations

import argparse
import copy
import hashlib
import json
import logging
import os
import re
import signal
import sys
import threading
import warnings
from collections.abc import Callable, Iterable
from datetime import datetime, timezone
from typing import Any

#: Prefix of the SQS queues through which EventBridge hands events to local Lambda workers.
DELIVERY_QUEUE_PREFIX = "ecscp-local-deliver-"
#: Private endpoint the local ECS runner uses to move a task through its lifecycle in moto.
TASK_UPDATE_PATH = "/_ecscp/ecs/task"
#: Pins moto's ECS task state machine: tasks change state only when the runner says so.
PINNED_TRANSITION = {"progression": "manual", "times": 10**12}

_TASK_FIELDS = frozenset(
    {
        "last_status",
        "desired_status",
        "version",
        "stop_code",
        "stopped_reason",
        "connectivity",
        "health_status",
    }
)
_TASK_TIME_FIELDS = frozenset(
    {
        "created_at",
        "started_at",
        "stopping_at",
        "stopped_at",
        "pull_started_at",
        "pull_stopped_at",
        "execution_stopped_at",
        "connectivity_at",
    }
)
_CONTAINER_FIELDS = frozenset({"last_status", "exit_code", "reason"})


def delivery_queue_name(rule_arn: str, target_id: str) -> str:
    """Name of the queue that carries one rule target's events to its local Lambda worker."""
    digest = hashlib.sha256(f"{rule_arn}|{target_id}".encode()).hexdigest()[:24]
    return f"{DELIVERY_QUEUE_PREFIX}{digest}"


def _now() -> datetime:
    return datetime.now(timezone.utc)


_PLACEHOLDER = re.compile(r"<([A-Za-z0-9_.\-]+)>")


def _iso(value: Any) -> Any:
    if isinstance(value, (int, float)):
        return datetime.fromtimestamp(float(value), tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    return value


def aws_event(original_event: dict[str, Any]) -> dict[str, Any]:
    """The event as AWS delivers it: ISO time, ``account`` present, no moto bookkeeping."""
    return {
        "version": original_event.get("version", "0"),
        "id": original_event.get("id"),
        "detail-type": original_event.get("detail-type"),
        "source": original_event.get("source"),
        "account": original_event.get("account"),
        "time": _iso(original_event.get("time")),
        "region": original_event.get("region"),
        "resources": original_event.get("resources", []),
        "detail": original_event.get("detail", {}),
    }


def _inside_quotes(text: str, position: int) -> bool:
    """Whether ``position`` of a JSON-ish template lies inside a string literal."""
    inside = False
    escaped = False
    for char in text[:position]:
        if escaped:
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == '"':
            inside = not inside
    return inside


def render_input_transformer(template: str, paths: dict[str, str], event: dict[str, Any]) -> str:
    """EventBridge's InputTransformer: placeholders in quotes get the escaped text, others JSON.

    moto pastes raw strings outside quotes, which breaks JSON templates such as
    ``{"reason": <reason>}``; AWS inserts ``"reason": "..."`` there.
    """
    from jsonpath_ng.ext import parse  # type: ignore[attr-defined]

    values: dict[str, Any] = {}
    for name, path in paths.items():
        matches = parse(path).find(event)
        values[name] = matches[0].value if matches else None
    values.setdefault("aws.events.event.json", event)
    values.setdefault("aws.events.event", event)

    def substitute(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in values:
            return match.group(0)
        value = values[name]
        if _inside_quotes(template, match.start()):
            text = value if isinstance(value, str) else ("" if value is None else json.dumps(value))
            return json.dumps(text)[1:-1]
        return json.dumps(value)

    return _PLACEHOLDER.sub(substitute, template)


def render_target_input(target: dict[str, Any], original_event: dict[str, Any]) -> str:
    """The text EventBridge hands to one target for one event."""
    event = aws_event(original_event)
    if "Input" in target:
        return str(target["Input"])
    if "InputPath" in target:
        from jsonpath_ng.ext import parse  # type: ignore[attr-defined]

        matches = parse(target["InputPath"]).find(event)
        return json.dumps(matches[0].value if matches else None)
    transformer = target.get("InputTransformer")
    if transformer:
        return render_input_transformer(
            transformer.get("InputTemplate", ""), transformer.get("InputPathsMap", {}), event
        )
    return json.dumps(event)


def _patch_events() -> None:
    from moto.events import models as events_models
    from moto.events.utils import EventTemplateParser
    from moto.sns.models import sns_backends
    from moto.sqs.models import sqs_backends
    from moto.utilities.arns import parse_arn

    EventTemplateParser.DEFAULT_EVENT_INPUT_TEMPLATE = (
        '{"id": "<id>", "time": <time>, "version": "0", "detail-type": "<detail-type>", '
        '"source": "<source>", "account": "<account>", "region": "<region>", '
        '"resources": <resources>, "detail": <detail>}'
    )
    original: Callable[..., None] = events_models.Rule.send_to_targets

    def send_to_targets(self: Any, original_event: dict[str, Any], transform_input: bool = True) -> None:
        # moto matches every event against a schedule-only rule (no pattern) and ignores the
        # rule's state; on AWS neither receives events from PutEvents.
        if self.state != "ENABLED" or not self.event_pattern.get_pattern():
            return
        if not self.event_pattern.matches_event(original_event):
            return
        ours = [t for t in self.targets if parse_arn(t["Arn"]).service in ("lambda", "sns", "sqs")]
        for target in ours:
            body = render_target_input(target, original_event)
            arn = parse_arn(target["Arn"])
            if arn.service == "sns":
                sns_backends[arn.account][arn.region].get_topic(target["Arn"]).publish(body)
            elif arn.service == "sqs":
                group_id = target.get("SqsParameters", {}).get("MessageGroupId")
                sqs_backends[arn.account][arn.region].send_message(
                    queue_name=arn.resource_id, message_body=body, group_id=group_id
                )
            else:
                sqs = sqs_backends[self.account_id][self.region_name]
                name = delivery_queue_name(self.arn, target["Id"])
                if name not in sqs.queues:
                    sqs.create_queue(name)
                sqs.send_message(queue_name=name, message_body=body)
        others = [t for t in self.targets if t not in ours]
        if others:
            # A shallow copy: concurrent put_events on the same rule must see all its targets.
            clone = copy.copy(self)
            clone.targets = others
            original(clone, original_event, transform_input)

    events_models.Rule.send_to_targets = send_to_targets  # type: ignore[method-assign,assignment]


def _patch_dynamodb() -> None:
    from moto.dynamodb.responses import DynamoHandler

    # moto's UpdateItem on a new item first stores the bare key, then applies the expression to
    # the stored item in place: a concurrent read sees an item with no attributes, and two
    # conditional updates can both pass. DynamoDB applies each request atomically; one lock
    # around every DynamoDB request restores that (and the control plane's conditions).
    lock = threading.RLock()
    call_action: Callable[..., Any] = DynamoHandler.call_action

    def atomic_call_action(self: Any) -> Any:
        with lock:
            return call_action(self)

    DynamoHandler.call_action = atomic_call_action  # type: ignore[method-assign]


#: DynamoDB item operations whose results are already DynamoDB JSON (see _patch_dynamodb_responses).
_DYNAMODB_ITEM_OPERATIONS = frozenset(
    {"GetItem", "BatchGetItem", "Query", "Scan", "PutItem", "UpdateItem", "DeleteItem"}
)
#: Text that makes a result leave the fast path: a null, or a binary value (base64 on the wire).
_DYNAMODB_SLOW_MARKERS = (": null", '"B": ', '"BS": ')


def _patch_dynamodb_responses() -> None:
    from moto.dynamodb.responses import DynamoResult

    # moto 5.2 serialises every result by walking the botocore shape of each attribute value,
    # which cost more than the operations themselves (a Query of 200 items: ~50 ms). An item
    # operation's result is already in DynamoDB JSON, so it is dumped as it is; results with a
    # null or a binary value (which the shape walk would drop or encode) take moto's way.
    execute_result: Callable[..., Any] = DynamoResult.execute_result

    def fast_execute_result(self: Any, context: Any) -> Any:
        result = self.result
        if context.operation_model.name in _DYNAMODB_ITEM_OPERATIONS and isinstance(result, dict):
            members = context.operation_model.output_shape.members
            if all(name in members for name in result):
                try:
                    body = json.dumps(result)
                except (TypeError, ValueError):
                    return execute_result(self, context)
                if not any(marker in body for marker in _DYNAMODB_SLOW_MARKERS):
                    version = context.service_model.metadata.get("jsonVersion", "1.0")
                    return 200, {"Content-Type": f"application/x-amz-json-{version}"}, body
        return execute_result(self, context)

    DynamoResult.execute_result = fast_execute_result  # type: ignore[method-assign]


def _patch_sqs() -> None:
    from moto.sqs import models as sqs_models

    # moto invokes mapped functions inside SendMessage; the local Lambda runtime polls instead.
    sqs_models.Queue.lambda_event_source_mappings = property(  # type: ignore[assignment]
        lambda self: {}, lambda self, value: None
    )


_sending = threading.local()


def patch_sqs_send_path() -> None:
    from moto.core.utils import camelcase_to_underscores
    from moto.sqs.models import Queue, SQSBackend

    full_attributes = Queue.attributes

    def attributes(self: Queue) -> dict[str, Any]:
        if not getattr(_sending, "depth", 0):
            return full_attributes.fget(self)  # type: ignore[no-any-return,attr-defined]
        # Sending reads only static attributes; skip the approximate counts (a scan of the queue).
        result: dict[str, Any] = {}
        for name in self.BASE_ATTRIBUTES + (self.FIFO_ATTRIBUTES if self.fifo_queue else []):
            if not name.startswith("Approximate"):
                value = getattr(self, camelcase_to_underscores(name))
                result[name] = str(value).lower() if isinstance(value, bool) else value
        return result

    def sending(method: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            _sending.depth = getattr(_sending, "depth", 0) + 1
            try:
                return method(*args, **kwargs)
            finally:
                _sending.depth -= 1

        return wrapper

    Queue.attributes = property(attributes)  # type: ignore[assignment,method-assign]
    SQSBackend.send_message = sending(SQSBackend.send_message)  # type: ignore[method-assign]
    SQSBackend.send_message_batch = sending(SQSBackend.send_message_batch)  # type: ignore[method-assign]
    # ReceiveMessage reads MessageRetentionPeriod for every message it returns.
    SQSBackend.is_message_valid_based_on_retention_period = sending(  # type: ignore[method-assign]
        SQSBackend.is_message_valid_based_on_retention_period
    )


def patch_ecs_describe_tasks() -> None:
    from moto.ecs.exceptions import InvalidParameterException
    from moto.ecs.models import EC2ContainerServiceBackend

    def describe_tasks(self: Any, cluster_str: str, tasks: list[str]) -> list[Any]:
        self._get_cluster(cluster_str)
        if not tasks:
            raise InvalidParameterException("Tasks cannot be empty.")
        wanted = set(tasks)
        wanted_ids = {t.split("/")[-1] for t in tasks}
        response = []
        for cluster_tasks in self.tasks.values():
            for task_arn, task in cluster_tasks.items():
                if task_arn in wanted or task.task_arn in wanted or task_arn.split("/")[-1] in wanted_ids:
                    task.advance()
                    response.append(task)
        return response

    EC2ContainerServiceBackend.describe_tasks = describe_tasks  # type: ignore[method-assign]


def _patch_ecs() -> None:
    from moto.core.responses import ActionResult
    from moto.ecs import models as ecs_models
    from moto.ecs import responses as ecs_responses
    from moto.moto_api import state_manager

    state_manager.set_transition(model_name="ecs::task", transition=PINNED_TRANSITION)

    task_init: Callable[..., None] = ecs_models.Task.__init__

    def init(self: Any, *args: Any, **kwargs: Any) -> None:
        task_init(self, *args, **kwargs)
        self._status = "PROVISIONING"
        self.version = 1
        self.created_at = _now()
        self.stop_code = None
        for container in self.containers:
            # moto names containers after the task definition; ECS after the task.
            container.task_arn = self.task_arn
            container.container_arn = (
                f"arn:aws:ecs:{self.region_name}:{self._account_id}:container/"
                f"{self.cluster_name}/{self.id}/{container.container_arn.rsplit('/', 1)[-1]}"
            )
            container.exitCode = None
            container.last_status = "PENDING"

    ecs_models.Task.__init__ = init  # type: ignore[method-assign]

    tokens: dict[tuple[str, str, str, str], list[Any]] = {}
    tokens_lock = threading.Lock()

    def run_task(self: Any) -> ActionResult:
        backend = self.ecs_backend
        cluster_str = self._get_param("cluster", "default")
        token = self._get_param("clientToken")

        def start() -> list[Any]:
            started: list[Any] = backend.run_task(
                cluster_str,
                self._get_param("taskDefinition"),
                self._get_int_param("count", 1),
                self._get_param("overrides"),
                self._get_param("startedBy"),
                self._get_param("tags"),
                self._get_param("launchType"),
                self._get_param("networkConfiguration"),
                self._get_param("group"),
                self._get_param("platformVersion"),
                self._get_param("capacityProviderStrategy"),
            )
            return started

        if not token:
            return ActionResult({"tasks": start(), "failures": []})
        cluster = backend._get_cluster(cluster_str)
        key = (backend.account_id, backend.region_name, cluster.name, str(token))
        with tokens_lock:
            tasks = tokens.get(key)
            if tasks is None:
                tasks = start()
                tokens[key] = tasks
        return ActionResult({"tasks": tasks, "failures": []})

    ecs_responses.EC2ContainerServiceResponse.run_task = run_task  # type: ignore[method-assign]

    stop_task_original: Callable[..., Any] = ecs_models.EC2ContainerServiceBackend.stop_task

    def stop_task(self: Any, cluster_str: str, task_str: str, reason: str) -> Any:
        cluster = self._get_cluster(cluster_str)
        task = _find_task(self, cluster.name, task_str)
        if task is None or task.container_instance_arn:
            return stop_task_original(self, cluster_str, task_str, reason)
        if task.desired_status != "STOPPED" and task.last_status != "STOPPED":
            task.desired_status = "STOPPED"
            task.stopped_reason = reason or "Task stopped by user"
            task.stop_code = "UserInitiated"
            task.stopping_at = _now()
            task.version = int(getattr(task, "version", 1)) + 1
        return task

    ecs_models.EC2ContainerServiceBackend.stop_task = stop_task  # type: ignore[method-assign]


def _find_task(backend: Any, cluster_name: str, task_str: str) -> Any:
    tasks: dict[str, Any] = backend.tasks.get(cluster_name) or {}
    if task_str in tasks:
        return tasks[task_str]
    task_id = task_str.rsplit("/", maxsplit=1)[-1]
    return next((t for arn, t in tasks.items() if arn.split("/")[-1] == task_id), None)


def _to_time(value: Any) -> datetime | None:
    if value is None:
        return None
    return datetime.fromtimestamp(float(value), tz=timezone.utc)


def update_task(body: dict[str, Any]) -> dict[str, Any]:
    """Apply one lifecycle step the local ECS runner decided to a task in moto."""
    from moto.ecs.models import ecs_backends

    backend = ecs_backends[body["account"]][body["region"]]
    cluster = backend._get_cluster(body["cluster"])
    task = _find_task(backend, cluster.name, body["taskArn"])
    if task is None:
        raise LookupError(f"no task {body['taskArn']} in cluster {cluster.name}")
    stop_requested = task.desired_status == "STOPPED"
    for name, value in (body.get("task") or {}).items():
        if stop_requested and name in ("desired_status", "stop_code", "stopped_reason", "stopping_at"):
            # A StopTask that arrived after the host's last look wins over what it writes now.
            if name != "desired_status" and value:
                setattr(task, name, _to_time(value) if name == "stopping_at" else value)
            continue
        if name == "version":
            task.version = max(int(value), int(getattr(task, "version", 0)))
        elif name == "last_status":
            task._status = value
        elif name in _TASK_FIELDS:
            setattr(task, name, value)
        elif name in _TASK_TIME_FIELDS:
            setattr(task, name, _to_time(value))
        else:
            raise ValueError(f"unknown task field {name!r}")
    for container in task.containers:
        for name, value in (body.get("container") or {}).items():
            if name not in _CONTAINER_FIELDS:
                raise ValueError(f"unknown container field {name!r}")
            setattr(container, "exitCode" if name == "exit_code" else name, value)
    return {"taskArn": task.task_arn, "lastStatus": task.last_status, "version": task.version}


def build_app() -> Callable[..., Iterable[bytes]]:
    """moto's WSGI application, plus the runner's private task-update endpoint."""
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

    moto_app = DomainDispatcherApplication(create_backend_app)

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if environ.get("PATH_INFO") == TASK_UPDATE_PATH and environ.get("REQUEST_METHOD") == "POST":
            length = int(environ.get("CONTENT_LENGTH") or 0)
            try:
                result = update_task(json.loads(environ["wsgi.input"].read(length)))
                status, payload = "200 OK", result
            except (LookupError, ValueError, KeyError) as exc:
                status, payload = "400 Bad Request", {"error": str(exc)}
            data = json.dumps(payload).encode()
            start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(data)))])
            return [data]
        result_iter: Iterable[bytes] = moto_app(environ, start_response)
        return result_iter

    return app


def _patch_dispatch() -> None:
    from moto import backends

    # The dispatcher lists moto's package directory (a stat per service) on every request to
    # find the backend; the list cannot change while the server runs.
    modules = tuple(backends.list_of_moto_modules())
    backends.list_of_moto_modules = lambda: modules


def configure_moto() -> None:
    """Everything that must hold before the first request: Docker-less Lambda and the patches."""
    from moto.core.config import default_user_config

    default_user_config["lambda"] = {"use_docker": False}
    _patch_dispatch()
    _patch_events()
    _patch_dynamodb()
    _patch_dynamodb_responses()
    _patch_sqs()
    patch_sqs_send_path()
    _patch_ecs()
    patch_ecs_describe_tasks()


def _exit_when_parent_goes(stream: Any) -> None:
    while stream.read(1024):
        pass
    os._exit(0)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args(argv)

    logging.getLogger("werkzeug").setLevel(logging.CRITICAL)
    logging.basicConfig(level=logging.WARNING)
    warnings.simplefilter("ignore")  # moto warns about every CloudFormation type it skips
    configure_moto()

    from moto.moto_server.werkzeug_app import MotoRequestHandler
    from werkzeug.serving import make_server

    server = make_server(args.host, args.port, build_app(), threaded=True, request_handler=MotoRequestHandler)

    def stop(signum: int, frame: Any) -> None:
        os._exit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    threading.Thread(target=_exit_when_parent_goes, args=(sys.stdin.buffer,), daemon=True).start()
    sys.stdout.write(json.dumps({"port": server.server_port}) + "\n")
    sys.stdout.flush()
    server.serve_forever()


if __name__ == "__main__":
    main()
