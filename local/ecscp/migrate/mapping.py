"""The mapping: a provider configuration as stack parameters and the scheduler's environment.

``migrate`` is pure: it reads nothing and writes nothing. It refuses what the provider refuses at
start and what the template's parameter constraints refuse, and warns where a mapping exists but
the meaning differs. The option-by-option helpers live in ``network``, ``placement``,
``run_task_kwargs`` and ``scheduler``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from executor_client import config as executor_config

from .network import network_parameters
from .options import Findings, Given, Options, as_text, required
from .placement import placement_parameters
from .provider_config import (
    CORE_EXECUTOR_ENV,
    PROVIDER_ENV_PREFIX,
    PROVIDER_OPTIONS,
    PROVIDER_SECTION,
    MigrationRefusedError,
    ProviderConfig,
    Refusal,
)
from .run_task_kwargs import container_overrides, split_run_task_kwargs
from .sam_overrides import json_text, sam_reads_back
from .scheduler import check_health, core_executor
from .template_spec import QUEUE_URL_OUTPUT, SCHEDULER_POLICY_OUTPUT, STATE_TABLE_OUTPUT, TemplateSpec

_CLUSTER_ARN = re.compile(
    r"arn:aws[a-zA-Z-]*:ecs:(?P<region>[a-z0-9-]+):(?P<account>\d{12}):cluster/(?P<name>.+)"
)


@dataclass(frozen=True)
class Migration:
    """The stack parameters and the scheduler's new environment for one provider configuration."""

    #: Template parameter -> value, in the template's order.
    parameters: Mapping[str, str]
    #: The stack's region (the provider's region_name, or the cluster ARN's); None: as configured.
    region: str | None
    #: The scheduler's environment to set (``<Output>`` placeholders for the stack's outputs).
    scheduler_env: Mapping[str, str]
    #: The provider's variables the scheduler drops.
    remove_env: tuple[str, ...]
    #: The airflow.cfg whose ``[aws_ecs_executor]`` section goes too.
    remove_cfg_section: str | None
    #: Where the meaning differs although a mapping exists.
    warnings: tuple[str, ...]
    #: Printed with the output: what else the switch needs.
    notes: tuple[str, ...] = ()


def _cluster(options: Options, findings: Findings) -> tuple[str | None, str | None]:
    """The cluster's name, and the region its ARN names (if it is an ARN)."""
    value = required(options.get("cluster"), "cluster", findings)
    arn = _CLUSTER_ARN.fullmatch(value or "")
    if arn is None:
        return value, None
    findings.warnings.append(
        f"cluster is an ARN; the Cluster parameter takes its name {arn['name']!r}: deploy the stack in "
        f"account {arn['account']}, region {arn['region']}, the cluster's"
    )
    return arn["name"], arn["region"]


def _max_attempts(options: Options, findings: Findings) -> str | None:
    given = options.defaulted("max_run_task_attempts")
    try:
        attempts = int(str(given.value))
    except ValueError:
        findings.refuse(
            given, f"not an integer ({given.value!r}): the provider fails at its first failed start"
        )
        return None
    if attempts > 1:
        findings.warnings.append(
            f"max_run_task_attempts={attempts}: here it counts start attempts only (RunTask failures, "
            "capacity, a task stopped before it started); throttling spends none. The provider also ran a "
            "task again whose container exited non-zero; here that try is FAILED and Airflow's retries "
            "take over"
        )
    return str(attempts)


def _refuse_unknown_options(config: ProviderConfig, findings: Findings) -> None:
    if not config.settings:
        reason = f"nothing to migrate: no {PROVIDER_ENV_PREFIX}* variable and no [{PROVIDER_SECTION}] section"
        raise MigrationRefusedError([Refusal("*", "airflow.cfg and environment", reason)])
    for option, setting in config.settings.items():
        if option in PROVIDER_OPTIONS:
            continue
        if option.endswith(("_cmd", "_secret")):
            why = (
                "Airflow reads the _cmd and _secret forms only for sensitive options, which the "
                f"provider's are not: set {option.rsplit('_', 1)[0]} itself"
            )
        else:
            known = ", ".join(PROVIDER_OPTIONS)
            why = f"not an option of the provider's executor, which ignores it; known: {known}"
        findings.refusals.append(Refusal(option, setting.source, why))


