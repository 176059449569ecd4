"""``run_task_kwargs`` as the provider's ``build_task_kwargs`` treats its keys.

The provider camelizes snake_case keys, lets keys named like an option replace that option, and
makes the first ``containerOverrides`` entry the Airflow container; the keys that are parameters
here (``taskDefinition``, ``launchType``, ...) are lifted out for their parameter.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .options import Findings, Given, Options
from .provider_config import RUN_TASK_OPTIONS

#: run_task_kwargs keys that stand for a parameter of their own, with the parameter.
_PLACEMENT_KEYS = {
    "taskDefinition": "TaskDefinition",
    "launchType": "LaunchType",
    "capacityProviderStrategy": "CapacityProviderStrategy",
    "platformVersion": "PlatformVersion",
}


def _provider_camel(key: str) -> str:
    """``inflection.camelize(key, uppercase_first_letter=False)``, which the provider applies."""
    if not key:
        return key
    upper = re.sub(r"(?:^|_)(.)", lambda m: m.group(1).upper(), key)
    return key[0].lower() + upper[1:]


def provider_camelize(value: Mapping[str, Any]) -> dict[str, Any]:
    """The provider's ``camelize_dict_keys``: objects recursively (lists not), keys in ``tags`` kept."""
    return {
        _provider_camel(key): provider_camelize(item)
        if isinstance(item, Mapping) and key.lower() != "tags"
        else item
        for key, item in value.items()
    }


@dataclass
class RunTaskKwargs:
    """run_task_kwargs as the provider's build_task_kwargs treats its keys."""

    #: What stays RunTaskKwargs (camelCase, as the provider sends it).
    rest: dict[str, Any]
    #: camelCase keys that are parameters here (taskDefinition, launchType, ...), by parameter.
    placement: dict[str, Given] = field(default_factory=dict)


def split_run_task_kwargs(options: Options, findings: Findings) -> RunTaskKwargs | None:
    given = options.get("run_task_kwargs")
    if given is None:
        return RunTaskKwargs(rest={})
    try:
        parsed = json.loads(str(given.value))
    except json.JSONDecodeError as exc:
        findings.refuse(given, f"not valid JSON ({exc}): the provider's executor does not start with it")
        return None
    if not isinstance(parsed, dict):
        findings.refuse(given, "must be a JSON object: the provider's executor does not start otherwise")
        return None
    rest: dict[str, Any] = {}
    for key, value in parsed.items():
        if key not in RUN_TASK_OPTIONS:
            rest[key] = value
            continue
        lifted = Given(key, value, f"run_task_kwargs key {key!r}")
        current = options.get(key, default=False)
        if key in ("cluster", "container_name") and current is not None and current.value != value:
            # The provider would start tasks with this value but find them with the option's.
            findings.refuse(lifted, f"differs from the option ({current.value!r}): the provider fails so")
            continue
        options.replace(lifted)
        findings.warnings.append(
            f"run_task_kwargs sets {key!r}, which the provider reads as the {key} option "
            "(replacing [aws_ecs_executor]'s): migrated as that option"
        )
    split = RunTaskKwargs(rest=provider_camelize(rest))
    for key, parameter in _PLACEMENT_KEYS.items():
        if key in split.rest:
            split.placement[parameter] = Given(key, split.rest.pop(key), f"run_task_kwargs key {key!r}")
    if split.rest.pop("count", None) is not None:
        findings.warnings.append("run_task_kwargs 'count' dropped: the provider always sent count=1, as here")
    return split


def container_overrides(rest: dict[str, Any], container_name: str, findings: Findings) -> None:
    """The provider makes the first containerOverrides entry the Airflow container, whatever its name."""
    overrides = rest.get("overrides")
    if not isinstance(overrides, Mapping):
        return
    containers = overrides.get("containerOverrides")
    if not isinstance(containers, list) or not containers or not isinstance(containers[0], Mapping):
        return
    first = dict(containers[0])
    if first.get("name", container_name) != container_name:
        findings.warnings.append(
            f"run_task_kwargs: the first containerOverrides entry is named {first['name']!r}; the provider "
            f"renamed it to the Airflow container {container_name!r}, and so does the migrated RunTaskKwargs"
        )
    first["name"] = container_name
    if first.pop("command", None) is not None:
        findings.warnings.append(
            "run_task_kwargs: the Airflow container's command dropped (the provider replaced it too)"
        )
    rest["overrides"] = {**overrides, "containerOverrides": [first, *containers[1:]]}
