"""EventBridge: delivery to targets, schedule-only and disabled rules, the events' account."""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from ecscp.local.moto_patches import (
    events_default_input_account,
    events_schedule_and_disabled_rules,
    events_targets,
)
from tests.support.aws import ACCOUNT, REGION
from tests.support.moto_ecs import bodies, queue

from .conftest import Apply

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
