"""One test per moto patch (ecscp.local.moto_patches): moto still needs it, and it works.

Each test first shows, with moto as released, the behaviour its patch changes, so it fails the
day a moto upgrade fixes that (then delete the patch module and its test); then it applies the
patch and shows AWS's behaviour. Patches are applied in this process, inside ``mock_aws``, and
put back after each test (the ``patched`` fixture), so no other test sees them.
"""

from __future__ import annotations

import functools
import io
import json
import os
import threading
import zipfile
from collections.abc import Callable, Iterator
from types import ModuleType
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws
from moto.core.responses import ActionResult
from moto.dynamodb.comparisons import ConditionExpressionParser
from moto.dynamodb.models.dynamo_type import Item
from moto.dynamodb.parsing import validators
from moto.dynamodb.parsing.ast_nodes import DepthFirstTraverser
from moto.dynamodb.parsing.executors import UpdateExpressionExecutor
from moto.dynamodb.parsing.tokens import ExpressionTokenizer
from moto.events.models import Rule
from moto.moto_api import state_manager
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
from moto.sqs.models import Queue
from werkzeug.test import Client

from ecscp.local.ecs.backend import BACKEND, with_host_endpoints
from ecscp.local.ecs.records import NOTICES_PATH, RECORDS, RECORDS_PATH, ContainerState, TaskStateRecord
from ecscp.local.moto_patches import (
    PATCHES,
    _replace,
    apply_all,
    dispatch_services_cached,
    dynamodb_atomic_requests,
    dynamodb_expressions_parsed_once,
    dynamodb_item_copies,
    dynamodb_item_results,
    dynamodb_update_validation,
    ecs_cloudformation_properties,
    ecs_describe_tasks_lookup,
    ecs_run_task_client_token,
    ecs_stop_task,
    ecs_task_level_memory,
    ecs_task_lifecycle,
    events_default_input_account,
    events_schedule_and_disabled_rules,
    events_targets,
    sqs_no_lambda_invoke,
    sqs_send_attributes,
)
from tests.support.aws import ACCOUNT, CLUSTER, CONTAINER, REGION
from tests.support.moto_ecs import Ecs, EcsEvents, bodies, queue

Apply = Callable[[ModuleType], None]


@pytest.fixture
def patched() -> Iterator[Apply]:
    """Applies a patch for one test, and puts moto back as released afterwards."""
    assert not _replace._replaced, "a patch was left applied in this process"
    transitions = dict(state_manager._transitions)
    yield lambda module: module.apply()
    _replace.restore()
    BACKEND.reset()
    state_manager._transitions.clear()
    state_manager._transitions.update(transitions)


# --- ECS ---------------------------------------------------------------------------------------


def test_ecs_run_task_client_token(patched: Apply) -> None:
    with mock_aws():
        # GIVEN moto as released
        ecs = Ecs()
        # WHEN the same clientToken is sent twice THEN moto starts two tasks
        assert ecs.run(clientToken="one") != ecs.run(clientToken="one")

        # GIVEN the patch WHEN the same clientToken is sent twice THEN one task, as on AWS
        patched(ecs_run_task_client_token)
        assert ecs.run(clientToken="two") == ecs.run(clientToken="two")
        assert ecs.run(clientToken="three") != ecs.run(clientToken="four")


