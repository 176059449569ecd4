"""What a scheduler does to AWS, judged by the policy template.yaml gives it.

Two views of one boundary:

- Every AWS call a real ``EcsControlPlaneExecutor`` makes over its whole life (start and health
  check, sending, syncing, stopping, adopting an existing item and a submission whose request
  is still queued, ending; and, in the api-server, reading a try's container logs) is recorded
  on moto and evaluated against the ``SchedulerPolicy`` rendered from the template, with the
  request's condition keys: each must be allowed, and none writes to the state table (adoption
  is an ``adopt`` request). So the code cannot drift from the policy.
- With moto enforcing IAM (its ``INITIAL_NO_AUTH_ACTION_COUNT`` mode), a principal holding only
  that policy runs the executor, and is refused what a compromised scheduler would try: ECS,
  receiving run requests (their workload tokens), reading the dead letters, forging alerts,
  IAM; and it reads the task log group's streams only if the stack was deployed with
  ``TaskLogGroupName``. moto checks actions and SQS queue ARNs but authorizes DynamoDB and
  CloudWatch Logs calls against resource ``*`` and ignores ``dynamodb:Attributes``, so there the
  table and log statements get resource ``*``; their resources and attribute conditions are
  judged by the first view and by tests/unit/test_policies.py.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import boto3
import pytest
from botocore.client import BaseClient
from botocore.exceptions import ClientError
from moto import settings as moto_settings
from moto.core.authorization import ActionAuthenticatorMixin
from samtranslator.yaml_helper import yaml_parse

from ecs_control_plane.contract import TaskState
from executor_client import EcsControlPlaneExecutor
from executor_client import config as cfg
from tests.functional.test_executor import (
    configure,
    encoded,
    events,
    make_executor,
    recorded_id,
    submit,
    task_instance,
    workload,
)
from tests.functional.test_task_logs import started, write
from tests.support.aws import CLUSTER, LOG_GROUP, REGION, MockedControlPlane
from tests.support.iam_policies import (
    ACCOUNT,
    TEMPLATE,
    Call,
    Deployment,
    allows,
    listed,
    queue_arn,
    table_arn,
)

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

#: SQS batch actions are authorized as their single-message action.
_IAM_ACTION = {"SendMessageBatch": "SendMessage", "DeleteMessageBatch": "DeleteMessage"}
_EXPRESSION_WORDS = {
    "SET", "REMOVE", "ADD", "DELETE", "AND", "OR", "NOT", "IN", "BETWEEN",
    "attribute_exists", "attribute_not_exists", "attribute_type", "if_not_exists",
    "list_append", "begins_with", "contains", "size",
}  # fmt: skip


def scheduler_policy(**parameters: str) -> list[dict[str, Any]]:
    return Deployment(yaml_parse(TEMPLATE.read_text()), **parameters).managed_policy("SchedulerPolicy")


def attributes_named(params: dict[str, Any]) -> list[str]:
    """``dynamodb:Attributes`` of a request: every top-level attribute it names."""
    names = set(params.get("Key", {})) | set(params.get("ExpressionAttributeNames", {}).values())
    names |= set(params.get("AttributeUpdates", {})) | set(params.get("Expected", {}))
    for expression in ("UpdateExpression", "ConditionExpression", "ProjectionExpression"):
        for word in re.findall(r"(?<![#:\w])[A-Za-z_][\w]*", params.get(expression, "")):
            if word not in _EXPRESSION_WORDS:
                names.add(word)
    return sorted(names)


class Recorder:
    """Every AWS call made while ``as_scheduler()`` is active, as IAM would see it."""

    def __init__(self, plane: MockedControlPlane, monkeypatch: pytest.MonkeyPatch) -> None:
        self.plane = plane
        self.calls: list[Call] = []
        self._active = False
        real = BaseClient._make_api_call

        def record(client: BaseClient, operation: str, params: dict[str, Any]) -> Any:
            if self._active:
                self.calls.append(self._as_call(client.meta.service_model.signing_name, operation, params))
            return real(client, operation, params)

        monkeypatch.setattr(BaseClient, "_make_api_call", record)

    @contextmanager
    def as_scheduler(self) -> Iterator[None]:
        self._active = True
        try:
            yield
        finally:
            self._active = False

    def _resource(self, service: str, params: dict[str, Any]) -> str:
        if service == "sqs":
            url = params.get("QueueUrl", "")
            return queue_arn("RunRequestQueue") if url == self.plane.queue_url else f"unknown queue {url}"
        if service == "dynamodb":
            tables = set(params.get("RequestItems", {})) | {params.get("TableName", self.plane.table_name)}
            assert tables == {self.plane.table_name}, tables
            return table_arn(params.get("IndexName"))
        if service == "logs":
            group, stream = params.get("logGroupName", ""), params.get("logStreamName", "")
            return f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:{group}:log-stream:{stream}"
        return "*"

    def _as_call(self, service: str, operation: str, params: dict[str, Any]) -> Call:
        action = f"{service}:{_IAM_ACTION.get(operation, operation)}"
        context: dict[str, Any] = {}
        if action in ("dynamodb:UpdateItem", "dynamodb:PutItem", "dynamodb:DeleteItem"):
            context["dynamodb:Attributes"] = attributes_named(params)
        return Call(action, self._resource(service, params), context)


@pytest.fixture
def plane(control_plane_aws: MockedControlPlane, monkeypatch: pytest.MonkeyPatch) -> MockedControlPlane:
    configure(monkeypatch, control_plane_aws)
    return control_plane_aws


def test_every_call_a_scheduler_makes_is_one_its_policy_allows(
    plane: MockedControlPlane, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN the scheduler's policy, and every AWS call of executors recorded
    policy = scheduler_policy()
    recorder = Recorder(plane, monkeypatch)
    running, queued, stopped = workload("running"), workload("queued"), workload("stopped")

    # WHEN a scheduler starts, sends, syncs and stops tasks, and dies with two tries in flight
    with recorder.as_scheduler():
        old = make_executor(owner="scheduler-old")
        submit(old, running, stopped)
    plane.deliver()
    with recorder.as_scheduler():
        events(old)
        old.revoke_task(ti=_task_instance(stopped))
        old.heartbeat()
        submit(old, queued)
    plane.deliver_only("stop")
    # AND another adopts them: one with an item, one whose run request is still on the queue
    with recorder.as_scheduler():
        new = make_executor(owner="scheduler-new")
        assert new.try_adopt_task_instances([_task_instance(running), _task_instance(queued)]) == []
        new.sync()
    plane.deliver()
    plane.run_to_exit(encoded(running.ti.key), 0)
    plane.run_to_exit(encoded(queued.ti.key), 0)
    with recorder.as_scheduler():
        reported = events(new)
        new.end()

    # THEN the scheduler's work got done: both adopted tries reported to the adopter
    assert {k: state for k, (state, _) in reported.items()} == {
        running.ti.key: "success",
        queued.ti.key: "success",
    }
    assert plane.item(encoded(queued.ti.key)).owner == "scheduler-new"
    # AND every call it made is one its policy allows
    refused = [call for call in recorder.calls if not allows(policy, call)]
    assert recorder.calls
    assert not refused, refused
    # AND it wrote nothing to the table: every call to it is a read
    table_calls = {c.action for c in recorder.calls if c.action.startswith("dynamodb:")}
    assert table_calls <= {
        "dynamodb:GetItem",
        "dynamodb:BatchGetItem",
        "dynamodb:Query",
        "dynamodb:DescribeTable",
    }
    assert {"dynamodb:GetItem", "dynamodb:Query"} <= table_calls


def test_every_call_of_the_log_view_is_one_its_policy_allows_with_task_log_group_name(
    plane: MockedControlPlane, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a running task with a container log, and the api-server reading task logs
    item = started(plane)
    write(item, "a line")
    monkeypatch.setenv(cfg.env_name(cfg.READ_TASK_LOGS), "True")
    recorder = Recorder(plane, monkeypatch)

    # WHEN the log view reads try 1
    with recorder.as_scheduler():
        _, lines = EcsControlPlaneExecutor().get_task_log(task_instance("extract"), 1)

    # THEN it read the try's items and the stream; every call is one SchedulerPolicy allows when
    # the stack names the task log group, and the log read is refused when it does not
    assert len(lines) == 2
    actions = {c.action for c in recorder.calls}
    assert actions == {"dynamodb:Query", "dynamodb:BatchGetItem", "logs:GetLogEvents"}
    with_logs = scheduler_policy(TaskLogGroupName=LOG_GROUP)
    assert [c for c in recorder.calls if not allows(with_logs, c)] == []
    refused = [c.action for c in recorder.calls if not allows(scheduler_policy(), c)]
    assert set(refused) == {"logs:GetLogEvents"}


def _task_instance(work: Any) -> Any:
    return task_instance(work.ti.task_id, external_executor_id=recorded_id(work))


# -- with moto enforcing IAM ------------------------------------------------------------------


def _moto_policy(plane: MockedControlPlane, **parameters: str) -> str:
    """The scheduler's policy for this moto stack: its queue's real ARN; table and log
    statements on ``*``.

    moto also names SendMessageBatch as an action of its own (AWS authorizes it as SendMessage).
    """
    sqs = boto3.client("sqs", region_name="us-east-1")
    attributes = sqs.get_queue_attributes(QueueUrl=plane.queue_url, AttributeNames=["QueueArn"])
    arn = attributes["Attributes"]["QueueArn"]
    statements = []
    for rendered in scheduler_policy(**parameters):
        statement = json.loads(json.dumps(rendered).replace(queue_arn("RunRequestQueue"), arn))
        actions = listed(statement["Action"])
        if any(str(a).startswith(("dynamodb:", "logs:")) for a in actions):
            statement["Resource"] = "*"
        if "sqs:SendMessage" in actions:
            statement["Action"] = [*actions, "sqs:SendMessageBatch"]
        statements.append(statement)
    return json.dumps({"Version": "2012-10-17", "Statement": statements})


def _user_holding_the_policy(
    plane: MockedControlPlane, monkeypatch: pytest.MonkeyPatch, **parameters: str
) -> dict[str, str]:
    """Access keys of a user holding only the scheduler's policy; moto enforces IAM from here on."""
    iam = boto3.client("iam", region_name="us-east-1")
    iam.create_user(UserName="airflow-scheduler")
    document = _moto_policy(plane, **parameters)
    policy = iam.create_policy(PolicyName="SchedulerPolicy", PolicyDocument=document)
    iam.attach_user_policy(UserName="airflow-scheduler", PolicyArn=policy["Policy"]["Arn"])
    key = iam.create_access_key(UserName="airflow-scheduler")["AccessKey"]
    monkeypatch.setattr(moto_settings, "INITIAL_NO_AUTH_ACTION_COUNT", 0)
    monkeypatch.setattr(ActionAuthenticatorMixin, "request_count", 0)
    return {"aws_access_key_id": key["AccessKeyId"], "aws_secret_access_key": key["SecretAccessKey"]}


