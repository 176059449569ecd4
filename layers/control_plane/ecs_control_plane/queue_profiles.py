"""Queue profiles: what the operator lets each Airflow queue run, and on which capacity (pure).

An Airflow task's ``queue`` chooses a profile (template parameter ``QueueProfiles``): its task
definition and Airflow container, its launch type or capacity provider strategy (and the
strategy to fall back to after a capacity failure), its network, its task size, and which
``executor_config`` keys its tasks may set. A queue with no profile runs on the stack's own
settings. DAG authors get the bigger image, the GPU or the on-demand capacity they need by
naming a queue, never by reaching into RunTask themselves.

A capacity failure (RunTask's ``RESOURCE:*`` or "Capacity is unavailable", or an ECS task that
Spot interrupted before its container started) moves the try's next attempt to the profile's
fallback strategy, and its later attempts stay there: Spot that just ran out rarely comes back
within a start's backoff.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic.alias_generators import to_camel

from .executor_config import EXECUTOR_CONFIG_KEY_PATHS, ExecutorConfigError, key_paths, task_definition_family

#: The environment variables of the two IAM lists (template parameters of the same names).
ENV_FAMILIES = "ECSCP_QUEUE_PROFILE_TASK_DEFINITION_FAMILIES"
ENV_ROLES = "ECSCP_QUEUE_PROFILE_ROLE_ARNS"
#: Airflow queue names are free text; these bound what an environment variable can carry.
MAX_QUEUE_NAME = 256
MAX_PROFILES = 50


class _Profile(BaseModel):
    model_config = ConfigDict(
        frozen=True, extra="forbid", alias_generator=to_camel, populate_by_name=True, defer_build=True
    )


class CapacityProviderItem(_Profile):
    capacity_provider: Annotated[str, Field(min_length=1, max_length=255)]
    weight: Annotated[int, Field(ge=0, le=1000)] | None = None
    base: Annotated[int, Field(ge=0, le=100_000)] | None = None

    def to_ecs(self) -> dict[str, Any]:
        return self.model_dump(by_alias=True, exclude_none=True)


_Strategy = Annotated[list[CapacityProviderItem], Field(min_length=1, max_length=20)]


class QueueProfile(_Profile):
    """One queue's task definition, capacity, network, size and executor_config allow-list."""

    task_definition: Annotated[
        str,
        Field(
            min_length=1,
            max_length=1600,
            pattern=r"^(arn:[^\s]+:task-definition/)?[A-Za-z0-9_-]{1,255}(:[0-9]+)?$",
        ),
    ]
    container_name: Annotated[str, Field(min_length=1, max_length=255)] | None = None
    launch_type: Literal["FARGATE", "EC2", "EXTERNAL"] | None = None
    capacity_provider_strategy: _Strategy | None = None
    fallback_capacity_provider_strategy: _Strategy | None = None
    platform_version: Annotated[str, Field(pattern=r"^[A-Za-z0-9.]{1,16}$")] | None = None
    subnets: list[Annotated[str, Field(min_length=1)]] | None = None
    security_groups: list[Annotated[str, Field(min_length=1)]] | None = None
    assign_public_ip: bool | None = None
    cpu: Annotated[str, Field(pattern=r"^[0-9]{1,6}$|^[0-9.]{1,6} ?vCPU$")] | None = None
    memory: Annotated[str, Field(pattern=r"^[0-9]{1,7}$|^[0-9.]{1,6} ?GB$")] | None = None
    task_role_arn: (
        Annotated[str, Field(pattern=r"^arn:aws[a-zA-Z-]*:iam::[0-9]{12}:role/[\w+=,.@/-]+$")] | None
    ) = None
    execution_role_arn: (
        Annotated[str, Field(pattern=r"^arn:aws[a-zA-Z-]*:iam::[0-9]{12}:role/[\w+=,.@/-]+$")] | None
    ) = None
    #: Key paths of executor_config this queue's tasks may set; None: the stack's allow-list.
    allowed_executor_config: list[str] | None = None

    @field_validator("allowed_executor_config")
    @classmethod
    def _known_paths(cls, value: list[str] | None) -> list[str] | None:
        for path in value or []:
            if path not in EXECUTOR_CONFIG_KEY_PATHS:
                raise ValueError(
                    f"{path!r} is not an executor_config key a task may set; known: "
                    f"{', '.join(sorted(EXECUTOR_CONFIG_KEY_PATHS))}"
                )
        return value

    @model_validator(mode="after")
    def _one_placement(self) -> QueueProfile:
        if self.launch_type and self.capacity_provider_strategy:
            raise ValueError("launchType and capacityProviderStrategy are mutually exclusive: set one")
        if self.fallback_capacity_provider_strategy and self.fallback_capacity_provider_strategy == (
            self.capacity_provider_strategy
        ):
            raise ValueError("fallbackCapacityProviderStrategy is the capacityProviderStrategy itself")
        if (self.security_groups or self.assign_public_ip) and self.subnets == []:
            raise ValueError("subnets is empty but securityGroups or assignPublicIp is set")
        return self

    @property
    def family(self) -> str:
        return task_definition_family(self.task_definition)

    @property
    def roles(self) -> set[str]:
        return {role for role in (self.task_role_arn, self.execution_role_arn) if role}

    @property
    def capacity_providers(self) -> set[str]:
        """Every capacity provider the profile starts tasks on, fallback included."""
        items = [*(self.capacity_provider_strategy or []), *(self.fallback_capacity_provider_strategy or [])]
        return {item.capacity_provider for item in items}

    def check_executor_config(
        self, config: Mapping[str, Any], queue: str, source: str = "executor_config"
    ) -> None:
        """Refuse keys this queue's tasks may not set (after the stack's typed checks)."""
        if self.allowed_executor_config is None:
            return
        allowed = self.allowed_executor_config
        for path in sorted(key_paths(config)):
            if not any(path == a or path.startswith(f"{a}.") for a in allowed):
                may = ", ".join(allowed) or "nothing"
                raise ExecutorConfigError(
                    f"{source} sets {path!r}, which queue {queue!r} does not allow (its profile allows: "
                    f"{may}): set it in the queue's profile (template parameter QueueProfiles, "
                    "allowedExecutorConfig), or use another queue"
                )


