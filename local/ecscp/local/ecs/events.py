"""The ``ECS Task State Change`` event of a task, made from moto's own copy of it.

Runs inside the moto server. The event's detail is the task as DescribeTasks returns it (moto's
serializer and the ECS API model make it, so the two cannot disagree), in the event's form: times
in ISO 8601 with milliseconds, ``updatedAt``, empty values and the tags left out, as ECS sends it.
Where it departs from AWS: no ``attributes``, ``ephemeralStorage``, ``runtimeId`` or
``imageDigest`` (nothing here reads them), and the account's default bus receives it through
moto's PutEvents, so rules match it and their targets get it as from ECS.
"""

# moto is imported lazily: this module is imported by the parent process for its names only.
# ruff: noqa: PLC0415

from __future__ import annotations

import json
import time
from functools import cache
from typing import Any

from ecscp.local.timestamps import iso_millis

SOURCE = "aws.ecs"
DETAIL_TYPE = "ECS Task State Change"

#: DescribeTasks fields an ECS Task State Change event's detail does not carry.
_NOT_IN_EVENTS = frozenset({"tags", "healthStatus", "enableExecuteCommand"})
_CONTAINER_FIELDS = (
    "containerArn",
    "lastStatus",
    "name",
    "image",
    "taskArn",
    "networkInterfaces",
    "cpu",
    "memory",
    "exitCode",
    "reason",
)


@cache
def _describe_tasks_serializer() -> Any:
    from moto.core.serialize import XFormedAttributePicker, get_serializer_class
    from moto.core.utils import get_service_model

    operation = get_service_model("ecs").operation_model("DescribeTasks")
    return get_serializer_class("ecs", "json")(
        operation_model=operation, pretty_print=False, value_picker=XFormedAttributePicker()
    )


def described(task: Any) -> dict[str, Any]:
    """moto's task as DescribeTasks returns it (JSON, times as epoch seconds)."""
    body = _describe_tasks_serializer().serialize({"tasks": [task], "failures": []})["body"]
    result: dict[str, Any] = json.loads(body)["tasks"][0]
    return result


def detail_of(task: Any) -> dict[str, Any]:
    """The event detail for moto's task as it is now."""
    detail: dict[str, Any] = {}
    for name, value in described(task).items():
        if name in _NOT_IN_EVENTS or value in (None, "", []):
            continue
        is_time = name.endswith("At") and isinstance(value, (int, float))
        detail[name] = iso_millis(float(value)) if is_time else value
    detail["containers"] = [
        {k: c[k] for k in _CONTAINER_FIELDS if c.get(k) not in (None, "")}
        for c in detail.get("containers", [])
    ]
    detail["updatedAt"] = iso_millis(time.time())
    return detail


def put_state_change(task: Any) -> None:
    """Send the task's state change to its account's default event bus, as ECS does."""
    from moto.events.models import events_backends

    entry = {
        "Source": SOURCE,
        "DetailType": DETAIL_TYPE,
        "Detail": json.dumps(detail_of(task)),
        "Resources": [task.task_arn],
    }
    result = events_backends[task._account_id][task.region_name].put_events([entry])
    failed = [r for r in result if r.get("ErrorCode")]
    if failed:
        raise RuntimeError(f"ECS event not accepted: {failed}")