def test_ecs_task_lifecycle(patched: Apply) -> None:
    with mock_aws():
        # GIVEN moto as released THEN a task starts RUNNING, its container with exit code 0,
        # and each DescribeTasks moves it one state on
        ecs = Ecs()
        started = ecs.client.run_task(
            cluster=CLUSTER,
            taskDefinition="airflow",
            launchType="FARGATE",
            networkConfiguration=ecs.network,
        )["tasks"][0]
        assert started["lastStatus"] == "RUNNING"
        assert started["containers"][0].get("exitCode") == 0
        statuses = [ecs.describe(started["taskArn"])[0]["lastStatus"] for _ in range(2)]
        assert statuses == ["DEACTIVATING", "STOPPING"]

        # GIVEN the patch THEN a new task is PROVISIONING, version 1, no exit code, and stays so
        patched(ecs_task_lifecycle)
        ecs_events = EcsEvents()
        arn = ecs.run(overrides={"containerOverrides": [{"name": CONTAINER, "command": ["true"]}]})
        for _ in range(3):
            (task,) = ecs.describe(arn)
            assert task["lastStatus"] == "PROVISIONING"
        assert task["version"] == 1
        assert "createdAt" in task
        assert "exitCode" not in task["containers"][0]
        assert task["containers"][0]["lastStatus"] == "PENDING"
        assert task["containers"][0]["containerArn"].startswith(arn.replace(":task/", ":container/"))

        # THEN RunTask emitted its PROVISIONING event, with what ECS reports of the task, and
        # queued a notice for the local ECS host
        (created,) = ecs_events.received()
        assert (created["lastStatus"], created["version"], created["cpu"], created["memory"]) == (
            "PROVISIONING",
            1,
            "512",
            "1024",
        )
        assert created["availabilityZone"] == task["availabilityZone"]
        (notice,) = [n for n in BACKEND.notices(after=0, wait_seconds=0) if n.task_arn == arn]
        assert (notice.kind, notice.overrides[0].command) == ("run", ["true"])

        # WHEN the host records a change through the private path
        def moto_app(environ: Any, start_response: Any) -> list[bytes]:
            raise AssertionError("the host's paths must not reach moto's app")

        client = Client(with_host_endpoints(moto_app))
        record = TaskStateRecord(
            task_arn=arn,
            last_status="RUNNING",
            container=ContainerState(last_status="RUNNING"),
            started_at=1_700_000_000,
        )
        response = client.post(RECORDS_PATH, data=RECORDS.dump_json([record]))
        assert response.status_code == 200

        # THEN that one record is both moto's state and the event
        (task,) = ecs.describe(arn)
        (running,) = ecs_events.received()
        assert (task["lastStatus"], task["version"], task["containers"][0]["lastStatus"]) == (
            "RUNNING",
            2,
            "RUNNING",
        )
        assert (running["lastStatus"], running["version"], running["startedAt"]) == (
            "RUNNING",
            2,
            "2023-11-14T22:13:20.000Z",
        )
        assert client.get(f"{NOTICES_PATH}?after={notice.seq}&wait=0").json == []
        bad = client.post(RECORDS_PATH, data=b'[{"task_arn": "x", "colour": "red"}]')
        assert bad.status_code == 400


def test_ecs_stop_task(patched: Apply) -> None:
    with mock_aws():
        # GIVEN moto as released (its task states pinned, so that only StopTask moves them)
        # WHEN a task is stopped THEN it is STOPPED at once, with no stopCode
        state_manager.set_transition(model_name="ecs::task", transition=ecs_task_lifecycle.PINNED_TRANSITION)
        ecs = Ecs()
        arn = ecs.run()
        ecs.client.stop_task(cluster=CLUSTER, task=arn, reason="bye")
        (task,) = ecs.describe(arn)
        assert task["lastStatus"] == "STOPPED"
        assert "stopCode" not in task

        # GIVEN the patch THEN StopTask asks for the stop; the task still runs until the host stops it
        patched(ecs_stop_task)
        arn = ecs.run()
        (before,) = ecs.describe(arn)
        ecs.client.stop_task(cluster=CLUSTER, task=arn, reason="bye")
        (task,) = ecs.describe(arn)
        assert task["lastStatus"] == before["lastStatus"] == "RUNNING"
        assert (task["desiredStatus"], task["stopCode"], task["stoppedReason"]) == (
            "STOPPED",
            "UserInitiated",
            "bye",
        )
        assert "stoppingAt" in task


def test_ecs_describe_tasks_lookup(patched: Apply) -> None:
    with mock_aws():
        # GIVEN moto as released THEN a string that merely contains a task id finds the task
        ecs = Ecs()
        arn = ecs.run()
        task_id = arn.rsplit("/", 1)[-1]
        assert len(ecs.describe(f"not-{task_id}")) == 1

        # GIVEN the patch THEN only the full ARN or the id find it, as on AWS
        patched(ecs_describe_tasks_lookup)
        assert ecs.describe(f"not-{task_id}") == []
        assert [t["taskArn"] for t in ecs.describe(arn)] == [arn]
        assert [t["taskArn"] for t in ecs.describe(task_id)] == [arn]
        other = ecs.run()
        assert {t["taskArn"] for t in ecs.describe(arn, other.rsplit("/", 1)[-1])} == {arn, other}


_CLUSTER_AND_TASK_DEFINITION = {
    "Resources": {
        "Cluster": {
            "Type": "AWS::ECS::Cluster",
            "Properties": {
                "ClusterName": "fargate",
                "CapacityProviders": ["FARGATE", "FARGATE_SPOT"],
                "DefaultCapacityProviderStrategy": [{"CapacityProvider": "FARGATE", "Weight": 1}],
                "ClusterSettings": [{"Name": "containerInsights", "Value": "enabled"}],
            },
        },
        "TaskDefinition": {
            "Type": "AWS::ECS::TaskDefinition",
            "Properties": {
                "Family": "airflow",
                "RequiresCompatibilities": ["FARGATE"],
                "NetworkMode": "awsvpc",
                "Cpu": "1024",
                "Memory": "2048",
                "TaskRoleArn": f"arn:aws:iam::{ACCOUNT}:role/task",
                "ExecutionRoleArn": f"arn:aws:iam::{ACCOUNT}:role/execution",
                "ContainerDefinitions": [
                    {"Name": "airflow", "Image": "airflow", "Environment": [{"Name": "A", "Value": "1"}]}
                ],
            },
        },
    }
}


