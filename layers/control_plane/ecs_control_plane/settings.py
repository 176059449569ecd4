"""The functions' configuration: template parameters, passed as environment variables.

Validated once at the boundary so that a misconfigured stack fails with a message naming the
setting, never with a silent default.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from .executor_config import ExecutorConfigPolicy, task_definition_family
from .queue_profiles import ENV_FAMILIES as QUEUE_PROFILE_FAMILIES_ENV
from .queue_profiles import ENV_ROLES as QUEUE_PROFILE_ROLES_ENV
from .queue_profiles import QueueProfile, QueueProfiles
from .retry import TRANSIENT_BACKOFF_CAP_SECONDS

# Environment variable names (template.yaml sets them from its parameters).
ENV_CLUSTER = "ECSCP_CLUSTER"
ENV_CONTAINER_NAME = "ECSCP_CONTAINER_NAME"
ENV_TASK_DEFINITION = "ECSCP_TASK_DEFINITION"
ENV_LAUNCH_TYPE = "ECSCP_LAUNCH_TYPE"
ENV_CAPACITY_PROVIDER_STRATEGY = "ECSCP_CAPACITY_PROVIDER_STRATEGY"
ENV_PLATFORM_VERSION = "ECSCP_PLATFORM_VERSION"
ENV_ASSIGN_PUBLIC_IP = "ECSCP_ASSIGN_PUBLIC_IP"
ENV_SECURITY_GROUPS = "ECSCP_SECURITY_GROUPS"
ENV_SUBNETS = "ECSCP_SUBNETS"
ENV_RUN_TASK_KWARGS = "ECSCP_RUN_TASK_KWARGS"
ENV_MAX_RUN_TASK_ATTEMPTS = "ECSCP_MAX_RUN_TASK_ATTEMPTS"
ENV_START_RETRY_BASE_SECONDS = "ECSCP_START_RETRY_BASE_SECONDS"
ENV_START_RETRY_MAX_SECONDS = "ECSCP_START_RETRY_MAX_SECONDS"
ENV_STATE_TABLE = "ECSCP_STATE_TABLE"
ENV_QUEUE_URL = "ECSCP_QUEUE_URL"
ENV_CONTROL_PLANE_ID = "ECSCP_CONTROL_PLANE_ID"
ENV_EVENT_BUS = "ECSCP_EVENT_BUS"
ENV_ITEM_RETENTION_DAYS = "ECSCP_ITEM_RETENTION_DAYS"
ENV_RECONCILE_STALE_SECONDS = "ECSCP_RECONCILE_STALE_SECONDS"
ENV_QUEUED_TIMEOUT_SECONDS = "ECSCP_QUEUED_TIMEOUT_SECONDS"
ENV_ALLOWED_TASK_DEFINITION_FAMILIES = "ECSCP_ALLOWED_TASK_DEFINITION_FAMILIES"
ENV_ALLOWED_TASK_ROLE_ARNS = "ECSCP_ALLOWED_TASK_ROLE_ARNS"
ENV_ALLOWED_EXECUTION_ROLE_ARNS = "ECSCP_ALLOWED_EXECUTION_ROLE_ARNS"
ENV_ALLOWED_CAPACITY_PROVIDERS = "ECSCP_ALLOWED_CAPACITY_PROVIDERS"
ENV_TASK_ROLE_ARN = "ECSCP_TASK_ROLE_ARN"
ENV_EXECUTION_ROLE_ARN = "ECSCP_EXECUTION_ROLE_ARN"
ENV_TOKEN_START_MARGIN_SECONDS = "ECSCP_TOKEN_START_MARGIN_SECONDS"  # noqa: S105 - a name, no secret
ENV_QUEUE_PROFILES = "ECSCP_QUEUE_PROFILES"
ENV_QUEUE_PROFILE_TASK_DEFINITION_FAMILIES = QUEUE_PROFILE_FAMILIES_ENV
ENV_QUEUE_PROFILE_ROLE_ARNS = QUEUE_PROFILE_ROLES_ENV

ALL_ENV = {
    "cluster": ENV_CLUSTER,
    "container_name": ENV_CONTAINER_NAME,
    "task_definition": ENV_TASK_DEFINITION,
    "launch_type": ENV_LAUNCH_TYPE,
    "capacity_provider_strategy": ENV_CAPACITY_PROVIDER_STRATEGY,
    "platform_version": ENV_PLATFORM_VERSION,
    "assign_public_ip": ENV_ASSIGN_PUBLIC_IP,
    "security_groups": ENV_SECURITY_GROUPS,
    "subnets": ENV_SUBNETS,
    "run_task_kwargs": ENV_RUN_TASK_KWARGS,
    "max_run_task_attempts": ENV_MAX_RUN_TASK_ATTEMPTS,
    "start_retry_base_seconds": ENV_START_RETRY_BASE_SECONDS,
    "start_retry_max_seconds": ENV_START_RETRY_MAX_SECONDS,
    "state_table": ENV_STATE_TABLE,
    "queue_url": ENV_QUEUE_URL,
    "control_plane_id": ENV_CONTROL_PLANE_ID,
    "event_bus": ENV_EVENT_BUS,
    "item_retention_days": ENV_ITEM_RETENTION_DAYS,
    "reconcile_stale_seconds": ENV_RECONCILE_STALE_SECONDS,
    "queued_timeout_seconds": ENV_QUEUED_TIMEOUT_SECONDS,
    "token_start_margin_seconds": ENV_TOKEN_START_MARGIN_SECONDS,
    "allowed_task_definition_families": ENV_ALLOWED_TASK_DEFINITION_FAMILIES,
    "allowed_task_role_arns": ENV_ALLOWED_TASK_ROLE_ARNS,
    "allowed_execution_role_arns": ENV_ALLOWED_EXECUTION_ROLE_ARNS,
    "allowed_capacity_providers": ENV_ALLOWED_CAPACITY_PROVIDERS,
    "task_role_arn": ENV_TASK_ROLE_ARN,
    "execution_role_arn": ENV_EXECUTION_ROLE_ARN,
    "queue_profile_task_definition_families": ENV_QUEUE_PROFILE_TASK_DEFINITION_FAMILIES,
    "queue_profile_role_arns": ENV_QUEUE_PROFILE_ROLE_ARNS,
    "queue_profiles": ENV_QUEUE_PROFILES,
}
#: The template parameter behind each setting, for messages an operator acts on.
PARAMETERS = {
    "cluster": "Cluster",
    "container_name": "ContainerName",
    "task_definition": "TaskDefinition",
    "launch_type": "LaunchType",
    "capacity_provider_strategy": "CapacityProviderStrategy",
    "platform_version": "PlatformVersion",
    "assign_public_ip": "AssignPublicIp",
    "security_groups": "SecurityGroups",
    "subnets": "Subnets",
    "run_task_kwargs": "RunTaskKwargs",
    "max_run_task_attempts": "MaxRunTaskAttempts",
    "start_retry_base_seconds": "StartRetryBaseSeconds",
    "start_retry_max_seconds": "StartRetryMaxSeconds",
    "item_retention_days": "ItemRetentionDays",
    "reconcile_stale_seconds": "ReconcileStaleSeconds",
    "queued_timeout_seconds": "QueuedTimeoutSeconds",
    "token_start_margin_seconds": "TokenStartMarginSeconds",
    "allowed_task_definition_families": "AllowedTaskDefinitionFamilies",
    "allowed_task_role_arns": "AllowedTaskRoleArns",
    "allowed_execution_role_arns": "AllowedExecutionRoleArns",
    "allowed_capacity_providers": "AllowedCapacityProviders",
    "task_role_arn": "TaskRoleArn",
    "execution_role_arn": "ExecutionRoleArn",
    "queue_profile_task_definition_families": "QueueProfileTaskDefinitionFamilies",
    "queue_profile_role_arns": "QueueProfileRoleArns",
    "queue_profiles": "QueueProfiles",
}


class SettingsError(ValueError):
    """The function's environment does not describe a usable control plane."""


