"""``ecscp doctor``: each check's verdict and fix, from the facts gathered."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import pytest
from rich.console import Console

from ecs_control_plane.readiness import Problem, ReadinessReport
from ecscp.operations.doctor import DoctorFacts, Verdict, diagnose, failed, render, schedule_interval_ms
from ecscp.operations.stack import REQUIRED_OUTPUTS, TASK_STATE_RULE


def healthy(**changes: Any) -> DoctorFacts:
    facts = DoctorFacts(
        stack_name="prod",
        stack_status="UPDATE_COMPLETE",
        region="eu-west-1",
        outputs={name: f"value-of-{name}" for name in REQUIRED_OUTPUTS},
        rules={
            "TaskStateFunctionEcsTaskStateChange": ("prod-TaskState-1", "ENABLED"),
            "FailedStartRule": ("prod-FailedStart-1", "ENABLED"),
            "ReconcilerFunctionSchedule": ("prod-Schedule-1", "ENABLED"),
        },
        mapping_uuid="1234-uuid",
        mapping_state="Enabled",
        function_env={
            "ECSCP_CLUSTER": "prod",
            "ECSCP_TASK_DEFINITION": "airflow",
            "ECSCP_CONTAINER_NAME": "base",
            "ECSCP_STATE_TABLE": "prod-state",
            "ECSCP_QUEUE_URL": "https://sqs.eu-west-1.amazonaws.com/1/prod-run-requests",
            "ECSCP_CONTROL_PLANE_ID": "ecscp-prod",
        },
        reconciler_name="prod-Reconciler-1",
        cluster={"clusterName": "prod", "status": "ACTIVE"},
        task_definition={
            "taskDefinitionArn": "arn:aws:ecs:eu-west-1:1:task-definition/airflow:7",
            "status": "ACTIVE",
            "containerDefinitions": [{"name": "base"}],
        },
        readiness=ReadinessReport(control_plane="ecscp-prod"),
        dlq_depths={"DeadLetterQueueUrl": 0, "TaskEventDeadLetterQueueUrl": 0},
        alarms=[("RunRequestDLQAlarm", "OK", "")],
        policy_entities=["airflow-scheduler"],
    )
    return replace(facts, **changes)


def verdicts(facts: DoctorFacts) -> dict[str, tuple[Verdict, str, str]]:
    return {c.name: (c.verdict, c.detail, c.fix) for c in diagnose(facts)}


def test_a_healthy_stack_passes_every_check() -> None:
    checks = diagnose(healthy())
    assert {c.verdict for c in checks} == {Verdict.OK}
    assert not failed(checks)


def test_a_setting_the_functions_refuse_fails_naming_the_profile_and_parameter() -> None:
    env = dict(healthy().function_env or {})
    env["ECSCP_QUEUE_PROFILES"] = '{"large":{"taskDefinition":"airflow-large"}}'

    verdict, detail, fix = verdicts(healthy(function_env=env))["function settings"]

    assert verdict is Verdict.FAIL
    assert "profile 'large'" in detail
    assert "QueueProfileTaskDefinitionFamilies" in detail
    assert fix == "fix the stack parameter it names, then deploy"
    env["ECSCP_QUEUE_PROFILE_TASK_DEFINITION_FAMILIES"] = "airflow-large"
    assert verdicts(healthy(function_env=env))["function settings"][0] is Verdict.OK


def test_the_readiness_record_says_how_old_it_is() -> None:
    facts = healthy(
        readiness=ReadinessReport(control_plane="ecscp-prod", checked_at=1_000_000), now=1_185_000
    )
    assert verdicts(facts)["readiness record"][1].startswith("ready (checked 3m05s ago)")


def test_a_disabled_rule_fails_naming_the_rule_and_how_to_enable_it() -> None:
    # GIVEN the task-state rule disabled
    facts = healthy()
    facts.rules[TASK_STATE_RULE] = ("prod-TaskState-1", "DISABLED")

    # THEN that check fails with what breaks and the command that fixes it
    verdict, detail, fix = verdicts(facts)[f"rule {TASK_STATE_RULE}"]
    assert verdict is Verdict.FAIL
    assert "reconciler" in detail
    assert fix == "aws events enable-rule --name prod-TaskState-1"
    assert failed(diagnose(facts))


def test_a_disabled_event_source_mapping_fails_with_the_command_that_enables_it() -> None:
    verdict, _, fix = verdicts(healthy(mapping_state="Disabled"))["run_task event source mapping"]
    assert verdict is Verdict.FAIL
    assert fix == "aws lambda update-event-source-mapping --uuid 1234-uuid --enabled"


def test_a_mapping_being_enabled_is_a_warning() -> None:
    assert verdicts(healthy(mapping_state="Enabling"))["run_task event source mapping"][0] is Verdict.WARN


@pytest.mark.parametrize(
    ("changes", "check", "fix"),
    [
        ({"cluster": {"status": "INACTIVE"}}, "ECS cluster", "Cluster"),
        ({"cluster": None}, "ECS cluster", "Cluster"),
        ({"task_definition": None}, "task definition", "TaskDefinition"),
        (
            {"task_definition": {"status": "INACTIVE", "containerDefinitions": []}},
            "task definition",
            "TaskDefinition",
        ),
        (
            {"task_definition": {"status": "ACTIVE", "containerDefinitions": [{"name": "airflow"}]}},
            "task definition",
            "ContainerName",
        ),
    ],
)
def test_ecs_pieces_the_functions_use_fail_naming_the_parameter(
    changes: dict[str, Any], check: str, fix: str
) -> None:
    verdict, _, the_fix = verdicts(healthy(**changes))[check]
    assert verdict is Verdict.FAIL
    assert f"stack parameter {fix}" in the_fix


def test_readiness_problems_fail_each_with_its_parameter_and_a_missing_record_warns() -> None:
    report = ReadinessReport(
        control_plane="ecscp-prod", problems=[Problem(parameter="Subnets", message="none")]
    )
    checks = [c for c in diagnose(healthy(readiness=report)) if c.name == "readiness record"]
    assert [(c.verdict, c.fix.split(",")[0]) for c in checks] == [
        (Verdict.FAIL, "fix stack parameter Subnets")
    ]
    verdict, _, fix = verdicts(healthy(readiness=None))["readiness record"]
    assert verdict is Verdict.WARN
    assert fix == "aws lambda invoke --function-name prod-Reconciler-1 out.json"


def test_dead_letters_warn_with_the_redrive_command() -> None:
    facts = healthy(dlq_depths={"DeadLetterQueueUrl": 3, "TaskEventDeadLetterQueueUrl": 1})
    result = verdicts(facts)
    assert result["DLQ of run requests"][:2] == (Verdict.WARN, "3 messages")
    assert result["DLQ of run requests"][2].endswith("ecscp redrive --stack prod --region eu-west-1")
    assert result["DLQ of ECS task events"][2].endswith(
        "ecscp redrive --task-events --stack prod --region eu-west-1"
    )
    assert not failed(diagnose(facts))


def test_on_the_local_stack_the_redrive_fix_names_local_not_its_stack_name() -> None:
    facts = healthy(endpoint_url="http://127.0.0.1:5000", dlq_depths={"DeadLetterQueueUrl": 2})
    assert verdicts(facts)["DLQ of run requests"][2].endswith("ecscp redrive --local")


def test_an_alarm_in_alarm_warns_with_what_its_description_says_to_do() -> None:
    facts = healthy(
        alarms=[("prod-RunTaskErrors", "ALARM", "Read the function's log group."), ("b", "OK", "")]
    )
    assert verdicts(facts)["alarm prod-RunTaskErrors"] == (
        Verdict.WARN,
        "in ALARM",
        "Read the function's log group.",
    )


def test_scheduler_policy_attached_nowhere_warns_and_not_to_the_named_role_fails() -> None:
    assert verdicts(healthy(policy_entities=[]))["scheduler policy"][0] is Verdict.WARN
    verdict, _, fix = verdicts(healthy(scheduler_role="other-role"))["scheduler policy"]
    assert verdict is Verdict.FAIL
    assert fix == "aws iam attach-role-policy --role-name other-role --policy-arn value-of-SchedulerPolicyArn"
    assert verdicts(healthy(scheduler_role="airflow-scheduler"))["scheduler policy"][0] is Verdict.OK


def test_a_fact_that_could_not_be_read_warns_instead_of_passing() -> None:
    facts = healthy(errors={"mapping": "GetEventSourceMapping: AccessDeniedException: no"})
    verdict, detail, _ = verdicts(facts)["run_task event source mapping"]
    assert verdict is Verdict.WARN
    assert "AccessDeniedException" in detail


@pytest.mark.parametrize(
    ("status", "verdict"),
    [
        ("CREATE_COMPLETE", Verdict.OK),
        ("UPDATE_IN_PROGRESS", Verdict.WARN),
        ("UPDATE_ROLLBACK_FAILED", Verdict.FAIL),
    ],
)
def test_stack_status(status: str, verdict: Verdict) -> None:
    assert verdicts(healthy(stack_status=status))["stack status"][0] is verdict


@pytest.mark.parametrize(
    ("status", "fix"),
    [
        ("ROLLBACK_COMPLETE", "sam delete, then sam deploy"),
        ("ROLLBACK_IN_PROGRESS", "sam delete, then sam deploy"),
        ("DELETE_IN_PROGRESS", "being deleted"),
        ("UPDATE_ROLLBACK_FAILED", "aws cloudformation continue-update-rollback --stack-name prod"),
    ],
)
def test_a_stack_no_deploy_can_update_fails_with_what_to_do_first(status: str, fix: str) -> None:
    verdict, detail, given = verdicts(healthy(stack_status=status))["stack status"]
    assert (verdict, detail) == (Verdict.FAIL, status)
    assert fix in given


def test_missing_outputs_fail_naming_them() -> None:
    outputs = {k: v for k, v in healthy().outputs.items() if k != "StateTableName"}
    verdict, detail, _ = verdicts(healthy(outputs=outputs))["outputs"]
    assert (verdict, detail) == (Verdict.FAIL, "missing: StateTableName")


def test_a_dead_letter_queue_the_stack_has_no_output_for_is_not_reported_empty() -> None:
    outputs = {k: v for k, v in healthy().outputs.items() if k != "TaskEventDeadLetterQueueUrl"}
    verdict, detail, _ = verdicts(healthy(outputs=outputs, dlq_depths={}))["DLQ of ECS task events"]
    assert verdict is Verdict.WARN
    assert "no output TaskEventDeadLetterQueueUrl" in detail


def test_a_readiness_record_older_than_three_reconciler_runs_warns_that_the_reconciler_is_not_running() -> (
    None
):
    # GIVEN a reconciler that runs every 5 minutes, and a record it wrote 20 minutes ago
    every = 5 * 60_000
    facts = healthy(reconcile_every_ms=every)
    facts.readiness = ReadinessReport(control_plane="ecscp-prod", checked_at=facts.now - 20 * 60_000)

    # WHEN doctor checks it
    verdict, detail, fix = verdicts(facts)["readiness record"]

    # THEN it warns, saying how old it is and how often it should be, and what to look at
    assert verdict is Verdict.WARN
    assert detail.startswith("recorded 20m00s ago, though the reconciler runs every 5m00s")
    assert fix.startswith(
        "read the reconciler's log group, then aws lambda invoke --function-name prod-Reconciler-1"
    )
    # AND a record younger than that passes
    facts.readiness = ReadinessReport(control_plane="ecscp-prod", checked_at=facts.now - 4 * 60_000)
    assert verdicts(facts)["readiness record"][0] is Verdict.OK


@pytest.mark.parametrize(
    ("expression", "interval_ms"),
    [
        ("rate(5 minutes)", 300_000),
        ("rate(1 minute)", 60_000),
        ("rate(2 hours)", 7_200_000),
        ("cron(0 * * * ? *)", None),
    ],
)
def test_the_reconciler_schedule_reads_as_an_interval(expression: str, interval_ms: int | None) -> None:
    assert schedule_interval_ms(expression) == interval_ms


def test_the_printed_fixes_say_which_region_their_aws_commands_must_act_on() -> None:
    # GIVEN a stack in eu-west-1 with a disabled rule
    rules = dict(healthy().rules)
    rules[TASK_STATE_RULE] = ("prod-TaskState-1", "DISABLED")
    facts = healthy(rules=rules)
    console = Console(record=True, width=200)

    # WHEN doctor prints its checks
    render(facts, diagnose(facts), console)

    # THEN the fix to paste comes with the region it is for
    text = console.export_text()
    assert "fix: aws events enable-rule --name prod-TaskState-1" in text
    assert "run the aws commands with --region eu-west-1" in text


def test_a_run_task_call_ecs_would_refuse_fails_the_settings_check() -> None:
    env = dict(healthy().function_env or {})
    spot = {"taskDefinition": "airflow", "capacityProviderStrategy": [{"capacityProvider": "FARGATE_SPOT"}]}
    env["ECSCP_QUEUE_PROFILES"] = json.dumps({"spot": spot})
    assert verdicts(healthy(function_env=env))["function settings"][0] is Verdict.OK
    env["ECSCP_RUN_TASK_KWARGS"] = '{"platformVersion": 3}'  # a number: botocore refuses the call

    verdict, detail, _ = verdicts(healthy(function_env=env))["function settings"]

    assert verdict is Verdict.FAIL, detail
    assert "make a RunTask call ECS refuses" in detail
