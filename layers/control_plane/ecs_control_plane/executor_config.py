"""What a task's ``executor_config`` may set: a typed allow-list (pure).

A DAG author tunes a task's resources, not its identity or its reach: task and Airflow-container
cpu/memory, ephemeral storage, GPUs, environment variables outside the reserved names, tags,
placement, and the capacity provider strategy among the providers the operator allows. Choosing
another task definition family or another task/execution role is refused unless the operator
widened it (template parameters). Everything else — network configuration, volumes, ECS Exec,
environment files, sidecar overrides, the launch type, what the control plane owns — is refused,
with a message naming the key and where an operator would set it instead.

Values are typed strictly: a wrong type is refused here, not by botocore after the start was
queued. Used twice: by the executor (``policy=None``: structure, types and what is never
allowed) before sending, and by ``run_task`` before every start, with the stack's policy.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .contract import CONTROL_PLANE_TAG, RESERVED_ENV_NAMES


class ExecutorConfigError(ValueError):
    """A task's executor_config asks for something it may not set."""


#: Environment variables a task may not set, compared case-insensitively: the control plane's
#: own; whatever tells the task runner where Airflow's execution API is, or where its requests
#: go (the workload token would go elsewhere): the URL under its every name (the deprecated
#: ``[workers]`` alias, ``[api] base_url`` it is derived from, their ``_CMD``/``_SECRET`` forms),
#: the config file and home that could set them, proxies and CA bundles; the AWS SDK's endpoint
#: overrides; and the ECS agent's credential and metadata endpoints.
RESERVED_ENV_EXACT = frozenset(
    {name.upper() for name in RESERVED_ENV_NAMES}
    | {"AIRFLOW_CONFIG", "AIRFLOW_HOME", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY"}
    | {"AWS_CA_BUNDLE", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "SSL_CERT_FILE", "SSL_CERT_DIR"}
)
RESERVED_ENV_PREFIXES = (
    "AIRFLOW__CORE__EXECUTION_API_SERVER_URL",
    "AIRFLOW__WORKERS__EXECUTION_API_SERVER_URL",
    "AIRFLOW__API__BASE_URL",
    "AWS_ENDPOINT_URL",
    "AWS_CONTAINER_",
    "ECS_CONTAINER_METADATA_URI",
    "ECS_AGENT_URI",
)
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]{0,254}")


def is_reserved_env_name(name: str) -> bool:
    upper = name.strip().upper()
    return upper in RESERVED_ENV_EXACT or upper.startswith(RESERVED_ENV_PREFIXES)


#: Where an operator sets what executor_config may not.
_REFUSED_KEYS = {
    "cluster": "the cluster is the stack's Cluster parameter (IAM and the event rule are scoped to it)",
    "startedBy": "startedBy marks the control plane's own tasks",
    "clientToken": "clientToken makes starts idempotent and is derived from the task key",
    "count": "one ECS task runs one Airflow task",
    "command": "the command is the Airflow workload",
    "name": "the Airflow container is named by the stack's ContainerName parameter",
    "launchType": "the launch type is the stack's LaunchType parameter; a task may choose among the "
    "capacity providers that AllowedCapacityProviders permits (capacityProviderStrategy)",
    "networkConfiguration": "the network is the stack's Subnets, SecurityGroups and AssignPublicIp "
    "parameters (or RunTaskKwargs)",
    "enableExecuteCommand": "ECS Exec is an operator's decision: set it in RunTaskKwargs",
    "volumeConfigurations": "volumes are an operator's decision: set them in RunTaskKwargs",
    "referenceId": "referenceId is the operator's (RunTaskKwargs)",
}
_REFUSED_OVERRIDE_KEYS = {
    "inferenceAcceleratorOverrides": "set it in RunTaskKwargs",
}
_REFUSED_CONTAINER_KEYS = {
    "command": "the command is the Airflow workload",
    "environmentFiles": "environment files are read from S3 with the execution role: set them in the "
    "task definition or RunTaskKwargs",
}


