"""``ecscp explain KEY_OR_TASK``: one try's item, its ECS task, its history, and why it is there.

A task ARN or id is turned into its key through ECS itself (DescribeTasks: the Airflow
container's ``ECSCP_TASK_KEY``), so no table scan is needed. What the history can show is what
the item records: the current start attempt and its ECS task (a start retry forgets the failed
task but keeps its reason), and, through the try index, every other submission of the same try.
:func:`why` is the plain-language reading of an item and its task: pure, over the item's state and
the domain's own readings of it (``TaskStateItem.outcome()``, ``EcsTask``).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError
from rich.console import Console
from rich.table import Table

from ecs_control_plane.contract import InvalidTaskKeyError, TaskKey, TaskState, TaskStateItem, now_ms
from ecs_control_plane.ecs_events import EcsTask
from ecscp.local.timestamps import iso_millis

from .stack import ControlPlaneStack, OperationsError
from .status import duration, task_id

_TASK_ARN = re.compile(r"arn:aws[a-z-]*:ecs:[a-z0-9-]+:\d{12}:task/[^/]+/[A-Za-z0-9-]+")
_TASK_ID = re.compile(r"[A-Za-z0-9-]{1,64}")


@dataclass(frozen=True)
class Target:
    """What the operator named: a task key, or an ECS task (ARN or id)."""

    key: str | None = None
    task: str | None = None


def parse_target(text: str) -> Target:
    """A task key as Airflow and the table print it, an ECS task ARN, or an ECS task id."""
    value = text.strip()
    if value.startswith(("ti|", "cb|")):
        try:
            canonical = TaskKey.parse(value).encode()
        except InvalidTaskKeyError as exc:
            raise OperationsError(str(exc)) from None
        return Target(key=canonical)
    if _TASK_ARN.fullmatch(value) or _TASK_ID.fullmatch(value):
        return Target(task=value)
    raise OperationsError(
        f"{text!r} is neither a task key (ti|dag|task|run|map_index|try|submission) nor an ECS task ARN or id"
    )


@dataclass(frozen=True)
class Timeouts:
    """The stack parameters that say when the reconciler steps in (their template defaults)."""

    queued_timeout_s: int = 900
    reconcile_stale_s: int = 300

    @classmethod
    def of(cls, parameters: dict[str, str]) -> Timeouts:
        return cls(
            int(parameters.get("QueuedTimeoutSeconds") or cls.queued_timeout_s),
            int(parameters.get("ReconcileStaleSeconds") or cls.reconcile_stale_s),
        )


def _lag(task: EcsTask, timeouts: Timeouts) -> str:
    return (
        f"ECS says its task is STOPPED ({task.stop_code or 'no stop code'}), but that change is not "
        "applied yet: its event is late, was lost, or failed in task_state (see the task-event "
        f"dead-letter queue). The reconciler applies it once the item is {timeouts.reconcile_stale_s}s "
        "unchanged."
    )


def why(item: TaskStateItem | None, task: EcsTask | None, *, now: int, timeouts: Timeouts) -> str:
    """Why the try is in its state and what happens next, in plain language.

    ``task`` is ECS's view of the item's task (DescribeTasks), None when it has none or ECS no
    longer knows it (ECS forgets stopped tasks after about an hour).
    """
    if item is None:
        return (
            "There is no item for this key: its run request has not been handled yet (it is on the "
            "run-request queue, or in its dead-letter queue), or the item expired ItemRetentionDays "
            "after the try ended."
        )
    if item.state is TaskState.SUCCESS:
        return "It succeeded: its Airflow container exited with code 0."
    if item.state is TaskState.FAILED:
        if item.start_failed:
            alert = "the failed-start alert was sent" if item.alerted else "its alert is not sent yet"
            return f"It never started, after start attempt {item.attempt}: {item.outcome()}. ({alert})"
        stopped = " A stop was requested (Airflow revoked it or timed it out)." if item.stop_requested else ""
        return f"It failed: {item.outcome()}.{stopped} Airflow's own retries take over from here."
    unchanged = now - item.updated_at
    if item.state is TaskState.QUEUED:
        if item.token_expires_at is not None and item.token_expires_at <= now:
            return (
                f"Its workload token expired {duration(now - item.token_expires_at)} ago "
                "([scheduler] task_queued_timeout): no start can be made any more. The reconciler "
                "fails it on its next run and Airflow retries with a fresh token."
            )
        if item.awaiting_request:
            return (
                f"A scheduler ({item.owner}) adopted it before its run request arrived. The request "
                f"starts it when it arrives; if it never does, the reconciler fails the try "
                f"{timeouts.queued_timeout_s}s after it was queued."
            )
        if unchanged > timeouts.queued_timeout_s * 1000:
            return (
                f"It has waited {duration(unchanged)} with no ECS task, more than QueuedTimeoutSeconds "
                f"({timeouts.queued_timeout_s}s): its run request was lost or never handled (look in the "
                "run-request dead-letter queue, and run `ecscp doctor`). The reconciler fails it."
            )
        if item.attempt > 1:
            return (
                f"Start attempt {item.attempt - 1} failed ({item.reason or 'no reason recorded'}); "
                f"attempt {item.attempt} waits for its retry backoff on the run-request queue."
            )
        last = f" Last: {item.reason}." if item.reason else ""
        return (
            "It waits for run_task to start it: its run request is on the run-request queue "
            f"(a start ECS throttled waits there too).{last}"
        )
    if task is None:
        if item.task_arn is None:
            return f"It is {item.state.value} but records no ECS task yet; run_task is recording its start."
        return (
            f"ECS no longer knows its task {task_id(item.task_arn)}: its events were lost. The reconciler "
            f"fails the try as lost once the item is {timeouts.reconcile_stale_s}s unchanged."
        )
    if task.last_status == "STOPPED":
        return _lag(task, timeouts)
    if item.stop_requested:
        return f"A stop was requested; ECS has not stopped the task yet (it is {task.last_status})."
    if item.state is TaskState.STARTING:
        return (
            f"ECS accepted its RunTask; the task is {task.last_status} (placed, pulling its image, "
            "or waiting for capacity)."
        )
    return f"Its Airflow container is running (ECS: {task.last_status})."


@dataclass
class Explanation:
    """What ``explain`` found for one try."""

    key: str
    item: TaskStateItem | None
    #: DescribeTasks of the item's task, as ECS returned it (None: no task, or ECS forgot it).
    task: dict[str, Any] | None
    #: Every submission of the same try (oldest first), the explained one included.
    submissions: list[TaskStateItem] = field(default_factory=list)
    reason: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "item": self.item.model_dump(mode="json") if self.item else None,
            "ecs_task": json.loads(json.dumps(self.task, default=str)) if self.task else None,
            "submissions": [
                {"key": s.key, "state": s.state.value, "attempt": s.attempt, "created_at": s.created_at}
                for s in self.submissions
            ],
            "why": self.reason,
        }


def _cluster_of(arn_or_name: str, *, cluster_arn: bool = False) -> str | None:
    """The cluster name of a task ARN (None for a bare task id), or of a cluster ARN or name."""
    if cluster_arn:
        return arn_or_name.rsplit("/", 1)[-1]
    parts = arn_or_name.split(":", 5)[-1].split("/") if arn_or_name.startswith("arn:") else []
    return parts[1] if len(parts) == 3 else None


def _describe(stack: ControlPlaneStack, task: str) -> dict[str, Any] | None:
    try:
        response = stack.client("ecs").describe_tasks(cluster=stack.cluster, tasks=[task])
    except (ClientError, BotoCoreError) as exc:
        raise OperationsError(f"DescribeTasks of {task} in cluster {stack.cluster} failed: {exc}") from None
    tasks: list[dict[str, Any]] = response.get("tasks", [])
    return tasks[0] if tasks else None


def explain(stack: ControlPlaneStack, target: Target) -> Explanation:
    """Gather the item, its ECS task and the try's other submissions, and read them."""
    described: dict[str, Any] | None = None
    key = target.key
    if target.task is not None:
        other = _cluster_of(target.task)
        if other is not None and stack.cluster and other != _cluster_of(stack.cluster, cluster_arn=True):
            raise OperationsError(
                f"task {target.task} is of cluster {other}, and stack {stack.name} runs its tasks in "
                f"cluster {stack.cluster}: explain it with the --stack of that cluster's control plane"
            )
        described = _describe(stack, target.task)
        if described is None:
            raise OperationsError(
                f"ECS does not know task {target.task} in cluster {stack.cluster} "
                "(it forgets stopped tasks after about an hour): explain its task key instead"
            )
        key = EcsTask.model_validate(described).task_key(stack.container_name)
        if key is None:
            raise OperationsError(
                f"task {target.task} carries no ECSCP_TASK_KEY: this control plane did not start it"
            )
    assert key is not None
    table = stack.state_table()
    item = table.get(key)
    current_arn = item.task_arn if item is not None else None
    if current_arn and (described is None or described.get("taskArn") != current_arn):
        described = _describe(stack, current_arn)
    submissions: list[TaskStateItem] = []
    if not key.startswith("cb|"):
        keys = table.submissions_of(TaskKey.parse(key).try_key)
        by_key = {i.key: i for i in table.batch_get(keys)}
        submissions = [by_key[k] for k in keys if k in by_key]
    is_current = described is not None and current_arn is not None and described.get("taskArn") == current_arn
    task = EcsTask.model_validate(described) if described is not None and is_current else None
    reason = why(item, task, now=now_ms(), timeouts=Timeouts.of(stack.parameters))
    return Explanation(key, item, described, submissions, reason)


