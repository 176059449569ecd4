"""What moto's CloudFormation silently skips and matters, applied through the service APIs.

After ``create_stack``: DynamoDB TTL and point-in-time recovery (properties moto ignores); the
alarms, queue and topic policies and Lambda event invoke configs it does not create (made through
their APIs with the template's resolved properties); dashboards drawn again once those alarms
exist (moto leaves a reference to a resource it skipped unresolved in their bodies); the
functions' layers (moto drops them).
And one thing AWS has no counterpart for: a queue subscribed to every topic of the stack, so
that the alerts a human would be sent can be read back.

Departs from AWS: a skipped resource of another type is logged and left out (the local stack
does not need it), as is one whose properties do not resolve or whose API call fails.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

from botocore.exceptions import ClientError

from ecscp.local.spec import FunctionSpec

from .intrinsics import IntrinsicResolver

logger = logging.getLogger(__name__)

ALERT_CAPTURE_QUEUE = "ecscp-local-alert-capture"
_ALARM_KEYS = frozenset(
    {
        "ActionsEnabled",
        "AlarmActions",
        "AlarmDescription",
        "ComparisonOperator",
        "DatapointsToAlarm",
        "Dimensions",
        "EvaluateLowSampleCountPercentile",
        "EvaluationPeriods",
        "ExtendedStatistic",
        "InsufficientDataActions",
        "MetricName",
        "Metrics",
        "Namespace",
        "OKActions",
        "Period",
        "Statistic",
        "Threshold",
        "ThresholdMetricId",
        "TreatMissingData",
        "Unit",
    }
)


def create_skipped_resources(
    translated: dict[str, Any], skipped: dict[str, str], resolver: IntrinsicResolver, clients: dict[str, Any]
) -> list[str]:
    """Create through the service APIs what moto's CloudFormation cannot; report the rest."""
    creators = _creators(clients)
    done: list[str] = []
    for lid, rtype in skipped.items():
        creator = creators.get(rtype)
        if creator is None:
            logger.warning("moto's CloudFormation did not create %s (%s); not needed locally", lid, rtype)
            continue
        try:
            props = resolver.resolve(translated["Resources"][lid].get("Properties") or {})
            made = creator(lid, props)
        except (LookupError, ClientError, ValueError) as exc:
            logger.warning("moto's CloudFormation did not create %s (%s), nor could we: %s", lid, rtype, exc)
            continue
        if made is not None:
            resolver.created(lid, made)
        done.append(f"{lid}: created {rtype} through its API")
    return done


def redraw_dashboards(
    translated: dict[str, Any], physical: dict[str, str], resolver: IntrinsicResolver, cloudwatch: Any
) -> list[str]:
    """Put each dashboard again with its body resolved against the resources made since.

    moto's CloudFormation creates a dashboard, but leaves ``${RunTaskErrorsAlarm}`` as written
    where its Fn::Sub names a resource it skipped (the alarm widget's alarms, made above).
    """
    done: list[str] = []
    for lid, resource in translated["Resources"].items():
        if resource.get("Type") != "AWS::CloudWatch::Dashboard" or not physical.get(lid):
            continue
        try:
            body = resolver.resolve((resource.get("Properties") or {})["DashboardBody"])
            cloudwatch.put_dashboard(DashboardName=physical[lid], DashboardBody=body)
        except (LookupError, ClientError) as exc:
            logger.warning("dashboard %s left as moto's CloudFormation drew it: %s", lid, exc)
            continue
        done.append(f"{lid}: body resolved against the resources made through their APIs")
    return done


