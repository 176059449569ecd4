"""What migrate needs of ``template.yaml``: its parameters' constraints and its output names.

Read from the template itself, so that migrate refuses exactly what CloudFormation would.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

#: The stack outputs the scheduler's settings come from.
QUEUE_URL_OUTPUT: Final = "RunRequestQueueUrl"
STATE_TABLE_OUTPUT: Final = "StateTableName"
SCHEDULER_POLICY_OUTPUT: Final = "SchedulerPolicyArn"

#: The template parameters migrate sets (``TemplateSpec.from_text`` checks the template has them).
PARAMETERS: Final = (
    "Cluster",
    "ContainerName",
    "TaskDefinition",
    "LaunchType",
    "CapacityProviderStrategy",
    "PlatformVersion",
    "AssignPublicIp",
    "SecurityGroups",
    "Subnets",
    "RunTaskKwargs",
    "MaxRunTaskAttempts",
    "TaskRoleArn",
    "ExecutionRoleArn",
)


class TemplateMismatchError(ValueError):
    """The template is not this project's (or no longer has what migrate maps to)."""


@dataclass(frozen=True)
class ParameterSpec:
    """A template parameter's constraints, as CloudFormation applies them."""

    name: str
    type: str = "String"
    allowed_pattern: str | None = None
    allowed_values: tuple[str, ...] | None = None
    min_length: int | None = None
    max_length: int | None = None
    min_value: float | None = None
    max_value: float | None = None
    constraint: str | None = None

    @classmethod
    def from_template(cls, name: str, body: Mapping[str, Any]) -> ParameterSpec:
        def number(key: str) -> float | None:
            return float(body[key]) if key in body else None

        allowed = body.get("AllowedValues")
        return cls(
            name=name,
            type=str(body.get("Type", "String")),
            allowed_pattern=body.get("AllowedPattern"),
            allowed_values=tuple(str(value) for value in allowed) if allowed is not None else None,
            min_length=int(body["MinLength"]) if "MinLength" in body else None,
            max_length=int(body["MaxLength"]) if "MaxLength" in body else None,
            min_value=number("MinValue"),
            max_value=number("MaxValue"),
            constraint=body.get("ConstraintDescription"),
        )

    def violation(self, value: str) -> str | None:
        """Why CloudFormation would refuse ``value`` for this parameter, or None."""
        if self.type == "Number":
            try:
                number = float(value)
            except ValueError:
                return f"{self.name} is a Number, not {value!r}"
            if self.min_value is not None and number < self.min_value:
                return f"{self.name} must be at least {self.min_value:g}, not {value}"
            if self.max_value is not None and number > self.max_value:
                return f"{self.name} must be at most {self.max_value:g}, not {value}"
        if self.allowed_values is not None and value not in self.allowed_values:
            return f"{self.name} must be one of {list(self.allowed_values)}, not {value!r}"
        if self.allowed_pattern is not None and not re.fullmatch(self.allowed_pattern, value):
            hint = f" ({self.constraint})" if self.constraint else ""
            return f"{value!r} does not match {self.name}'s AllowedPattern {self.allowed_pattern}{hint}"
        if self.min_length is not None and len(value) < self.min_length:
            return f"{self.name} needs at least {self.min_length} characters"
        if self.max_length is not None and len(value) > self.max_length:
            return f"{self.name} takes at most {self.max_length} characters"
        return None


@dataclass(frozen=True)
class TemplateSpec:
    """What migrate needs of ``template.yaml``: its parameters (in order) and its output names."""

    parameters: Mapping[str, ParameterSpec]
    outputs: frozenset[str]

    @classmethod
    def from_text(cls, text: str) -> TemplateSpec:
        """Parse the template as SAM does; refuse one that lacks what migrate maps to."""
        import yaml  # noqa: PLC0415 (lazy: heavy, CLI-only)
        from samtranslator.yaml_helper import yaml_parse  # noqa: PLC0415 (lazy: heavy, CLI-only)

        try:
            document = yaml_parse(text)
        except yaml.YAMLError as exc:
            raise TemplateMismatchError(f"not YAML SAM can read: {exc}") from None
        if not isinstance(document, Mapping) or not isinstance(document.get("Parameters"), Mapping):
            raise TemplateMismatchError("not a CloudFormation template with Parameters")
        spec = cls(
            parameters={
                str(name): ParameterSpec.from_template(str(name), body)
                for name, body in document["Parameters"].items()
            },
            outputs=frozenset(document.get("Outputs") or {}),
        )
        missing = [name for name in PARAMETERS if name not in spec.parameters]
        missing += [
            f"output {name}"
            for name in (QUEUE_URL_OUTPUT, STATE_TABLE_OUTPUT, SCHEDULER_POLICY_OUTPUT)
            if name not in spec.outputs
        ]
        if missing:
            raise TemplateMismatchError(
                f"the template lacks {', '.join(missing)}: is it this project's template.yaml?"
            )
        return spec