def _created_cluster_and_task_definition(stack: str) -> tuple[dict[str, Any], dict[str, Any]]:
    boto3.client("cloudformation", region_name=REGION).create_stack(
        StackName=stack, TemplateBody=json.dumps(_CLUSTER_AND_TASK_DEFINITION)
    )
    ecs = boto3.client("ecs", region_name=REGION)
    (cluster,) = ecs.describe_clusters(clusters=["fargate"], include=["SETTINGS"])["clusters"]
    definition = ecs.describe_task_definition(taskDefinition="airflow")["taskDefinition"]
    return cluster, definition


def test_ecs_cloudformation_properties(patched: Apply) -> None:
    with mock_aws():
        # GIVEN moto as released WHEN a stack creates a Fargate cluster and task definition
        # THEN the cluster has no capacity providers and the task definition is EC2's, roleless
        cluster, definition = _created_cluster_and_task_definition("released")
        assert not cluster.get("capacityProviders")
        assert not cluster.get("defaultCapacityProviderStrategy")
        assert (definition["networkMode"], definition["compatibilities"]) == ("bridge", ["EC2"])
        assert "taskRoleArn" not in definition
        assert "cpu" not in definition

        # GIVEN the patch THEN both carry every property, as CloudFormation passes them to ECS
        patched(ecs_cloudformation_properties)
        cluster, definition = _created_cluster_and_task_definition("patched")
        assert cluster["capacityProviders"] == ["FARGATE", "FARGATE_SPOT"]
        assert cluster["defaultCapacityProviderStrategy"] == [{"capacityProvider": "FARGATE", "weight": 1}]
        assert {"name": "containerInsights", "value": "enabled"} in cluster["settings"]
        assert definition["networkMode"] == "awsvpc"
        assert "FARGATE" in definition["compatibilities"]
        assert (definition["cpu"], definition["memory"]) == ("1024", "2048")
        assert definition["taskRoleArn"] == f"arn:aws:iam::{ACCOUNT}:role/task"
        assert definition["executionRoleArn"] == f"arn:aws:iam::{ACCOUNT}:role/execution"
        (container,) = definition["containerDefinitions"]
        assert (container["name"], container["environment"]) == ("airflow", [{"name": "A", "value": "1"}])


def test_ecs_task_level_memory(patched: Apply) -> None:
    with mock_aws():
        # GIVEN a Fargate task definition with memory at task level only, as Fargate's usually are
        ecs = Ecs()
        ecs.client.register_task_definition(
            family="task-level",
            networkMode="awsvpc",
            requiresCompatibilities=["FARGATE"],
            cpu="1024",
            memory="2048",
            containerDefinitions=[{"name": CONTAINER, "image": "airflow", "essential": True}],
        )
        run = functools.partial(
            ecs.client.run_task,
            cluster=CLUSTER,
            taskDefinition="task-level",
            launchType="FARGATE",
            networkConfiguration=ecs.network,
        )
        # WHEN moto as released runs it THEN RunTask fails (HTTP 500: a TypeError adding memories)
        with pytest.raises(TypeError):
            run()

        # GIVEN the patch THEN it starts, as on AWS
        patched(ecs_task_level_memory)
        (task,) = run()["tasks"]
        assert task["taskDefinitionArn"].endswith("task-definition/task-level:1")


# --- EventBridge -------------------------------------------------------------------------------


def _put(events: Any, detail: dict[str, Any]) -> None:
    result = events.put_events(
        Entries=[{"Source": "test.source", "DetailType": "Thing", "Detail": json.dumps(detail)}]
    )
    assert result["FailedEntryCount"] == 0


PATTERN = json.dumps({"source": ["test.source"]})


