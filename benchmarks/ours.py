"""Our side: ``executor_client.EcsControlPlaneExecutor``, and the table writes the control plane makes.

The Lambda functions are not in this picture (scenario ``throughput`` runs them): here the
table is written directly with the items the functions would have written, so that each sync
reads exactly what the control plane would have left for it.
"""

# Airflow, moto and the handlers are imported where used: the environment (AIRFLOW_HOME,
# fake credentials, endpoints) must be set before they read it.
# ruff: noqa: PLC0415

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from boto3.dynamodb.types import TypeSerializer

from ecs_control_plane.contract import OWNER_INDEX, TaskState, active_shard, now_ms

from .env import CONTAINER, REGION, TABLE, AwsFixture

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.client import DynamoDBClient

OWNER = "bench-scheduler"
ENV_PREFIX = "AIRFLOW__ECS_CONTROL_PLANE__"
#: Items written this long before a sync lie outside its read window (the newest change seen
#: minus the overlap): they are the tasks that have been running for a while.
SETTLED_AGE_MS = 120_000
_ser = TypeSerializer()


def configure(fixture: AwsFixture) -> None:
    """The executor's ``[ecs_control_plane]`` section, as environment variables.

    The safety-net re-read is switched to a day here because the benchmark runs it on purpose
    (``full_resync``) and reports it on its own; everything else keeps its default.
    """
    os.environ.update(
        {
            f"{ENV_PREFIX}QUEUE_URL": fixture.queue_url,
            f"{ENV_PREFIX}STATE_TABLE": TABLE,
            f"{ENV_PREFIX}REGION_NAME": REGION,
            f"{ENV_PREFIX}CONN_ID": "aws_default",
            f"{ENV_PREFIX}OWNER_ID": OWNER,
            f"{ENV_PREFIX}CONTAINER_NAME": CONTAINER,
            f"{ENV_PREFIX}CHECK_HEALTH_ON_STARTUP": "False",
            f"{ENV_PREFIX}FULL_RESYNC_INTERVAL_SECONDS": "86400",
            "AIRFLOW_CONN_AWS_DEFAULT": fixture.server.airflow_connection(),
        }
    )


def make_executor(parallelism: int) -> Any:
    from executor_client import EcsControlPlaneExecutor

    executor = EcsControlPlaneExecutor(parallelism=parallelism)
    executor.start()
    # The first sync makes the clients and, with nothing tracked, marks the safety net as done.
    executor.sync()
    return executor


def encoded_keys(executor: Any) -> list[str]:
    return list(executor.tracked)


def full_resync(executor: Any, max_syncs: int = 10_000) -> int:
    """One whole pass of the safety net (about every ``full_resync_interval_seconds``, 60 s by
    default), which makes one call a heartbeat: the syncs it took."""
    executor.safety_net.restart()
    for syncs in range(1, max_syncs + 1):
        executor.sync()
        if not executor.safety_net.in_progress:
            return syncs
    raise RuntimeError(f"the safety net did not finish a pass in {max_syncs} syncs")


def _item(key: str, state: TaskState, updated_at: int, version: int) -> dict[str, Any]:
    arn = f"arn:aws:ecs:{REGION}:123456789012:task/bench/{uuid.uuid5(uuid.NAMESPACE_URL, key).hex}"
    item: dict[str, Any] = {
        "key": key,
        "owner": OWNER,
        "state": state.value,
        "attempt": 1,
        "task_arn": arn,
        "ecs_last_status": "STOPPED" if state.is_terminal else "RUNNING",
        "ecs_version": version,
        "executor_config": "{}",
        "created_at": updated_at,
        "updated_at": updated_at,
        "expires_at": updated_at // 1000 + 7 * 86400,
    }
    if not state.is_terminal:
        item["active_shard"] = active_shard(key)
    if state is TaskState.SUCCESS:
        item.update(
            exit_code=0, stop_code="EssentialContainerExited", stopped_reason="Essential container exited"
        )
    return {k: _ser.serialize(v) for k, v in item.items()}


def write_items(
    dynamodb: DynamoDBClient,
    keys: Sequence[str],
    state: TaskState,
    *,
    updated_at: int | None = None,
    version: int = 3,
) -> None:
    """What the task_state function leaves in the table, 25 items per BatchWriteItem."""
    stamp = now_ms() if updated_at is None else updated_at
    for start in range(0, len(keys), 25):
        request: dict[str, Any] = {
            TABLE: [
                {"PutRequest": {"Item": _item(k, state, stamp, version)}} for k in keys[start : start + 25]
            ]
        }
        while request:
            response = dynamodb.batch_write_item(RequestItems=request)
            request = dict(response.get("UnprocessedItems") or {})
            if request:
                time.sleep(0.05)


def settled_items(dynamodb: DynamoDBClient, keys: Sequence[str]) -> None:
    """RUNNING items written a while ago, so nothing about them is new to the next sync."""
    write_items(dynamodb, keys, TaskState.RUNNING, updated_at=now_ms() - SETTLED_AGE_MS, version=2)


def bare_query(dynamodb: DynamoDBClient, table: str, owner: str = OWNER) -> int:
    """The one call an idle sync needs, made directly: the floor for an idle sync."""
    response = dynamodb.query(
        TableName=table,
        IndexName=OWNER_INDEX,
        KeyConditionExpression="#o = :o AND #u > :u",
        ExpressionAttributeNames={"#o": "owner", "#u": "updated_at"},
        ExpressionAttributeValues={":o": {"S": owner}, ":u": {"N": str(now_ms())}},
    )
    return len(response.get("Items", []))
