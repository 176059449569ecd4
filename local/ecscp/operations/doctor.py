"""``ecscp doctor``: each part of a deployed stack checked, each failure with its fix.

Every check is a pure function of :class:`DoctorFacts` (gathered by ``doctor_facts.py``) that
gives one :class:`Check`: OK, WARN (works, but look) or FAIL (tasks will not run, finish or
alert as they should), with a one-line fix. A fact that could not be read (AccessDenied, say)
makes its check a WARN naming the error, never an OK.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from rich.console import Console

from ecs_control_plane.contract import now_ms
from ecs_control_plane.readiness import ReadinessReport
from ecs_control_plane.run_task_call import check_run_task_shape
from ecs_control_plane.settings import (
    ENV_CLUSTER,
    ENV_CONTAINER_NAME,
    ENV_TASK_DEFINITION,
    ControlPlaneSettings,
    SettingsError,
)

from .stack import (
    FAILED_START_RULE,
    RECONCILE_SCHEDULE_RULE,
    REQUIRED_OUTPUTS,
    TASK_STATE_RULE,
)
from .status import duration

#: The DLQ outputs, and what redrives each.
DEAD_LETTER_QUEUES = {
    "DeadLetterQueueUrl": ("run requests", "ecscp redrive"),
    "TaskEventDeadLetterQueueUrl": ("ECS task events", "ecscp redrive --task-events"),
}
#: What breaks when each rule is off.
RULES = {
    TASK_STATE_RULE: "ECS task state changes reach task_state; off, tries move only as the reconciler runs",
    FAILED_START_RULE: "failed starts alert through SNS; off, nobody is told",
    RECONCILE_SCHEDULE_RULE: "the reconciler runs on schedule; off, lost events and requests stay lost",
}


class Verdict(str, Enum):
    OK = "OK"
    WARN = "WARN"
    FAIL = "FAIL"


@dataclass(frozen=True)
class Check:
    """One named check's result."""

    name: str
    verdict: Verdict
    detail: str
    fix: str = ""

    def to_json(self) -> dict[str, str]:
        return {"check": self.name, "verdict": self.verdict.value, "detail": self.detail, "fix": self.fix}


@dataclass
class DoctorFacts:
    """What the adapter read of the stack; None where there is nothing (or it could not be read)."""

    stack_name: str
    stack_status: str
    status_reason: str = ""
    region: str = ""
    #: The local stack's endpoint (the fixes' aws commands need it); None on AWS.
    endpoint_url: str | None = None
    outputs: dict[str, str] = field(default_factory=dict)
    #: Rule logical id -> (rule name, its State); name None when the stack has no such rule.
    rules: dict[str, tuple[str | None, str | None]] = field(default_factory=dict)
    mapping_uuid: str | None = None
    mapping_state: str | None = None
    #: The run_task function's name and environment (what the functions actually use).
    function_name: str | None = None
    function_env: dict[str, str] | None = None
    reconciler_name: str | None = None
    cluster: dict[str, Any] | None = None
    task_definition: dict[str, Any] | None = None
    readiness: ReadinessReport | None = None
    #: DLQ output name -> messages on it (visible + in flight).
    dlq_depths: dict[str, int] = field(default_factory=dict)
    #: The alarms that notify the alert topic: (name, state, description).
    alarms: list[tuple[str, str, str]] | None = None
    #: Roles, users and groups the scheduler policy is attached to.
    policy_entities: list[str] | None = None
    scheduler_role: str | None = None
    #: How often the reconciler runs (the stack's ReconcileSchedule as a rate); None for a cron.
    reconcile_every_ms: int | None = None
    #: Fact name -> why it could not be read.
    errors: dict[str, str] = field(default_factory=dict)
    #: The facts whose read AWS answered "no such resource" (their error is in ``errors``).
    missing: set[str] = field(default_factory=set)
    #: When the facts were read (epoch ms).
    now: int = field(default_factory=now_ms)


def _unread(name: str, facts: DoctorFacts, fact: str) -> Check | None:
    """The check of a fact that could not be read: FAIL if it is gone, WARN if the read was refused."""
    if fact in facts.missing:
        return Check(
            name,
            Verdict.FAIL,
            f"it does not exist: {facts.errors[fact]}",
            "it was deleted outside CloudFormation, which an unchanged deploy does not recreate: "
            f"see aws cloudformation detect-stack-drift --stack-name {facts.stack_name}, and recreate it "
            "with its old name (or sam delete, then sam deploy, with nothing in flight)",
        )
    if fact in facts.errors:
        return Check(
            name, Verdict.WARN, f"could not be checked: {facts.errors[fact]}", "grant the read named"
        )
    return None