def test_events_targets_lambda_and_sns(patched: Apply) -> None:
    with mock_aws():
        # GIVEN a rule with an SNS and a Lambda target (the topic delivers to a queue)
        events = boto3.client("events", region_name=REGION)
        sns = boto3.client("sns", region_name=REGION)
        sqs = boto3.client("sqs", region_name=REGION)
        topic = sns.create_topic(Name="alerts")["TopicArn"]
        capture_url, capture_arn = queue(sqs, "capture")
        sns.subscribe(
            TopicArn=topic, Protocol="sqs", Endpoint=capture_arn, Attributes={"RawMessageDelivery": "true"}
        )
        rule = events.put_rule(Name="to-sns", EventPattern=PATTERN)["RuleArn"]
        events.put_targets(Rule="to-sns", Targets=[{"Id": "topic", "Arn": topic}])

        # WHEN an event matches, with moto as released THEN PutEvents fails
        with pytest.raises((ClientError, NotImplementedError)):
            _put(events, {"n": 1})

        # GIVEN the patch THEN the topic gets the event, and a Lambda target its delivery queue
        patched(events_targets)
        function = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:handler"
        events.put_targets(Rule="to-sns", Targets=[{"Id": "function", "Arn": function}])
        _put(events, {"n": 2})
        (body,) = bodies(sqs, capture_url)
        assert json.loads(body)["detail"] == {"n": 2}
        delivery = sqs.get_queue_url(QueueName=events_targets.delivery_queue_name(rule, "function"))[
            "QueueUrl"
        ]
        (delivered,) = bodies(sqs, delivery)
        assert json.loads(delivered)["detail"] == {"n": 2}
        targets = events.list_targets_by_rule(Rule="to-sns")["Targets"]
        assert {t["Arn"] for t in targets} == {topic, function}


def test_events_targets_input_transformer(patched: Apply) -> None:
    with mock_aws():
        # GIVEN a target whose InputTransformer has a placeholder outside quotes
        events = boto3.client("events", region_name=REGION)
        sqs = boto3.client("sqs", region_name=REGION)
        url, arn = queue(sqs, "transformed")
        events.put_rule(Name="transform", EventPattern=PATTERN)
        transformer: Any = {
            "InputPathsMap": {"reason": "$.detail.reason"},
            "InputTemplate": '{"reason": <reason>, "text": "said <reason>"}',
        }
        events.put_targets(
            Rule="transform", Targets=[{"Id": "q", "Arn": arn, "InputTransformer": transformer}]
        )

        # WHEN an event matches, with moto as released THEN the value is pasted raw: moto's own
        # json.loads of the result fails, and so does PutEvents
        with pytest.raises((ClientError, ValueError)):
            _put(events, {"reason": 'a "quoted" reason'})
        assert bodies(sqs, url) == []

        # GIVEN the patch THEN JSON outside quotes, escaped text inside, as on AWS
        patched(events_targets)
        _put(events, {"reason": 'a "quoted" reason'})
        (body,) = bodies(sqs, url)
        assert json.loads(body) == {"reason": 'a "quoted" reason', "text": 'said a "quoted" reason'}


def test_events_schedule_and_disabled_rules(patched: Apply) -> None:
    with mock_aws():
        # GIVEN a schedule-only rule and a disabled rule, each with a queue target
        events = boto3.client("events", region_name=REGION)
        sqs = boto3.client("sqs", region_name=REGION)
        schedule_url, schedule_arn = queue(sqs, "schedule")
        disabled_url, disabled_arn = queue(sqs, "disabled")
        events.put_rule(Name="every-minute", ScheduleExpression="rate(1 minute)")
        events.put_targets(Rule="every-minute", Targets=[{"Id": "q", "Arn": schedule_arn}])
        events.put_rule(Name="off", EventPattern=PATTERN, State="DISABLED")
        events.put_targets(Rule="off", Targets=[{"Id": "q", "Arn": disabled_arn}])

        # WHEN an event is put, with moto as released THEN both rules receive it
        _put(events, {"n": 1})
        assert len(bodies(sqs, schedule_url)) == 1
        assert len(bodies(sqs, disabled_url)) == 1

        # GIVEN the patch THEN neither does, as on AWS
        patched(events_schedule_and_disabled_rules)
        _put(events, {"n": 2})
        assert bodies(sqs, schedule_url) == []
        assert bodies(sqs, disabled_url) == []


def test_events_default_input_account(patched: Apply) -> None:
    with mock_aws():
        # GIVEN a queue target without input settings, delivered by moto itself
        events = boto3.client("events", region_name=REGION)
        sqs = boto3.client("sqs", region_name=REGION)
        url, arn = queue(sqs, "plain")
        events.put_rule(Name="plain", EventPattern=PATTERN)
        events.put_targets(Rule="plain", Targets=[{"Id": "q", "Arn": arn}])

        # WHEN an event matches, with moto as released THEN it has no account
        _put(events, {"n": 1})
        (body,) = bodies(sqs, url)
        assert "account" not in json.loads(body)

        # GIVEN the patch THEN it has, as on AWS
        patched(events_default_input_account)
        _put(events, {"n": 2})
        (body,) = bodies(sqs, url)
        assert json.loads(body)["account"] == ACCOUNT


