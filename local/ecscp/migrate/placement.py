"""Placement: ``LaunchType`` and ``CapacityProviderStrategy``, as the provider decides between them."""

from __future__ import annotations

import ast
import json
from collections.abc import Mapping
from typing import Any

from .options import Findings, Given, Options, as_text
from .run_task_kwargs import RunTaskKwargs, provider_camelize
from .sam_overrides import json_text

_CAPACITY_PROVIDER_KEYS = frozenset({"capacityProvider", "weight", "base"})


def _capacity_provider_strategy(given: Given, findings: Findings) -> list[dict[str, Any]] | None:
    parsed: object = given.value
    if isinstance(given.value, str):
        if not given.value.strip():
            return None
        try:
            parsed = json.loads(given.value)
        except json.JSONDecodeError:
            # The provider's documented example is a Python literal: [{'capacityProvider': 'cp1', ...}].
            try:
                parsed = ast.literal_eval(given.value)
            except (ValueError, SyntaxError):
                findings.refuse(
                    given, 'not a JSON list such as [{"capacityProvider":"FARGATE_SPOT","weight":1}]'
                )
                return None
        findings.warnings.append(
            f"capacity_provider_strategy ({given.source}): the provider passes this option to RunTask as "
            "text, which botocore refuses (every start failed with 'Invalid type for parameter "
            "capacityProviderStrategy'); here CapacityProviderStrategy is a JSON list and is used"
        )
    if not isinstance(parsed, list) or not all(isinstance(item, Mapping) for item in parsed):
        findings.refuse(given, f"must be a list of objects, not {parsed!r}")
        return None
    strategy = [provider_camelize(item) for item in parsed]
    for item in strategy:
        if set(item) - _CAPACITY_PROVIDER_KEYS or not isinstance(item.get("capacityProvider"), str):
            findings.refuse(
                given,
                f"each entry needs a capacityProvider and may set only {sorted(_CAPACITY_PROVIDER_KEYS)}; "
                f"got {item!r}",
            )
            return None
    return strategy


def placement_parameters(options: Options, kwargs: RunTaskKwargs, findings: Findings) -> dict[str, str]:
    """LaunchType and CapacityProviderStrategy, as the provider decides between them."""
    option_type = options.get("launch_type")
    option_strategy = options.get("capacity_provider_strategy")
    if option_type is not None and option_strategy is not None:
        findings.refuse(
            option_strategy,
            "capacity_provider_strategy and launch_type are mutually exclusive, you can not provide both "
            f"(the provider refuses to start; launch_type from {option_type.source})",
        )
        return {}
    launch_type = kwargs.placement.get("LaunchType") or option_type
    strategy_given = kwargs.placement.get("CapacityProviderStrategy") or option_strategy
    if launch_type is not None and strategy_given is not None:
        findings.refuse(
            strategy_given,
            f"set together with a launch type ({launch_type.source}): the provider sends both, and ECS "
            "refuses every RunTask with launchType and capacityProviderStrategy",
        )
        return {}
    if option_type is None and option_strategy is None and launch_type is not None:
        findings.warnings.append(
            "run_task_kwargs sets launchType without the launch_type option: on a cluster without a "
            "default capacity provider strategy the provider sent FARGATE instead; here "
            f"LaunchType={launch_type.value} is used"
        )
    if strategy_given is not None:
        strategy = _capacity_provider_strategy(strategy_given, findings)
        if strategy:
            return {"LaunchType": "", "CapacityProviderStrategy": json_text(strategy)}
    # With neither, both stay empty: run_task then falls back as the provider did (the cluster's
    # default capacity provider strategy, else FARGATE).
    return {"LaunchType": as_text(launch_type, findings) or "", "CapacityProviderStrategy": ""}
