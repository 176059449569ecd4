"""The deployed functions as the local Lambda runtime runs them, read back from moto.

For each ``AWS::Lambda::Function`` of the stack: its deployed configuration (handler,
environment, memory, timeout), its code and layer directories, its SQS event source mappings,
and the EventBridge rules, scheduled or not, that target it, each target with the delivery
queue that moto's patched EventBridge fills (:mod:`ecscp.local.moto_patches.events_targets`).

Departs from AWS: moto's Lambda keeps no ``DeadLetterConfig`` and no event invoke config, so
both come from the template; a schedule the local runtime cannot run is logged and left out.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from ecscp.local.lambda_runtime.schedules import UnsupportedSchedule, check_schedule
from ecscp.local.moto_patches.events_targets import delivery_queue_name
from ecscp.local.spec import (
    DEFAULT_ASYNC_MAX_EVENT_AGE_SECONDS,
    DEFAULT_ASYNC_RETRIES,
    FunctionSpec,
    RuleSource,
    ScheduleSource,
    SqsSource,
)

from . import DeployError
from .intrinsics import IntrinsicResolver, resolve_optional
from .package import layer_dirs

logger = logging.getLogger(__name__)


def function_specs(
    translated: dict[str, Any],
    physical: dict[str, str],
    dirs: dict[str, Path],
    resolver: IntrinsicResolver,
    clients: dict[str, Any],
) -> list[FunctionSpec]:
    """Every deployed function of the stack with the event sources that invoke it."""
    lam, sqs = clients["lambda"], clients["sqs"]
    layers = layer_dirs(translated, dirs)
    by_arn: dict[str, FunctionSpec] = {}
    for lid, resource in translated["Resources"].items():
        if resource.get("Type") != "AWS::Lambda::Function" or not physical.get(lid):
            continue
        if lid not in dirs:
            raise DeployError(f"function {lid} has no local CodeUri directory to run")
        config = lam.get_function_configuration(FunctionName=physical[lid])
        refs = resource["Properties"].get("Layers") or []
        variables = (config.get("Environment") or {}).get("Variables") or {}
        retries, max_age = _async_invoke_config(translated, resolver, config["FunctionName"])
        spec = FunctionSpec(
            logical_id=lid,
            name=config["FunctionName"],
            arn=config["FunctionArn"],
            handler=config["Handler"],
            code_dir=dirs[lid],
            layer_dirs=tuple(
                layers[r["Ref"]] for r in refs if isinstance(r, dict) and r.get("Ref") in layers
            ),
            environment={k: str(v) for k, v in variables.items()},
            # moto's Lambda has no DeadLetterConfig: take it from the template.
            dead_letter_arn=resolve_optional(
                resolver, (resource["Properties"].get("DeadLetterConfig") or {}).get("TargetArn")
            ),
            async_max_retries=retries,
            async_max_event_age_seconds=max_age,
            memory_mb=int(config.get("MemorySize") or 128),
            timeout_seconds=int(config.get("Timeout") or 3),
            sqs_sources=_sqs_sources(config["FunctionName"], lam, sqs),
        )
        by_arn[spec.arn] = spec
    rule_sources, schedules = _rule_targets(set(by_arn), clients["events"], sqs)
    return [
        spec.model_copy(update={"rule_sources": tuple(rule_sources[arn]), "schedules": tuple(schedules[arn])})
        for arn, spec in by_arn.items()
    ]


def _sqs_sources(function_name: str, lam: Any, sqs: Any) -> tuple[SqsSource, ...]:
    sources: list[SqsSource] = []
    for mapping in lam.list_event_source_mappings(FunctionName=function_name).get("EventSourceMappings", []):
        source_arn = mapping.get("EventSourceArn", "")
        if ":sqs:" not in source_arn or mapping.get("State") not in ("Enabled", "Enabling", "Creating"):
            continue
        sources.append(
            SqsSource(
                uuid=mapping["UUID"],
                queue_arn=source_arn,
                queue_url=sqs.get_queue_url(QueueName=source_arn.rsplit(":", 1)[-1])["QueueUrl"],
                batch_size=int(mapping.get("BatchSize") or 10),
                report_batch_item_failures="ReportBatchItemFailures"
                in (mapping.get("FunctionResponseTypes") or []),
                maximum_batching_window_seconds=int(mapping.get("MaximumBatchingWindowInSeconds") or 0),
            )
        )
    return tuple(sources)


def _rule_targets(
    function_arns: set[str], events: Any, sqs: Any
) -> tuple[dict[str, list[RuleSource]], dict[str, list[ScheduleSource]]]:
    """Function ARN -> the enabled rules that target it, and those of them that are schedules."""
    rule_sources: dict[str, list[RuleSource]] = {arn: [] for arn in function_arns}
    schedules: dict[str, list[ScheduleSource]] = {arn: [] for arn in function_arns}
    for bus in events.list_event_buses().get("EventBuses", []):
        for rule in events.list_rules(EventBusName=bus["Name"]).get("Rules", []):
            if rule.get("State") != "ENABLED":
                continue
            targets = events.list_targets_by_rule(Rule=rule["Name"], EventBusName=bus["Name"]).get(
                "Targets", []
            )
            for target in targets:
                function_arn = unqualified_function_arn(target["Arn"])
                if function_arn not in function_arns:
                    continue
                queue_name = delivery_queue_name(rule["Arn"], target["Id"])
                url = sqs.create_queue(QueueName=queue_name)["QueueUrl"]
                schedule = rule.get("ScheduleExpression")
                if schedule:
                    try:
                        check_schedule(schedule)
                    except UnsupportedSchedule as exc:
                        logger.warning("rule %s is not run locally: %s", rule["Name"], exc)
                        continue
                    schedules[function_arn].append(
                        ScheduleSource(
                            rule_name=rule["Name"],
                            rule_arn=rule["Arn"],
                            target=dict(target),
                            expression=schedule,
                            delivery_queue_url=url,
                        )
                    )
                rule_sources[function_arn].append(
                    RuleSource(
                        rule_name=rule["Name"],
                        rule_arn=rule["Arn"],
                        target_id=target["Id"],
                        delivery_queue_url=url,
                    )
                )
    return rule_sources, schedules


def unqualified_function_arn(arn: str) -> str:
    """A Lambda function ARN without its version or alias qualifier."""
    return ":".join(arn.split(":")[:7])


def _async_invoke_config(
    translated: dict[str, Any], resolver: IntrinsicResolver, function_name: str
) -> tuple[int, int]:
    """(retries, maximum event age) of the function's asynchronous invocations."""
    retries, max_age = DEFAULT_ASYNC_RETRIES, DEFAULT_ASYNC_MAX_EVENT_AGE_SECONDS
    for resource in translated["Resources"].values():
        props = resource.get("Properties") or {}
        if resource.get("Type") != "AWS::Lambda::EventInvokeConfig":
            continue
        if resolve_optional(resolver, props.get("FunctionName")) != function_name:
            continue
        retries = int(props.get("MaximumRetryAttempts", retries))
        max_age = int(props.get("MaximumEventAgeInSeconds", max_age))
    return retries, max_age
