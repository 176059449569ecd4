"""``ecscp doctor`` over moto: a piece deleted outside CloudFormation is a failure, not a refused read."""

from __future__ import annotations

import boto3
from moto import mock_aws

from ecscp.operations.doctor import Verdict, diagnose, failed
from ecscp.operations.doctor_facts import gather
from ecscp.operations.stack import FAILED_START_RULE, TASK_STATE_RULE, ControlPlaneStack

REGION = "eu-west-1"


def stack_of(
    session: boto3.session.Session, resources: dict[str, str] | None = None, **outputs: str
) -> ControlPlaneStack:
    return ControlPlaneStack(
        name="prod",
        region=REGION,
        status="UPDATE_COMPLETE",
        status_reason="",
        outputs=outputs,
        parameters={},
        resources=resources or {TASK_STATE_RULE: "prod-TaskState-deleted"},
        session=session,
    )


def test_a_rule_and_a_dead_letter_queue_deleted_by_hand_fail_naming_what_is_gone() -> None:
    with mock_aws():
        # GIVEN a stack whose task-state rule was deleted and whose run-request DLQ was deleted by hand
        session = boto3.session.Session(region_name=REGION)
        sqs = session.client("sqs")
        dlq = sqs.create_queue(QueueName="prod-dlq")["QueueUrl"]
        sqs.delete_queue(QueueUrl=dlq)

        # WHEN doctor reads and checks it
        checks = {c.name: c for c in diagnose(gather(stack_of(session, DeadLetterQueueUrl=dlq)))}

    # THEN both fail (not "grant the read"), each saying it is gone and how to bring it back
    for name in (f"rule {TASK_STATE_RULE}", "DLQ of run requests"):
        assert checks[name].verdict is Verdict.FAIL, checks[name]
        assert "does not exist" in checks[name].detail
        assert "detect-stack-drift --stack-name prod" in checks[name].fix
    assert failed(list(checks.values()))


def test_a_rule_whose_physical_id_names_its_bus_is_read_on_that_bus() -> None:
    with mock_aws():
        # GIVEN the failed-start rule (EventBusName: default), disabled, its physical id "default|name"
        session = boto3.session.Session(region_name=REGION)
        session.client("events").put_rule(Name="prod-FailedStart", EventPattern="{}", State="DISABLED")
        stack = stack_of(session, {FAILED_START_RULE: "default|prod-FailedStart"})

        # WHEN doctor reads and checks it
        check = {c.name: c for c in diagnose(gather(stack))}[f"rule {FAILED_START_RULE}"]

    # THEN it is read, and fails with the command that enables it by its name
    assert check.verdict is Verdict.FAIL
    assert check.detail.startswith("prod-FailedStart is DISABLED")
    assert check.fix == "aws events enable-rule --name prod-FailedStart"
