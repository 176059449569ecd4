"""Building the ECS ``run_task`` call for one run request (pure).

Precedence, lowest first: defaults, template parameters, ``RunTaskKwargs``, then the task's
``executor_config`` — a recursive merge where nested dicts merge and anything else (lists
included) is replaced, as the provider's executor does. The Airflow container is found by
name; its ``command`` is always the workload's and can never be overridden. ``RunTaskKwargs``
(the operator's) is checked against the RunTask parameters; a task's ``executor_config``
against the much narrower typed allow-list of ``executor_config.py``, before every start.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Mapping
from typing import Any

from .contract import (
    ATTEMPT_ENV,
    CONTROL_PLANE_TAG,
    EXECUTOR_CONTAINER_ENV,
    OWNER_ENV,
    RESERVED_ENV_NAMES,
    TASK_KEY_ENV,
    RunRequest,
    TaskKey,
    client_token,
)
from .executor_config import ExecutorConfigError, check_executor_config
from .readiness import FALLBACK_LAUNCH_TYPE
from .settings import ControlPlaneSettings, SettingsError

#: ECS refuses a task's overrides whose JSON (the whole ``overrides`` object, formatting
#: characters included) is longer than this.
MAX_OVERRIDES_CHARS = 8192

#: RunTask parameters a task may set; anything else is refused by name.
ALLOWED_RUN_TASK_KEYS = frozenset(
    {
        "capacityProviderStrategy",
        "enableECSManagedTags",
        "enableExecuteCommand",
        "group",
        "launchType",
        "networkConfiguration",
        "overrides",
        "placementConstraints",
        "placementStrategy",
        "platformVersion",
        "propagateTags",
        "referenceId",
        "tags",
        "taskDefinition",
        "volumeConfigurations",
    }
)
#: Parameters the control plane owns, with the reason a user may not set them.
OWNED_RUN_TASK_KEYS = {
    "cluster": "the cluster is the stack's Cluster parameter (IAM and the event rule are scoped to it)",
    "startedBy": "startedBy marks the control plane's own tasks",
    "clientToken": "clientToken makes starts idempotent and is derived from the task key",
    "count": "one ECS task runs one Airflow task",
}
ALLOWED_OVERRIDE_KEYS = frozenset(
    {
        "containerOverrides",
        "cpu",
        "memory",
        "taskRoleArn",
        "executionRoleArn",
        "ephemeralStorage",
        "inferenceAcceleratorOverrides",
    }
)
ALLOWED_CONTAINER_OVERRIDE_KEYS = frozenset(
    {"name", "environment", "environmentFiles", "cpu", "memory", "memoryReservation", "resourceRequirements"}
)


class RunTaskConfigError(ValueError):
    """The run_task configuration, or a task's executor_config, is not acceptable."""


def check_task_config(config: Any, settings: ControlPlaneSettings) -> None:
    """The stack's allow-list for a task's executor_config (see executor_config.py)."""
    try:
        check_executor_config(config, settings.container_name, settings.executor_config_policy)
    except ExecutorConfigError as exc:
        raise RunTaskConfigError(str(exc)) from None


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


