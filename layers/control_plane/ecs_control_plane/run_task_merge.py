"""How the levels of a run_task call merge (pure): each later level over the earlier ones.

Defaults, template parameters, ``RunTaskKwargs``, a queue profile and a task's
``executor_config`` each add to the call. A plain recursive merge (``deep_merge``) is how the
provider's executor merges its levels; a task's ``executor_config`` merges entry by entry in
named lists and may only add to the placement rules (``merge_task_config``), so it cannot undo
what the operator set; and the later level's placement (launch type or capacity provider
strategy) replaces the earlier one's (``resolve_placement``).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from typing import Any

#: Lists of a run_task call whose entries are named: a task's entry merges with the stack's of
#: the same name (the task's values win), and the stack's other entries stay.
_NAMED_LISTS = {
    "containerOverrides": "name",
    "environment": "name",
    "resourceRequirements": "type",
    "tags": "key",
}
#: Lists a task may add to but never take from: the operator's placement rules still hold.
_APPENDED_LISTS = ("placementConstraints", "placementStrategy")


def merge_task_config(stack: Mapping[str, Any], task: Mapping[str, Any]) -> dict[str, Any]:
    """A task's executor_config over the stack's call, so that it cannot undo the operator's.

    As ``deep_merge``, except in named lists (container overrides by container name, their
    environment by variable name, resource requirements by type, tags by key), which merge entry
    by entry, and in placement constraints and strategies, which the task may only add to.
    RunTaskKwargs keeps, say, a sidecar's override or an environment variable the task does not
    name, and no task drops the operator's placement constraints.
    """
    merged = copy.deepcopy(dict(stack))
    for key, value in task.items():
        current = merged.get(key)
        if key in _NAMED_LISTS and isinstance(value, list) and isinstance(current, list):
            merged[key] = _merge_named(current, value, _NAMED_LISTS[key])
        elif key in _APPENDED_LISTS and isinstance(value, list) and isinstance(current, list):
            merged[key] = [*current, *copy.deepcopy(value)]
        elif isinstance(value, Mapping) and isinstance(current, Mapping):
            merged[key] = merge_task_config(current, value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def _merge_named(stack: list[Any], task: list[Any], name: str) -> list[Any]:
    merged = copy.deepcopy(stack)
    for entry in task:
        at = next(
            (i for i, s in enumerate(merged) if isinstance(s, Mapping) and isinstance(entry, Mapping)
             and s.get(name) == entry.get(name)),
            None,
        )  # fmt: skip
        if at is None:
            merged.append(copy.deepcopy(entry))
        elif isinstance(entry, Mapping):
            merged[at] = merge_task_config(merged[at], entry)
    return merged


def deep_merge(base: Mapping[str, Any], update: Mapping[str, Any]) -> dict[str, Any]:
    """Recursive ``dict.update``: nested dicts merge, every other value is replaced."""
    merged = copy.deepcopy(dict(base))
    for key, value in update.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def resolve_placement(
    base: dict[str, Any],
    update: Mapping[str, Any],
    *,
    merge: Callable[[Mapping[str, Any], Mapping[str, Any]], dict[str, Any]] = deep_merge,
) -> dict[str, Any]:
    """Merge, letting the later level's launch type or capacity provider strategy win."""
    merged = merge(base, update)
    if "capacityProviderStrategy" in update and "launchType" not in update:
        merged.pop("launchType", None)
    elif "launchType" in update and "capacityProviderStrategy" not in update:
        merged.pop("capacityProviderStrategy", None)
    if merged.get("launchType") in ("EC2", "EXTERNAL") and "platformVersion" not in update:
        merged.pop("platformVersion", None)
    return merged
