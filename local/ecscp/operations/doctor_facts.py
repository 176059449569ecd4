"""What ``ecscp doctor`` reads of a stack: one read per fact, each failure kept as the fact's error.

The ECS settings are the run_task function's own environment (what the functions actually use,
which a manual change to the function would show), not the template's parameters. The alarms are
those that notify the stack's alert topic (their names differ between AWS and the local stack).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from ecs_control_plane.settings import ENV_CLUSTER, ENV_TASK_DEFINITION

from .doctor import DEAD_LETTER_QUEUES, RULES, DoctorFacts, schedule_interval_ms
from .stack import RECONCILER_FUNCTION, RUN_REQUEST_MAPPING, RUN_TASK_FUNCTION, ControlPlaneStack

_DEPTH_ATTRIBUTES = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
#: What AWS answers for a resource that is not there (deleted outside CloudFormation, say).
NOT_FOUND_CODES = frozenset(
    {
        "ResourceNotFoundException",  # Events, Lambda, DynamoDB
        "AWS.SimpleQueueService.NonExistentQueue",
        "QueueDoesNotExist",
        "NoSuchEntity",  # IAM
        "ClusterNotFoundException",
    }
)


def _error(exc: Exception) -> str:
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        return f"{exc.operation_name}: {error.get('Code', '?')}: {error.get('Message', '')}"
    return str(exc)


def _read(facts: DoctorFacts, fact: str, read: Callable[[], None]) -> None:
    try:
        read()
    except (ClientError, BotoCoreError) as exc:
        facts.errors[fact] = _error(exc)
        if isinstance(exc, ClientError) and exc.response.get("Error", {}).get("Code") in NOT_FOUND_CODES:
            facts.missing.add(fact)


def role_name(role: str) -> str:
    """A role's name, given its name or ARN (``arn:aws:iam::1:role/path/name`` -> ``name``)."""
    return role.rsplit("/", 1)[-1]


def gather(stack: ControlPlaneStack, scheduler_role: str | None = None) -> DoctorFacts:
    """Read everything the checks look at; never raises for a read AWS refuses."""
    facts = DoctorFacts(
        stack_name=stack.name,
        stack_status=stack.status,
        status_reason=stack.status_reason,
        region=stack.region,
        endpoint_url=stack.endpoint_url,
        outputs=dict(stack.outputs),
        reconciler_name=stack.resource(RECONCILER_FUNCTION),
        scheduler_role=role_name(scheduler_role) if scheduler_role else None,
        # The template's default when the stack does not say (an older template).
        reconcile_every_ms=schedule_interval_ms(stack.parameters.get("ReconcileSchedule", "rate(5 minutes)")),
    )
    events, lam = stack.client("events"), stack.client("lambda")

    for logical_id in RULES:
        name = stack.resource(logical_id)

        def rule(logical_id: str = logical_id, name: str | None = name) -> None:
            # A rule given an EventBusName can have "bus|rule" as its physical id (and Ref).
            bus, _, rule_name = (name or "").rpartition("|")
            state = (
                events.describe_rule(Name=rule_name, EventBusName=bus or "default")["State"] if name else None
            )
            facts.rules[logical_id] = (rule_name or None, state)

        _read(facts, f"rule:{logical_id}", rule)

    def mapping() -> None:
        facts.mapping_uuid = stack.resource(RUN_REQUEST_MAPPING)
        if facts.mapping_uuid:
            facts.mapping_state = lam.get_event_source_mapping(UUID=facts.mapping_uuid)["State"]

    _read(facts, "mapping", mapping)

    def function() -> None:
        name = stack.resource(RUN_TASK_FUNCTION)
        if name:
            config = lam.get_function_configuration(FunctionName=name)
            facts.function_name = name
            facts.function_env = dict((config.get("Environment") or {}).get("Variables") or {})

    _read(facts, "function", function)
    env = facts.function_env or {}
    if env:
        _gather_ecs(stack, facts, env)

    def readiness() -> None:
        if "StateTableName" in stack.outputs:
            facts.readiness = stack.state_table().readiness()

    _read(facts, "readiness", readiness)
    sqs = stack.client("sqs")
    for output in DEAD_LETTER_QUEUES:
        if output not in stack.outputs:
            continue

        def depth(output: str = output) -> None:
            attributes = sqs.get_queue_attributes(
                QueueUrl=stack.outputs[output], AttributeNames=_DEPTH_ATTRIBUTES
            )
            facts.dlq_depths[output] = sum(int(attributes["Attributes"].get(a, 0)) for a in _DEPTH_ATTRIBUTES)

        _read(facts, f"dlq:{output}", depth)
    _read(facts, "alarms", lambda: _alarms(stack, facts))
    _read(facts, "policy", lambda: _policy_entities(stack, facts))
    return facts


def _gather_ecs(stack: ControlPlaneStack, facts: DoctorFacts, env: dict[str, str]) -> None:
    ecs = stack.client("ecs")

    def cluster() -> None:
        clusters = ecs.describe_clusters(clusters=[env.get(ENV_CLUSTER, "")]).get("clusters", [])
        facts.cluster = clusters[0] if clusters else None

    def task_definition() -> None:
        try:
            facts.task_definition = ecs.describe_task_definition(
                taskDefinition=env.get(ENV_TASK_DEFINITION, "")
            )["taskDefinition"]
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") not in (
                "ClientException",
                "InvalidParameterException",
            ):
                raise
            facts.task_definition = None  # ECS says it does not resolve: that is the finding

    _read(facts, "cluster", cluster)
    _read(facts, "task_definition", task_definition)


def _alarms(stack: ControlPlaneStack, facts: DoctorFacts) -> None:
    topic = stack.outputs.get("AlertTopicArn")
    found: list[tuple[str, str, str]] = []
    for page in (
        stack.client("cloudwatch").get_paginator("describe_alarms").paginate(AlarmTypes=["MetricAlarm"])
    ):
        for alarm in page.get("MetricAlarms", []):
            if topic in alarm.get("AlarmActions", []):
                found.append(
                    (
                        alarm["AlarmName"],
                        alarm["StateValue"],
                        " ".join(alarm.get("AlarmDescription", "").split()),
                    )
                )
    facts.alarms = found


def _policy_entities(stack: ControlPlaneStack, facts: DoctorFacts) -> None:
    policy = stack.outputs.get("SchedulerPolicyArn")
    if not policy:
        return
    names: list[str] = []
    for page in stack.client("iam").get_paginator("list_entities_for_policy").paginate(PolicyArn=policy):
        page_: dict[str, Any] = page
        names += [r["RoleName"] for r in page_.get("PolicyRoles", [])]
        names += [u["UserName"] for u in page_.get("PolicyUsers", [])]
        names += [g["GroupName"] for g in page_.get("PolicyGroups", [])]
    facts.policy_entities = names
