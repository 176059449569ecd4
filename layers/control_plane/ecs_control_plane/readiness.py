"""Can this stack run tasks? What the control plane checks of its own settings against ECS.

The scheduler holds no ECS rights (by design), so it cannot check, as the provider's executor
does at start, that the cluster exists or that the task definition has the container. The
control plane can: it checks its settings against ECS (cluster, task definition, container,
launch type or capacity providers, network, the roles it may pass), records the result in the
state table under :data:`READINESS_KEY`, and the executor's start-up health check reads it, so a
scheduler refuses to start with the stack parameter to fix named. The reconciler refreshes it on
every run; the local stack checks it before it accepts work.

Only what is certain to fail every task is a problem; ECS still has the last word.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Protocol

from pydantic import BaseModel, ConfigDict, Field

from .contract import now_ms

if TYPE_CHECKING:
    from .settings import ControlPlaneSettings

#: The state table's item that holds the last readiness report. It is no task key, and has no
#: owner, shard or try attribute, so no index and no reader of task items ever sees it.
READINESS_KEY = "control-plane|readiness"
#: The launch type ECS is asked for when neither a launch type nor a capacity provider strategy
#: is set and the cluster has no default strategy, as the provider's executor does.
FALLBACK_LAUNCH_TYPE = "FARGATE"


class Problem(BaseModel):
    """One reason tasks cannot run, and the stack parameter that fixes it."""

    model_config = ConfigDict(frozen=True, defer_build=True)  # reports are rare: built on first use

    parameter: str
    message: str

    def __str__(self) -> str:
        return f"{self.parameter}: {self.message}"


class ReadinessReport(BaseModel):
    """The outcome of one check; ``problems`` empty means the stack can run tasks."""

    model_config = ConfigDict(extra="ignore", defer_build=True)  # reports are rare: built on first use

    key: str = READINESS_KEY
    control_plane: str
    checked_at: int = Field(default_factory=now_ms)
    problems: list[Problem] = Field(default_factory=list)
    #: The launch type the control plane adds when the settings choose no placement (None: the
    #: settings choose, or the cluster's default capacity provider strategy applies).
    fallback_launch_type: str | None = None

    @property
    def ready(self) -> bool:
        return not self.problems

    def summary(self) -> str:
        return "; ".join(str(p) for p in self.problems) or "ready"


class EcsReader(Protocol):
    """The ECS reads the check makes (EcsGateway; a double in tests)."""

    def describe_cluster(self, cluster: str) -> dict[str, Any] | None: ...

    def describe_task_definition(self, task_definition: str) -> dict[str, Any]: ...


class CheckError(Exception):
    """ECS refused a read the check needs; the message names the call.

    ``transient`` (throttling, 5xx, no connection): the settings may be fine, and no verdict is
    recorded (a scheduler must not be refused for ECS being busy).
    """

    def __init__(self, message: str, transient: bool = False) -> None:
        super().__init__(message)
        self.transient = transient


def default_placement(cluster: Mapping[str, Any] | None) -> str | None:
    """The launch type to send when the settings choose none: FARGATE unless the cluster has a
    default capacity provider strategy (which ECS then applies). None when it has one."""
    if cluster is not None and cluster.get("defaultCapacityProviderStrategy"):
        return None
    return FALLBACK_LAUNCH_TYPE


def _placement(settings: ControlPlaneSettings) -> dict[str, Any]:
    from .run_task_call import stack_run_task_kwargs  # noqa: PLC0415 - run_task_call imports settings

    return stack_run_task_kwargs(settings)


def _cluster_problems(
    settings: ControlPlaneSettings, cluster: Mapping[str, Any] | None, region: str
) -> list[Problem]:
    if cluster is None:
        return [
            Problem(
                parameter="Cluster", message=f"ECS cluster {settings.cluster!r} does not exist in {region}"
            )
        ]
    status = str(cluster.get("status", ""))
    if status != "ACTIVE":
        return [
            Problem(parameter="Cluster", message=f"ECS cluster {settings.cluster!r} is {status}, not ACTIVE")
        ]
    return []


def _provider_problems(
    settings: ControlPlaneSettings, kwargs: Mapping[str, Any], cluster: Mapping[str, Any]
) -> list[Problem]:
    associated = {str(p) for p in cluster.get("capacityProviders") or []}
    problems = []
    wanted = [
        ("CapacityProviderStrategy", str(item.get("capacityProvider")))
        for item in kwargs.get("capacityProviderStrategy") or []
    ]
    wanted += [("AllowedCapacityProviders", name) for name in settings.allowed_capacity_providers]
    for parameter, name in wanted:
        if name not in associated:
            have = ", ".join(sorted(associated)) or "none"
            problems.append(
                Problem(
                    parameter=parameter,
                    message=f"capacity provider {name!r} is not associated with cluster "
                    f"{settings.cluster!r} (it has: {have})",
                )
            )
    return problems


def _task_definition_problems(
    container_name: str, definition: Mapping[str, Any], launch_type: str | None
) -> list[Problem]:
    problems = []
    name = f"{definition.get('family')}:{definition.get('revision')}"
    if definition.get("status") == "INACTIVE":
        problems.append(
            Problem(
                parameter="TaskDefinition",
                message=f"task definition {name} is INACTIVE (deregistered): ECS starts no new task from it",
            )
        )
    containers = [str(c.get("name")) for c in definition.get("containerDefinitions") or []]
    if container_name not in containers:
        problems.append(
            Problem(
                parameter="ContainerName",
                message=f"task definition {name} has no container {container_name!r} "
                f"(it has: {', '.join(containers) or 'none'})",
            )
        )
    compatible = {
        str(c) for c in definition.get("compatibilities") or definition.get("requiresCompatibilities") or []
    }
    if launch_type and compatible and launch_type not in compatible:
        problems.append(
            Problem(
                parameter="LaunchType",
                message=f"task definition {name} cannot run with the {launch_type} launch type "
                f"(it is compatible with: {', '.join(sorted(compatible))})",
            )
        )
    return problems


def _network_problems(
    settings: ControlPlaneSettings, kwargs: Mapping[str, Any], definition: Mapping[str, Any]
) -> list[Problem]:
    awsvpc = (kwargs.get("networkConfiguration") or {}).get("awsvpcConfiguration") or {}
    if definition.get("networkMode") == "awsvpc" and not awsvpc.get("subnets"):
        return [
            Problem(
                parameter="Subnets",
                message=f"task definition {definition.get('family')}:{definition.get('revision')} uses "
                "the awsvpc network mode: at least one subnet is required to run a task",
            )
        ]
    return []


def _role_problems(settings: ControlPlaneSettings, definition: Mapping[str, Any]) -> list[Problem]:
    """Roles of the task definition the control plane may not pass (its PassRole names the
    role parameters only): RunTask would fail with AccessDenied on every task."""
    problems = []
    for field, parameter, allowed in (
        ("taskRoleArn", "TaskRoleArn", {settings.task_role_arn, *settings.allowed_task_role_arns}),
        (
            "executionRoleArn",
            "ExecutionRoleArn",
            {settings.execution_role_arn, *settings.allowed_execution_role_arns},
        ),
    ):
        role = definition.get(field)
        if role and role not in allowed:
            problems.append(
                Problem(
                    parameter=parameter,
                    message=f"task definition {definition.get('family')}:{definition.get('revision')} "
                    f"uses {field} {role}, which the control plane may not pass: set {parameter} to it",
                )
            )
    return problems


_UNANSWERED = object()


def _read(report: ReadinessReport, parameter: str, call: Callable[[], Any]) -> Any:
    """``call()``, or ``_UNANSWERED`` with the refusal recorded against ``parameter``.

    A transient failure is raised: it says nothing about the settings, so no verdict is made.
    """
    try:
        return call()
    except CheckError as exc:
        if exc.transient:
            raise
        report.problems.append(Problem(parameter=parameter, message=str(exc)))
        return _UNANSWERED


def check_readiness(settings: ControlPlaneSettings, ecs: EcsReader, region: str = "") -> ReadinessReport:
    """Check the settings against ECS; every problem found, each naming its parameter."""
    report = ReadinessReport(control_plane=settings.control_plane_id)
    cluster = _read(report, "Cluster", lambda: ecs.describe_cluster(settings.cluster))
    if cluster is _UNANSWERED:
        return report
    report.problems += _cluster_problems(settings, cluster, region or "this region")
    kwargs = _placement(settings)
    launch_type: str | None = kwargs.get("launchType")
    if cluster is not None and not report.problems:
        report.problems += _provider_problems(settings, kwargs, cluster)
        if not launch_type and not kwargs.get("capacityProviderStrategy"):
            report.fallback_launch_type = launch_type = default_placement(cluster)
    definition = _read(
        report, "TaskDefinition", lambda: ecs.describe_task_definition(settings.task_definition)
    )
    if definition is _UNANSWERED:
        return report
    for family in settings.allowed_task_definition_families:
        _read(
            report, "AllowedTaskDefinitionFamilies", functools.partial(ecs.describe_task_definition, family)
        )
    report.problems += _task_definition_problems(settings.container_name, definition, launch_type)
    report.problems += _network_problems(settings, kwargs, definition)
    report.problems += _role_problems(settings, definition)
    report.problems += _profile_problems(settings, ecs, cluster, report.fallback_launch_type)
    return report


def _fallback_problems(strategy: list[Any], definition: Mapping[str, Any]) -> list[str]:
    """A Fargate fallback for a task definition that cannot run on Fargate fails every fallback."""
    providers = sorted({item.capacity_provider for item in strategy})
    compatible = {
        str(c) for c in definition.get("compatibilities") or definition.get("requiresCompatibilities") or []
    }
    if not providers or not compatible or "FARGATE" in compatible:
        return []
    if not set(providers) <= {"FARGATE", "FARGATE_SPOT"}:
        return []
    name = f"{definition.get('family')}:{definition.get('revision')}"
    return [
        f"task definition {name} cannot run on its fallback capacity ({', '.join(providers)}): it is "
        f"compatible with {', '.join(sorted(compatible))}"
    ]


def _profile_problems(
    settings: ControlPlaneSettings, ecs: EcsReader, cluster: Mapping[str, Any] | None, fallback: str | None
) -> list[Problem]:
    """What keeps a queue profile's tasks from running, each named ``profile '<queue>': ...``
    against the QueueProfiles parameter: the checks of the stack's own task definition, on the
    profile's (its container, launch type, network, roles), and its capacity providers."""
    from .run_task_call import profile_run_task_kwargs  # noqa: PLC0415 - run_task_call imports settings

    associated = {str(p) for p in (cluster or {}).get("capacityProviders") or []}
    problems: list[Problem] = []
    for queue, profile in settings.queue_profiles.profiles.items():
        kwargs = profile_run_task_kwargs(settings, profile)
        found = [
            f"capacity provider {name!r} is not associated with cluster {settings.cluster!r} "
            f"(it has: {', '.join(sorted(associated)) or 'none'})"
            for name in sorted(profile.capacity_providers - associated)
            if cluster is not None
        ]
        try:
            definition = ecs.describe_task_definition(profile.task_definition)
        except CheckError as exc:
            if exc.transient:
                raise
            found.append(str(exc))
        else:
            launch_type = kwargs.get("launchType") or (
                None if kwargs.get("capacityProviderStrategy") else fallback
            )
            container = settings.container_name_for(profile)
            found += [p.message for p in _task_definition_problems(container, definition, launch_type)]
            found += [p.message for p in _network_problems(settings, kwargs, definition)]
            found += _fallback_problems(profile.fallback_capacity_provider_strategy or [], definition)
            passable = {
                settings.task_role_arn,
                settings.execution_role_arn,
                *settings.allowed_task_role_arns,
                *settings.allowed_execution_role_arns,
                *settings.queue_profile_role_arns,
            }
            found += [
                f"task definition {profile.task_definition} uses {field} {role}, which the control "
                "plane may not pass: name it in the profile and in QueueProfileRoleArns"
                for field in ("taskRoleArn", "executionRoleArn")
                if (role := definition.get(field)) and role not in passable
            ]
        problems += [Problem(parameter="QueueProfiles", message=f"profile {queue!r}: {m}") for m in found]
    return problems
