"""The state table adapter: the only code that reads or writes task items.

Every write is conditional, so concurrent functions, late events and a second scheduler can
never move an item backwards. Takes its DynamoDB client; makes none. The reads are in
``table_reads.py``, the table's shape in ``table_schema.py``, items on the wire in ``items.py``;
their names are re-exported here, where callers have always found them.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Collection
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError
from pydantic import ValidationError

from .contract import (
    ACTIVE_STATES,
    LOG_ATTRIBUTES,
    InvalidTaskKeyError,
    TaskKey,
    TaskState,
    TaskStateItem,
    active_shard,
    now_ms,
)
from .dynamodb_types import TypeSerializer
from .items import (
    BATCH_GET_ATTEMPTS,
    ItemVersion,
    KeysRead,
    Page,
    UnprocessedKeysError,
    UnreadableItemError,
    item_from_dynamodb,
)
from .log_location import TaskLogLocation
from .placements import AttemptPlacement
from .readiness import READINESS_KEY, ReadinessReport
from .table_reads import BATCH_GET_LIMIT, StateTableReads
from .table_schema import (
    ACTIVE_INDEX_ATTRIBUTES,
    OWNER_INDEX_ATTRIBUTES,
    VERSION_ATTRIBUTES,
    state_table_definition,
)
from .wire_items import read_items_off_the_wire

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.client import DynamoDBClient

__all__ = [
    "ACTIVE_INDEX_ATTRIBUTES",
    "BATCH_GET_ATTEMPTS",
    "BATCH_GET_LIMIT",
    "OWNER_INDEX_ATTRIBUTES",
    "VERSION_ATTRIBUTES",
    "ItemTooLargeError",
    "ItemVersion",
    "KeysRead",
    "NotApplied",
    "Page",
    "StateTable",
    "UnprocessedKeysError",
    "UnreadableItemError",
    "item_from_dynamodb",
    "state_table_definition",
    "stored_config",
    "try_key_of",
]

logger = logging.getLogger(__name__)
_ser = TypeSerializer()
_ACTIVE = [s.value for s in ACTIVE_STATES]


def _is_conditional_failure(exc: ClientError) -> bool:
    return exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException"


#: DynamoDB's item limit is 400 KB; a stored executor_config larger than this leaves no room.
MAX_STORED_CONFIG_BYTES = 300_000


class ItemTooLargeError(ValueError):
    """The item would exceed DynamoDB's 400 KB item size (its executor_config is too large)."""


def _is_item_too_large(exc: ClientError) -> bool:
    error = exc.response.get("Error", {})
    return error.get("Code") == "ValidationException" and "size" in str(error.get("Message", "")).lower()


def stored_config(executor_config: dict[str, Any]) -> str:
    """The executor_config as the item stores it; refused when it would not fit in the item."""
    text = json.dumps(executor_config, separators=(",", ":"))
    size = len(text.encode())
    if size > MAX_STORED_CONFIG_BYTES:
        raise ItemTooLargeError(
            f"executor_config is {size} bytes as JSON, more than the {MAX_STORED_CONFIG_BYTES} the state "
            "item can hold (DynamoDB items are limited to 400 KB): shrink it"
        )
    return text


def try_key_of(key: str) -> str | None:
    """The try a submission's key belongs to (None for a key that is not one: never raises)."""
    try:
        return TaskKey.parse(key).try_key
    except InvalidTaskKeyError:
        return None


