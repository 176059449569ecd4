"""DynamoDB write units per task try: the table and each index, with today's projections and ALL.

A try goes through the real handlers (run_task: QUEUED then STARTING; task_state: RUNNING, then
STOPPED with exit 0), ECS answered by a botocore Stubber as in the cold-start scenario, and
every UpdateItem's new item (``ReturnValues=ALL_NEW``) is kept. The units are then counted by
DynamoDB's published rules, for the indexes as template.yaml projects them and as they were
(ALL), for three sizes of ``executor_config``:

- a write costs 1 unit per started KB of the item, the larger of before and after
  (https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/provisioned-capacity-mode.html);
- in an index: a put when the item enters it, a delete when it leaves, a delete plus a put when
  an index key attribute changes (``updated_at`` is the sort key of both the owner and the
  active index, so every write changes it), each 1 unit per started KB of the projected item
  (https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/GSI.html#GSI.ThroughputConsiderations.Writes);
- an item's size is the sum of its attribute names' and values' lengths
  (https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/CapacityUnitCalculations.html).
"""

# Airflow, moto and the handlers are imported where used: the environment (AIRFLOW_HOME,
# fake credentials, endpoints) must be set before they read it.
# ruff: noqa: PLC0415

from __future__ import annotations

import contextlib
import io
import json
import math
import uuid
from collections.abc import Mapping
from typing import Any

from botocore.stub import Stubber

from ecs_control_plane.contract import RunRequest, TaskKey
from ecs_control_plane.store import state_table_definition

from .coldstart import EVENTS_DIR, _context, _ecs_event, _sqs_event, function_environment
from .env import CLUSTER, REGION, AwsFixture, MotoServer

KB = 1024
#: executor_config sizes a try is run with: none, a typical override, a large one (ECS refuses
#: overrides over 8,192 characters, and so does run_task).
CONFIGS: dict[str, dict[str, Any]] = {
    "no executor_config": {},
    "2 KB executor_config": {
        "overrides": {
            "containerOverrides": [
                {
                    "name": "airflow",
                    "environment": [{"name": f"SETTING_{i:02d}", "value": "x" * 60} for i in range(22)],
                }
            ]
        }
    },
    "6 KB executor_config": {
        "overrides": {
            "containerOverrides": [
                {
                    "name": "airflow",
                    "environment": [{"name": f"SETTING_{i:03d}", "value": "x" * 60} for i in range(70)],
                }
            ]
        }
    },
}


def _number_size(text: str) -> int:
    digits = len(text.lstrip("-").replace(".", "").lstrip("0")) or 1
    return math.ceil(digits / 2) + 1


def value_size(value: Mapping[str, Any]) -> int:
    """Bytes of one attribute value by DynamoDB's rules."""
    (kind, raw), *_ = value.items()
    if kind == "S":
        return len(str(raw).encode())
    if kind == "N":
        return _number_size(str(raw))
    if kind == "B":
        return len(raw)
    if kind in ("BOOL", "NULL"):
        return 1
    if kind == "M":
        return 3 + sum(len(k.encode()) + value_size(v) + 1 for k, v in raw.items())
    if kind == "L":
        return 3 + sum(value_size(v) + 1 for v in raw)
    if kind == "SS":
        return sum(len(s.encode()) for s in raw)
    if kind == "NS":
        return sum(_number_size(n) for n in raw)
    raise ValueError(f"unknown attribute type {kind}")


def item_size(item: Mapping[str, Any]) -> int:
    return sum(len(name.encode()) + value_size(value) for name, value in item.items())


def _units(size: int) -> int:
    return math.ceil(size / KB) if size else 0


def _projected(item: Mapping[str, Any] | None, index: Mapping[str, Any]) -> dict[str, Any] | None:
    """The item as ``index`` holds it, or None when it is not in the (sparse) index."""
    if item is None:
        return None
    keys = [k["AttributeName"] for k in index["KeySchema"]]
    if any(k not in item for k in keys):
        return None
    projection = index["Projection"]
    if projection["ProjectionType"] == "ALL":
        return dict(item)
    kept = {"key", *keys, *projection.get("NonKeyAttributes", [])}
    return {k: v for k, v in item.items() if k in kept}


