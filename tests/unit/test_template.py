"""The SAM template wires what the code expects: names, settings, event shapes and rights.

The template is the one place where the contract meets AWS; these tests read it the way SAM and
CloudFormation do (samtranslator's YAML loader, its transform, cfn-lint) and check it against
the shared package's constants and the sample events, so the two cannot drift apart.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from cfnlint.api import ManualArgs, lint_file  # type: ignore[import-untyped]
from samtranslator.yaml_helper import yaml_parse

from ecs_control_plane.contract import (
    ACTIVE_INDEX,
    EVENT_SOURCE,
    FAILED_START_DETAIL_TYPE,
    OWNER_INDEX,
    RECONCILE_ATTRIBUTES,
    SYNC_ATTRIBUTES,
    TRY_INDEX,
    FailedStartDetail,
    TaskKey,
)
from ecs_control_plane.placements import AttemptPlacement
from ecs_control_plane.settings import ALL_ENV, ControlPlaneSettings
from ecs_control_plane.store import state_table_definition
from ecscp.local.cloudformation.rules import broken_rules
from ecscp.local.cloudformation.translate import translate
from tests.support.iam_policies import Deployment
from tests.support.queue_profiles import EXAMPLE_PARAMETERS, EXAMPLE_PROFILES
from tests.support.templates import packaged_for_s3

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "template.yaml"
EVENTS = ROOT / "events"
STACK_NAME = "airflow-ecs-control-plane"
ACCOUNT, REGION, PARTITION = "123456789012", "us-east-1", "aws"
#: Values for the parameters without a default, as a deployment would give them.
REQUIRED_PARAMETERS = {"Cluster": "airflow", "TaskDefinition": "airflow-task:3"}
CLUSTER_ARN_SUB = "arn:${AWS::Partition}:ecs:${AWS::Region}:${AWS::AccountId}:cluster/${Cluster}"

Template = dict[str, Any]


@pytest.fixture(scope="module")
def template() -> Template:
    parsed: Template = yaml_parse(TEMPLATE.read_text())
    return parsed


def resource(template: Template, logical_id: str, expected_type: str) -> dict[str, Any]:
    found = template["Resources"][logical_id]
    assert found["Type"] == expected_type
    props: dict[str, Any] = found.get("Properties", {})
    return props


def load_event(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((EVENTS / name).read_text())
    return loaded


# --- a tiny resolver for the intrinsics the Globals use, with a deployment's values ------------

PSEUDO = {
    "AWS::StackName": STACK_NAME,
    "AWS::Region": REGION,
    "AWS::AccountId": ACCOUNT,
    "AWS::Partition": PARTITION,
}


def parameter_values(template: Template) -> dict[str, str]:
    values = {name: str(p["Default"]) for name, p in template["Parameters"].items() if "Default" in p}
    return values | REQUIRED_PARAMETERS | PSEUDO


def resolve(value: Any, names: dict[str, str]) -> str:
    """Resolve ``!Ref`` and ``!Sub`` the way CloudFormation would; resources become their ids."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and "Ref" in value:
        return names.get(value["Ref"], f"<{value['Ref']}>")
    if isinstance(value, dict) and "Fn::Sub" in value:
        return re.sub(r"\$\{([^}]+)\}", lambda m: names.get(m.group(1), f"<{m.group(1)}>"), value["Fn::Sub"])
    if isinstance(value, dict) and "Fn::If" in value:
        # The defaults create no optional infrastructure (CreatesTaskDefinition...): the else value.
        return resolve(value["Fn::If"][2], names)
    raise AssertionError(f"unexpected intrinsic in an environment variable: {value!r}")


def function_environment(template: Template) -> dict[str, str]:
    variables = template["Globals"]["Function"]["Environment"]["Variables"]
    names = parameter_values(template)
    return {name: resolve(value, names) for name, value in variables.items()}


# --- queues -----------------------------------------------------------------------------------


def test_run_request_queue_redrives_poison_to_a_dlq(template: Template) -> None:
    # GIVEN the run-request queue and its dead-letter queue (their encryption and policies:
    # test_policies.py)
    queue = resource(template, "RunRequestQueue", "AWS::SQS::Queue")
    dlq = resource(template, "RunRequestDLQ", "AWS::SQS::Queue")

    # THEN a message received ten times moves to the DLQ, kept 14 days
    assert queue["RedrivePolicy"] == {
        "deadLetterTargetArn": {"Fn::GetAtt": ["RunRequestDLQ", "Arn"]},
        "maxReceiveCount": 10,
    }
    assert dlq["MessageRetentionPeriod"] == 14 * 24 * 3600