def _split_csv(value: Any) -> Any:
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


def _parse_json(value: Any) -> Any:
    if isinstance(value, str):
        text = value.strip()
        if not text:
            return None
        return json.loads(text)
    return value


def _camel(key: str) -> str:
    head, *rest = key.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def camelize_keys(value: Mapping[str, Any]) -> dict[str, Any]:
    """snake_case keys to camelCase, recursively through objects, as the provider's executor does.

    Keys already in camelCase stay; keys inside ``tags`` are the user's and stay as written.
    """
    return {
        _camel(key): camelize_keys(item) if isinstance(item, Mapping) and key.lower() != "tags" else item
        for key, item in value.items()
    }


def _variable(loc: tuple[int | str, ...]) -> str:
    """The environment variable (and template parameter) behind a validation error's location,
    and, inside a queue profile, the profile and the field."""
    if not loc:
        return "settings"
    field = str(loc[0])
    variable = ALL_ENV.get(field, field)
    parameter = PARAMETERS.get(field)
    where = f"{variable} (template parameter {parameter})" if parameter else variable
    if field == "queue_profiles" and len(loc) >= 3:  # ("queue_profiles", "profiles", queue, ...)
        where += f": profile {loc[2]!r}"
        if len(loc) > 3:
            where += ": " + ".".join(str(part) for part in loc[3:])
    return where