# --- DynamoDB ----------------------------------------------------------------------------------


def _table(dynamodb: Any) -> None:
    dynamodb.create_table(
        TableName="items",
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )


def _key(pk: str) -> dict[str, Any]:
    return {"pk": {"S": pk}}


def _read_during_update(
    dynamodb: Any, monkeypatch: pytest.MonkeyPatch, pk: str
) -> tuple[bool, dict[str, Any]]:
    """Whether a GetItem sent while moto applies an UpdateItem's expression waited, and what it saw."""
    execute = UpdateExpressionExecutor.execute
    seen: dict[str, Any] = {}
    waited: list[bool] = []
    readers: list[threading.Thread] = []

    def read_meanwhile(self: Any, *args: Any) -> Any:
        if args or readers:  # the executor's recursion into the expression
            return execute(self, *args)
        reader = threading.Thread(
            target=lambda: seen.update(dynamodb.get_item(TableName="items", Key=_key(pk)))
        )
        readers.append(reader)
        reader.start()
        reader.join(timeout=0.5)
        waited.append(reader.is_alive())
        return execute(self)

    monkeypatch.setattr(UpdateExpressionExecutor, "execute", read_meanwhile)
    dynamodb.update_item(
        TableName="items",
        Key=_key(pk),
        UpdateExpression="SET colour = :c",
        ExpressionAttributeValues={":c": {"S": "red"}},
    )
    monkeypatch.setattr(UpdateExpressionExecutor, "execute", execute)
    for reader in readers:
        reader.join()
    return waited == [True], seen.get("Item", {})


def test_dynamodb_atomic_requests(patched: Apply, monkeypatch: pytest.MonkeyPatch) -> None:
    with mock_aws():
        dynamodb = boto3.client("dynamodb", region_name=REGION)
        _table(dynamodb)
        # GIVEN moto as released WHEN UpdateItem creates an item THEN a concurrent read sees it
        # with its key only
        waited, item = _read_during_update(dynamodb, monkeypatch, "one")
        assert (waited, item) == (False, _key("one"))

        # GIVEN the patch THEN the read waits for the update and sees the whole item
        patched(dynamodb_atomic_requests)
        waited, item = _read_during_update(dynamodb, monkeypatch, "two")
        assert (waited, item) == (True, {**_key("two"), "colour": {"S": "red"}})


def _item_operations(dynamodb: Any, pk: str) -> list[Any]:
    """The responses of every item operation on an item with every kind of value."""
    item = {
        **_key(pk),
        "s": {"S": "text"},
        "n": {"N": "12.5"},
        "list": {"L": [{"S": "a"}, {"N": "1"}, {"BOOL": True}]},
        "map": {"M": {"inner": {"SS": ["x", "y"]}}},
    }
    with_null = {**_key(f"{pk}-null"), "nothing": {"NULL": True}, "bytes": {"B": b"\x00\x01"}}
    responses = [
        dynamodb.put_item(TableName="items", Item=item, ReturnValues="ALL_OLD"),
        dynamodb.put_item(TableName="items", Item=with_null),
        dynamodb.get_item(TableName="items", Key=_key(pk)),
        dynamodb.get_item(TableName="items", Key=_key(f"{pk}-null")),
        dynamodb.update_item(
            TableName="items",
            Key=_key(pk),
            UpdateExpression="SET s = :s",
            ExpressionAttributeValues={":s": {"S": "new"}},
            ReturnValues="ALL_NEW",
        ),
        dynamodb.query(
            TableName="items",
            KeyConditionExpression="pk = :pk",
            ExpressionAttributeValues={":pk": _key(pk)["pk"]},
        ),
        dynamodb.batch_get_item(RequestItems={"items": {"Keys": [_key(pk), _key(f"{pk}-null")]}}),
        dynamodb.delete_item(TableName="items", Key=_key(pk), ReturnValues="ALL_OLD"),
    ]
    for response in responses:
        response.pop("ResponseMetadata")
    for response in responses[6]["Responses"].values():
        response.sort(key=lambda item: item["pk"]["S"])
    return responses


def test_dynamodb_item_results(patched: Apply, monkeypatch: pytest.MonkeyPatch) -> None:
    serialised: list[str] = []
    execute_result = ActionResult.execute_result

    def counting(self: Any, context: Any) -> Any:
        serialised.append(context.operation_model.name)
        return execute_result(self, context)

    monkeypatch.setattr(ActionResult, "execute_result", counting)
    with mock_aws():
        dynamodb = boto3.client("dynamodb", region_name=REGION)
        _table(dynamodb)
        # GIVEN moto as released THEN every item result goes through its shape serialiser
        released = _item_operations(dynamodb, "one")
        assert "GetItem" in serialised
        assert "Query" in serialised

        # GIVEN the patch THEN the same responses; moto serialises only those with a null or a
        # binary value (and DeleteItem's, which carry a field of moto's own)
        patched(dynamodb_item_results)
        serialised.clear()
        fast = _item_operations(dynamodb, "one")
        assert fast == released
        assert {"PutItem", "UpdateItem", "Query"}.isdisjoint(serialised)
        assert serialised.count("GetItem") == 1


