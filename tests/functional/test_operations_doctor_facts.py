"""``ecscp doctor`` over moto: a piece deleted outside CloudFormation is a failure, not a refused read."""

from __future__ import annotations

import boto3
from moto import mock_aws

from ecscp.operations.doctor import Verdict, diagnose, failed
from ecscp.operations.doctor_facts import gather
from ecscp.operations.stack import TASK_STATE_RULE, ControlPlaneStack

REGION = "eu-west-1"


def stack_of(session: boto3.session.Session, **outputs: str) -> ControlPlaneStack:
    return ControlPlaneStack(
        name="prod",
        region=REGION,
        status="UPDATE_COMPLETE",
        status_reason="",
        outputs=outputs,
        parameters={},
        resources={TASK_STATE_RULE: "prod-TaskState-deleted"},
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