class ControlPlaneSettings(BaseModel):
    """Everything the functions need to know about the stack they run in."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    cluster: str = Field(min_length=1)
    container_name: str = Field(min_length=1)
    task_definition: str = Field(min_length=1)
    #: None (and no strategy): the cluster's default capacity provider strategy, else FARGATE,
    #: as the provider's executor falls back.
    launch_type: Literal["FARGATE", "EC2", "EXTERNAL"] | None = None
    capacity_provider_strategy: list[dict[str, Any]] | None = None
    platform_version: str | None = "LATEST"
    assign_public_ip: bool = False
    security_groups: list[str] = Field(default_factory=list)
    subnets: list[str] = Field(default_factory=list)
    run_task_kwargs: dict[str, Any] = Field(default_factory=dict)
    max_run_task_attempts: int = Field(default=3, ge=1, le=20)
    start_retry_base_seconds: int = Field(default=10, ge=0, le=900)
    start_retry_max_seconds: int = Field(default=300, ge=0, le=900)
    state_table: str = Field(min_length=1)
    queue_url: str = Field(min_length=1)
    control_plane_id: str = Field(min_length=1, max_length=128)
    event_bus: str = "default"
    item_retention_days: int = Field(default=7, ge=1)
    #: The reconciler looks at active items that have not changed for this long.
    reconcile_stale_seconds: int = Field(default=300, ge=10)
    #: A try still QUEUED with no ECS task after this long lost its run request (see the DLQ).
    queued_timeout_seconds: int = Field(default=900, ge=60)
    #: No start is made later than this before the workload token expires: the container needs
    #: that long to reach Airflow's execution API with it.
    token_start_margin_seconds: int = Field(default=30, ge=0, le=600)
    #: What a task's executor_config may choose beyond the stack's own settings (never by default).
    allowed_task_definition_families: list[str] = Field(default_factory=list)
    allowed_task_role_arns: list[str] = Field(default_factory=list)
    allowed_execution_role_arns: list[str] = Field(default_factory=list)
    allowed_capacity_providers: list[str] = Field(default_factory=list)
    #: The roles the stack may pass (with the allowed ones); the readiness check compares them
    #: with the task definition's.
    task_role_arn: str | None = None
    execution_role_arn: str | None = None
    #: What IAM lets the profiles run and pass (CloudFormation cannot read them from the JSON):
    #: the families and roles the profiles name, exactly, beyond the stack's own.
    queue_profile_task_definition_families: list[str] = Field(default_factory=list)
    queue_profile_role_arns: list[str] = Field(default_factory=list)
    #: Airflow queue -> profile (validated last: it is checked against the fields above).
    queue_profiles: QueueProfiles = Field(default_factory=QueueProfiles)

    @field_validator(
        "security_groups",
        "subnets",
        "allowed_task_definition_families",
        "allowed_task_role_arns",
        "allowed_execution_role_arns",
        "allowed_capacity_providers",
        "queue_profile_task_definition_families",
        "queue_profile_role_arns",
        mode="before",
    )
    @classmethod
    def _csv(cls, value: Any) -> Any:
        return _split_csv(value)

    @field_validator("launch_type", "platform_version", "task_role_arn", "execution_role_arn", mode="before")
    @classmethod
    def _empty_is_none(cls, value: Any) -> Any:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("capacity_provider_strategy", "run_task_kwargs", mode="before")
    @classmethod
    def _json(cls, value: Any, info: ValidationInfo) -> Any:
        try:
            parsed = _parse_json(value)
        except json.JSONDecodeError as exc:
            raise ValueError(f"not valid JSON: {exc}") from exc
        if info.field_name == "run_task_kwargs":
            return parsed or {}
        return parsed or None

    @field_validator("run_task_kwargs", mode="after")
    @classmethod
    def _run_task_kwargs_are_run_task_parameters(cls, value: dict[str, Any], info: ValidationInfo) -> Any:
        """camelCase, as the provider's executor makes them, and checked once at cold start.

        A bad RunTaskKwargs fails the function's start, naming the setting, instead of failing
        every task one by one.
        """
        from .run_task_call import RunTaskConfigError, check_run_task_overrides  # noqa: PLC0415 - cycle

        camel = camelize_keys(value)
        try:
            check_run_task_overrides(camel, str(info.data.get("container_name") or ""), "RunTaskKwargs")
        except RunTaskConfigError as exc:
            raise ValueError(str(exc)) from None
        return camel

    @field_validator("queue_profiles", mode="before")
    @classmethod
    def _profiles_json(cls, value: Any) -> Any:
        if isinstance(value, QueueProfiles):
            return value
        try:
            parsed = _parse_json(value)
        except json.JSONDecodeError as exc:
            raise ValueError(f"not valid JSON: {exc}") from exc
        if parsed is None:
            return {}
        if not isinstance(parsed, dict):
            raise ValueError("must be a JSON object of Airflow queue name -> profile")
        return {"profiles": parsed}

    @field_validator("queue_profiles", mode="after")
    @classmethod
    def _profiles_are_what_iam_allows(cls, value: QueueProfiles, info: ValidationInfo) -> QueueProfiles:
        """Every family and role a profile names is one the stack's IAM lets the functions use,
        and every one IAM lists is named by a profile: IAM is exactly what the profiles need."""
        data = info.data
        value.check_iam_lists(
            own_family=task_definition_family(str(data.get("task_definition") or "")),
            families=set(data.get("queue_profile_task_definition_families") or []),
            roles=set(data.get("queue_profile_role_arns") or []),
            passable={
                role
                for role in (
                    data.get("task_role_arn"),
                    data.get("execution_role_arn"),
                    *(data.get("allowed_task_role_arns") or []),
                    *(data.get("allowed_execution_role_arns") or []),
                )
                if role
            },
        )
        return value

    @model_validator(mode="after")
    def _one_placement(self) -> ControlPlaneSettings:
        if self.launch_type and self.capacity_provider_strategy:
            # As the provider's executor refuses them together (ECS would refuse every RunTask).
            raise ValueError(
                f"capacity_provider_strategy and launch_type are mutually exclusive, you can not provide "
                f"both: {ENV_LAUNCH_TYPE} and {ENV_CAPACITY_PROVIDER_STRATEGY} are both set (template "
                "parameters LaunchType, CapacityProviderStrategy: set LaunchType to empty)"
            )
        return self

    @model_validator(mode="after")
    def _network_has_subnets(self) -> ControlPlaneSettings:
        # As the provider's executor: a network without subnets cannot run a task (Fargate needs one).
        awsvpc = (self.run_task_kwargs.get("networkConfiguration") or {}).get("awsvpcConfiguration") or {}
        if (self.security_groups or self.assign_public_ip) and not (self.subnets or awsvpc.get("subnets")):
            raise ValueError(
                f"At least one subnet is required to run a task: {ENV_SECURITY_GROUPS} or "
                f"{ENV_ASSIGN_PUBLIC_IP} is set but {ENV_SUBNETS} is empty (template parameters "
                "SecurityGroups, AssignPublicIp, Subnets)"
            )
        return self

    @model_validator(mode="after")
    def _timeouts_leave_room_for_retries(self) -> ControlPlaneSettings:
        # A try waiting out its start backoff (or ECS throttling) must not look lost.
        floor = self.start_retry_max_seconds + TRANSIENT_BACKOFF_CAP_SECONDS
        if self.queued_timeout_seconds <= floor:
            raise ValueError(
                f"queued_timeout_seconds ({self.queued_timeout_seconds}) must exceed the longest retry "
                f"backoff ({floor} s: start_retry_max_seconds + {TRANSIENT_BACKOFF_CAP_SECONDS})"
            )
        return self

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ControlPlaneSettings:
        """Read the settings from the environment, naming the variable that is wrong."""
        env = os.environ if environ is None else environ
        values = {field: env[var] for field, var in ALL_ENV.items() if var in env}
        if values.get("run_task_kwargs") == "":
            values.pop("run_task_kwargs")
        try:
            return cls.model_validate(values)
        except ValidationError as exc:
            problems = "; ".join(f"{_variable(err['loc'])}: {err['msg']}" for err in exc.errors())
            raise SettingsError(f"invalid control plane settings: {problems}") from exc

    @property
    def executor_config_policy(self) -> ExecutorConfigPolicy:
        """What tasks may choose: the stack's own family and capacity providers, plus the allowed."""
        own_providers = {str(item.get("capacityProvider")) for item in self.capacity_provider_strategy or []}
        return ExecutorConfigPolicy(
            container_name=self.container_name,
            task_definition_families=frozenset(
                {task_definition_family(self.task_definition), *self.allowed_task_definition_families}
            ),
            task_role_arns=frozenset(self.allowed_task_role_arns),
            execution_role_arns=frozenset(self.allowed_execution_role_arns),
            capacity_providers=frozenset(own_providers | set(self.allowed_capacity_providers)),
        )

    def profile_for(self, queue: str | None) -> QueueProfile | None:
        """The profile of an Airflow queue; None: the stack's own settings apply."""
        return self.queue_profiles.get(queue)

    def container_name_for(self, profile: QueueProfile | None) -> str:
        return (profile.container_name if profile else None) or self.container_name

    def executor_config_policy_for(
        self, profile: QueueProfile | None, queue: str | None = None
    ) -> ExecutorConfigPolicy:
        """What a task of ``profile``'s queue may choose: the profile's own family and capacity
        providers (fallback included) in place of the stack's, plus what the stack allows."""
        if profile is None:
            return self.executor_config_policy
        return ExecutorConfigPolicy(
            container_name=self.container_name_for(profile),
            task_definition_families=frozenset({profile.family, *self.allowed_task_definition_families}),
            task_role_arns=frozenset(self.allowed_task_role_arns),
            execution_role_arns=frozenset(self.allowed_execution_role_arns),
            capacity_providers=frozenset(profile.capacity_providers | set(self.allowed_capacity_providers)),
            queue=queue,
        )

    def backoff_seconds(self, attempt: int) -> int:
        """Delay before start attempt ``attempt + 1``: exponential, capped (SQS allows 900 s)."""
        return int(
            min(self.start_retry_max_seconds, self.start_retry_base_seconds * 2 ** max(0, attempt - 1))
        )