def check_run_task_overrides(config: Mapping[str, Any], container_name: str, source: str) -> None:
    """Refuse keys the control plane owns or does not know, naming the key and the source."""
    if not isinstance(config, Mapping):
        raise RunTaskConfigError(f"{source} must be a JSON object, not {type(config).__name__}")
    for key in config:
        if key in OWNED_RUN_TASK_KEYS:
            raise RunTaskConfigError(f"{source} may not set {key!r}: {OWNED_RUN_TASK_KEYS[key]}")
        if key == "command":
            raise RunTaskConfigError(f"{source} may not set 'command': the command is the Airflow workload")
        if key == "name":
            raise RunTaskConfigError(
                f"{source} may not set 'name': the Airflow container is always {container_name!r}"
            )
        if key not in ALLOWED_RUN_TASK_KEYS:
            raise RunTaskConfigError(
                f"{source} sets unknown run_task parameter {key!r}; allowed: {sorted(ALLOWED_RUN_TASK_KEYS)}"
            )
    overrides = config.get("overrides", {})
    if not isinstance(overrides, Mapping):
        raise RunTaskConfigError(f"{source}: 'overrides' must be an object")
    for key in overrides:
        if key not in ALLOWED_OVERRIDE_KEYS:
            raise RunTaskConfigError(
                f"{source} sets unknown override {key!r}; allowed: {sorted(ALLOWED_OVERRIDE_KEYS)}"
            )
    containers = overrides.get("containerOverrides", [])
    if not isinstance(containers, list) or not all(isinstance(c, Mapping) for c in containers):
        raise RunTaskConfigError(f"{source}: 'overrides.containerOverrides' must be a list of objects")
    if containers and not any(c.get("name") == container_name for c in containers):
        raise RunTaskConfigError(
            f"{source} replaces containerOverrides without the Airflow container {container_name!r}: "
            "the container name cannot be changed (add an entry named "
            f"{container_name!r} to override it)"
        )
    for container in containers:
        if "name" not in container:
            raise RunTaskConfigError(f"{source}: every containerOverrides entry needs a 'name'")
        if container.get("name") == container_name and "command" in container:
            raise RunTaskConfigError(
                f"{source} may not set the command of container {container_name!r}: "
                "it is the Airflow workload"
            )
        unknown = set(container) - ALLOWED_CONTAINER_OVERRIDE_KEYS - {"command"}
        if unknown:
            raise RunTaskConfigError(f"{source} sets unknown container override keys {sorted(unknown)}")
        for env in container.get("environment", []):
            if not isinstance(env, Mapping) or "name" not in env:
                raise RunTaskConfigError(f"{source}: environment entries need 'name' and 'value'")
            if env["name"] in RESERVED_ENV_NAMES:
                raise RunTaskConfigError(
                    f"{source} may not set reserved environment variable {env['name']!r}"
                )


def stack_run_task_kwargs(settings: ControlPlaneSettings) -> dict[str, Any]:
    """Defaults, then template parameters, then ``RunTaskKwargs`` (checked by the settings)."""
    kwargs: dict[str, Any] = {
        "taskDefinition": settings.task_definition,
        "overrides": {"containerOverrides": [{"name": settings.container_name}]},
    }
    if settings.capacity_provider_strategy:
        kwargs["capacityProviderStrategy"] = settings.capacity_provider_strategy
    elif settings.launch_type:
        kwargs["launchType"] = settings.launch_type
    if settings.platform_version and (
        settings.launch_type == "FARGATE" or settings.capacity_provider_strategy
    ):  # with neither, build_run_task_call adds it to the FARGATE fallback
        kwargs["platformVersion"] = settings.platform_version
    if settings.subnets:
        awsvpc: dict[str, Any] = {"subnets": settings.subnets}
        if settings.launch_type != "EC2" or settings.capacity_provider_strategy:
            # ECS refuses assignPublicIp with the EC2 launch type; the provider omits it too.
            awsvpc["assignPublicIp"] = "ENABLED" if settings.assign_public_ip else "DISABLED"
        if settings.security_groups:
            awsvpc["securityGroups"] = settings.security_groups
        kwargs["networkConfiguration"] = {"awsvpcConfiguration": awsvpc}
    return _resolve_placement(kwargs, settings.run_task_kwargs)