class _Strict(BaseModel):
    # Built on first use: task_state and the reconciler never check an executor_config, and
    # building these schemas is a few ms of every cold start (run_task pays it on its first record).
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, defer_build=True)


class _KeyValue(_Strict):
    name: Annotated[str, Field(min_length=1, max_length=255)]
    value: Annotated[str, Field(max_length=8192)]


class _ResourceRequirement(_Strict):
    type: Literal["GPU", "InferenceAccelerator"]
    value: Annotated[str, Field(min_length=1, max_length=64)]


class _ContainerOverride(_Strict):
    name: Annotated[str, Field(min_length=1, max_length=255)]
    cpu: Annotated[int, Field(ge=0, le=196_608)] | None = None
    memory: Annotated[int, Field(ge=4, le=1_048_576)] | None = None
    memoryReservation: Annotated[int, Field(ge=4, le=1_048_576)] | None = None  # noqa: N815
    environment: Annotated[list[_KeyValue], Field(max_length=200)] | None = None
    resourceRequirements: Annotated[list[_ResourceRequirement], Field(max_length=4)] | None = None  # noqa: N815


class _EphemeralStorage(_Strict):
    sizeInGiB: Annotated[int, Field(ge=21, le=200)]  # noqa: N815


class _Overrides(_Strict):
    containerOverrides: Annotated[list[_ContainerOverride], Field(max_length=1)] | None = None  # noqa: N815
    cpu: Annotated[str, Field(pattern=r"^[0-9]{1,6}$|^[0-9.]{1,6} ?vCPU$")] | None = None
    memory: Annotated[str, Field(pattern=r"^[0-9]{1,7}$|^[0-9.]{1,6} ?GB$")] | None = None
    ephemeralStorage: _EphemeralStorage | None = None  # noqa: N815
    taskRoleArn: Annotated[str, Field(max_length=2048)] | None = None  # noqa: N815
    executionRoleArn: Annotated[str, Field(max_length=2048)] | None = None  # noqa: N815


class _Tag(_Strict):
    key: Annotated[str, Field(min_length=1, max_length=128)]
    value: Annotated[str, Field(max_length=256)] = ""


class _CapacityProviderItem(_Strict):
    capacityProvider: Annotated[str, Field(min_length=1, max_length=255)]  # noqa: N815
    weight: Annotated[int, Field(ge=0, le=1000)] | None = None
    base: Annotated[int, Field(ge=0, le=100_000)] | None = None


_Strategy = Annotated[list[_CapacityProviderItem], Field(min_length=1, max_length=20)]


class _PlacementConstraint(_Strict):
    type: Literal["distinctInstance", "memberOf"]
    expression: Annotated[str, Field(max_length=2000)] | None = None


class _PlacementStrategy(_Strict):
    type: Literal["random", "spread", "binpack"]
    field: Annotated[str, Field(max_length=255)] | None = None


class _ExecutorConfig(_Strict):
    overrides: _Overrides | None = None
    tags: Annotated[list[_Tag], Field(max_length=40)] | None = None
    capacityProviderStrategy: _Strategy | None = None  # noqa: N815
    taskDefinition: Annotated[str, Field(min_length=1, max_length=1600)] | None = None  # noqa: N815
    placementConstraints: Annotated[list[_PlacementConstraint], Field(max_length=10)] | None = None  # noqa: N815
    placementStrategy: Annotated[list[_PlacementStrategy], Field(max_length=5)] | None = None  # noqa: N815
    platformVersion: Annotated[str, Field(pattern=r"^[A-Za-z0-9.]{1,16}$")] | None = None  # noqa: N815
    propagateTags: Literal["TASK_DEFINITION", "SERVICE", "NONE"] | None = None  # noqa: N815
    enableECSManagedTags: bool | None = None  # noqa: N815
    group: Annotated[str, Field(max_length=255)] | None = None


