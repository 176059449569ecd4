"""Values for the template's parameters, as ``sam deploy --parameter-overrides`` would pass them.

Overrides come first; then a local candidate for each parameter a control-plane template may
declare, found by its name (case-insensitive): the cluster, network, roles, task definition and
task log group that :mod:`ecscp.local.ecs.setup` created (empty where the template's
optional infrastructure leaves them to the stack), the local queue profiles
(:mod:`ecscp.local.ecs.profiles`, only with the setup's own task definitions: none when the
stack creates its task definition) and the stack's local settings; then the parameter's
``Default``. A parameter with none of these stops the deploy, naming it.

Departs from AWS: the values are chosen, not typed in. A candidate is used only if it satisfies
the parameter's ``AllowedValues`` and ``AllowedPattern``, as CloudFormation would refuse one that
does not; the other constraints (``MinLength``, ``MaxValue``, ``Type``...) are not checked here.
"""

from __future__ import annotations

import re
from typing import Any

from ecscp.local.ecs.profiles import queue_profiles_parameter
from ecscp.local.ecs.setup import EcsSetup

from . import DeployError


def _candidates(ecs: EcsSetup, settings: dict[str, str]) -> dict[str, list[str]]:
    """Local values for the parameters a control-plane template may declare, best first."""
    profiles = bool(ecs.profile_task_definition)
    return {
        "cluster": [ecs.cluster_name, ecs.cluster_arn],
        "clustername": [ecs.cluster_name],
        "clusterarn": [ecs.cluster_arn],
        "subnets": [ecs.subnet_id],
        "subnetids": [ecs.subnet_id],
        "securitygroups": [ecs.security_group_id],
        "securitygroupids": [ecs.security_group_id],
        "taskdefinition": [ecs.task_definition, ecs.task_definition_arn],
        "taskdefinitionarn": [ecs.task_definition_arn],
        "containername": [ecs.container_name],
        "launchtype": ["FARGATE"],
        "assignpublicip": ["false", "DISABLED", "False"],
        "taskrolearn": [ecs.task_role_arn],
        "executionrolearn": [ecs.execution_role_arn],
        "taskloggroupname": [ecs.log_group],
        "taskloggroup": [ecs.log_group],
        "queueprofiles": [queue_profiles_parameter() if profiles else ""],
        "queueprofiletaskdefinitionfamilies": [ecs.profile_task_definition],
        # The profiles' task definitions have the stack's own roles: nothing more to pass.
        "queueprofilerolearns": [""],
        **{name.lower(): [value] for name, value in settings.items()},
    }


def _acceptable(spec: dict[str, Any], value: str) -> bool:
    allowed = spec.get("AllowedValues")
    if allowed is not None and value not in [str(v) for v in allowed]:
        return False
    pattern = spec.get("AllowedPattern")
    return not (pattern and not re.fullmatch(str(pattern), value))


def parameter_values(
    template: dict[str, Any], ecs: EcsSetup, settings: dict[str, str], overrides: dict[str, str]
) -> dict[str, str]:
    """Values for the template's parameters: overrides, then local candidates, then defaults.

    A candidate is used only if it satisfies the parameter's AllowedValues/AllowedPattern (a
    ``Cluster`` parameter that wants a name gets the name, one that wants an ARN the ARN).
    """
    declared: dict[str, Any] = template.get("Parameters") or {}
    candidates = _candidates(ecs, settings)
    values: dict[str, str] = {}
    missing: list[str] = []
    for name, spec in declared.items():
        if name in overrides:
            values[name] = overrides[name]
            continue
        chosen = next((v for v in candidates.get(name.lower(), []) if _acceptable(spec, v)), None)
        if chosen is not None:
            values[name] = chosen
        elif "Default" in spec:
            values[name] = str(spec["Default"])
        else:
            missing.append(name)
    if missing:
        raise DeployError(
            f"no local value for template parameter(s) {missing}; pass them in LocalStackConfig.parameters"
        )
    return values