def _resolve_placement(
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


def build_run_task_call(
    settings: ControlPlaneSettings,
    request: RunRequest,
    attempt: int | None = None,
    *,
    fallback_launch_type: str | None = FALLBACK_LAUNCH_TYPE,
) -> dict[str, Any]:
    """The complete ``ecs.run_task`` keyword arguments for one start attempt of ``request``.

    With no launch type and no capacity provider strategy at any level, ``fallback_launch_type``
    is sent, as the provider's executor does: FARGATE, or None (send neither, so ECS applies it)
    when the cluster has a default capacity provider strategy (``readiness.default_placement``).
    """
    attempt = attempt or request.attempt
    check_task_config(request.executor_config, settings)
    kwargs = _resolve_placement(
        stack_run_task_kwargs(settings), request.executor_config, merge=merge_task_config
    )
    if kwargs.get("launchType") in ("EC2", "EXTERNAL"):
        # However the EC2 launch type was chosen (LaunchType, RunTaskKwargs, snake_case or not),
        # ECS refuses assignPublicIp with it; the provider omits it too.
        awsvpc = (kwargs.get("networkConfiguration") or {}).get("awsvpcConfiguration")
        if isinstance(awsvpc, dict):
            awsvpc.pop("assignPublicIp", None)
    if fallback_launch_type and not (kwargs.get("launchType") or kwargs.get("capacityProviderStrategy")):
        kwargs["launchType"] = fallback_launch_type
        if fallback_launch_type == "FARGATE" and settings.platform_version:
            kwargs.setdefault("platformVersion", settings.platform_version)

    containers = kwargs.setdefault("overrides", {}).setdefault("containerOverrides", [])
    airflow = next((c for c in containers if c.get("name") == settings.container_name), None)
    if airflow is None:
        airflow = {"name": settings.container_name}
        containers.append(airflow)
    airflow["command"] = list(request.command)
    environment = [e for e in airflow.get("environment", []) if e.get("name") not in RESERVED_ENV_NAMES]
    environment += [
        {"name": TASK_KEY_ENV, "value": request.key},
        {"name": ATTEMPT_ENV, "value": str(attempt)},
        {"name": OWNER_ENV, "value": request.owner},
        {"name": EXECUTOR_CONTAINER_ENV, "value": "true"},
    ]
    airflow["environment"] = environment

    size = len(json.dumps(kwargs["overrides"], separators=(",", ":")))
    if size > MAX_OVERRIDES_CHARS:
        raise RunTaskConfigError(
            f"the task's overrides are {size} characters, more than the {MAX_OVERRIDES_CHARS} ECS "
            "accepts: shrink executor_config's overrides (environment, resources) or the workload"
        )
    # Last, so that no other tag of that key can win: IAM lets the functions stop only these.
    tags = [
        t
        for t in kwargs.get("tags") or []
        if not (isinstance(t, Mapping) and t.get("key") == CONTROL_PLANE_TAG)
    ]
    kwargs.update(
        cluster=settings.cluster,
        startedBy=settings.control_plane_id,
        clientToken=client_token(request.key, attempt, settings.control_plane_id),
        count=1,
        tags=[*tags, {"key": CONTROL_PLANE_TAG, "value": settings.control_plane_id}],
    )
    return kwargs


def check_run_task_shape(settings: ControlPlaneSettings, service_model: Any) -> None:
    """Refuse at cold start a stack whose every RunTask call botocore would refuse.

    The settings check RunTaskKwargs' keys; this checks the whole call the stack makes (types,
    nested keys, lists) against ECS's own API model, with botocore's parameter validation, so
    that a ``platformVersion: 3`` or an ``awsvpcConfiguration.subnet`` fails the functions' start
    once, naming the setting, instead of every task. ``service_model``: the ECS client's.
    """
    from botocore.validate import ParamValidator  # noqa: PLC0415 - cold start only

    probe = RunRequest(
        kind="run", key=TaskKey("dag", "task", "run").encode(), owner="check", command=["airflow"]
    )
    call = build_run_task_call(settings, probe, fallback_launch_type=None)
    report = ParamValidator().validate(call, service_model.operation_model("RunTask").input_shape)
    if report.has_errors():
        raise SettingsError(
            "invalid control plane settings: ECSCP_RUN_TASK_KWARGS (template parameter RunTaskKwargs) "
            f"and the stack's parameters make a RunTask call ECS refuses: {report.generate_report()}"
        )
