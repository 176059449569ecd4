"""template.yaml rendered for one deployment, and IAM policy evaluation for what it uses.

The policy tests (tests/unit/test_policies.py) and the scheduler's recorded calls
(tests/functional/test_scheduler_rights.py) both judge the template's policies with these.
The evaluator covers the constructs the template uses, the way IAM evaluates them, including
the multi-valued ``ForAllValues:`` operators and ``Null``; it refuses any other construct.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ecscp.local.cloudformation.intrinsics import IntrinsicResolver

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "template.yaml"
STACK, ACCOUNT, REGION, PARTITION = "airflow-ecs-control-plane", "123456789012", "us-east-1", "aws"
CONTROL_PLANE_ID = f"ecscp-{STACK}"
CLUSTER = "airflow"
CLUSTER_ARN = f"arn:aws:ecs:{REGION}:{ACCOUNT}:cluster/{CLUSTER}"
REQUIRED = {"Cluster": CLUSTER, "TaskDefinition": "airflow-task:3"}
TASK_ROLE = f"arn:aws:iam::{ACCOUNT}:role/airflow-task"
EXECUTION_ROLE = f"arn:aws:iam::{ACCOUNT}:role/airflow-execution"
QUEUE_KEY = f"arn:aws:kms:{REGION}:{ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab"
SCHEDULER = f"arn:aws:iam::{ACCOUNT}:role/airflow-scheduler"
ADMIN = f"arn:aws:iam::{ACCOUNT}:role/Admin"
FUNCTION_ROLES = {"run_task": "RunTaskRole", "task_state": "TaskStateRole", "reconciler": "ReconcilerRole"}
QUEUES = ("RunRequestQueue", "RunRequestDLQ", "TaskEventDLQ")


def task_definition(family_revision: str) -> str:
    return f"arn:aws:ecs:{REGION}:{ACCOUNT}:task-definition/{family_revision}"


def task(task_id: str = "0123456789abcdef", cluster: str = CLUSTER) -> str:
    return f"arn:aws:ecs:{REGION}:{ACCOUNT}:task/{cluster}/{task_id}"


def table_arn(index: str | None = None) -> str:
    arn = f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/StateTable"
    return f"{arn}/index/{index}" if index else arn


def queue_arn(logical_id: str) -> str:
    return f"arn:aws:sqs:{REGION}:{ACCOUNT}:{logical_id}"


def role_arn(logical_id: str) -> str:
    return f"arn:aws:iam::{ACCOUNT}:role/{logical_id}"


# --- the template, rendered for one deployment -----------------------------------------------


class Deployment(IntrinsicResolver):
    """template.yaml with its intrinsics resolved for given parameter values.

    The local stack's resolver (``ecscp.local.cloudformation.intrinsics``), with the names a
    deployment would give: a queue's ARN ends in its logical id, a role's name is its logical
    id, a function's name is its logical id.
    """

    def __init__(self, template: dict[str, Any], **parameters: str) -> None:
        declared = template["Parameters"]
        unknown = set(parameters) - set(declared)
        assert not unknown, f"not parameters of the template: {unknown}"
        defaults = {name: str(p["Default"]) for name, p in declared.items() if "Default" in p}
        self.template = template
        self.parameters = defaults | REQUIRED | parameters
        for name, value in self.parameters.items():
            pattern = declared[name].get("AllowedPattern")
            assert pattern is None or re.fullmatch(pattern, value), (
                f"{name}={value!r} is refused by CloudFormation"
            )
        super().__init__(template, self.parameters, {}, {}, region=REGION, account=ACCOUNT, stack_name=STACK)

    def ref(self, name: str) -> Any:
        with contextlib.suppress(LookupError):
            return super().ref(name)
        rtype = self.template["Resources"][name]["Type"]
        if rtype == "AWS::SQS::Queue":
            return f"https://sqs.{REGION}.amazonaws.com/{ACCOUNT}/{name}"
        return name

    def attribute(self, logical_id: str, attribute: str) -> str:
        rtype = self.template["Resources"].get(logical_id, {}).get("Type")
        if rtype == "AWS::SQS::Queue":
            return {"Arn": queue_arn(logical_id), "QueueName": logical_id}[attribute]
        if (rtype, attribute) == ("AWS::IAM::Role", "Arn"):
            return role_arn(logical_id)
        if (rtype, attribute) == ("AWS::DynamoDB::Table", "Arn"):
            return f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{logical_id}"
        if (rtype, attribute) == ("AWS::Logs::LogGroup", "Arn"):
            name = self.resolve(self.template["Resources"][logical_id]["Properties"]["LogGroupName"])
            return f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:{name}:*"
        if (rtype, attribute) == ("AWS::Events::Rule", "Arn") or rtype is None:
            return f"arn:aws:events:{REGION}:{ACCOUNT}:rule/{logical_id}"  # also the rules SAM makes
        raise AssertionError(f"unexpected Fn::GetAtt {logical_id}.{attribute}")

    # -- resources and their policies -------------------------------------------------------

    def resources(self, rtype: str) -> Iterator[tuple[str, dict[str, Any]]]:
        for logical_id, res in self.template["Resources"].items():
            if res["Type"] == rtype and ("Condition" not in res or self.condition(res["Condition"])):
                yield logical_id, self.resolve(res.get("Properties", {}))

    def properties(self, logical_id: str) -> dict[str, Any]:
        props: dict[str, Any] = self.resolve(self.template["Resources"][logical_id].get("Properties", {}))
        return props

    def role(self, logical_id: str) -> list[dict[str, Any]]:
        """Every statement a role holds: its inline policies and the policies attached to it."""
        role = self.properties(logical_id)
        held = [s for policy in role.get("Policies", []) for s in policy["PolicyDocument"]["Statement"]]
        for _, policy in self.resources("AWS::IAM::Policy"):
            if logical_id in policy["Roles"]:
                held += policy["PolicyDocument"]["Statement"]
        assert "ManagedPolicyArns" not in role, "managed policies are not evaluated here"
        return held

    def managed_policy(self, logical_id: str) -> list[dict[str, Any]]:
        statements: list[dict[str, Any]] = self.properties(logical_id)["PolicyDocument"]["Statement"]
        return statements

    def queue_policy(self, queue: str) -> list[dict[str, Any]]:
        return [
            s
            for _, policy in self.resources("AWS::SQS::QueuePolicy")
            if self.ref(queue) in policy["Queues"]
            for s in policy["PolicyDocument"]["Statement"]
        ]


# --- IAM policy evaluation, for the constructs the template uses ---------------------------


@dataclass(frozen=True)
class Call:
    """One API call as IAM sees it: action, resource, the request's condition keys, the caller.

    A condition key holds one value (a string) or several (a sequence: ``dynamodb:Attributes``).
    """

    action: str
    resource: str
    context: Mapping[str, str | Sequence[str]] = field(default_factory=dict)
    principal: str = ""

    def keys(self) -> dict[str, str | Sequence[str]]:
        return {"aws:SecureTransport": "true", "aws:PrincipalArn": self.principal, **self.context}


def _wildcard(pattern: str, text: str, *, ignore_case: bool = False) -> bool:
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, text, re.IGNORECASE if ignore_case else 0) is not None


def _arn_like(pattern: str, arn: str) -> bool:
    """ARN matching: each of the first five colon-separated parts on its own, then the resource."""
    if pattern == "*":
        return True
    want, have = pattern.split(":", 5), arn.split(":", 5)
    return len(want) == len(have) == 6 and all(_wildcard(w, h) for w, h in zip(want, have, strict=True))


Matcher = Callable[[str, str], bool]

_OPERATORS: dict[str, tuple[Matcher, bool]] = {
    # operator: (does one policy value match the request's value, is the operator negated)
    "StringEquals": (lambda p, v: p == v, False),
    "StringNotEquals": (lambda p, v: p == v, True),
    "StringLike": (_wildcard, False),
    "ArnEquals": (lambda p, v: p == v, False),
    "ArnNotEquals": (lambda p, v: p == v, True),
    "ArnLike": (_arn_like, False),
    "ArnNotLike": (_arn_like, True),
    "Bool": (lambda p, v: str(p).lower() == v.lower(), False),
}


def listed(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _condition_holds(operator: str, key: str, allowed: Any, keys: Mapping[str, Any]) -> bool:
    value = keys.get(key)
    if operator == "Null":  # "true": the request lacks the key; "false": it has it
        return (value is None) == (str(allowed).lower() == "true")
    qualifier, _, base = operator.rpartition(":")
    match, negated = _OPERATORS[base]
    if qualifier:
        # Multi-valued keys. As in IAM, ForAllValues holds for a request without the key (so a
        # policy needs Null beside it), ForAnyValue does not.
        assert qualifier in ("ForAllValues", "ForAnyValue"), operator
        assert not negated, f"{operator}: negated set operators are not used by the template"
        values = [] if value is None else listed(value)
        hits = [any(match(a, v) for a in listed(allowed)) for v in values]
        return all(hits) if qualifier == "ForAllValues" else any(hits)
    assert value is None or isinstance(value, str), f"{key} has several values: use ForAllValues"
    if value is None:
        return negated  # a key the request lacks matches none of the values
    return any(match(a, value) for a in listed(allowed)) != negated


def _conditions_hold(block: Mapping[str, Any], keys: Mapping[str, Any]) -> bool:
    return all(
        _condition_holds(operator, key, allowed, keys)
        for operator, tests in block.items()
        for key, allowed in tests.items()
    )


def _applies(statement: Mapping[str, Any], call: Call) -> bool:
    assert not {"NotAction", "NotResource", "NotPrincipal"} & set(statement), statement
    return (
        any(_wildcard(a, call.action, ignore_case=True) for a in listed(statement["Action"]))
        and any(_arn_like(r, call.resource) for r in listed(statement["Resource"]))
        and _conditions_hold(statement.get("Condition", {}), call.keys())
    )


def allows(statements: list[dict[str, Any]], call: Call) -> bool:
    """Whether identity statements allow the call (an Allow applies and no Deny does)."""
    applying = [s for s in statements if _applies(s, call)]
    return any(s["Effect"] == "Allow" for s in applying) and not any(s["Effect"] == "Deny" for s in applying)


def denies(resource_policy: list[dict[str, Any]], call: Call) -> bool:
    """Whether a resource policy denies the call, whatever the caller's own policies allow."""
    return any(
        s["Effect"] == "Deny" and s["Principal"] in ("*", {"AWS": "*"}) and _applies(s, call)
        for s in resource_policy
    )