@pytest.fixture
def scheduler_keys(plane: MockedControlPlane, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    return _user_holding_the_policy(plane, monkeypatch)


def _connect_as(keys: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    """The executor's AWS connection carries ``keys``."""
    login = {"conn_type": "aws", "login": keys["aws_access_key_id"]}
    login["password"] = keys["aws_secret_access_key"]
    monkeypatch.setenv("AIRFLOW_CONN_AWS_DEFAULT", json.dumps(login))


def _dead_letters(plane: MockedControlPlane) -> str:
    return plane.queue_url.replace("/run-requests", "/run-requests-dlq")


def _as(keys: dict[str, str], service: str) -> Any:
    return boto3.client(service, region_name="us-east-1", **keys)  # type: ignore[call-overload]


def test_a_scheduler_holding_only_its_policy_runs_the_executor(
    plane: MockedControlPlane, scheduler_keys: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN the executor's AWS connection carrying the scheduler user's keys, moto enforcing IAM
    _connect_as(scheduler_keys, monkeypatch)
    work = workload("under_the_policy")

    # WHEN it starts (health check), sends a task and syncs
    executor = make_executor(owner="scheduler-a")
    submit(executor, work)

    # THEN nothing was refused: the run request is on the queue, as the scheduler's
    monkeypatch.setattr(moto_settings, "INITIAL_NO_AUTH_ACTION_COUNT", float("inf"))
    plane.deliver()
    assert plane.item(encoded(work.ti.key)).state == TaskState.STARTING


@pytest.mark.parametrize("log_group", [LOG_GROUP, ""], ids=["with-TaskLogGroupName", "without"])
def test_the_log_view_reads_the_task_logs_only_when_the_stack_grants_it(
    plane: MockedControlPlane, monkeypatch: pytest.MonkeyPatch, log_group: str
) -> None:
    # GIVEN a running task whose container wrote a line
    write(started(plane), "hello from the container")
    # AND an api-server reading task logs as a user holding only SchedulerPolicy, with moto
    # enforcing IAM, from a stack deployed with or without TaskLogGroupName
    monkeypatch.setenv(cfg.env_name(cfg.READ_TASK_LOGS), "True")
    _connect_as(_user_holding_the_policy(plane, monkeypatch, TaskLogGroupName=log_group), monkeypatch)

    # WHEN the log view reads try 1
    messages, lines = EcsControlPlaneExecutor().get_task_log(task_instance("extract"), 1)

    # THEN with the log group named it reads the line; without, the items (header) but not the
    # stream, and a message says which right is missing
    if log_group:
        assert json.loads(lines[-1])["event"] == "hello from the container"
        assert "1 lines from CloudWatch Logs" in messages[0]
    else:
        assert len(lines) == 1
        assert "not allowed to read its log" in messages[0]
        assert f"logs:GetLogEvents on log group '{LOG_GROUP}'" in messages[0]


@pytest.mark.parametrize(
    ("service", "call"),
    [
        ("ecs", lambda c, p: c.run_task(cluster=CLUSTER, taskDefinition="airflow")),
        ("ecs", lambda c, p: c.stop_task(cluster=CLUSTER, task=f"arn:aws:ecs:us-east-1:{ACCOUNT}:task/x/y")),
        ("ecs", lambda c, p: c.list_tasks(cluster=CLUSTER)),
        ("sqs", lambda c, p: c.receive_message(QueueUrl=p.queue_url)),
        ("sqs", lambda c, p: c.purge_queue(QueueUrl=p.queue_url)),
        ("sqs", lambda c, p: c.send_message(QueueUrl=_dead_letters(p), MessageBody="{}")),
        ("sqs", lambda c, p: c.receive_message(QueueUrl=_dead_letters(p))),
        ("events", lambda c, p: c.put_events(Entries=[{"Source": "airflow.ecs-control-plane"}])),
        ("iam", lambda c, p: c.create_access_key(UserName="airflow-scheduler")),
        ("iam", lambda c, p: c.list_roles()),
    ],
    ids=[
        "ecs-run-task",
        "ecs-stop-task",
        "ecs-list-tasks",
        "receive-run-requests",
        "purge-run-requests",
        "send-to-the-dead-letter-queue",
        "read-the-dead-letters",
        "forge-an-alert-event",
        "iam-create-key",
        "iam-list-roles",
    ],
)
def test_a_scheduler_holding_only_its_policy_is_refused(
    plane: MockedControlPlane, scheduler_keys: dict[str, str], service: str, call: Any
) -> None:
    # GIVEN a client holding only the scheduler's rights
    client = _as(scheduler_keys, service)
    # WHEN it tries what a compromised scheduler would; THEN AWS (moto) refuses
    with pytest.raises(ClientError) as refused:
        call(client, plane)
    # (moto answers JSON services with its XML error, so botocore reads only the status there)
    assert refused.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    assert "AccessDenied" in str(refused.value)


def test_a_scheduler_holding_only_its_policy_may_still_send_run_requests(
    plane: MockedControlPlane, scheduler_keys: dict[str, str]
) -> None:
    # The refusals above are not moto refusing everything: the one queue it may send to works.
    sqs = _as(scheduler_keys, "sqs")
    sqs.send_message(QueueUrl=plane.queue_url, MessageBody="{}")
    with pytest.raises(ClientError):
        sqs.receive_message(QueueUrl=plane.queue_url)