@dataclass(frozen=True)
class ExecutorConfigPolicy:
    """What the operator lets a task choose (template parameters)."""

    container_name: str
    #: Task definition families a task may pick (the stack's own family is always allowed).
    task_definition_families: frozenset[str] = field(default_factory=frozenset)
    task_role_arns: frozenset[str] = field(default_factory=frozenset)
    execution_role_arns: frozenset[str] = field(default_factory=frozenset)
    capacity_providers: frozenset[str] = field(default_factory=frozenset)
    #: The queue whose profile this policy is (None: the stack's own), for the refusals' advice.
    queue: str | None = None


def task_definition_family(value: str) -> str:
    """The family of ``family``, ``family:revision`` or a task definition ARN."""
    name = value.rsplit("task-definition/", 1)[-1] if value.startswith("arn:") else value
    return name.split(":", 1)[0]


def _problems(exc: ValidationError) -> str:
    # Locations and messages only: pydantic's own text quotes the input.
    return "; ".join(
        f"{'.'.join(str(p) for p in err['loc']) or 'executor_config'}: {err['msg']}" for err in exc.errors()
    )


def _refuse_nulls(config: Mapping[str, Any], source: str) -> None:
    """A null is no value: ``{"overrides": null}`` would clear what the stack sets (or crash the
    merge), so every null is refused, naming where it is. Iterative: nesting depth is no risk."""
    stack: list[tuple[str, Any]] = [("", config)]
    while stack:
        path, value = stack.pop()
        if value is None:
            raise ExecutorConfigError(f"{source} sets {path!r} to null: leave the key out instead")
        if isinstance(value, Mapping):
            stack.extend((f"{path}.{k}" if path else str(k), v) for k, v in value.items())
        elif isinstance(value, list):
            stack.extend((f"{path}.{i}", v) for i, v in enumerate(value))


def _refuse_named_keys(config: Mapping[str, Any], source: str) -> None:
    for key in config:
        if key in _REFUSED_KEYS:
            raise ExecutorConfigError(f"{source} may not set {key!r}: {_REFUSED_KEYS[key]}")
    overrides = config.get("overrides")
    if not isinstance(overrides, Mapping):
        return
    for key in overrides:
        if key in _REFUSED_OVERRIDE_KEYS:
            why = _REFUSED_OVERRIDE_KEYS[key]
            raise ExecutorConfigError(f"{source} may not set 'overrides.{key}': {why}")
    containers = overrides.get("containerOverrides")
    if not isinstance(containers, Sequence) or isinstance(containers, str):
        return
    for index, container in enumerate(containers):
        if not isinstance(container, Mapping):
            continue
        for key in container:
            if key in _REFUSED_CONTAINER_KEYS:
                raise ExecutorConfigError(
                    f"{source} may not set 'overrides.containerOverrides.{index}.{key}': "
                    f"{_REFUSED_CONTAINER_KEYS[key]}"
                )


def check_executor_config(
    config: Any, container_name: str, policy: ExecutorConfigPolicy | None, source: str = "executor_config"
) -> None:
    """Refuse what a task may not set, naming the key; ``policy=None`` skips operator-widened checks."""
    if not isinstance(config, Mapping):
        raise ExecutorConfigError(f"{source} must be a JSON object, not {type(config).__name__}")
    _refuse_nulls(config, source)
    _refuse_named_keys(config, source)
    try:
        parsed = _ExecutorConfig.model_validate(dict(config))
    except ValidationError as exc:
        raise ExecutorConfigError(f"{source} is not accepted: {_problems(exc)}") from None
    except RecursionError:
        raise ExecutorConfigError(f"{source} is nested too deeply") from None

    for tag in parsed.tags or []:
        if tag.key.strip().lower() == CONTROL_PLANE_TAG:
            raise ExecutorConfigError(
                f"{source} may not set tag {CONTROL_PLANE_TAG!r}: it marks the control plane's tasks"
            )
    overrides = parsed.overrides or _Overrides()
    for container in overrides.containerOverrides or []:
        if container.name != container_name:
            raise ExecutorConfigError(
                f"{source} overrides container {container.name!r}: only the Airflow container "
                f"{container_name!r} may be overridden (configure other containers in the task "
                "definition or RunTaskKwargs)"
            )
        for variable in container.environment or []:
            if not _ENV_NAME.fullmatch(variable.name):
                raise ExecutorConfigError(f"{source} sets an environment variable with a bad name")
            if is_reserved_env_name(variable.name):
                raise ExecutorConfigError(
                    f"{source} may not set reserved environment variable {variable.name.strip()!r}"
                )
    if policy is None:
        return
    _check_policy(parsed, overrides, policy, source)


