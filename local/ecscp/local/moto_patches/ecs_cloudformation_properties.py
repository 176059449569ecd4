"""moto's CloudFormation creates ECS clusters and task definitions without most of their properties.

moto as released creates an ``AWS::ECS::Cluster`` from its name only (no ``CapacityProviders``,
``DefaultCapacityProviderStrategy``, ``ClusterSettings`` or ``Tags``) and registers an
``AWS::ECS::TaskDefinition`` from its family, containers, volumes and memory only (no
``NetworkMode``, ``RequiresCompatibilities``, ``Cpu``, ``TaskRoleArn``, ``ExecutionRoleArn``...).
CloudFormation passes them all to ECS. The control plane can tell: with the stack's own
infrastructure (template parameters ``CreateCluster``, ``Image``) its readiness check reads the
cluster's capacity providers and the task definition's compatibilities, network mode and roles,
RunTask falls back on the cluster's default strategy, and the tasks get the task
definition's cpu. Patched: both are created from every property, as the ECS API takes them.
"""

# ruff: noqa: PLC0415

from __future__ import annotations

from typing import Any

from ._replace import replace


def _camel(value: Any) -> Any:
    from moto.core.utils import pascal_to_camelcase, remap_nested_keys

    return remap_nested_keys(value, pascal_to_camelcase) if value is not None else None


def _tags(properties: dict[str, Any]) -> list[dict[str, str]] | None:
    tags = properties.get("Tags")
    return [{"key": t["Key"], "value": t["Value"]} for t in tags] if tags else None


def _create_cluster(
    cls: Any,
    /,
    resource_name: str,
    cloudformation_json: Any,
    account_id: str,
    region_name: str,
    **kwargs: Any,
) -> Any:
    from moto.ecs.models import ecs_backends

    properties = cloudformation_json.get("Properties") or {}
    return ecs_backends[account_id][region_name].create_cluster(
        cluster_name=resource_name,
        tags=_tags(properties),
        cluster_settings=_camel(properties.get("ClusterSettings")),
        configuration=_camel(properties.get("Configuration")),
        capacity_providers=properties.get("CapacityProviders"),
        default_capacity_provider_strategy=_camel(properties.get("DefaultCapacityProviderStrategy")),
    )


def _create_task_definition(
    cls: Any,
    /,
    resource_name: str,
    cloudformation_json: Any,
    account_id: str,
    region_name: str,
    **kwargs: Any,
) -> Any:
    from moto.ecs.models import ecs_backends

    properties = cloudformation_json.get("Properties") or {}
    return ecs_backends[account_id][region_name].register_task_definition(
        family=properties.get("Family") or resource_name,
        container_definitions=_camel(properties.get("ContainerDefinitions") or []),
        volumes=_camel(properties.get("Volumes")),
        network_mode=properties.get("NetworkMode"),
        tags=_tags(properties),
        placement_constraints=_camel(properties.get("PlacementConstraints")),
        requires_compatibilities=properties.get("RequiresCompatibilities"),
        cpu=properties.get("Cpu"),
        memory=properties.get("Memory"),
        task_role_arn=properties.get("TaskRoleArn"),
        execution_role_arn=properties.get("ExecutionRoleArn"),
        runtime_platform=_camel(properties.get("RuntimePlatform")),
        ephemeral_storage=_camel(properties.get("EphemeralStorage")),
    )


def apply() -> None:
    from moto.ecs.models import Cluster, TaskDefinition

    replace(Cluster, "create_from_cloudformation_json", __name__, lambda _: classmethod(_create_cluster))
    replace(
        TaskDefinition,
        "create_from_cloudformation_json",
        __name__,
        lambda _: classmethod(_create_task_definition),
    )