def _copies_and_parses(monkeypatch: pytest.MonkeyPatch) -> tuple[list[str], list[str]]:
    """Counters of moto's item deep copies and of its expression parses (update, condition)."""
    copies: list[str] = []
    parses: list[str] = []
    item_deepcopy = Item.__deepcopy__
    tokenize = ExpressionTokenizer.make_list.__func__  # type: ignore[attr-defined]
    lex = ConditionExpressionParser._lex_condition_expression

    def counting_copy(self: Any, memo: Any) -> Any:
        copies.append(self.hash_key.value)
        return item_deepcopy(self, memo)

    def counting_tokenize(cls: Any, expression: str) -> Any:
        parses.append("update")
        return tokenize(cls, expression)

    def counting_lex(self: Any) -> Any:
        parses.append("condition")
        return lex(self)

    monkeypatch.setattr(Item, "__deepcopy__", counting_copy)
    monkeypatch.setattr(ExpressionTokenizer, "make_list", classmethod(counting_tokenize))
    monkeypatch.setattr(ConditionExpressionParser, "_lex_condition_expression", counting_lex)
    return copies, parses


def _conditional_update(dynamodb: Any, pk: str, colour: str, return_values: str = "ALL_NEW") -> Any:
    return dynamodb.update_item(
        TableName="items",
        Key=_key(pk),
        UpdateExpression="SET colour = :c",
        ConditionExpression="attribute_not_exists(colour) OR colour <> :c",
        ExpressionAttributeValues={":c": {"S": colour}},
        ReturnValues=return_values,
    )


def test_dynamodb_item_copies(patched: Apply, monkeypatch: pytest.MonkeyPatch) -> None:
    copies, _ = _copies_and_parses(monkeypatch)
    with mock_aws():
        dynamodb = boto3.client("dynamodb", region_name=REGION)
        _table(dynamodb)
        for pk in ("a", "b"):
            dynamodb.put_item(TableName="items", Item={**_key(pk), "colour": {"S": "red"}})
        query = {"TableName": "items", "KeyConditionExpression": "pk = :pk"}

        # GIVEN moto as released THEN UpdateItem copies the item twice, Query each item it returns
        _conditional_update(dynamodb, "a", "blue")
        assert copies == ["a", "a"]
        copies.clear()
        dynamodb.query(**query, ExpressionAttributeValues={":pk": {"S": "b"}})
        assert copies == ["b"]

        # GIVEN the patch THEN neither copies, and the answers are the same
        patched(dynamodb_item_copies)
        copies.clear()
        assert _conditional_update(dynamodb, "a", "green")["Attributes"]["colour"] == {"S": "green"}
        found = dynamodb.query(**query, ExpressionAttributeValues={":pk": {"S": "b"}})["Items"]
        assert found == [{**_key("b"), "colour": {"S": "red"}}]
        assert copies == []
        # AND ReturnValues that read the old item still get it as it was
        old = _conditional_update(dynamodb, "b", "black", return_values="ALL_OLD")["Attributes"]
        assert old["colour"] == {"S": "red"}
        assert copies == ["b"]
        # AND a table with a stream still gets its copy of the old item
        dynamodb.update_table(
            TableName="items",
            StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
        )
        copies.clear()
        _conditional_update(dynamodb, "b", "white")
        assert copies == ["b"]


def test_dynamodb_expressions_parsed_once(patched: Apply, monkeypatch: pytest.MonkeyPatch) -> None:
    _, parses = _copies_and_parses(monkeypatch)
    with mock_aws():
        dynamodb = boto3.client("dynamodb", region_name=REGION)
        _table(dynamodb)
        # GIVEN moto as released THEN one UpdateItem parses each of its expressions twice
        _conditional_update(dynamodb, "a", "red")
        assert sorted(parses) == ["condition", "condition", "update", "update"]

        # GIVEN the patch THEN once each, and the condition still decides
        patched(dynamodb_expressions_parsed_once)
        parses.clear()
        assert _conditional_update(dynamodb, "a", "blue")["Attributes"]["colour"] == {"S": "blue"}
        assert sorted(parses) == ["condition", "update"]
        with pytest.raises(ClientError, match="ConditionalCheckFailed"):
            _conditional_update(dynamodb, "a", "blue")
        # AND the next request parses its own condition (the memo lives one request) but not an
        # update expression it has seen before; a new one is parsed, a wrong one still refused
        parses.clear()
        _conditional_update(dynamodb, "a", "green")
        assert parses == ["condition"]
        dynamodb.update_item(TableName="items", Key=_key("a"), UpdateExpression="REMOVE colour")
        assert parses == ["condition", "update"]
        for _ in range(2):
            with pytest.raises(ClientError, match="ValidationException"):
                dynamodb.update_item(TableName="items", Key=_key("a"), UpdateExpression="SET colour ==")