def write_units(
    before: Mapping[str, Any] | None, after: Mapping[str, Any], indexes: list[dict[str, Any]]
) -> dict[str, int]:
    """Units one write costs in the table and in each index."""
    out = {"table": _units(max(item_size(before or {}), item_size(after)))}
    for index in indexes:
        old, new = _projected(before, index), _projected(after, index)
        keys = [k["AttributeName"] for k in index["KeySchema"]]
        if old is None and new is None:
            units = 0
        elif old is None:
            units = _units(item_size(new or {}))
        elif new is None:
            units = _units(item_size(old))
        elif any(old.get(k) != new.get(k) for k in keys):
            units = _units(item_size(old)) + _units(item_size(new))
        else:
            units = _units(item_size(new)) if old != new else 0
        out[index["IndexName"]] = units
    return out


def _all_projections(indexes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The indexes as they were before they projected only what their readers read."""
    return [
        index
        if index["Projection"]["ProjectionType"] == "KEYS_ONLY"
        else index | {"Projection": {"ProjectionType": "ALL"}}
        for index in indexes
    ]


def _one_try(fixture: AwsFixture, executor_config: dict[str, Any]) -> list[dict[str, Any]]:
    """The items one try's writes left, in order (the real handlers)."""
    from ecs_control_plane.gateways import EcsGateway
    from ecs_control_plane.runtime import control_plane
    from functions.run_task import app as run_task_app
    from functions.task_state import app as task_state_app

    writes: list[dict[str, Any]] = []

    def keep(parsed: dict[str, Any], **_: Any) -> None:
        if "Attributes" in parsed:
            writes.append(parsed["Attributes"])

    with function_environment(fixture):
        plane = control_plane()
        plane.table._client.meta.events.register("after-call.dynamodb.UpdateItem", keep)
        ecs_client = fixture.server.client("ecs")
        stubber = Stubber(ecs_client)
        arn = f"arn:aws:ecs:{REGION}:123456789012:task/{CLUSTER}/{uuid.uuid4().hex}"
        stubber.add_response(
            "run_task", {"tasks": [{"taskArn": arn, "lastStatus": "PROVISIONING"}], "failures": []}
        )
        stubber.activate()
        plane.ecs = EcsGateway(ecs_client)
        key = TaskKey(
            dag_id="bench", task_id="units", run_id="manual__units", submission=uuid.uuid4().hex
        ).encode()
        body = RunRequest(
            kind="run",
            key=key,
            owner="bench-scheduler",
            command=["airflow", "tasks", "run"],
            executor_config=executor_config,
        ).model_dump_json()
        with contextlib.redirect_stdout(io.StringIO()):  # Powertools' logs and metrics
            run_task_app.lambda_handler(_sqs_event([body]), _context("run_task"))
            for name, version in (("ecs_task_running.json", 3), ("ecs_task_stopped_exit0.json", 5)):
                event = _ecs_event(json.loads((EVENTS_DIR / name).read_text()), arn, key, version)
                task_state_app.lambda_handler(event, _context("task_state"))
        stubber.assert_no_pending_responses()
    return writes


def _totals(writes: list[dict[str, Any]], indexes: list[dict[str, Any]]) -> dict[str, int]:
    totals: dict[str, int] = {}
    before: dict[str, Any] | None = None
    for after in writes:
        for where, units in write_units(before, after, indexes).items():
            totals[where] = totals.get(where, 0) + units
        before = after
    totals["total"] = sum(totals.values())
    return totals


def run(server: MotoServer) -> dict[str, Any]:
    server.reset()
    fixture = AwsFixture(server)
    fixture.create_all()
    indexes = state_table_definition("any")["GlobalSecondaryIndexes"]
    out: dict[str, Any] = {}
    for label, config in CONFIGS.items():
        writes = _one_try(fixture, config)
        if not writes or writes[-1].get("state", {}).get("S") != "SUCCESS":
            raise RuntimeError(f"the try with {label} did not reach SUCCESS: {writes[-1:]}")
        out[label] = {
            "writes": len(writes),
            "largest_item_bytes": max(item_size(w) for w in writes),
            "projected": _totals(writes, indexes),
            "all_projected": _totals(writes, _all_projections(indexes)),
        }
    return out