class _Update:
    """Builds an UpdateExpression with named placeholders."""

    def __init__(self) -> None:
        self.sets: list[str] = []
        self.removes: list[str] = []
        self.names: dict[str, str] = {}
        self.values: dict[str, Any] = {}

    def name(self, attr: str) -> str:
        placeholder = f"#{attr}"
        self.names[placeholder] = attr
        return placeholder

    def value(self, label: str, value: Any) -> str:
        placeholder = f":{label}"
        self.values[placeholder] = _ser.serialize(value)
        return placeholder

    def set(self, attr: str, value: Any) -> None:
        if value is None:
            self.removes.append(self.name(attr))
        else:
            self.sets.append(f"{self.name(attr)} = {self.value('v_' + attr, value)}")

    def copy(self, attr: str, source: str) -> None:
        """Set ``attr`` to ``source`` as it was before this update (DynamoDB reads the old item)."""
        self.sets.append(f"{self.name(attr)} = {self.name(source)}")

    def set_if_missing(self, attr: str, value: Any) -> None:
        n = self.name(attr)
        self.sets.append(f"{n} = if_not_exists({n}, {self.value('v_' + attr, value)})")

    def append(self, attr: str, entries: list[Any]) -> None:
        """Add ``entries`` at the end of the list ``attr`` (created if missing)."""
        n = self.name(attr)
        empty = self.value("empty_list", [])
        self.sets.append(
            f"{n} = list_append(if_not_exists({n}, {empty}), {self.value('v_' + attr, entries)})"
        )

    def expression(self) -> str:
        parts = []
        if self.sets:
            parts.append("SET " + ", ".join(self.sets))
        if self.removes:
            parts.append("REMOVE " + ", ".join(self.removes))
        return " ".join(parts)


def _add_placement(update: _Update, placement: AttemptPlacement | None) -> None:
    if placement is not None:
        update.append("placements", [placement.to_item()])


def _set_log(update: _Update, log: TaskLogLocation | None) -> None:
    """Set (or, with None, remove) where the item's task logs."""
    update.set("log_group", log.group if log else None)
    update.set("log_stream", log.stream if log else None)
    update.set("log_region", log.region if log else None)


@dataclass(frozen=True)
class NotApplied:
    """A conditional write whose condition did not hold, with the item it was checked against."""

    #: None: there is no item.
    current: TaskStateItem | None