#: UpdateItems of every kind moto's validator handles: (expression, names, values).
_UPDATES: list[tuple[str, dict[str, str], dict[str, Any]]] = [
    (
        "SET #s = :s, tries = if_not_exists(tries, :zero) + :one, labels = list_append(labels, :t)",
        {"#s": "state"},
        {":s": {"S": "RUNNING"}, ":zero": {"N": "0"}, ":one": {"N": "1"}, ":t": {"L": [{"S": "x"}]}},
    ),
    (
        "SET notes.nested = :v, labels[0] = :s REMOVE stale ADD tally :one",
        {},
        {":v": {"M": {}}, ":s": {"S": "y"}, ":one": {"N": "1"}},
    ),
    ("SET tally = tally - :one DELETE hues :c", {}, {":one": {"N": "1"}, ":c": {"SS": ["red"]}}),
]
_REFUSED: list[tuple[str, dict[str, Any]]] = [
    ("SET tally = missing + :one", {":one": {"N": "1"}}),  # a path that does not exist
    ("SET labels = list_append(:s, labels)", {":s": {"S": "not a list"}}),
    ("SET pk = :s", {":s": {"S": "other"}}),  # the hash key
    ("SET tally = :one, tally = :one", {":one": {"N": "1"}}),  # overlapping paths
]


def _updates_and_refusals(dynamodb: Any, pk: str) -> list[Any]:
    dynamodb.put_item(
        TableName="items",
        Item={
            "pk": {"S": pk},
            "labels": {"L": []},
            "notes": {"M": {}},
            "stale": {"S": "g"},
            "hues": {"SS": ["red", "blue"]},
        },
    )
    outcomes: list[Any] = []
    for expression, names, values in _UPDATES:
        extra = {"ExpressionAttributeNames": names} if names else {}
        outcomes.append(
            dynamodb.update_item(
                TableName="items",
                Key=_key(pk),
                UpdateExpression=expression,
                ExpressionAttributeValues=values,
                ReturnValues="ALL_NEW",
                **extra,
            )["Attributes"]
        )
    for expression, values in _REFUSED:
        with pytest.raises(ClientError) as refused:
            dynamodb.update_item(
                TableName="items", Key=_key(pk), UpdateExpression=expression, ExpressionAttributeValues=values
            )
        outcomes.append(refused.value.response["Error"])
    return outcomes


def _subclasses(cls: type) -> set[type]:
    found: set[type] = set(cls.__subclasses__())
    return found.union(*(_subclasses(sub) for sub in found))


def test_dynamodb_update_validation(patched: Apply, monkeypatch: pytest.MonkeyPatch) -> None:
    deep_copies: list[str] = []
    maps: list[str] = []
    deepcopy = validators.deepcopy  # type: ignore[attr-defined]

    def counting_deepcopy(value: Any, *args: Any) -> Any:
        deep_copies.append(type(value).__name__)
        return deepcopy(value, *args)

    def counting(processing_map: Any) -> Any:
        def counted(self: Any) -> Any:
            maps.append(type(self).__name__)
            return processing_map(self)

        return counted

    monkeypatch.setattr(validators, "deepcopy", counting_deepcopy)
    for walk in _subclasses(DepthFirstTraverser):
        if "_processing_map" in vars(walk):
            monkeypatch.setattr(walk, "_processing_map", counting(vars(walk)["_processing_map"]))
    with mock_aws():
        dynamodb = boto3.client("dynamodb", region_name=REGION)
        _table(dynamodb)
        # GIVEN moto as released THEN each UpdateItem deep-copies its tree, and its walks rebuild
        # their processing map at every node
        released = _updates_and_refusals(dynamodb, "a")
        assert deep_copies.count("UpdateExpression") == len(_UPDATES) + len(_REFUSED)
        maps_released = len(maps)
        assert maps_released > 40 * len(_UPDATES)

        # GIVEN the patch THEN the same items and the same refusals, with no deep copy of a tree
        # and each walk's map read for its node types once
        patched(dynamodb_update_validation)
        deep_copies.clear()
        maps.clear()
        assert _updates_and_refusals(dynamodb, "a") == released
        assert "UpdateExpression" not in deep_copies
        assert len(maps) < maps_released / 3  # what is left: one per node a walk processes


