"""Typed specs that cross a process boundary of the local stack.

The stack writes each one as JSON (``model_dump_json()``) and the process it starts reads it back
(``model_validate_json()``), so both sides share one definition and a field that one side does
not know is an error, not a silently ignored key.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

#: Lambda's defaults for asynchronous invocations (EventBridge, schedules).
DEFAULT_ASYNC_RETRIES = 2
DEFAULT_ASYNC_MAX_EVENT_AGE_SECONDS = 21600


class _Spec(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class SqsSource(_Spec):
    """An SQS event source mapping of one function."""

    uuid: str
    queue_arn: str
    queue_url: str
    batch_size: int
    report_batch_item_failures: bool
    maximum_batching_window_seconds: int = 0


class RuleSource(_Spec):
    """An EventBridge rule target that invokes one function (through its delivery queue)."""

    rule_name: str
    rule_arn: str
    target_id: str
    delivery_queue_url: str


class ScheduleSource(_Spec):
    """A scheduled rule (``rate(...)`` or ``cron(...)``) that invokes one function."""

    rule_name: str
    rule_arn: str
    #: The rule's target as ListTargetsByRule returns it (its input settings shape the event).
    target: dict[str, Any]
    expression: str
    delivery_queue_url: str


class FunctionSpec(_Spec):
    """One deployed function and everything its local worker needs to run it."""

    logical_id: str
    name: str
    arn: str
    handler: str
    code_dir: Path
    layer_dirs: tuple[Path, ...]
    environment: dict[str, str]
    memory_mb: int
    timeout_seconds: int
    #: Where asynchronous invocations (EventBridge, schedules) go after their retries failed.
    dead_letter_arn: str | None = None
    #: Retries of a failed asynchronous invocation (Lambda's default is 2).
    async_max_retries: int = DEFAULT_ASYNC_RETRIES
    #: Age after which an asynchronous event is dropped instead of retried (default 6 hours).
    async_max_event_age_seconds: int = DEFAULT_ASYNC_MAX_EVENT_AGE_SECONDS
    sqs_sources: tuple[SqsSource, ...] = ()
    rule_sources: tuple[RuleSource, ...] = ()
    schedules: tuple[ScheduleSource, ...] = ()
    #: Which of the function's concurrent workers reads this spec (set per worker by the stack);
    #: only the first one, 0, runs the schedules.
    instance: int = 0
    #: Touched by the worker once its handler is loaded (set per worker by the stack).
    ready_file: Path | None = None