def _stack_options(facts: DoctorFacts) -> str:
    """The options that give another ecscp command this stack."""
    if facts.endpoint_url:
        return "--local"
    return (
        f"--stack {facts.stack_name} --region {facts.region}"
        if facts.region
        else f"--stack {facts.stack_name}"
    )


_CONTINUE_ROLLBACK = "aws cloudformation continue-update-rollback --stack-name {name}, then deploy again"
#: Stack statuses from which a deploy cannot proceed, and what to do first.
_STACK_STUCK = {
    # A create that failed and rolled back leaves a stack that can only be deleted.
    "ROLLBACK_IN_PROGRESS": "when it is ROLLBACK_COMPLETE: sam delete, then sam deploy",
    "ROLLBACK_COMPLETE": "sam delete, then sam deploy (a stack whose create rolled back cannot be updated)",
    "ROLLBACK_FAILED": "sam delete (retaining what cannot be deleted), then sam deploy",
    "DELETE_IN_PROGRESS": "the stack is being deleted: sam deploy again once it is gone",
    "DELETE_FAILED": "sam delete again (retaining what cannot be deleted), then sam deploy",
    "UPDATE_ROLLBACK_FAILED": _CONTINUE_ROLLBACK,
    "IMPORT_ROLLBACK_FAILED": _CONTINUE_ROLLBACK,
}


def check_stack_status(facts: DoctorFacts) -> list[Check]:
    status, name = facts.stack_status, "stack status"
    if status in ("CREATE_COMPLETE", "UPDATE_COMPLETE", "IMPORT_COMPLETE"):
        return [Check(name, Verdict.OK, status)]
    events = f"aws cloudformation describe-stack-events --stack-name {facts.stack_name}"
    detail = f"{status} {facts.status_reason}".strip()
    if status in _STACK_STUCK:
        fix = _STACK_STUCK[status].format(name=facts.stack_name)
        return [Check(name, Verdict.FAIL, detail, f"see {events}; {fix}")]
    if status.endswith("_IN_PROGRESS") or status in ("UPDATE_ROLLBACK_COMPLETE", "IMPORT_ROLLBACK_COMPLETE"):
        return [Check(name, Verdict.WARN, detail, f"see {events}")]
    return [Check(name, Verdict.FAIL, detail, f"see {events}, then deploy again")]


def check_outputs(facts: DoctorFacts) -> list[Check]:
    missing = [o for o in REQUIRED_OUTPUTS if o not in facts.outputs]
    if missing:
        return [
            Check(
                "outputs",
                Verdict.FAIL,
                "missing: " + ", ".join(missing),
                "deploy this project's template.yaml (sam build && sam deploy)",
            )
        ]
    return [Check("outputs", Verdict.OK, f"all {len(REQUIRED_OUTPUTS)} present")]


def check_rules(facts: DoctorFacts) -> list[Check]:
    checks: list[Check] = []
    for logical_id, purpose in RULES.items():
        label = f"rule {logical_id}"
        if unread := _unread(label, facts, f"rule:{logical_id}"):
            checks.append(unread)
            continue
        rule_name, state = facts.rules.get(logical_id, (None, None))
        if rule_name is None:
            checks.append(
                Check(label, Verdict.FAIL, "the stack has no such rule", "deploy the template again")
            )
        elif state != "ENABLED":
            checks.append(
                Check(
                    label,
                    Verdict.FAIL,
                    f"{rule_name} is {state}: {purpose}",
                    f"aws events enable-rule --name {rule_name}",
                )
            )
        else:
            checks.append(Check(label, Verdict.OK, f"{rule_name} ENABLED"))
    return checks


def check_event_source_mapping(facts: DoctorFacts) -> list[Check]:
    name = "run_task event source mapping"
    if unread := _unread(name, facts, "mapping"):
        return [unread]
    if facts.mapping_uuid is None or facts.mapping_state is None:
        return [
            Check(name, Verdict.FAIL, "the stack has no run-request mapping", "deploy the template again")
        ]
    if facts.mapping_state == "Enabled":
        return [Check(name, Verdict.OK, f"{facts.mapping_uuid} Enabled")]
    fix = f"aws lambda update-event-source-mapping --uuid {facts.mapping_uuid} --enabled"
    verdict = Verdict.WARN if facts.mapping_state in ("Enabling", "Updating", "Creating") else Verdict.FAIL
    detail = f"{facts.mapping_state}: run requests stay on the queue, no task starts"
    return [Check(name, verdict, detail, fix)]