def test_queue_visibility_timeout_covers_six_function_timeouts(template: Template) -> None:
    # GIVEN the function timeout every function inherits
    timeout = template["Globals"]["Function"]["Timeout"]

    # THEN a batch in flight never reappears while a function still works on it (AWS advice: 6x)
    assert resource(template, "RunRequestQueue", "AWS::SQS::Queue")["VisibilityTimeout"] >= 6 * timeout


# --- state table ------------------------------------------------------------------------------


def test_state_table_has_the_contract_key_owner_index_ttl_backups_and_encryption(template: Template) -> None:
    # GIVEN the state table
    table = resource(template, "StateTable", "AWS::DynamoDB::Table")

    # THEN it is keyed by the task key, with the executor's change-feed index on (owner, updated_at)
    assert table["BillingMode"] == "PAY_PER_REQUEST"
    assert table["KeySchema"] == [{"AttributeName": "key", "KeyType": "HASH"}]
    types = {a["AttributeName"]: a["AttributeType"] for a in table["AttributeDefinitions"]}
    assert types == {
        "key": "S",
        "owner": "S",
        "updated_at": "N",
        "active_shard": "S",
        "try_key": "S",
        "created_at": "N",
    }
    indexes = {index["IndexName"]: index for index in table["GlobalSecondaryIndexes"]}
    assert set(indexes) == {OWNER_INDEX, ACTIVE_INDEX, TRY_INDEX}
    # AND adoption's index of every submission of a try (keys only: it only names them)
    assert indexes.pop(TRY_INDEX) == {
        "IndexName": TRY_INDEX,
        "KeySchema": [
            {"AttributeName": "try_key", "KeyType": "HASH"},
            {"AttributeName": "created_at", "KeyType": "RANGE"},
        ],
        "Projection": {"ProjectionType": "KEYS_ONLY"},
    }
    assert indexes[OWNER_INDEX]["KeySchema"] == [
        {"AttributeName": "owner", "KeyType": "HASH"},
        {"AttributeName": "updated_at", "KeyType": "RANGE"},
    ]
    # AND the reconciler's sparse index of items in flight, sharded, oldest change first
    assert indexes[ACTIVE_INDEX]["KeySchema"] == [
        {"AttributeName": "active_shard", "KeyType": "HASH"},
        {"AttributeName": "updated_at", "KeyType": "RANGE"},
    ]
    # AND each projects what its readers read and no executor_config (a write costs its size in each)
    assert indexes[OWNER_INDEX]["Projection"]["ProjectionType"] == "INCLUDE"
    assert set(indexes[OWNER_INDEX]["Projection"]["NonKeyAttributes"]) == set(SYNC_ATTRIBUTES) - {
        "key",
        "owner",
        "updated_at",
    }
    assert indexes[ACTIVE_INDEX]["Projection"]["ProjectionType"] == "INCLUDE"
    assert set(indexes[ACTIVE_INDEX]["Projection"]["NonKeyAttributes"]) == set(RECONCILE_ATTRIBUTES) - {
        "key",
        "updated_at",
    }
    assert all(
        "executor_config" not in index["Projection"].get("NonKeyAttributes", []) for index in indexes.values()
    )
    # AND old items expire, the table can be restored, and it is encrypted at rest
    assert table["TimeToLiveSpecification"] == {"AttributeName": "expires_at", "Enabled": True}
    assert table["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
    assert table["SSESpecification"] == {"SSEEnabled": True}


def test_state_table_definition_used_outside_cloudformation_matches_the_template(template: Template) -> None:
    # GIVEN the table the template declares, and the one tests, benchmarks and tools create
    table = resource(template, "StateTable", "AWS::DynamoDB::Table")
    definition = state_table_definition("any")

    # THEN keys, attribute types and indexes are the same
    def by_name(items: list[dict[str, Any]], field: str) -> dict[str, Any]:
        return {item[field]: item for item in items}

    assert definition["KeySchema"] == table["KeySchema"]
    assert by_name(definition["AttributeDefinitions"], "AttributeName") == by_name(
        table["AttributeDefinitions"], "AttributeName"
    )
    assert by_name(definition["GlobalSecondaryIndexes"], "IndexName") == by_name(
        table["GlobalSecondaryIndexes"], "IndexName"
    )


# --- code -------------------------------------------------------------------------------------


def test_shared_layer_is_built_from_the_package_directory_for_python311(template: Template) -> None:
    # GIVEN the layer that ships ecs_control_plane to the functions
    layer = template["Resources"]["SharedLayer"]

    # THEN sam build installs its requirements next to the package, for the functions' runtime
    assert layer["Type"] == "AWS::Serverless::LayerVersion"
    assert layer["Properties"]["ContentUri"] == "layers/control_plane/"
    assert layer["Properties"]["CompatibleRuntimes"] == ["python3.11"]
    assert layer["Metadata"]["BuildMethod"] == "python3.11"
    assert (ROOT / "layers/control_plane/requirements.txt").is_file()
    assert (ROOT / "layers/control_plane/ecs_control_plane/__init__.py").is_file()
    # AND every function runs on that runtime with the layer
    globals_ = template["Globals"]["Function"]
    assert globals_["Runtime"] == "python3.11"
    assert globals_["Layers"] == [{"Ref": "SharedLayer"}]
    assert globals_["Tracing"] == "Active"


@pytest.mark.parametrize(
    ("logical_id", "code_dir"),
    [
        ("RunTaskFunction", "run_task"),
        ("TaskStateFunction", "task_state"),
        ("ReconcilerFunction", "reconciler"),
    ],
)
def test_functions_point_at_their_handler_modules(template: Template, logical_id: str, code_dir: str) -> None:
    # GIVEN a function
    function = resource(template, logical_id, "AWS::Serverless::Function")

    # THEN its handler is app.lambda_handler in its own folder, and that file exists
    assert function["CodeUri"] == f"functions/{code_dir}/"
    assert function["Handler"] == "app.lambda_handler"
    assert "def lambda_handler" in (ROOT / "functions" / code_dir / "app.py").read_text()


def test_run_task_function_consumes_the_queue_with_partial_batch_failures_and_bounded_concurrency(
    template: Template,
) -> None:
    # GIVEN the run_task function's event source
    events = resource(template, "RunTaskFunction", "AWS::Serverless::Function")["Events"]
    (source,) = events.values()

    # THEN one bad record fails alone, and concurrency (hence the RunTask rate) has a ceiling
    assert source["Type"] == "SQS"
    props = source["Properties"]
    assert props["Queue"] == {"Fn::GetAtt": ["RunRequestQueue", "Arn"]}
    assert props["BatchSize"] == {"Ref": "RunTaskBatchSize"}
    assert props["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert props["ScalingConfig"] == {"MaximumConcurrency": {"Ref": "RunTaskMaxConcurrency"}}
    assert template["Parameters"]["RunTaskMaxConcurrency"]["MinValue"] == 2


def test_task_state_function_receives_only_this_stacks_tasks_in_the_cluster(template: Template) -> None:
    # GIVEN the task_state function's EventBridge rule
    function = resource(template, "TaskStateFunction", "AWS::Serverless::Function")
    source = function["Events"]["EcsTaskStateChange"]
    pattern = source["Properties"]["Pattern"]

    # THEN it matches ECS task state changes of the cluster started by this control plane
    assert source["Type"] == "EventBridgeRule"
    assert pattern["source"] == ["aws.ecs"]
    assert pattern["detail-type"] == ["ECS Task State Change"]
    assert pattern["detail"]["clusterArn"] == [{"Fn::Sub": CLUSTER_ARN_SUB}]
    names = parameter_values(template)
    (started_by,) = pattern["detail"]["startedBy"]
    assert resolve(started_by, names) == function_environment(template)["ECSCP_CONTROL_PLANE_ID"]


@pytest.mark.parametrize(
    "sample",
    [
        "ecs_task_provisioning.json",
        "ecs_task_running.json",
        "ecs_task_stopped_exit0.json",
        "ecs_task_failed_to_start.json",
    ],
)
def test_sample_ecs_events_match_the_task_state_rule(template: Template, sample: str) -> None:
    # GIVEN the rule pattern resolved for a stack named like the samples' control plane
    names = parameter_values(template)
    pattern = template["Resources"]["TaskStateFunction"]["Properties"]["Events"]["EcsTaskStateChange"]
    detail_pattern = pattern["Properties"]["Pattern"]["detail"]

    # WHEN a sample ECS event is compared with it
    event = load_event(sample)

    # THEN every field the pattern names has one of the allowed values
    assert event["source"] == "aws.ecs"
    assert event["detail-type"] == "ECS Task State Change"
    assert event["detail"]["clusterArn"] == resolve(detail_pattern["clusterArn"][0], names)
    assert event["detail"]["startedBy"] == resolve(detail_pattern["startedBy"][0], names)


def test_task_state_events_that_keep_failing_are_kept_in_an_alarmed_dlq(template: Template) -> None:
    # GIVEN the task_state function and its rule
    function = resource(template, "TaskStateFunction", "AWS::Serverless::Function")
    rule = function["Events"]["EcsTaskStateChange"]["Properties"]

    # THEN failed invocations and undeliverable events both land in the same encrypted queue
    dlq_arn = {"Fn::GetAtt": ["TaskEventDLQ", "Arn"]}
    assert function["DeadLetterQueue"] == {"Type": "SQS", "TargetArn": dlq_arn}
    assert rule["DeadLetterConfig"] == {"Arn": dlq_arn}
    assert resource(template, "TaskEventDLQ", "AWS::SQS::Queue")["SqsManagedSseEnabled"] is True
    # AND EventBridge may write to it only on behalf of that rule
    policy = resource(template, "TaskEventDLQPolicy", "AWS::SQS::QueuePolicy")["PolicyDocument"]
    (grant,) = [s for s in policy["Statement"] if s.get("Effect") == "Allow"]
    assert grant["Principal"] == {"Service": "events.amazonaws.com"}
    assert grant["Condition"]["ArnEquals"]["aws:SourceArn"] == {
        "Fn::GetAtt": ["TaskStateFunctionEcsTaskStateChange", "Arn"]
    }


# --- alerts -----------------------------------------------------------------------------------


def render_input_template(template_text: str, paths: dict[str, str], event: dict[str, Any]) -> str:
    """What EventBridge sends: placeholders outside quotes get the JSON value, inside quotes the raw text.

    Raw text inside quotes is the pessimistic reading of the EventBridge documentation: a value with
    a double quote there would break the JSON, so only identifiers belong inside quotes.
    """

    def lookup(name: str) -> Any:
        node: Any = event
        for part in paths[name].removeprefix("$.").split("."):
            node = node[part]
        return node

    def in_string(match: re.Match[str]) -> str:
        return re.sub(r"<([a-z_]+)>", lambda m: str(lookup(m.group(1))), match.group(0))

    parts = re.split(r'("(?:[^"\\]|\\.)*")', template_text)
    return "".join(
        re.sub(r'^"(?:[^"\\]|\\.)*"$', in_string, part)
        if i % 2
        else re.sub(r"<([a-z_]+)>", lambda m: json.dumps(lookup(m.group(1))), part)
        for i, part in enumerate(parts)
    )


def test_failed_start_rule_turns_the_contract_event_into_a_readable_alert(template: Template) -> None:
    # GIVEN the failed-start rule and the event the control plane puts
    rule = resource(template, "FailedStartRule", "AWS::Events::Rule")
    event = load_event("failed_start_event.json")
    (target,) = rule["Targets"]
    transformer = target["InputTransformer"]

    # THEN the rule matches exactly this stack's failed-start events
    assert rule["EventPattern"]["source"] == [EVENT_SOURCE]
    assert rule["EventPattern"]["detail-type"] == [FAILED_START_DETAIL_TYPE]
    (control_plane,) = rule["EventPattern"]["detail"]["control_plane"]
    assert resolve(control_plane, parameter_values(template)) == event["detail"]["control_plane"]
    assert target["Arn"] == {"Ref": "AlertTopic"}
    # AND it only reads fields the contract's event has
    detail_paths = {
        p.removeprefix("$.detail.") for p in transformer["InputPathsMap"].values() if "detail" in p
    }
    assert detail_paths <= set(FailedStartDetail.model_fields)

    # WHEN EventBridge fills the template with the sample event
    message = json.loads(
        render_input_template(transformer["InputTemplate"], transformer["InputPathsMap"], event)
    )

    # THEN a reader sees the DAG, task, run, try, attempt and the reason, intact
    detail = event["detail"]
    assert message["alert"] == (
        f"Airflow task {detail['dag_id']}.{detail['task_id']} (map index {detail['map_index']}) of run "
        f"{detail['run_id']}, try {detail['try_number']}, failed to start on ECS after start attempt "
        f"{detail['attempt']}."
    )
    # AND the sample event is exactly what the control plane puts for that failure
    built = FailedStartDetail.build(
        key=detail["key"],
        owner=detail["owner"],
        attempt=detail["attempt"],
        reason=detail["reason"],
        cluster=detail["cluster"],
        control_plane=detail["control_plane"],
        task_arn=detail["task_arn"],
        profile=detail["profile"],
        placements=[AttemptPlacement.model_validate(p) for p in detail["placements"]],
    )
    assert built.model_dump(mode="json") == detail
    assert message["reason"] == detail["reason"]
    assert message["task_key"] == detail["key"]
    assert message["start_attempt"] == detail["attempt"]


def test_failed_start_alert_survives_a_reason_with_quotes_and_newlines(template: Template) -> None:
    # GIVEN a failed-start event whose reason has characters that break naive JSON templates
    transformer = template["Resources"]["FailedStartRule"]["Properties"]["Targets"][0]["InputTransformer"]
    event = load_event("failed_start_event.json")
    event["detail"]["reason"] = 'ClientException: "taskDefinition" not found\nsecond line'

    # WHEN EventBridge fills the template
    message = json.loads(
        render_input_template(transformer["InputTemplate"], transformer["InputPathsMap"], event)
    )

    # THEN the alert is still valid JSON carrying the reason unchanged
    assert message["reason"] == event["detail"]["reason"]


def test_names_from_the_task_key_cannot_break_out_of_the_alert(template: Template) -> None:
    # GIVEN a failed start of a run whose id holds quotes, braces and a JSON fragment
    transformer = template["Resources"]["FailedStartRule"]["Properties"]["Targets"][0]["InputTransformer"]
    run_id = 'x", "reason": "all good", "owner": "admin'
    key = TaskKey(dag_id="etl", task_id="load", run_id=run_id, submission="s1").encode()
    detail = FailedStartDetail.build(
        key=key, owner="sched\n\u202eevil", attempt=1, reason="no\nluck", cluster="c", control_plane="p"
    )
    event = load_event("failed_start_event.json") | {"detail": detail.model_dump(mode="json")}

    # WHEN EventBridge fills the template
    message = json.loads(
        render_input_template(transformer["InputTemplate"], transformer["InputPathsMap"], event)
    )

    # THEN the run id stays inside the one-line summary, and no field was added or replaced
    assert run_id in message["alert"]
    assert "\n" not in message["alert"]
    assert message["reason"] == "no?luck"
    assert message["owner"] == "sched??evil"
    assert set(message) == set(
        json.loads(
            render_input_template(
                transformer["InputTemplate"],
                transformer["InputPathsMap"],
                load_event("failed_start_event.json"),
            )
        )
    )


def test_alert_topic_uses_a_key_eventbridge_and_cloudwatch_may_use(template: Template) -> None:
    # GIVEN the alert topic and its key
    topic = resource(template, "AlertTopic", "AWS::SNS::Topic")
    key = resource(template, "AlertTopicKey", "AWS::KMS::Key")

    # THEN it is encrypted with a customer managed key (the AWS managed one refuses both publishers)
    assert topic["KmsMasterKeyId"] == {"Ref": "AlertTopicKey"}
    assert key["EnableKeyRotation"] is True
    services = {
        service
        for s in key["KeyPolicy"]["Statement"]
        for service in (
            [s["Principal"].get("Service")]
            if isinstance(s["Principal"].get("Service"), str)
            else s["Principal"].get("Service", [])
        )
    }
    assert services == {"events.amazonaws.com", "cloudwatch.amazonaws.com"}
    # AND the topic policy lets the failed-start rule publish
    policy = resource(template, "AlertTopicPolicy", "AWS::SNS::TopicPolicy")["PolicyDocument"]
    rule_grant = next(s for s in policy["Statement"] if s["Principal"] == {"Service": "events.amazonaws.com"})
    assert rule_grant["Action"] == "sns:Publish"
    assert rule_grant["Condition"]["ArnEquals"]["aws:SourceArn"] == {"Fn::GetAtt": ["FailedStartRule", "Arn"]}


def test_alert_email_subscription_exists_only_when_an_address_is_given(template: Template) -> None:
    # GIVEN the optional subscription
    subscription = template["Resources"]["AlertEmailSubscription"]

    # THEN it depends on the AlertEmail parameter being set
    assert subscription["Condition"] == "HasAlertEmail"
    assert template["Conditions"]["HasAlertEmail"] == {
        "Fn::Not": [{"Fn::Equals": [{"Ref": "AlertEmail"}, ""]}]
    }
    assert template["Parameters"]["AlertEmail"]["Default"] == ""


@pytest.mark.parametrize(
    ("alarm", "queue"), [("RunRequestDLQAlarm", "RunRequestDLQ"), ("TaskEventDLQAlarm", "TaskEventDLQ")]
)
def test_a_message_in_a_dead_letter_queue_alerts(template: Template, alarm: str, queue: str) -> None:
    # GIVEN a DLQ alarm
    props = resource(template, alarm, "AWS::CloudWatch::Alarm")

    # THEN one visible message in its queue notifies the alert topic
    assert props["Namespace"] == "AWS/SQS"
    assert props["MetricName"] == "ApproximateNumberOfMessagesVisible"
    assert props["Dimensions"] == [{"Name": "QueueName", "Value": {"Fn::GetAtt": [queue, "QueueName"]}}]
    assert props["Threshold"] == 0
    assert props["ComparisonOperator"] == "GreaterThanThreshold"
    assert props["AlarmActions"] == [{"Ref": "AlertTopic"}]


# --- settings ---------------------------------------------------------------------------------


def test_every_setting_the_functions_read_is_set_for_every_function(template: Template) -> None:
    # GIVEN the variables in the functions' Globals
    variables = template["Globals"]["Function"]["Environment"]["Variables"]

    # THEN each ECSCP_* variable the settings read is set, and nothing unknown is
    expected = set(ALL_ENV.values())
    assert expected <= set(variables)
    assert {name for name in variables if name.startswith("ECSCP_")} == expected
    assert variables["POWERTOOLS_LOG_LEVEL"] == {"Ref": "LogLevel"}


def test_template_defaults_give_valid_settings_equal_to_the_code_defaults(template: Template) -> None:
    # GIVEN the environment a deployment with default parameters gives the functions
    environment = function_environment(template)

    # WHEN the functions read their settings from it
    settings = ControlPlaneSettings.from_env(environment)

    # THEN they validate, name this stack's resources, and agree with the code's own defaults
    assert settings.cluster == "airflow"
    assert settings.control_plane_id == f"ecscp-{STACK_NAME}"
    assert settings.state_table == "<StateTable>"
    assert settings.queue_url == "<RunRequestQueue>"
    assert settings.event_bus == "default"
    assert settings.container_name == "airflow"
    assert settings.run_task_kwargs == {}
    defaults = ControlPlaneSettings.model_fields
    for field in (
        "launch_type",
        "platform_version",
        "assign_public_ip",
        "max_run_task_attempts",
        "start_retry_base_seconds",
        "start_retry_max_seconds",
        "item_retention_days",
        "capacity_provider_strategy",
        "security_groups",
        "subnets",
        "reconcile_stale_seconds",
        "queued_timeout_seconds",
    ):
        default = defaults[field].get_default(call_default_factory=True)
        assert getattr(settings, field) == default, field


# --- queue profiles ---------------------------------------------------------------------------

QUEUE_PROFILE_ENV = {
    "ECSCP_QUEUE_PROFILES": "QueueProfiles",
    "ECSCP_QUEUE_PROFILE_TASK_DEFINITION_FAMILIES": "QueueProfileTaskDefinitionFamilies",
    "ECSCP_QUEUE_PROFILE_ROLE_ARNS": "QueueProfileRoleArns",
}


def test_queue_profile_parameters_reach_every_function(
    template: Template, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN the template as SAM translates it, and a deployment with the example profiles
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    translated = translate(packaged_for_s3(template), dict(REQUIRED_PARAMETERS))
    functions = {
        lid: r["Properties"]
        for lid, r in translated["Resources"].items()
        if r["Type"] == "AWS::Lambda::Function"
    }
    environment = Deployment(template, **EXAMPLE_PARAMETERS).resolve(
        template["Globals"]["Function"]["Environment"]["Variables"]
    )

    # THEN each of the three functions gets each parameter as its variable, unchanged
    assert set(functions) == {"RunTaskFunction", "TaskStateFunction", "ReconcilerFunction"}
    for lid, props in functions.items():
        variables = props["Environment"]["Variables"]
        for variable, parameter in QUEUE_PROFILE_ENV.items():
            assert variables[variable] == {"Ref": parameter}, (lid, variable)
    assert {variable: environment[variable] for variable in QUEUE_PROFILE_ENV} == {
        variable: EXAMPLE_PARAMETERS[parameter] for variable, parameter in QUEUE_PROFILE_ENV.items()
    }
    # AND by default all three are empty: no profile, today's behaviour
    defaults = function_environment(template)
    assert {variable: defaults[variable] for variable in QUEUE_PROFILE_ENV} == dict.fromkeys(
        QUEUE_PROFILE_ENV, ""
    )


def test_queue_profiles_must_be_a_json_object_or_empty(template: Template) -> None:
    # GIVEN the parameter's pattern (the functions parse and check the JSON itself at cold start)
    pattern = template["Parameters"]["QueueProfiles"]["AllowedPattern"]

    # THEN CloudFormation lets an object through, compact or not, and nothing that is not one
    for value in ("", "{}", EXAMPLE_PARAMETERS["QueueProfiles"], json.dumps(EXAMPLE_PROFILES, indent=2)):
        assert re.fullmatch(pattern, value), value
    for value in ("[]", "default", '"large"', '{"a":{}} x', ' {"a":{}}', "null"):
        assert not re.fullmatch(pattern, value), value


def test_the_example_profiles_fit_in_the_functions_environment(template: Template) -> None:
    # GIVEN the functions' environment of a deployment with the example's three profiles, compact
    environment = Deployment(template, **EXAMPLE_PARAMETERS).resolve(
        template["Globals"]["Function"]["Environment"]["Variables"]
    )

    # THEN it stays well inside Lambda's 4 KB for all variables together (names and values),
    # leaving room for longer resource names than the rendered ones
    size = sum(len(name) + len(str(value)) for name, value in environment.items())
    assert size < 3 * 1024, size


@pytest.mark.parametrize(
    "parameters",
    [
        {"QueueProfileTaskDefinitionFamilies": "airflow-large"},
        {"QueueProfileRoleArns": EXAMPLE_PARAMETERS["QueueProfileRoleArns"]},
        {key: value for key, value in EXAMPLE_PARAMETERS.items() if key != "QueueProfiles"},
    ],
    ids=["families", "roles", "both"],
)
def test_the_deploy_refuses_queue_profile_lists_without_profiles(
    template: Template, parameters: dict[str, str]
) -> None:
    # GIVEN families or roles to grant for queue profiles, but no profiles
    values = parameter_values(template) | parameters

    # THEN the deploy is refused: the lists mean nothing without profiles
    (broken,) = broken_rules(template, values)
    assert broken.startswith("QueueProfileListsNeedQueueProfiles: ")
    assert "mean nothing without profiles" in broken
    # AND with the profiles they pass
    assert broken_rules(template, values | {"QueueProfiles": EXAMPLE_PARAMETERS["QueueProfiles"]}) == []


def test_queue_profiles_alone_or_with_their_lists_break_no_rule(template: Template) -> None:
    values = parameter_values(template)
    assert broken_rules(template, values | {"QueueProfiles": EXAMPLE_PARAMETERS["QueueProfiles"]}) == []
    assert broken_rules(template, values | EXAMPLE_PARAMETERS) == []


# --- rights -----------------------------------------------------------------------------------


def test_reconciler_runs_on_a_schedule_and_a_failed_run_waits_for_the_next(template: Template) -> None:
    # GIVEN the reconciler function (its rights: test_policies.py)
    function = resource(template, "ReconcilerFunction", "AWS::Serverless::Function")
    (schedule,) = function["Events"].values()

    # THEN it runs on the configured schedule, and a failed run waits for the next one
    assert schedule["Type"] == "Schedule"
    assert schedule["Properties"]["Schedule"] == {"Ref": "ReconcileSchedule"}
    assert function["EventInvokeConfig"]["MaximumRetryAttempts"] == 0


# --- outputs ----------------------------------------------------------------------------------


def test_outputs_tell_the_operator_what_to_configure(template: Template) -> None:
    # GIVEN the stack outputs
    outputs = template["Outputs"]

    # THEN they name the queue, table, topic, DLQ, control plane id and the scheduler's policy
    assert {
        "RunRequestQueueUrl",
        "RunRequestQueueArn",
        "StateTableName",
        "StateTableArn",
        "AlertTopicArn",
        "ControlPlaneId",
        "DeadLetterQueueUrl",
        "SchedulerPolicyArn",
        "AirflowEnvironment",
    } <= set(outputs)
    assert outputs["SchedulerPolicyArn"]["Value"] == {"Ref": "SchedulerPolicy"}


@pytest.mark.parametrize("log_group", ["", "/ecs/airflow"], ids=["default", "task-log-group"])
def test_airflow_environment_output_is_ready_to_paste(template: Template, log_group: str) -> None:
    # GIVEN the AirflowEnvironment output of a deployed stack, with or without TaskLogGroupName
    deployment = Deployment(template, TaskLogGroupName=log_group)

    # WHEN it is resolved as CloudFormation would
    lines = deployment.resolve(template["Outputs"]["AirflowEnvironment"]["Value"]).splitlines()

    # THEN it is exactly the executor's settings, one NAME=value per line; the task log group
    # turns on read_task_logs (its read right is in SchedulerPolicy: test_policies.py)
    queue = f"https://sqs.{REGION}.amazonaws.com/{ACCOUNT}/RunRequestQueue"
    assert lines == [
        "AIRFLOW__CORE__EXECUTOR=executor_client.EcsControlPlaneExecutor",
        f"AIRFLOW__ECS_CONTROL_PLANE__QUEUE_URL={queue}",
        "AIRFLOW__ECS_CONTROL_PLANE__STATE_TABLE=StateTable",
        f"AIRFLOW__ECS_CONTROL_PLANE__REGION_NAME={REGION}",
        *(["AIRFLOW__ECS_CONTROL_PLANE__READ_TASK_LOGS=True"] if log_group else []),
    ]


# --- the whole template, as SAM and cfn-lint see it -------------------------------------------


def test_template_translates_to_cloudformation(template: Template, monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN the template with its code locations packaged (the translator wants S3 URIs)
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    # WHEN SAM transforms it
    translated = translate(packaged_for_s3(template), dict(REQUIRED_PARAMETERS))

    # THEN plain CloudFormation comes out, with the event wiring the handlers rely on
    resources = translated["Resources"]
    assert "Transform" not in translated
    assert all(not r["Type"].startswith("AWS::Serverless::") for r in resources.values())
    mapping = next(
        r["Properties"] for r in resources.values() if r["Type"] == "AWS::Lambda::EventSourceMapping"
    )
    assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert mapping["ScalingConfig"] == {"MaximumConcurrency": {"Ref": "RunTaskMaxConcurrency"}}
    # AND the rule the DLQ policy names is the one SAM generated for task_state
    rule = resources["TaskStateFunctionEcsTaskStateChange"]
    assert rule["Type"] == "AWS::Events::Rule"
    assert rule["Properties"]["Targets"][0]["DeadLetterConfig"] == {
        "Arn": {"Fn::GetAtt": ["TaskEventDLQ", "Arn"]}
    }
    # AND each function runs with the role the template writes for it (its rights: test_policies.py)
    assert resources["RunTaskFunction"]["Properties"]["Role"] == {"Fn::GetAtt": ["RunTaskRole", "Arn"]}
    assert "RunTaskFunctionRole" not in resources


def test_cfn_lint_finds_nothing(template: Template) -> None:
    # WHEN cfn-lint checks the template (it applies the SAM transform itself)
    matches = lint_file(TEMPLATE, config=ManualArgs(regions=[REGION], include_checks=["I"]))

    # THEN there is no error, warning or informational finding
    assert [f"{m.rule.id} {m.message} (line {m.linenumber})" for m in matches] == []


@pytest.mark.parametrize(
    ("parameters", "rule"),
    [
        ({"SecurityGroups": "sg-1"}, "NetworkNeedsSubnets"),
        ({"AssignPublicIp": "true"}, "NetworkNeedsSubnets"),
        (
            {"LaunchType": "FARGATE", "CapacityProviderStrategy": '[{"capacityProvider":"FARGATE_SPOT"}]'},
            "OnePlacement",
        ),
    ],
    ids=["security-groups-without-subnets", "public-ip-without-subnets", "launch-type-and-strategy"],
)
def test_the_deploy_refuses_what_the_provider_refuses_at_start(
    template: Template, parameters: dict[str, str], rule: str
) -> None:
    # GIVEN parameters the provider's executor would refuse at start (ECS would refuse every task)
    values = parameter_values(template) | parameters
    # THEN one of the template's Rules refuses the deploy, saying what to change
    assert [b.split(":", 1)[0] for b in broken_rules(template, values)] == [rule]
    # AND the same parameters, completed, pass
    fixed = values | {
        "Subnets": "subnet-1",
        "LaunchType": "" if "CapacityProviderStrategy" in parameters else values["LaunchType"],
    }
    assert broken_rules(template, fixed) == []


def test_the_default_parameters_break_no_rule(template: Template) -> None:
    assert broken_rules(template, parameter_values(template)) == []