class QueueProfiles(BaseModel):
    """The ``QueueProfiles`` parameter: queue name -> profile."""

    model_config = ConfigDict(frozen=True, defer_build=True)

    profiles: dict[Annotated[str, Field(min_length=1, max_length=MAX_QUEUE_NAME)], QueueProfile] = Field(
        default_factory=dict, max_length=MAX_PROFILES
    )

    def get(self, queue: str | None) -> QueueProfile | None:
        return self.profiles.get(queue) if queue is not None else None

    @property
    def families(self) -> set[str]:
        return {profile.family for profile in self.profiles.values()}

    @property
    def roles(self) -> set[str]:
        return {role for profile in self.profiles.values() for role in profile.roles}

    def check_iam_lists(
        self, *, own_family: str, families: set[str], roles: set[str], passable: set[str]
    ) -> None:
        """Every family and role a profile names is one the stack's IAM lets the functions use
        (``families``, ``roles``, or the stack's own), and every one the lists name is a profile's.

        ``families`` and ``roles``: QueueProfileTaskDefinitionFamilies and QueueProfileRoleArns;
        ``passable``: the roles the stack may pass anyway (its own and the allowed ones).
        """
        for queue, profile in self.profiles.items():
            if profile.family != own_family and profile.family not in families:
                raise ValueError(
                    f"profile {queue!r}: taskDefinition family {profile.family!r} is not in "
                    f"{ENV_FAMILIES} (template parameter QueueProfileTaskDefinitionFamilies), the "
                    "families IAM lets the functions run: add it"
                )
            for role in sorted(profile.roles - passable - roles):
                raise ValueError(
                    f"profile {queue!r}: role {role} is not in {ENV_ROLES} (template parameter "
                    "QueueProfileRoleArns), the roles IAM lets the functions pass: add it"
                )
        for family in sorted(families - self.families):
            raise ValueError(
                f"{ENV_FAMILIES} (template parameter QueueProfileTaskDefinitionFamilies) lists family "
                f"{family!r}, which no profile names: remove it (IAM would let the functions run it "
                "for nothing)"
            )
        for role in sorted(roles - self.roles):
            raise ValueError(
                f"{ENV_ROLES} (template parameter QueueProfileRoleArns) lists role {role}, which no "
                "profile names: remove it (IAM would let the functions pass it for nothing)"
            )


def describe_placement(kwargs: Mapping[str, Any]) -> str:
    """A short text of where a RunTask call places its task, for the item, alerts and ``explain``.

    ``FARGATE_SPOT``, ``FARGATE_SPOT*3,FARGATE*1`` (weights, when several), ``launch type FARGATE``,
    or ``cluster default`` when the call names neither (the cluster's default strategy applies).
    """
    strategy: Sequence[Mapping[str, Any]] = kwargs.get("capacityProviderStrategy") or []
    if strategy:
        if len(strategy) == 1:
            return str(strategy[0].get("capacityProvider"))
        return ",".join(f"{item.get('capacityProvider')}*{item.get('weight', 0)}" for item in strategy)
    if kwargs.get("launchType"):
        return f"launch type {kwargs['launchType']}"
    return "cluster default"
