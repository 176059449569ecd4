"""moto's EventBridge cannot deliver to Lambda or SNS targets, and pastes InputTransformer values raw.

moto's PutEvents raises NotImplementedError (HTTP 500 to the caller) when a matching rule has
a Lambda or SNS target, and its InputTransformer pastes a placeholder's text as it is outside
quotes (``{"reason": <reason>}`` becomes invalid JSON). On AWS each target gets the event (or
its ``Input``/``InputPath``/``InputTransformer`` result): outside quotes a value is inserted
as JSON, inside quotes as escaped text. The control plane's ECS-event and alert rules have
exactly these targets and templates.

Patched, for Lambda, SNS and SQS targets: an SNS target publishes the rendered input to its
topic; an SQS target gets it as a message; a Lambda target gets it on a delivery queue
(:func:`delivery_queue_name`) that the local Lambda runtime polls. The targets stay as
deployed (ListTargetsByRule shows the template's); other targets keep moto's delivery.
"""

# ruff: noqa: PLC0415

from __future__ import annotations

import copy
import hashlib
import json
import re
from collections.abc import Callable
from typing import Any

from ecscp.local.timestamps import iso_seconds

from ._replace import replace

#: Prefix of the SQS queues through which EventBridge hands events to local Lambda workers.
DELIVERY_QUEUE_PREFIX = "ecscp-local-deliver-"

_PLACEHOLDER = re.compile(r"<([A-Za-z0-9_.\-]+)>")


def delivery_queue_name(rule_arn: str, target_id: str) -> str:
    """Name of the queue that carries one rule target's events to its local Lambda worker."""
    digest = hashlib.sha256(f"{rule_arn}|{target_id}".encode()).hexdigest()[:24]
    return f"{DELIVERY_QUEUE_PREFIX}{digest}"


def aws_event(original_event: dict[str, Any]) -> dict[str, Any]:
    """The event as AWS delivers it: ISO time, ``account`` present, no moto bookkeeping."""
    when = original_event.get("time")
    return {
        "version": original_event.get("version", "0"),
        "id": original_event.get("id"),
        "detail-type": original_event.get("detail-type"),
        "source": original_event.get("source"),
        "account": original_event.get("account"),
        "time": iso_seconds(float(when)) if isinstance(when, (int, float)) else when,
        "region": original_event.get("region"),
        "resources": original_event.get("resources", []),
        "detail": original_event.get("detail", {}),
    }


def _inside_quotes(text: str, position: int) -> bool:
    """Whether ``position`` of a JSON-ish template lies inside a string literal."""
    inside = False
    escaped = False
    for char in text[:position]:
        if escaped:
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == '"':
            inside = not inside
    return inside


def render_input_transformer(template: str, paths: dict[str, str], event: dict[str, Any]) -> str:
    """EventBridge's InputTransformer: placeholders in quotes get the escaped text, others JSON."""
    from jsonpath_ng.ext import parse  # type: ignore[attr-defined]

    values: dict[str, Any] = {}
    for name, path in paths.items():
        matches = parse(path).find(event)
        values[name] = matches[0].value if matches else None
    values.setdefault("aws.events.event.json", event)
    values.setdefault("aws.events.event", event)

    def substitute(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in values:
            return match.group(0)
        value = values[name]
        if _inside_quotes(template, match.start()):
            text = value if isinstance(value, str) else ("" if value is None else json.dumps(value))
            return json.dumps(text)[1:-1]
        return json.dumps(value)

    return _PLACEHOLDER.sub(substitute, template)


def render_target_input(target: dict[str, Any], original_event: dict[str, Any]) -> str:
    """The text EventBridge hands to one target for one event."""
    event = aws_event(original_event)
    if "Input" in target:
        return str(target["Input"])
    if "InputPath" in target:
        from jsonpath_ng.ext import parse  # type: ignore[attr-defined]

        matches = parse(target["InputPath"]).find(event)
        return json.dumps(matches[0].value if matches else None)
    transformer = target.get("InputTransformer")
    if transformer:
        return render_input_transformer(
            transformer.get("InputTemplate", ""), transformer.get("InputPathsMap", {}), event
        )
    return json.dumps(event)


def apply() -> None:
    from moto.events import models as events_models
    from moto.sns.models import sns_backends
    from moto.sqs.models import sqs_backends
    from moto.utilities.arns import parse_arn

    def make(original: Callable[..., None]) -> Callable[..., None]:
        def send_to_targets(self: Any, original_event: dict[str, Any], transform_input: bool = True) -> None:
            if not self.event_pattern.matches_event(original_event):
                return
            ours = [t for t in self.targets if parse_arn(t["Arn"]).service in ("lambda", "sns", "sqs")]
            for target in ours:
                body = render_target_input(target, original_event)
                arn = parse_arn(target["Arn"])
                if arn.service == "sns":
                    sns_backends[arn.account][arn.region].get_topic(target["Arn"]).publish(body)
                elif arn.service == "sqs":
                    group_id = target.get("SqsParameters", {}).get("MessageGroupId")
                    sqs_backends[arn.account][arn.region].send_message(
                        queue_name=arn.resource_id, message_body=body, group_id=group_id
                    )
                else:
                    sqs = sqs_backends[self.account_id][self.region_name]
                    name = delivery_queue_name(self.arn, target["Id"])
                    if name not in sqs.queues:
                        sqs.create_queue(name)
                    sqs.send_message(queue_name=name, message_body=body)
            others = [t for t in self.targets if t not in ours]
            if others:
                # A shallow copy: concurrent put_events on the same rule must see all its targets.
                clone = copy.copy(self)
                clone.targets = others
                original(clone, original_event, transform_input)

        return send_to_targets

    replace(events_models.Rule, "send_to_targets", __name__, make)
