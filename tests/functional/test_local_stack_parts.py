"""The local stack's own logic, without a server: EventBridge input rendering, Lambda batch
semantics, parameter choice, schedules and redaction."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path

import pytest
from pydantic import ValidationError

from ecscp.local.cloudformation.functions import unqualified_function_arn
from ecscp.local.cloudformation.parameters import parameter_values
from ecscp.local.ecs.containers import exit_code_of
from ecscp.local.ecs.profiles import LARGE_CONTAINER_NAME, LARGE_TASK_FAMILY, QUEUE_PROFILES
from ecscp.local.ecs.setup import EcsSetup
from ecscp.local.lambda_runtime.redaction import redactor
from ecscp.local.lambda_runtime.schedules import Cron, UnsupportedSchedule, next_run, rate_seconds
from ecscp.local.lambda_runtime.sqs_source import failed_message_ids, sqs_record
from ecscp.local.lambda_runtime.worker import TIMEOUT_EXIT_CODE, load_handler
from ecscp.local.moto_patches.events_targets import render_input_transformer, render_target_input
from ecscp.local.spec import FunctionSpec, RuleSource, ScheduleSource, SqsSource
from ecscp.local.stack import parse_environment_lines
from tests.support.requests import SECRET_TOKEN, run_request

EVENT = {
    "version": "0",
    "id": "e1",
    "detail-type": "Airflow Task Start Failed",
    "source": "airflow.ecs-control-plane",
    "account": "123456789012",
    "time": 1795600800.0,
    "region": "us-east-1",
    "resources": [],
    "detail": {"dag_id": "d", "reason": 'bad "quote"\nnewline', "map_index": -1, "task_arn": None},
}

SETUP = EcsSetup(
    cluster_name="local",
    cluster_arn="arn:aws:ecs:us-east-1:123456789012:cluster/local",
    subnet_id="subnet-1",
    security_group_id="sg-1",
    task_definition="airflow",
    task_definition_arn="arn:aws:ecs:us-east-1:123456789012:task-definition/airflow:1",
    task_role_arn="arn:aws:iam::123456789012:role/task",
    execution_role_arn="arn:aws:iam::123456789012:role/execution",
)


def test_input_transformer_inserts_values_outside_quotes_as_json() -> None:
    # GIVEN a JSON template with placeholders outside and inside quotes
    template = '{"reason": <reason>, "map_index": <map_index>, "arn": <task_arn>, "text": "dag <dag_id>!"}'
    paths = {
        "reason": "$.detail.reason",
        "map_index": "$.detail.map_index",
        "task_arn": "$.detail.task_arn",
        "dag_id": "$.detail.dag_id",
    }

    # WHEN it is rendered as EventBridge does
    rendered = render_input_transformer(template, paths, EVENT)

    # THEN it is valid JSON with each value in its JSON form (moto pasted raw text instead)
    assert json.loads(rendered) == {
        "reason": 'bad "quote"\nnewline',
        "map_index": -1,
        "arn": None,
        "text": "dag d!",
    }


def test_target_without_transformer_gets_the_event_with_iso_time_and_account() -> None:
    # WHEN a target without input settings is rendered
    event = json.loads(render_target_input({"Id": "t", "Arn": "arn"}, EVENT))

    # THEN it is the event as AWS delivers it
    assert event["time"] == "2026-11-25T10:00:00Z"
    assert event["account"] == "123456789012"
    assert event["detail-type"] == "Airflow Task Start Failed"


def test_batch_failures_name_only_the_failed_records() -> None:
    # GIVEN two records, one reported as failed
    records = [{"messageId": "a"}, {"messageId": "b"}]

    # THEN only it is kept; an unknown or empty identifier fails the whole batch, as on AWS
    assert failed_message_ids({"batchItemFailures": [{"itemIdentifier": "b"}]}, records) == {"b"}
    assert failed_message_ids({"batchItemFailures": []}, records) == set()
    assert failed_message_ids(None, records) == set()
    assert failed_message_ids({"batchItemFailures": [{"itemIdentifier": "zz"}]}, records) is None
    assert failed_message_ids({"batchItemFailures": [{"itemIdentifier": ""}]}, records) is None


def test_sqs_message_becomes_a_lambda_record() -> None:
    # GIVEN a message as ReceiveMessage returns it
    message = {
        "MessageId": "m1",
        "ReceiptHandle": "r1",
        "Body": "{}",
        "MD5OfBody": "99914b932bd37a50b983c5e7c90ae93b",
        "Attributes": {"ApproximateReceiveCount": "2"},
        "MessageAttributes": {"kind": {"StringValue": "run", "DataType": "String"}},
    }

    # WHEN it is turned into an event record
    record = sqs_record(message, "arn:aws:sqs:us-east-1:123456789012:q", "us-east-1")

    # THEN it has Lambda's field names and shapes
    assert record["messageId"] == "m1"
    assert record["attributes"]["ApproximateReceiveCount"] == "2"
    assert record["messageAttributes"]["kind"] == {
        "stringValue": "run",
        "stringListValues": [],
        "binaryListValues": [],
        "dataType": "String",
    }
    assert record["eventSourceARN"] == "arn:aws:sqs:us-east-1:123456789012:q"
    assert record["eventSource"] == "aws:sqs"


def test_parameters_get_local_values_that_fit_their_constraints() -> None:
    # GIVEN a template whose Cluster wants a name and whose AssignPublicIp wants true/false
    template = {
        "Parameters": {
            "Cluster": {"Type": "String", "AllowedPattern": "^[a-zA-Z0-9_-]{1,255}$"},
            "ClusterArn": {"Type": "String"},
            "AssignPublicIp": {"Type": "String", "AllowedValues": ["true", "false"]},
            "LogLevel": {"Type": "String", "Default": "INFO"},
            "MaxRunTaskAttempts": {"Type": "Number", "Default": 3},
        }
    }

    # WHEN local values are chosen
    values = parameter_values(template, SETUP, {"MaxRunTaskAttempts": "2"}, {"LogLevel": "DEBUG"})

    # THEN each parameter gets the value it accepts, overrides win, defaults fill the rest
    assert values == {
        "Cluster": "local",
        "ClusterArn": SETUP.cluster_arn,
        "AssignPublicIp": "false",
        "LogLevel": "DEBUG",
        "MaxRunTaskAttempts": "2",
    }


def test_queue_profiles_get_the_local_profiles_only_with_the_setups_own_task_definitions() -> None:
    # GIVEN a template declaring the queue profile parameters
    declared = ("QueueProfiles", "QueueProfileTaskDefinitionFamilies", "QueueProfileRoleArns")
    template = {"Parameters": {name: {"Type": "String", "Default": ""} for name in declared}}
    with_large = replace(
        SETUP, profile_task_definition=LARGE_TASK_FAMILY, profile_container_name=LARGE_CONTAINER_NAME
    )

    # WHEN the setup created the large task definition THEN the two local profiles are deployed,
    # with its family listed and no role beyond the stack's own
    values = parameter_values(template, with_large, {}, {})
    assert json.loads(values["QueueProfiles"]) == QUEUE_PROFILES
    assert " " not in values["QueueProfiles"]
    assert values["QueueProfileTaskDefinitionFamilies"] == "airflow-large"
    assert values["QueueProfileRoleArns"] == ""
    # AND WHEN the stack creates its own task definition THEN no profile
    assert parameter_values(template, SETUP, {}, {}) == dict.fromkeys(declared, "")


def test_a_required_parameter_without_a_local_value_is_named() -> None:
    with pytest.raises(RuntimeError, match="Mystery"):
        parameter_values({"Parameters": {"Mystery": {"Type": "String"}}}, SETUP, {}, {})


@pytest.mark.parametrize(
    ("expression", "seconds"),
    [("rate(1 minute)", 60), ("rate(5 minutes)", 300), ("rate(2 hours)", 7200), ("cron(0 * * * ? *)", None)],
)
def test_rate_schedules_are_understood(expression: str, seconds: int | None) -> None:
    assert rate_seconds(expression) == seconds


@pytest.mark.parametrize(
    ("expression", "after", "expected"),
    [
        ("cron(0/15 * * * ? *)", "2026-11-25T10:07:30", "2026-11-25T10:15:00"),
        ("cron(0 12 * * ? *)", "2026-11-25T12:00:00", "2026-11-26T12:00:00"),
        ("cron(30 8 ? * MON-FRI *)", "2026-11-27T09:00:00", "2026-11-30T08:30:00"),  # Fri -> Mon
        ("cron(0 0 1 JAN ? *)", "2026-11-25T00:00:00", "2027-01-01T00:00:00"),
        ("cron(0 0 1 1 ? 2028)", "2026-11-25T00:00:00", "2028-01-01T00:00:00"),
        ("cron(0 12 ? * 1 *)", "2026-11-25T00:00:00", "2026-11-29T12:00:00"),  # 1 is Sunday
        ("cron(0 12 ? * 5-5 *)", "2026-11-25T13:00:00", "2026-11-26T12:00:00"),  # Thursdays only
        ("cron(0 12 L * ? *)", "2026-11-25T00:00:00", "2026-11-30T12:00:00"),  # last day of the month
        ("cron(0 12 15W * ? *)", "2026-11-01T00:00:00", "2026-11-16T12:00:00"),  # Sun 15th -> Mon
        ("cron(0 12 ? * 6L *)", "2026-11-01T00:00:00", "2026-11-27T12:00:00"),  # last Friday
        ("cron(0 12 ? * L *)", "2026-11-25T00:00:00", "2026-11-28T12:00:00"),  # last day of the week
        ("cron(0 12 ? * 6#3 *)", "2026-11-01T00:00:00", "2026-11-20T12:00:00"),  # third Friday
        ("rate(5 minutes)", "2026-11-25T10:00:00", "2026-11-25T10:05:00"),
    ],
)
def test_schedules_fire_when_eventbridge_would(expression: str, after: str, expected: str) -> None:
    def epoch(text: str) -> float:
        return datetime.fromisoformat(text).replace(tzinfo=timezone.utc).timestamp()

    assert next_run(expression, epoch(after)) == epoch(expected)


@pytest.mark.parametrize(
    "expression",
    [
        "cron(0 12 * *)",  # EventBridge has six fields
        "cron(0 12 * * * *)",  # EventBridge wants ? in day of month or day of week
        "cron(0 12 ? * ? *)",
        "cron(0 12 ? * 8 *)",  # days of the week are 1-7
        "cron(R 12 * * ? *)",  # croniter's random value, not EventBridge's
        "cron(0 12 LW * ? *)",  # not supported locally
        "cron(0 12 * * ? 2150)",  # croniter's years end at 2099
    ],
)
def test_cron_forms_the_local_stack_cannot_run_are_refused(expression: str) -> None:
    with pytest.raises(UnsupportedSchedule):
        Cron.parse(expression)


def test_function_arns_lose_their_qualifier() -> None:
    arn = "arn:aws:lambda:us-east-1:123456789012:function:f"
    assert unqualified_function_arn(f"{arn}:live") == arn
    assert unqualified_function_arn(arn) == arn


def test_signals_become_container_exit_codes() -> None:
    assert exit_code_of(-15) == 143
    assert exit_code_of(-9) == 137
    assert exit_code_of(3) == 3


def test_airflow_environment_output_is_parsed() -> None:
    text = "# settings\nexport A=1\nB=x=y\n\nnot a setting\n"
    assert parse_environment_lines(text) == {"A": "1", "B": "x=y"}


def test_handler_errors_are_reported_without_the_workload_token() -> None:
    # GIVEN an SQS event carrying a run request, whose command holds the token
    event = {"Records": [{"body": run_request().model_dump_json()}]}

    # WHEN an error message that quotes the body is redacted
    text = redactor(event)(f"ValidationError: input_value={event['Records'][0]['body']!r}")

    # THEN the token is gone
    assert SECRET_TOKEN not in text
    assert "<redacted command>" in text


def test_handlers_load_under_their_own_module_name(tmp_path: Path) -> None:
    # GIVEN two functions whose handler modules have the same name
    for name in ("one", "two"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "app.py").write_text(f"def handler(event, context):\n    return {name!r}\n")

    # WHEN both are loaded
    first = load_handler(tmp_path / "one", "app.handler", "ecscp_test_one_app")
    second = load_handler(tmp_path / "two", "app.handler", "ecscp_test_two_app")

    # THEN each is its own code
    assert (first(None, None), second(None, None)) == ("one", "two")


def test_an_invocation_that_runs_out_of_time_ends_its_worker_as_lambda_ends_the_runtime(
    tmp_path: Path,
) -> None:
    # GIVEN a function with a 1 s timeout whose handler takes longer
    (tmp_path / "app.py").write_text("import time\n\ndef handler(event, context):\n    time.sleep(30)\n")
    spec = FunctionSpec(
        logical_id="Slow",
        name="slow",
        arn="arn:aws:lambda:us-east-1:123456789012:function:slow",
        handler="app.handler",
        code_dir=tmp_path,
        layer_dirs=(),
        environment={},
        memory_mb=128,
        timeout_seconds=1,
    )
    script = (
        "import sys\n"
        "from ecscp.local.lambda_runtime.worker import Worker\n"
        "from ecscp.local.spec import FunctionSpec\n"
        "Worker(FunctionSpec.model_validate_json(sys.argv[1])).invoke({}, 'test')\n"
    )

    # WHEN it is invoked
    done = subprocess.run(
        [sys.executable, "-c", script, spec.model_dump_json()],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    # THEN the worker process ends with the timeout report, and the next invocation starts cold
    assert done.returncode == TIMEOUT_EXIT_CODE
    assert "Task timed out after 1.00 seconds" in done.stdout
    assert "Status: timeout" in done.stdout


def test_a_function_spec_reads_back_as_the_stack_wrote_it(tmp_path: Path) -> None:
    # GIVEN a worker's spec with every kind of event source, as the stack writes it
    spec = FunctionSpec(
        logical_id="Fn",
        name="fn",
        arn="arn:aws:lambda:us-east-1:123456789012:function:fn",
        handler="app.handler",
        code_dir=tmp_path / "code",
        layer_dirs=(tmp_path / "layer",),
        environment={"A": "1"},
        memory_mb=256,
        timeout_seconds=30,
        sqs_sources=(
            SqsSource(
                uuid="u",
                queue_arn="arn:q",
                queue_url="http://q",
                batch_size=5,
                report_batch_item_failures=True,
            ),
        ),
        rule_sources=(
            RuleSource(rule_name="r", rule_arn="arn:r", target_id="t", delivery_queue_url="http://d"),
        ),
        schedules=(
            ScheduleSource(
                rule_name="s",
                rule_arn="arn:s",
                target={"Id": "t", "Arn": "arn:fn"},
                expression="rate(1 minute)",
                delivery_queue_url="http://d",
            ),
        ),
        instance=1,
        ready_file=tmp_path / "fn.ready",
    )

    # WHEN the worker reads it back
    read = FunctionSpec.model_validate_json(spec.model_dump_json())

    # THEN it is the same spec, paths as paths; a field the worker does not know is refused
    assert read == spec
    assert isinstance(read.code_dir, Path)
    with pytest.raises(ValidationError, match="unknown"):
        FunctionSpec.model_validate_json(spec.model_dump_json()[:-1] + ', "unknown": 1}')