def _creators(clients: dict[str, Any]) -> dict[str, Callable[[str, dict[str, Any]], str | None]]:
    """What makes each resource type, returning its physical id when a Ref of it gives one."""
    cloudwatch, sqs, sns, lam = clients["cloudwatch"], clients["sqs"], clients["sns"], clients["lambda"]

    def alarm(lid: str, props: dict[str, Any]) -> str:
        numbers = {"Period": int, "EvaluationPeriods": int, "DatapointsToAlarm": int, "Threshold": float}
        kwargs = {k: numbers[k](v) if k in numbers else v for k, v in props.items() if k in _ALARM_KEYS}
        name = str(props.get("AlarmName") or lid)
        cloudwatch.put_metric_alarm(AlarmName=name, **kwargs)
        return name

    def queue_policy(lid: str, props: dict[str, Any]) -> None:
        for url in props["Queues"]:
            sqs.set_queue_attributes(QueueUrl=url, Attributes={"Policy": json.dumps(props["PolicyDocument"])})

    def topic_policy(lid: str, props: dict[str, Any]) -> None:
        for topic in props["Topics"]:
            sns.set_topic_attributes(
                TopicArn=topic, AttributeName="Policy", AttributeValue=json.dumps(props["PolicyDocument"])
            )

    def invoke_config(lid: str, props: dict[str, Any]) -> None:
        kwargs = {k: props[k] for k in ("MaximumRetryAttempts", "MaximumEventAgeInSeconds") if k in props}
        lam.put_function_event_invoke_config(
            FunctionName=props["FunctionName"],
            Qualifier=props.get("Qualifier", "$LATEST"),
            **{k: int(v) for k, v in kwargs.items()},
        )

    return {
        "AWS::CloudWatch::Alarm": alarm,
        "AWS::SQS::QueuePolicy": queue_policy,
        "AWS::SNS::TopicPolicy": topic_policy,
        "AWS::Lambda::EventInvokeConfig": invoke_config,
    }


def apply_skipped_properties(
    translated: dict[str, Any], physical: dict[str, str], dynamodb: Any
) -> list[str]:
    """The DynamoDB tables' TTL and point-in-time recovery, which moto's CloudFormation ignores."""
    done: list[str] = []
    for lid, resource in translated["Resources"].items():
        if resource.get("Type") != "AWS::DynamoDB::Table" or not physical.get(lid):
            continue
        props = resource.get("Properties") or {}
        ttl = props.get("TimeToLiveSpecification")
        if isinstance(ttl, dict) and ttl.get("Enabled") in (True, "true"):
            dynamodb.update_time_to_live(
                TableName=physical[lid],
                TimeToLiveSpecification={"AttributeName": ttl["AttributeName"], "Enabled": True},
            )
            done.append(f"{lid}: TTL on {ttl['AttributeName']}")
        pitr = props.get("PointInTimeRecoverySpecification")
        if isinstance(pitr, dict) and pitr.get("PointInTimeRecoveryEnabled") in (True, "true"):
            dynamodb.update_continuous_backups(
                TableName=physical[lid],
                PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": True},
            )
            done.append(f"{lid}: point-in-time recovery")
    return done


def attach_layers(translated: dict[str, Any], functions: list[FunctionSpec], lam: Any) -> list[str]:
    """moto drops a function's Layers; attach the deployed layer versions by logical id."""
    versions: dict[str, str] = {}
    for layer in lam.list_layers().get("Layers", []):
        for lid, resource in translated["Resources"].items():
            if resource.get("Type") == "AWS::Lambda::LayerVersion" and f"-{lid}" in layer["LayerName"]:
                versions[lid] = layer["LatestMatchingVersion"]["LayerVersionArn"]
    done: list[str] = []
    for function in functions:
        refs = translated["Resources"][function.logical_id]["Properties"].get("Layers") or []
        arns = [versions[r["Ref"]] for r in refs if isinstance(r, dict) and r.get("Ref") in versions]
        if arns:
            lam.update_function_configuration(FunctionName=function.name, Layers=arns)
            done.append(f"{function.logical_id}: layers {', '.join(a.split(':')[-2] for a in arns)}")
    return done


def capture_alerts(translated: dict[str, Any], physical: dict[str, str], sqs: Any, sns: Any) -> str | None:
    """Subscribe a queue to every topic of the stack, so the alerts can be read back."""
    topics = [
        physical[lid]
        for lid, r in translated["Resources"].items()
        if r.get("Type") == "AWS::SNS::Topic" and physical.get(lid)
    ]
    if not topics:
        return None
    url = sqs.create_queue(QueueName=ALERT_CAPTURE_QUEUE)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    for topic in topics:
        sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=arn, Attributes={"RawMessageDelivery": "true"})
    return str(url)