def check_ecs(facts: DoctorFacts) -> list[Check]:
    env = facts.function_env
    if env is None:
        return [
            _unread("ECS cluster", facts, "function")
            or Check("ECS cluster", Verdict.FAIL, "no run_task function")
        ]
    cluster_name, family = env.get(ENV_CLUSTER, ""), env.get(ENV_TASK_DEFINITION, "")
    container = env.get(ENV_CONTAINER_NAME, "")
    checks: list[Check] = []
    status = str((facts.cluster or {}).get("status", "MISSING"))
    if unread := _unread("ECS cluster", facts, "cluster"):
        checks.append(unread)
    elif status != "ACTIVE":
        checks.append(
            Check("ECS cluster", Verdict.FAIL, f"{cluster_name} is {status}", "fix stack parameter Cluster")
        )
    else:
        checks.append(Check("ECS cluster", Verdict.OK, f"{cluster_name} ACTIVE"))
    label = "task definition"
    definition = facts.task_definition
    if unread := _unread(label, facts, "task_definition"):
        checks.append(unread)
    elif definition is None:
        checks.append(
            Check(label, Verdict.FAIL, f"{family} does not resolve", "fix stack parameter TaskDefinition")
        )
    elif definition.get("status") != "ACTIVE":
        revision = definition.get("taskDefinitionArn", family)
        checks.append(
            Check(
                label,
                Verdict.FAIL,
                f"{revision} is {definition.get('status')}",
                "fix stack parameter TaskDefinition",
            )
        )
    elif container not in [c.get("name") for c in definition.get("containerDefinitions", [])]:
        checks.append(
            Check(
                label,
                Verdict.FAIL,
                f"{family} has no container {container!r}",
                "fix stack parameter ContainerName",
            )
        )
    else:
        revision = str(definition.get("taskDefinitionArn", family)).rsplit("/", 1)[-1]
        checks.append(Check(label, Verdict.OK, f"{revision} ACTIVE, container {container}"))
    return checks


def check_settings(facts: DoctorFacts) -> list[Check]:
    """The functions' settings as their cold start validates them (QueueProfiles, RunTaskKwargs...):
    a stack CloudFormation deployed may still hold a setting every function refuses to start with."""
    if facts.function_env is None:
        return []  # check_ecs says there is no run_task function
    from botocore.session import get_session  # noqa: PLC0415 - doctor only

    try:
        settings = ControlPlaneSettings.from_env(facts.function_env)
        # As the functions' cold start: every call the stack (and each profile) makes, against
        # ECS's API model.
        check_run_task_shape(settings, get_session().get_service_model("ecs"))
    except SettingsError as exc:
        fix = "fix the stack parameter it names, then deploy"
        return [Check("function settings", Verdict.FAIL, f"the functions refuse to start: {exc}", fix)]
    return [Check("function settings", Verdict.OK, "every setting is one the functions start with")]


def check_readiness(facts: DoctorFacts) -> list[Check]:
    name = "readiness record"
    if unread := _unread(name, facts, "readiness"):
        return [unread]
    invoke = f"aws lambda invoke --function-name {facts.reconciler_name or '<ReconcilerFunction>'} out.json"
    report = facts.readiness
    if report is None:
        return [Check(name, Verdict.WARN, "the reconciler has not recorded one yet", invoke)]
    if report.problems:
        return [
            Check(name, Verdict.FAIL, str(p), f"fix stack parameter {p.parameter}, deploy, then {invoke}")
            for p in report.problems
        ]
    age = duration(facts.now - report.checked_at)
    every = facts.reconcile_every_ms
    if every is not None and facts.now - report.checked_at > STALE_RUNS * every:
        return [
            Check(
                name,
                Verdict.WARN,
                f"recorded {age} ago, though the reconciler runs every {duration(every)}: its runs fail "
                "or do not happen (tries stuck in flight stay stuck, settings problems go unseen)",
                f"read the reconciler's log group, then {invoke}",
            )
        ]
    return [Check(name, Verdict.OK, f"ready (checked {age} ago): schedulers' health checks pass")]


#: Runs the reconciler may miss before its readiness record is called stale.
STALE_RUNS = 3
_RATE = re.compile(r"rate\(\s*(\d+)\s+(minute|minutes|hour|hours|day|days)\s*\)")
_UNIT_MS = {"minute": 60_000, "hour": 3_600_000, "day": 86_400_000}


