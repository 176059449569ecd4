"""Ref, Fn::GetAtt, Fn::Sub and their kin in the translated template, resolved against the
deployed stack.

The local stack needs the values where it does by hand what moto's CloudFormation skipped
(:mod:`.fixups`) and where it reads settings moto's Lambda does not keep (dead-letter targets,
asynchronous invoke configs: :mod:`.functions`).

Departs from AWS: only what those need resolves (see :class:`IntrinsicResolver`); anything else
raises LookupError rather than being guessed. The tests' rendering of the template for a
deployment (``tests/support/iam_policies.py``) is the same resolver with names a deployment
would give (:meth:`IntrinsicResolver.ref` and :meth:`~IntrinsicResolver.attribute` overridden).
"""

from __future__ import annotations

import logging
import re
from typing import Any

logger = logging.getLogger(__name__)

_UNRESOLVED = object()


class IntrinsicResolver:
    """Resolves Ref, Fn::GetAtt and Fn::Sub of the translated template against the deployed stack.

    Only what the fix-ups need: parameters, pseudo parameters, physical ids, ``Fn::Join``,
    ``Fn::Split`` and ``Fn::Select``, and the ``Arn`` / ``QueueName`` attributes of queues, topics,
    tables, functions, rules and roles. Anything else is reported as unresolvable rather than
    guessed.
    """

    def __init__(
        self,
        template: dict[str, Any],
        parameters: dict[str, str],
        physical: dict[str, str],
        clients: dict[str, Any],
        *,
        region: str,
        account: str,
        stack_name: str,
    ) -> None:
        self._resources: dict[str, Any] = template.get("Resources") or {}
        self._conditions: dict[str, Any] = template.get("Conditions") or {}
        self._clients = clients
        self._values: dict[str, str] = {
            **parameters,
            **{lid: pid for lid, pid in physical.items() if pid},
            "AWS::Region": region,
            "AWS::AccountId": account,
            "AWS::StackName": stack_name,
            "AWS::Partition": "aws",
            "AWS::URLSuffix": "amazonaws.com",
        }

    def resolve(self, value: Any) -> Any:
        """The value with its intrinsics resolved, or raise LookupError naming the first that is not."""
        if isinstance(value, list):
            resolved = [self.resolve(v) for v in value]
            return [v for v in resolved if v is not _UNRESOLVED]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            ((name, arg),) = value.items()
            if name == "Ref":
                return _UNRESOLVED if arg == "AWS::NoValue" else self.ref(arg)
            if name == "Fn::GetAtt":
                lid, attribute = arg if isinstance(arg, list) else str(arg).split(".", 1)
                return self.attribute(lid, attribute)
            if name == "Fn::Sub":
                return self.sub(arg)
            if name == "Fn::If":
                condition, when_true, when_false = arg
                return self.resolve(when_true if self.condition(condition) else when_false)
            if name == "Fn::Join":
                separator, parts = arg
                return str(separator).join(str(p) for p in self.resolve(parts))
            if name == "Fn::Split":
                separator, text = arg
                return str(self.resolve(text)).split(str(separator))
            if name == "Fn::Select":
                index, items = arg
                return self.resolve(items)[int(self.resolve(index))]
            if name.startswith("Fn::"):
                raise LookupError(name)
        return {k: v for k, v in ((k, self.resolve(v)) for k, v in value.items()) if v is not _UNRESOLVED}

    def created(self, logical_id: str, physical_id: str) -> None:
        """A resource made after the stack (a fix-up): Ref and Fn::Sub now give ``physical_id``."""
        self._values[logical_id] = physical_id

    def condition(self, name: str) -> bool:
        """Whether the template's condition ``name`` holds (LookupError when it cannot be decided)."""
        if name not in self._conditions:
            raise LookupError(f"Condition {name}")
        return self._holds(self._conditions[name])

    def _holds(self, expr: Any) -> bool:
        ((op, args),) = expr.items()
        if op == "Condition":
            return self.condition(args)
        if op == "Fn::Equals":
            left, right = (self.resolve(a) for a in args)
            return bool(left == right)
        if op == "Fn::Not":
            return not self._holds(args[0])
        if op == "Fn::Or":
            return any(self._holds(a) for a in args)
        if op == "Fn::And":
            return all(self._holds(a) for a in args)
        raise LookupError(f"condition {op}")

    def ref(self, name: str) -> Any:
        """A parameter, pseudo parameter or resource's physical id."""
        if name not in self._values:
            raise LookupError(f"Ref {name}")
        return self._values[name]

    def sub(self, arg: Any) -> str:
        template, extra = (arg, {}) if isinstance(arg, str) else (arg[0], arg[1])
        local = {k: self.resolve(v) for k, v in extra.items()}

        def replace(match: re.Match[str]) -> str:
            name = match.group(1)
            if name in local:
                return str(local[name])
            if "." in name:
                lid, attribute = name.split(".", 1)
                return str(self.attribute(lid, attribute))
            return str(self.ref(name))

        return re.sub(r"\$\{([^}!]+)\}", replace, template)

    def attribute(self, lid: str, attribute: str) -> str:
        resource = self._resources.get(lid)
        physical = self._values.get(lid)
        if resource is None or physical is None:
            raise LookupError(f"Fn::GetAtt {lid}.{attribute}")
        rtype = resource.get("Type")
        if rtype == "AWS::SQS::Queue" and attribute == "QueueName":
            return physical.rsplit("/", 1)[-1]
        if rtype == "AWS::SQS::Queue" and attribute == "Arn":
            attributes = self._clients["sqs"].get_queue_attributes(
                QueueUrl=physical, AttributeNames=["QueueArn"]
            )
            return str(attributes["Attributes"]["QueueArn"])
        if rtype == "AWS::SNS::Topic" and attribute in ("Arn", "TopicArn"):
            return physical
        if rtype == "AWS::DynamoDB::Table" and attribute == "Arn":
            return str(self._clients["dynamodb"].describe_table(TableName=physical)["Table"]["TableArn"])
        if rtype == "AWS::Lambda::Function" and attribute == "Arn":
            return str(
                self._clients["lambda"].get_function_configuration(FunctionName=physical)["FunctionArn"]
            )
        if rtype == "AWS::Events::Rule" and attribute == "Arn":
            return str(self._clients["events"].describe_rule(Name=physical.split("|")[-1])["Arn"])
        if rtype == "AWS::IAM::Role" and attribute == "Arn":
            return str(self._clients["iam"].get_role(RoleName=physical)["Role"]["Arn"])
        raise LookupError(f"Fn::GetAtt {lid}.{attribute}")


def resolve_optional(resolver: IntrinsicResolver, value: Any) -> Any:
    """The value resolved; None (logged) when it is None or does not resolve."""
    if value is None:
        return None
    try:
        return resolver.resolve(value)
    except LookupError as exc:
        logger.warning("could not resolve %s: %s", value, exc)
        return None