def _check_policy(
    parsed: _ExecutorConfig, overrides: _Overrides, policy: ExecutorConfigPolicy, source: str
) -> None:
    if parsed.taskDefinition is not None:
        family = task_definition_family(parsed.taskDefinition)
        if family not in policy.task_definition_families:
            own = "the stack's" if policy.queue is None else f"queue {policy.queue!r}'s profile's"
            raise ExecutorConfigError(
                f"{source} may not set 'taskDefinition' to family {family!r}: tasks may choose "
                f"{own} own family, and those the stack's AllowedTaskDefinitionFamilies parameter names"
            )
    for attribute, allowed, parameter in (
        ("taskRoleArn", policy.task_role_arns, "AllowedTaskRoleArns"),
        ("executionRoleArn", policy.execution_role_arns, "AllowedExecutionRoleArns"),
    ):
        value = getattr(overrides, attribute)
        if value is not None and value not in allowed:
            raise ExecutorConfigError(
                f"{source} may not set 'overrides.{attribute}' to {value!r}: add it to the stack's "
                f"{parameter} parameter to let tasks choose it"
            )
    for item in parsed.capacityProviderStrategy or []:
        if item.capacityProvider not in policy.capacity_providers:
            own = (
                "the stack's CapacityProviderStrategy"
                if policy.queue is None
                else f"queue {policy.queue!r}'s profile (its strategy and fallback, QueueProfiles)"
            )
            raise ExecutorConfigError(
                f"{source} may not use capacity provider {item.capacityProvider!r}: tasks may use those "
                f"of {own}, and those the stack's AllowedCapacityProviders parameter names"
            )


def _field_paths(model: type[BaseModel], prefix: str) -> list[str]:
    paths = []
    for name in model.model_fields:
        path = f"{prefix}{name}"
        paths.append(path)
        if model is _Overrides and name == "containerOverrides":
            paths += [f"{path}.{n}" for n in _ContainerOverride.model_fields if n != "name"]
        elif model is _ExecutorConfig and name == "overrides":
            paths += _field_paths(_Overrides, f"{path}.")
        elif model is _Overrides and name == "ephemeralStorage":
            paths += _field_paths(_EphemeralStorage, f"{path}.")
    return paths


#: Every key path the typed allow-list knows: what a queue profile's ``allowedExecutorConfig``
#: may name (a path allows everything under it).
EXECUTOR_CONFIG_KEY_PATHS = frozenset(_field_paths(_ExecutorConfig, ""))


def key_paths(config: Mapping[str, Any]) -> set[str]:
    """The key paths an executor_config sets, as a profile's ``allowedExecutorConfig`` names them.

    Objects are walked key by key; lists are leaves, except the container overrides, whose
    entries' keys count (``overrides.containerOverrides.environment``) and whose ``name`` does not
    (it only says which container); an empty object or list, or a bare name, sets nothing. A
    config that fails the typed checks may give odd paths: it is checked first.
    """
    paths: set[str] = set()
    stack: list[tuple[str, Any]] = [("", config)]
    while stack:
        prefix, value = stack.pop()
        if isinstance(value, Mapping):  # an empty object sets nothing
            stack.extend((f"{prefix}.{key}" if prefix else str(key), item) for key, item in value.items())
            continue
        if isinstance(value, list) and not value:
            continue  # an empty list adds (or merges) nothing
        if prefix == "overrides.containerOverrides" and isinstance(value, list):
            for entry in value:
                keys = [k for k in entry if k != "name"] if isinstance(entry, Mapping) else []
                paths.update(f"{prefix}.{key}" for key in keys)
            continue
        paths.add(prefix)
    return paths
