"""Conditions and Rules of the template, decided before moto sees it.

CloudFormation refuses a deploy whose parameters break an assertion of the template's ``Rules``
before it creates anything; moto ignores ``Rules``, so :func:`broken_rules` checks them.
CloudFormation drops an ``AWS::NoValue`` that an ``Fn::If`` chooses; moto keeps such a list
item as a null (a policy statement left out becomes a malformed policy document), so
:func:`resolve_conditionals` decides each ``Fn::If`` first. :func:`active_logical_ids` tells which
resources their ``Condition`` leaves in the stack.

Departs from AWS: a small evaluator of ``Fn::Equals``, ``Fn::Not``, ``Fn::And``, ``Fn::Or`` and
``Condition`` over literals, parameter ``Ref``s and an ``Fn::Select`` of their ``Fn::Split``.
Anything else (``Fn::Contains``, pseudo parameters...) is undecided: such a rule is left alone,
such a condition is left for moto.
"""

from __future__ import annotations

import copy
from typing import Any


def active_logical_ids(template: dict[str, Any], parameters: dict[str, str]) -> dict[str, str]:
    """Logical id -> type of every resource whose Condition does not obviously exclude it."""
    conditions = template.get("Conditions") or {}

    def holds(name: str) -> bool | None:
        expr = conditions.get(name)
        return _evaluate(expr, conditions, parameters) if expr is not None else None

    active: dict[str, str] = {}
    for logical_id, resource in (template.get("Resources") or {}).items():
        condition = resource.get("Condition")
        if condition and holds(condition) is False:
            continue
        active[logical_id] = resource.get("Type", "")
    return active


def _evaluate(expr: Any, conditions: dict[str, Any], parameters: dict[str, str]) -> bool | None:
    """A small evaluator for Fn::Equals/Not/And/Or/Condition over parameters; None if unknown."""
    if not isinstance(expr, dict) or len(expr) != 1:
        return None
    ((op, args),) = expr.items()
    if op == "Condition":
        inner = conditions.get(args)
        return _evaluate(inner, conditions, parameters) if inner is not None else None
    if op == "Fn::Equals":
        left, right = (_value(a, parameters) for a in args)
        return None if left is None or right is None else left == right
    results = [_evaluate(a, conditions, parameters) for a in args]
    if op == "Fn::Not":
        return None if results[0] is None else not results[0]
    if any(r is None for r in results):
        return None
    if op == "Fn::And":
        return all(results)
    if op == "Fn::Or":
        return any(results)
    return None


def _value(arg: Any, parameters: dict[str, str]) -> str | None:
    if isinstance(arg, str):
        return arg
    if isinstance(arg, dict) and set(arg) == {"Ref"}:
        return parameters.get(arg["Ref"])
    if isinstance(arg, dict) and set(arg) == {"Fn::Select"}:
        return _selected(arg["Fn::Select"], parameters)
    return None


def _selected(args: Any, parameters: dict[str, str]) -> str | None:
    """``Fn::Select`` of an ``Fn::Split`` (a parameter's scheme, say); None if out of range."""
    index, items = args
    if not (isinstance(items, dict) and set(items) == {"Fn::Split"}):
        return None
    separator, text = items["Fn::Split"]
    value = _value(text, parameters)
    if value is None or not isinstance(separator, str):
        return None
    parts = value.split(separator)
    position = int(index)
    return parts[position] if 0 <= position < len(parts) else None


def broken_rules(template: dict[str, Any], parameters: dict[str, str]) -> list[str]:
    """The template's ``Rules`` the parameters break, each as "Rule: its AssertDescription".

    CloudFormation refuses such a deploy before creating anything; moto ignores Rules, so the
    local stack checks them itself. A rule the small evaluator cannot decide is left alone.
    """
    broken = []
    for name, rule in (template.get("Rules") or {}).items():
        condition = rule.get("RuleCondition")
        if condition is not None and _evaluate(condition, {}, parameters) is not True:
            continue
        for assertion in rule.get("Assertions") or []:
            if _evaluate(assertion.get("Assert"), {}, parameters) is False:
                broken.append(
                    f"{name}: {str(assertion.get('AssertDescription', 'assertion failed')).strip()}"
                )
    return broken


def resolve_conditionals(template: dict[str, Any], parameters: dict[str, str]) -> dict[str, Any]:
    """The template with every ``Fn::If`` whose condition is decided by the parameters replaced by
    its chosen value; an ``AWS::NoValue`` so chosen leaves its list item or property out.

    CloudFormation drops such a value; moto keeps a list item as null. Conditions the local
    evaluator cannot decide are left for moto.
    """
    conditions = template.get("Conditions") or {}
    no_value = object()

    def walk(value: Any) -> Any:
        if isinstance(value, list):
            return [v for v in (walk(item) for item in value) if v is not no_value]
        if not isinstance(value, dict):
            return value
        if set(value) == {"Fn::If"} and isinstance(value["Fn::If"], list) and len(value["Fn::If"]) == 3:
            name, when_true, when_false = value["Fn::If"]
            holds = _evaluate({"Condition": name}, conditions, parameters)
            if holds is not None:
                return walk(when_true if holds else when_false)
        if value == {"Ref": "AWS::NoValue"}:
            return no_value
        walked = {k: walk(v) for k, v in value.items()}
        return {k: v for k, v in walked.items() if v is not no_value}

    resolved = copy.deepcopy(template)
    for section in ("Resources", "Outputs"):
        if section in resolved:
            resolved[section] = walk(resolved[section])
    return resolved