# --- SQS ---------------------------------------------------------------------------------------


def _function_zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("app.py", "def handler(event, context):\n    return None\n")
    return buffer.getvalue()


def test_sqs_no_lambda_invoke(patched: Apply) -> None:
    with mock_aws(config={"lambda": {"use_docker": False}}):
        # GIVEN a queue mapped to a function, as the template maps the run-request queue
        sqs = boto3.client("sqs", region_name=REGION)
        iam = boto3.client("iam", region_name=REGION)
        awslambda = boto3.client("lambda", region_name=REGION)
        role = iam.create_role(RoleName="fn", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
        awslambda.create_function(
            FunctionName="fn",
            Runtime="python3.11",
            Role=role,
            Handler="app.handler",
            Code={"ZipFile": _function_zip()},
        )
        url, arn = queue(sqs, "requests")
        awslambda.create_event_source_mapping(EventSourceArn=arn, FunctionName="fn", BatchSize=10)

        # WHEN a message is sent, with moto as released THEN moto's Lambda takes it inside the call
        sqs.send_message(QueueUrl=url, MessageBody="first")
        assert bodies(sqs, url) == []

        # GIVEN the patch THEN it waits on the queue for the poller, as on AWS
        patched(sqs_no_lambda_invoke)
        sqs.send_message(QueueUrl=url, MessageBody="second")
        assert bodies(sqs, url) == ["second"]


def test_sqs_send_attributes(patched: Apply, monkeypatch: pytest.MonkeyPatch) -> None:
    counted: list[str] = []
    count = Queue.approximate_number_of_messages

    def counting(self: Queue) -> int:
        counted.append(self.name)
        return int(count.fget(self))  # type: ignore[attr-defined]

    monkeypatch.setattr(Queue, "approximate_number_of_messages", property(counting))
    with mock_aws():
        sqs = boto3.client("sqs", region_name=REGION)
        url, _ = queue(sqs, "busy")
        # GIVEN moto as released THEN sending and receiving count the queue's messages
        counted.clear()
        sqs.send_message(QueueUrl=url, MessageBody="one")
        sqs.send_message_batch(QueueUrl=url, Entries=[{"Id": "a", "MessageBody": "two"}])
        assert len(counted) >= 2
        counted.clear()
        assert len(sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)["Messages"]) == 2
        assert counted

        # GIVEN the patch THEN they do not; GetQueueAttributes still counts, correctly
        patched(sqs_send_attributes)
        counted.clear()
        sqs.send_message(QueueUrl=url, MessageBody="three")
        sqs.send_message_batch(QueueUrl=url, Entries=[{"Id": "b", "MessageBody": "four"}])
        assert counted == []
        assert len(sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)["Messages"]) == 2
        assert counted == []
        attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
        assert attributes["ApproximateNumberOfMessagesNotVisible"] == "4"
        assert attributes["ApproximateNumberOfMessages"] == "0"
        assert counted == ["busy"]


# --- The server's dispatcher -------------------------------------------------------------------


def test_dispatch_services_cached(patched: Apply, monkeypatch: pytest.MonkeyPatch) -> None:
    listings: list[str] = []
    listdir = os.listdir

    def counting(path: Any) -> list[str]:
        listings.append(str(path))
        return listdir(path)

    monkeypatch.setattr(os, "listdir", counting)
    dispatcher = DomainDispatcherApplication(create_backend_app)
    # GIVEN moto as released THEN each request's backend look-up lists moto's package
    assert dispatcher.get_backend_for_host("sqs") == "sqs"
    assert dispatcher.get_backend_for_host("sqs") == "sqs"
    assert len(listings) == 2

    # GIVEN the patch THEN it is listed once, when the patch is applied
    patched(dispatch_services_cached)
    listings.clear()
    for _ in range(3):
        assert dispatcher.get_backend_for_host("dynamodb") == "dynamodb"
    assert listings == []


# --- All of them -------------------------------------------------------------------------------


def test_apply_all_applies_every_patch_once(patched: Apply) -> None:
    # GIVEN every patch applied, in order
    apply_all()
    replaced = list(_replace._replaced)
    send_to_targets = Rule.send_to_targets
    assert {entry.patch for entry in replaced} == {patch.__name__ for patch in PATCHES}

    # WHEN applied again THEN nothing changes
    apply_all()
    assert _replace._replaced == replaced
    assert Rule.send_to_targets is send_to_targets