def schedule_interval_ms(expression: str) -> int | None:
    """The interval of an EventBridge ``rate(...)`` expression; None for a ``cron(...)`` (or none)."""
    match = _RATE.fullmatch(expression.strip())
    if match is None:
        return None
    return int(match.group(1)) * _UNIT_MS[match.group(2).rstrip("s")]


def check_dead_letters(facts: DoctorFacts) -> list[Check]:
    checks: list[Check] = []
    for output, (what, command) in DEAD_LETTER_QUEUES.items():
        label = f"DLQ of {what}"
        if output not in facts.outputs:
            checks.append(Check(label, Verdict.WARN, f"not checked: the stack has no output {output}"))
        elif unread := _unread(label, facts, f"dlq:{output}"):
            checks.append(unread)
        elif depth := facts.dlq_depths.get(output, 0):
            fix = f"see docs/operations.md, then {command} {_stack_options(facts)}"
            checks.append(Check(label, Verdict.WARN, f"{depth} messages", fix))
        else:
            checks.append(Check(label, Verdict.OK, "empty"))
    return checks


def check_alarms(facts: DoctorFacts) -> list[Check]:
    if unread := _unread("alarms", facts, "alarms"):
        return [unread]
    alarms = facts.alarms or []
    firing = [(n, d) for n, state, d in alarms if state == "ALARM"]
    if not firing:
        return [Check("alarms", Verdict.OK, f"none of {len(alarms)} in ALARM")]
    return [Check(f"alarm {n}", Verdict.WARN, "in ALARM", d or "see docs/operations.md") for n, d in firing]


def check_scheduler_policy(facts: DoctorFacts) -> list[Check]:
    name = "scheduler policy"
    if unread := _unread(name, facts, "policy"):
        return [unread]
    policy = facts.outputs.get("SchedulerPolicyArn", "<SchedulerPolicyArn>")
    entities = facts.policy_entities or []
    wanted = facts.scheduler_role
    attach = f"aws iam attach-role-policy --role-name {wanted or '<scheduler role>'} --policy-arn {policy}"
    if wanted is not None:
        if wanted in entities:
            return [Check(name, Verdict.OK, f"attached to {wanted}")]
        return [
            Check(name, Verdict.FAIL, f"not attached to {wanted}: its executor cannot send or read", attach)
        ]
    if not entities:
        return [Check(name, Verdict.WARN, "attached to no role, user or group", attach)]
    return [Check(name, Verdict.OK, "attached to " + ", ".join(entities))]


CHECKS: tuple[Callable[[DoctorFacts], list[Check]], ...] = (
    check_stack_status,
    check_outputs,
    check_rules,
    check_event_source_mapping,
    check_ecs,
    check_settings,
    check_readiness,
    check_dead_letters,
    check_alarms,
    check_scheduler_policy,
)


def diagnose(facts: DoctorFacts) -> list[Check]:
    """Every check, in the order a request travels through the stack."""
    return [check for run in CHECKS for check in run(facts)]


def failed(checks: list[Check]) -> bool:
    return any(c.verdict is Verdict.FAIL for c in checks)


_STYLE = {Verdict.OK: "green", Verdict.WARN: "yellow", Verdict.FAIL: "bold red"}


def render(facts: DoctorFacts, checks: list[Check], console: Console) -> None:
    """One line per check and the fix under it, never wrapped: a fix is a command to paste."""
    console.print(f"[bold]{facts.stack_name}[/] ({facts.region})")
    for c in checks:
        console.print(f"[{_STYLE[c.verdict]}]{c.verdict.value:<4}[/] {c.name}: ", end="")
        console.print(c.detail, markup=False, soft_wrap=True)
        if c.fix and c.verdict is not Verdict.OK:
            console.print(f"     fix: {c.fix}", markup=False, soft_wrap=True)
    fails = sum(c.verdict is Verdict.FAIL for c in checks)
    warns = sum(c.verdict is Verdict.WARN for c in checks)
    console.print(f"{fails} failed, {warns} warnings, {len(checks) - fails - warns} OK")
    if facts.endpoint_url and fails + warns:
        console.print(f"(the local stack: run the aws commands with --endpoint-url {facts.endpoint_url})")
    elif facts.region and fails + warns:
        # The stack may be in another region than the operator's default (--region, AWS_REGION).
        console.print(f"(the stack is in {facts.region}: run the aws commands with --region {facts.region})")