_ITEM_FIELDS = (
    "owner", "state", "attempt", "task_arn", "ecs_last_status", "ecs_version", "exit_code", "stop_code",
    "stopped_reason", "reason", "stop_requested", "start_failed", "alerted", "awaiting_request", "queue",
    "profile", "log_group", "log_stream",
)  # fmt: skip
_TIMES = ("created_at", "updated_at")


def render(explanation: Explanation, console: Console) -> None:
    console.print(f"[bold]{explanation.key}[/]")
    item = explanation.item
    if item is not None:
        table = Table(show_header=False, show_edge=False, pad_edge=False)
        values = item.model_dump(mode="json")  # the state as FAILED, not TaskState.FAILED
        for name in _ITEM_FIELDS:
            if values.get(name) not in (None, False, ""):
                table.add_row(name, str(values[name]))
        for name in _TIMES:
            if values.get(name):
                table.add_row(name, iso_millis(values[name] / 1000) or "")
        if item.token_expires_at:
            table.add_row("token_expires_at", iso_millis(item.token_expires_at / 1000) or "")
        if item.executor_config:
            table.add_row("executor_config", ", ".join(sorted(item.executor_config)))
        console.print(table)
        if item.placements:
            console.print("\n[bold]Start attempts[/] (where each was placed)")
            for placement in item.placements:
                console.print(f"  {placement.describe()}", highlight=False, markup=False)
    task = explanation.task
    if task is not None:
        console.print(f"\n[bold]ECS task[/] {task.get('taskArn')}")
        console.print(
            f"  {task.get('lastStatus')} (desired {task.get('desiredStatus')})"
            f"  stop code {task.get('stopCode') or '-'}  {task.get('stoppedReason') or ''}",
            highlight=False,
        )
        placed = task.get("capacityProviderName") or (
            task.get("launchType") and f"launch type {task['launchType']}"
        )
        if placed:
            console.print(f"  placed on {placed}", highlight=False, markup=False)
        for container in task.get("containers", []):
            exit_code = container.get("exitCode")
            console.print(
                f"  container {container.get('name')}: {container.get('lastStatus')}"
                f"  exit code {'-' if exit_code is None else exit_code}  {container.get('reason') or ''}",
                highlight=False,
            )
    if len(explanation.submissions) > 1:
        console.print("\n[bold]Submissions of this try[/] (oldest first)")
        for s in explanation.submissions:
            marker = "→" if s.key == explanation.key else " "
            console.print(f" {marker} {s.key}  {s.state.value}  attempt {s.attempt}", highlight=False)
    console.print(f"\n[bold]Why[/]: {explanation.reason}")