class StateTable(StateTableReads):
    """Reads (StateTableReads) and conditional writes of task items in the state table."""

    def __init__(self, client: DynamoDBClient, table_name: str, retention_days: int = 7) -> None:
        self._client = client
        read_items_off_the_wire(client)
        self.table_name = table_name
        self._retention_s = retention_days * 86400

    # -- writes --------------------------------------------------------------------------------

    def _stamp(self, update: _Update, *, terminal: bool | None) -> int:
        """Set ``updated_at``; start the TTL clock only once the try is over.

        An item in flight has no ``expires_at``: a task running longer than the retention must
        not lose its item (the reconciler ends every stuck item, so none lives forever).
        ``terminal=None`` leaves the TTL as it is.
        """
        now = now_ms()
        update.set("updated_at", now)
        if terminal is True:
            update.set("expires_at", int(time.time()) + self._retention_s)
        elif terminal is False:
            update.set("expires_at", None)
        return now

    def _update(
        self, key: str, update: _Update, condition: str, *, create: bool = False
    ) -> TaskStateItem | None:
        """Apply ``update`` if ``condition`` holds; the new item, or None when it did not."""
        if not create:
            condition = f"attribute_exists(#key) AND ({condition})"
            update.names["#key"] = "key"
        try:
            response = self._client.update_item(
                TableName=self.table_name,
                Key={"key": {"S": key}},
                UpdateExpression=update.expression(),
                ConditionExpression=condition,
                ExpressionAttributeNames=update.names,
                ExpressionAttributeValues=update.values,
                ReturnValues="ALL_NEW",
            )
        except ClientError as exc:
            if _is_conditional_failure(exc):
                return None
            if _is_item_too_large(exc):
                raise ItemTooLargeError(str(exc.response.get("Error", {}).get("Message", ""))) from exc
            raise
        return item_from_dynamodb(response["Attributes"])

    def create_queued(
        self,
        key: str,
        owner: str,
        attempt: int,
        queue: str | None,
        executor_config: dict[str, Any],
        *,
        token_expires_at: int | None = None,
        submitted_at: int | None = None,
        profile: str | None = None,
    ) -> TaskStateItem | None:
        """Create the item of a new submission; None if it exists already.

        Raises ItemTooLargeError (before writing) when the executor_config cannot be stored.
        """
        config = stored_config(executor_config)
        u = _Update()
        u.set("owner", owner)
        u.set("executor_config", config)
        u.set("active_shard", active_shard(key))
        u.set("state", TaskState.QUEUED.value)
        u.set("attempt", attempt)
        u.set("queue", queue)
        u.set("token_expires_at", token_expires_at)
        u.set("submitted_at", submitted_at)
        u.set("profile", profile)
        u.set("try_key", try_key_of(key))
        now = self._stamp(u, terminal=False)
        u.set("created_at", now)
        u.names["#key"] = "key"
        return self._update(key, u, "attribute_not_exists(#key)", create=True)

    def claim_awaiting(
        self,
        key: str,
        queue: str | None,
        executor_config: dict[str, Any],
        *,
        token_expires_at: int | None = None,
        submitted_at: int | None = None,
        profile: str | None = None,
    ) -> TaskStateItem | None:
        """Fill in an adopted submission's item from its run request, which has now arrived."""
        u = _Update()
        u.set("executor_config", stored_config(executor_config))
        u.set("queue", queue)
        u.set("profile", profile)
        u.set("token_expires_at", token_expires_at)
        u.set("submitted_at", submitted_at)
        u.set("awaiting_request", None)
        self._stamp(u, terminal=False)
        u.values.update({":q": _ser.serialize(TaskState.QUEUED.value), ":t": _ser.serialize(True)})
        return self._update(key, u, f"{u.name('state')} = :q AND #awaiting_request = :t")

    def claim_for_adoption(self, key: str, owner: str) -> TaskStateItem | None:
        """Adopt a submission whose run request has not made an item yet: a QUEUED item of ``owner``.

        The run request, when it arrives, starts the task under the adopter; if it never does,
        the reconciler fails the try once it is overdue, and Airflow's own retry takes over.
        None if an item exists already.
        """
        u = _Update()
        u.set("owner", owner)
        u.set("state", TaskState.QUEUED.value)
        u.set("attempt", 1)
        u.set("awaiting_request", True)
        u.set("active_shard", active_shard(key))
        u.set("try_key", try_key_of(key))
        now = self._stamp(u, terminal=False)
        u.set("created_at", now)
        u.names["#key"] = "key"
        return self._update(key, u, "attribute_not_exists(#key)", create=True)

    def advance_queued_attempt(self, key: str, attempt: int) -> TaskStateItem | None:
        """Raise a QUEUED item's attempt to ``attempt`` (a re-enqueued start retry arrived first)."""
        u = _Update()
        u.set("attempt", attempt)
        self._stamp(u, terminal=False)
        u.values.update({":q": _ser.serialize(TaskState.QUEUED.value), ":a": _ser.serialize(attempt)})
        return self._update(key, u, f"{u.name('state')} = :q AND #attempt < :a")

    def touch_queued(self, key: str, attempt: int) -> TaskStateItem | None:
        """Show that a QUEUED try is still being worked on (ECS throttled it), so it is not 'lost'."""
        u = _Update()
        self._stamp(u, terminal=False)
        u.values.update({":q": _ser.serialize(TaskState.QUEUED.value), ":a": _ser.serialize(attempt)})
        return self._update(key, u, f"{u.name('state')} = :q AND {u.name('attempt')} = :a")

    def record_started(
        self,
        key: str,
        attempt: int,
        task_arn: str,
        log: TaskLogLocation | None = None,
        placement: AttemptPlacement | None = None,
    ) -> TaskStateItem | None:
        """RunTask accepted attempt ``attempt``: STARTING, unless events already moved it on.

        ``log``: where the task's Airflow container logs; ``placement``: where the attempt was
        placed (both written in the same call).
        """
        u = _Update()
        u.set("state", TaskState.STARTING.value)
        u.set("task_arn", task_arn)
        u.set("reason", None)
        _set_log(u, log)
        _add_placement(u, placement)
        self._stamp(u, terminal=False)
        u.values.update({":q": _ser.serialize(TaskState.QUEUED.value), ":a": _ser.serialize(attempt)})
        started = self._update(key, u, f"{u.name('state')} = :q AND {u.name('attempt')} = :a")
        if started is not None:
            return started
        # An event got there first (STARTING or RUNNING): only fill in the ARN. None when the
        # item moved on (another attempt, another task, or over): the caller stops the task.
        u = _Update()
        u.set_if_missing("task_arn", task_arn)
        if log is not None:
            _set_log(u, log)
        _add_placement(u, placement)
        self._stamp(u, terminal=None)
        u.values.update(
            {
                ":a": _ser.serialize(attempt),
                ":arn": _ser.serialize(task_arn),
                ":active0": _ser.serialize(_ACTIVE[0]),
                ":active1": _ser.serialize(_ACTIVE[1]),
                ":active2": _ser.serialize(_ACTIVE[2]),
            }
        )
        arn_n = u.name("task_arn")
        return self._update(
            key,
            u,
            f"{u.name('attempt')} = :a AND {u.name('state')} IN (:active0, :active1, :active2)"
            f" AND (attribute_not_exists({arn_n}) OR {arn_n} = :arn)",
        )

    def schedule_retry(
        self,
        key: str,
        from_attempt: int,
        reason: str,
        changes: dict[str, Any] | None = None,
        *,
        failed_task_arn: str | None = None,
        placement: AttemptPlacement | None = None,
        next_on_fallback: bool = False,
    ) -> TaskStateItem | None:
        """Back to QUEUED with attempt + 1, forgetting the failed ECS task.

        Only if the failure is the item's: without ``failed_task_arn`` (RunTask started nothing)
        the item must still be QUEUED with no task, so a concurrent invocation's recorded start
        is never undone; with it, the item's task (if it has one yet) must be that task.
        ``placement``: the failed attempt's, when RunTask started nothing (a started task's was
        recorded with its start); ``next_on_fallback``: the next attempt runs on the queue
        profile's fallback capacity, whichever message starts it.
        """
        u = _Update()
        _add_placement(u, placement)
        u.set("attempt_on_fallback", True if next_on_fallback else None)
        u.set("state", TaskState.QUEUED.value)
        u.set("attempt", from_attempt + 1)
        u.set("reason", reason)
        for attr in ("task_arn", "ecs_version", "ecs_last_status", "exit_code", *LOG_ATTRIBUTES):
            u.set(attr, None)
        for attr in ("stop_code", "stopped_reason"):
            u.set(attr, (changes or {}).get(attr))
        self._stamp(u, terminal=False)
        u.values.update(
            {
                ":a": _ser.serialize(from_attempt),
                ":active0": _ser.serialize(_ACTIVE[0]),
                ":active1": _ser.serialize(_ACTIVE[1]),
                ":active2": _ser.serialize(_ACTIVE[2]),
            }
        )
        condition = "#attempt = :a AND #state IN (:active0, :active1, :active2)"
        if failed_task_arn is None:
            u.values[":q"] = _ser.serialize(TaskState.QUEUED.value)
            condition += " AND #state = :q AND attribute_not_exists(#task_arn)"
        else:
            u.values[":arn"] = _ser.serialize(failed_task_arn)
            condition += " AND (attribute_not_exists(#task_arn) OR #task_arn = :arn)"
        return self._update(key, u, condition)

    def apply_progress(
        self,
        key: str,
        attempt: int,
        state: TaskState | None,
        changes: dict[str, Any],
        *,
        exit_code: int | None = None,
        reason: str | None = None,
        from_states: Collection[TaskState] = ACTIVE_STATES,
        unless_stop_requested: bool = False,
    ) -> TaskStateItem | NotApplied:
        """Apply an ECS event: only if it is for this attempt and task, newer, and not final.

        ``state=None`` keeps the item's state. ``from_states`` and ``unless_stop_requested``
        check what a caller that did not read the item presumed of it. When the condition does
        not hold, the item as DynamoDB checked it comes back in the same call (no read).
        """
        u = _Update()
        u.copy("previous_state", "state")
        if state is not None:
            u.set("state", state.value)
        for attr, value in changes.items():
            u.set(attr, value)
        if exit_code is not None:
            u.set("exit_code", exit_code)
        if reason is not None:
            u.set("reason", reason)
        terminal = state is not None and state.is_terminal
        if terminal:
            u.set("active_shard", None)  # leaves the reconciler's sparse index
        self._stamp(u, terminal=terminal)
        states = sorted(s.value for s in from_states)
        u.values.update(
            {
                ":a": _ser.serialize(attempt),
                ":ver": _ser.serialize(changes["ecs_version"]),
                ":arn": _ser.serialize(changes["task_arn"]),
                **{f":from{i}": _ser.serialize(value) for i, value in enumerate(states)},
            }
        )
        attempt_n, state_n = u.name("attempt"), u.name("state")
        version_n, arn_n = u.name("ecs_version"), u.name("task_arn")
        condition = (
            f"{attempt_n} = :a AND {state_n} IN ({', '.join(f':from{i}' for i in range(len(states)))})"
            f" AND (attribute_not_exists({version_n}) OR {version_n} < :ver)"
            f" AND (attribute_not_exists({arn_n}) OR {arn_n} = :arn)"
        )
        if unless_stop_requested:
            stop_n = u.name("stop_requested")
            u.values[":stop"] = _ser.serialize(True)
            condition += f" AND (attribute_not_exists({stop_n}) OR {stop_n} <> :stop)"
        return self._update_or_current(key, u, condition)

    def _update_or_current(self, key: str, update: _Update, condition: str) -> TaskStateItem | NotApplied:
        """Apply ``update`` to an existing item if ``condition`` holds; else the item as it was checked."""
        update.names["#key"] = "key"
        try:
            response = self._client.update_item(
                TableName=self.table_name,
                Key={"key": {"S": key}},
                UpdateExpression=update.expression(),
                ConditionExpression=f"attribute_exists(#key) AND ({condition})",
                ExpressionAttributeNames=update.names,
                ExpressionAttributeValues=update.values,
                ReturnValues="ALL_NEW",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as exc:
            if not _is_conditional_failure(exc):
                raise
            raw: dict[str, Any] | None = exc.response.get("Item")  # type: ignore[assignment]
            if not raw:
                return NotApplied(None)
            try:
                return NotApplied(item_from_dynamodb(raw))
            except (ValidationError, ValueError, TypeError, RecursionError) as bad:
                raise UnreadableItemError(key, bad) from None
        return item_from_dynamodb(response["Attributes"])

    def mark_failed(
        self,
        key: str,
        owner: str,
        reason: str,
        *,
        attempt: int | None = None,
        create: bool = True,
        start_failed: bool = False,
        changes: dict[str, Any] | None = None,
        only_if_queued: bool = False,
        expect_updated_at: int | None = None,
        placement: AttemptPlacement | None = None,
    ) -> TaskStateItem | None:
        """FAILED with a readable reason, unless already final; creates the item if asked.

        ``only_if_queued`` (and ``expect_updated_at``) guard decisions made from an earlier read:
        the item must still be QUEUED without a task (and unchanged since that read).
        A failed start stays in the active index until its alert is out (``mark_alerted``), so
        the reconciler re-sends an alert whose first attempt failed.
        """
        u = _Update()
        u.set("state", TaskState.FAILED.value)
        u.set("reason", reason)
        _add_placement(u, placement)
        for attr, value in (changes or {}).items():
            u.set(attr, value)
        if start_failed:
            u.set("start_failed", True)
            u.set("active_shard", active_shard(key))
        else:
            u.set("active_shard", None)
        u.set_if_missing("owner", owner)
        if attempt is not None:
            u.set_if_missing("attempt", attempt)
        now = self._stamp(u, terminal=True)
        u.set_if_missing("created_at", now)
        if create and (try_key := try_key_of(key)):
            u.set_if_missing("try_key", try_key)
        u.names["#key"] = "key"
        u.values.update(
            {":s": _ser.serialize(TaskState.SUCCESS.value), ":f": _ser.serialize(TaskState.FAILED.value)}
        )
        condition = "NOT #state IN (:s, :f)"
        if only_if_queued:
            u.values[":q"] = _ser.serialize(TaskState.QUEUED.value)
            condition = f"#state = :q AND attribute_not_exists({u.name('task_arn')})"
            if attempt is not None:
                # Still at the attempt the decision was made for: a concurrent invocation that
                # scheduled the next one meanwhile is not undone.
                u.values[":decided_at"] = _ser.serialize(attempt)
                condition += f" AND {u.name('attempt')} = :decided_at"
            u.values.pop(":s")
            u.values.pop(":f")
        if expect_updated_at is not None:
            u.values[":seen"] = _ser.serialize(expect_updated_at)
            condition = f"({condition}) AND {u.name('updated_at')} = :seen"
        if create:
            condition = f"attribute_not_exists(#key) OR ({condition})"
        return self._update(key, u, condition, create=create)

    def mark_alerted(self, key: str) -> None:
        """Record that the failed-start event of this item has been put; it leaves the active index."""
        u = _Update()
        u.set("alerted", True)
        u.set("active_shard", None)
        self._stamp(u, terminal=None)
        u.names["#key"] = "key"
        self._update(key, u, "attribute_exists(#key)", create=True)

    def request_stop(self, key: str, owner: str) -> TaskStateItem | None:
        """Mark a submission as to be stopped; a run request arriving later will be dropped.

        Only its owner may stop it: None if it is over, or owned by another scheduler.
        """
        u = _Update()
        u.set("stop_requested", True)
        u.set_if_missing("owner", owner)
        u.set_if_missing("state", TaskState.QUEUED.value)
        u.set_if_missing("attempt", 1)
        u.set_if_missing("active_shard", active_shard(key))
        now = self._stamp(u, terminal=False)
        u.set_if_missing("created_at", now)
        if try_key := try_key_of(key):
            u.set_if_missing("try_key", try_key)
        u.names["#key"] = "key"
        u.values.update(
            {
                ":s": _ser.serialize(TaskState.SUCCESS.value),
                ":f": _ser.serialize(TaskState.FAILED.value),
                ":o": _ser.serialize(owner),
            }
        )
        return self._update(
            key,
            u,
            f"attribute_not_exists(#key) OR ({u.name('owner')} = :o AND NOT {u.name('state')} IN (:s, :f))",
            create=True,
        )

    def transfer_owner(self, key: str, new_owner: str) -> TaskStateItem | None:
        """Adopt a submission: move its item to ``new_owner``, whatever its state.

        A try that finished after the old scheduler's last sync is adopted too, so that the
        adopter reports how it ended instead of Airflow resetting (and re-running) it. The new
        ``updated_at`` puts it in the adopter's next incremental read. None if there is no item.
        Made by ``run_task`` for a scheduler's ``adopt`` request (schedulers write no items).
        """
        u = _Update()
        u.set("owner", new_owner)
        self._stamp(u, terminal=None)
        u.names["#key"] = "key"
        return self._update(key, u, "attribute_exists(#key)")

    # -- the readiness report (not a task item: no index attribute, no reader of items sees it) --

    def record_readiness(self, report: ReadinessReport) -> None:
        """Keep the latest readiness check where the executor's health check reads it."""
        u = _Update()
        u.set("control_plane", report.control_plane)
        u.set("checked_at", report.checked_at)
        u.set("problems", [p.model_dump() for p in report.problems])
        u.set("fallback_launch_type", report.fallback_launch_type)
        self._client.update_item(
            TableName=self.table_name,
            Key={"key": {"S": READINESS_KEY}},
            UpdateExpression=u.expression(),
            ExpressionAttributeNames=u.names,
            ExpressionAttributeValues=u.values,
        )
