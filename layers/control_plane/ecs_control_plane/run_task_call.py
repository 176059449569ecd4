"""Building the ECS ``run_task`` call for one run request (pure).

Precedence, lowest first: defaults, template parameters, ``RunTaskKwargs``, the task's queue
profile (``QueueProfiles``: task definition, container, placement, network, size), then the
task's ``executor_config``, each merged over the ones before (``run_task_merge.py``: nested
dicts merge and anything else is replaced, as the provider's executor does; a task cannot undo
the operator's named entries or placement rules). The Airflow container is found by name; its
``command`` is always the workload's and can never be overridden. ``RunTaskKwargs`` (the
operator's) is checked against the RunTask parameters; a task's ``executor_config`` against the
much narrower typed allow-list of ``executor_config.py``, before every start.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
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
from .queue_profiles import QueueProfile
from .readiness import FALLBACK_LAUNCH_TYPE
from .run_task_merge import merge_task_config, resolve_placement
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


def check_task_config(
    config: Any, settings: ControlPlaneSettings, profile: QueueProfile | None = None, queue: str | None = None
) -> None:
    """The stack's allow-list for a task's executor_config (see executor_config.py), then its
    queue profile's (the keys that queue's tasks may set)."""
    container = settings.container_name_for(profile)
    try:
        if profile is not None:  # what the queue allows first: its refusal is the one to act on
            check_executor_config(config, container, None)
            profile.check_executor_config(config, str(queue))
        check_executor_config(config, container, settings.executor_config_policy_for(profile, queue))
    except ExecutorConfigError as exc:
        raise RunTaskConfigError(str(exc)) from None


def _for_container(config: Any, stack_name: str, name: str) -> Any:
    """``config`` with its overrides of the stack's Airflow container (ContainerName, which the
    executor checks them against) applied to the profile's Airflow container ``name``."""
    if not isinstance(config, Mapping):
        return config  # refused by the checks, naming it
    overrides = config.get("overrides")
    if stack_name == name or not isinstance(overrides, Mapping):
        return config
    containers = overrides.get("containerOverrides")
    if not isinstance(containers, list):
        return config
    renamed = [
        {**c, "name": name} if isinstance(c, Mapping) and c.get("name") == stack_name else c
        for c in containers
    ]
    return {**config, "overrides": {**overrides, "containerOverrides": renamed}}


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
    return resolve_placement(kwargs, settings.run_task_kwargs)


def profile_run_task_kwargs(settings: ControlPlaneSettings, profile: QueueProfile) -> dict[str, Any]:
    """The stack's call with the queue profile's task definition, container, placement, network
    and size over it: what the profile leaves out stays the stack's."""
    kwargs = stack_run_task_kwargs(settings)
    kwargs["taskDefinition"] = profile.task_definition
    container = settings.container_name_for(profile)
    for override in kwargs["overrides"]["containerOverrides"]:
        if override.get("name") == settings.container_name:
            override["name"] = container
    update: dict[str, Any] = {}
    if profile.capacity_provider_strategy:
        update["capacityProviderStrategy"] = [item.to_ecs() for item in profile.capacity_provider_strategy]
    elif profile.launch_type:
        update["launchType"] = profile.launch_type
    fargate = profile.launch_type == "FARGATE" or bool(profile.capacity_provider_strategy)
    if profile.platform_version:
        update["platformVersion"] = profile.platform_version
    elif fargate and settings.platform_version:
        update["platformVersion"] = settings.platform_version
    network = {
        "subnets": profile.subnets,
        "securityGroups": profile.security_groups,
        "assignPublicIp": None
        if profile.assign_public_ip is None
        else ("ENABLED" if profile.assign_public_ip else "DISABLED"),
    }
    awsvpc = {key: value for key, value in network.items() if value is not None}
    if awsvpc:
        if "assignPublicIp" not in awsvpc:
            awsvpc["assignPublicIp"] = "ENABLED" if settings.assign_public_ip else "DISABLED"
        update["networkConfiguration"] = {"awsvpcConfiguration": awsvpc}
    size = {key: value for key, value in (("cpu", profile.cpu), ("memory", profile.memory)) if value}
    if size:
        update["overrides"] = size
    return resolve_placement(kwargs, update)


def fall_back(
    kwargs: dict[str, Any], settings: ControlPlaneSettings, profile: QueueProfile
) -> dict[str, Any]:
    """``kwargs`` placed on the profile's fallback strategy instead (after a capacity failure)."""
    assert profile.fallback_capacity_provider_strategy is not None
    kwargs.pop("launchType", None)
    kwargs["capacityProviderStrategy"] = [
        item.to_ecs() for item in profile.fallback_capacity_provider_strategy
    ]
    version = profile.platform_version or settings.platform_version
    if version:
        kwargs.setdefault("platformVersion", version)
    return kwargs


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
    The request's queue picks its profile; ``request.fallback`` (set after a capacity failure)
    places the task on that profile's fallback strategy.
    """
    attempt = attempt or request.attempt
    profile = settings.profile_for(request.queue)
    container_name = settings.container_name_for(profile)
    task_config = _for_container(request.executor_config, settings.container_name, container_name)
    check_task_config(task_config, settings, profile, request.queue)
    base = stack_run_task_kwargs(settings) if profile is None else profile_run_task_kwargs(settings, profile)
    kwargs = resolve_placement(base, task_config, merge=merge_task_config)
    if request.fallback and profile is not None and profile.fallback_capacity_provider_strategy:
        kwargs = fall_back(kwargs, settings, profile)
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
    airflow = next((c for c in containers if c.get("name") == container_name), None)
    if airflow is None:
        airflow = {"name": container_name}
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

    shape = service_model.operation_model("RunTask").input_shape
    probes: list[tuple[str | None, bool]] = [(None, False)]
    for name, profile in settings.queue_profiles.profiles.items():
        probes += [(name, False)] + ([(name, True)] if profile.fallback_capacity_provider_strategy else [])
    for queue, fallback in probes:
        probe = RunRequest(
            kind="run",
            key=TaskKey("dag", "task", "run").encode(),
            owner="check",
            command=["airflow"],
            queue=queue,
            fallback=fallback,
        )
        call = build_run_task_call(settings, probe, fallback_launch_type=None)
        report = ParamValidator().validate(call, shape)
        if not report.has_errors():
            continue
        where = "ECSCP_RUN_TASK_KWARGS (template parameter RunTaskKwargs) and the stack's parameters"
        if queue is not None:
            where = f"ECSCP_QUEUE_PROFILES (template parameter QueueProfiles): profile {queue!r}" + (
                " on its fallback capacity" if fallback else ""
            )
        raise SettingsError(
            f"invalid control plane settings: {where} make a RunTask call ECS refuses: "
            f"{report.generate_report()}"
        )