def _run_task_parameters(
    options: Options, findings: Findings
) -> tuple[dict[str, str | None], dict[str, Given | None], str | None]:
    """The run_task parameters, the option behind each, and the cluster ARN's region (if any)."""
    from ecs_control_plane.run_task_call import (  # noqa: PLC0415 (lazy: pydantic, CLI-only)
        RunTaskConfigError,
        check_run_task_overrides,
    )

    kwargs = split_run_task_kwargs(options, findings)
    placement = kwargs.placement if kwargs else {}
    cluster, arn_region = _cluster(options, findings)
    feeds: dict[str, Given | None] = {
        "Cluster": options.get("cluster"),
        "ContainerName": options.get("container_name"),
        "TaskDefinition": placement.get("TaskDefinition") or options.get("task_definition"),
        "LaunchType": placement.get("LaunchType") or options.get("launch_type"),
        "CapacityProviderStrategy": placement.get("CapacityProviderStrategy")
        or options.get("capacity_provider_strategy"),
        "PlatformVersion": placement.get("PlatformVersion") or options.get("platform_version"),
        "AssignPublicIp": options.defaulted("assign_public_ip"),
        "SecurityGroups": options.get("security_groups"),
        "Subnets": options.get("subnets"),
        "RunTaskKwargs": options.get("run_task_kwargs"),
        "MaxRunTaskAttempts": options.defaulted("max_run_task_attempts"),
    }
    container_name = required(feeds["ContainerName"], "container_name", findings)
    network, builds_network = network_parameters(options, findings)
    values: dict[str, str | None] = {
        "Cluster": cluster,
        "ContainerName": container_name,
        "TaskDefinition": required(feeds["TaskDefinition"], "task_definition", findings),
        "PlatformVersion": as_text(feeds["PlatformVersion"], findings) or "",
        **network,
        "MaxRunTaskAttempts": _max_attempts(options, findings),
    }
    if kwargs is None:
        return values, feeds, arn_region
    values.update(placement_parameters(options, kwargs, findings))
    if container_name is None:
        return values, feeds, arn_region
    rest = kwargs.rest
    if builds_network and rest.pop("networkConfiguration", None) is not None:
        findings.warnings.append(
            "run_task_kwargs' networkConfiguration dropped: the provider replaced it with the one it "
            "builds from subnets, security_groups and assign_public_ip, and so does the stack"
        )
    container_overrides(rest, container_name, findings)
    overrides = rest.get("overrides")
    for parameter, key in (("TaskRoleArn", "taskRoleArn"), ("ExecutionRoleArn", "executionRoleArn")):
        # run_task may pass only the roles the stack names (iam:PassRole).
        if isinstance(overrides, Mapping) and isinstance(overrides.get(key), str):
            values[parameter] = overrides[key]
            feeds[parameter] = feeds["RunTaskKwargs"]
    try:
        check_run_task_overrides(rest, container_name, "RunTaskKwargs")
    except RunTaskConfigError as exc:
        findings.refuse(
            feeds["RunTaskKwargs"] or Given("run_task_kwargs", None, "not set"),
            f"{exc} (the functions check RunTaskKwargs when they start)",
        )
    else:
        values["RunTaskKwargs"] = json_text(rest)
    return values, feeds, arn_region


def _checked_parameters(
    values: Mapping[str, str | None],
    feeds: Mapping[str, Given | None],
    template: TemplateSpec,
    findings: Findings,
) -> dict[str, str]:
    """The values in the template's order, each refused that the template or SAM would refuse."""
    parameters: dict[str, str] = {}
    for name, spec in template.parameters.items():
        value = values.get(name)
        if value is None:
            continue
        violation = spec.violation(value)
        if violation is None and not sam_reads_back(name, value):
            violation = f"{name}={value!r} cannot be passed to sam deploy (SAM would read it differently)"
        if violation is not None:
            findings.refuse(
                feeds.get(name) or Given(name, value, "derived"), f"refused by the template: {violation}"
            )
        parameters[name] = value
    return parameters


def migrate(config: ProviderConfig, template: TemplateSpec) -> Migration:
    """Map the provider's configuration to stack parameters and the scheduler's environment.

    Raises ``MigrationRefusedError`` naming every option that cannot be migrated, with the reason.
    """
    findings = Findings()
    _refuse_unknown_options(config, findings)
    options = Options(config)
    values, feeds, arn_region = _run_task_parameters(options, findings)
    parameters = _checked_parameters(values, feeds, template, findings)
    health_check = check_health(options, findings)
    executor = core_executor(config.core_executor, findings)
    region = as_text(options.get("region_name"), findings) or arn_region
    if arn_region and region != arn_region:
        findings.warnings.append(
            f"region_name {region!r} differs from the cluster ARN's region {arn_region!r}: the stack "
            "must run in the cluster's region"
        )
    conn_id = as_text(options.defaulted("conn_id"), findings) or ""
    container_name = values.get("ContainerName")
    if findings.refusals or container_name is None or health_check is None:
        raise MigrationRefusedError(findings.refusals)

    unset_roles = [name for name in ("TaskRoleArn", "ExecutionRoleArn") if name not in parameters]
    if unset_roles:
        findings.notes.append(
            f"add {' and '.join(f'{name}=<role ARN>' for name in unset_roles)} if the task definition "
            "has them (aws ecs describe-task-definition --query "
            "'taskDefinition.[taskRoleArn,executionRoleArn]'): run_task may pass only the roles the "
            "stack names"
        )
    credentials = f"connection {conn_id!r}" if conn_id else "boto3's default chain"
    findings.notes.append(
        f"the scheduler's credentials ({credentials}) now need the stack's SchedulerPolicy (output "
        f"{SCHEDULER_POLICY_OUTPUT}) and no ECS or iam:PassRole right: those moved to the control "
        "plane's run_task role"
    )
    env = executor_config.env_name
    scheduler_env = {
        CORE_EXECUTOR_ENV: executor,
        env(executor_config.QUEUE_URL): f"<{QUEUE_URL_OUTPUT}>",
        env(executor_config.STATE_TABLE): f"<{STATE_TABLE_OUTPUT}>",
        **({env(executor_config.REGION_NAME): region} if region else {}),
        env(executor_config.CONN_ID): conn_id,
        env(executor_config.CONTAINER_NAME): container_name,
        env(executor_config.CHECK_HEALTH_ON_STARTUP): health_check,
    }
    return Migration(
        parameters=parameters,
        region=region,
        scheduler_env=scheduler_env,
        remove_env=config.env_names,
        remove_cfg_section=config.cfg_with_section,
        warnings=tuple(findings.warnings),
        notes=tuple(findings.notes),
    )
