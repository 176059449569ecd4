"""``sam deploy`` of the project's template into moto, and the deployment the local stack runs.

:class:`StackDeployer` takes the steps of :mod:`ecscp.local.cloudformation` in order: the ECS
setup (without what the template's ``CreateCluster`` and ``Image`` parameters make the stack
create, read back after the create), packaging, parameters, ``Rules``, translation,
``create_stack``, the fix-ups, and the function specs read back. :class:`Deployment` is what it
hands to the local stack.

Departs from AWS: one CreateStack call, which moto completes before it returns (``sam deploy``
goes through a change set and waits); a stack that is not ``CREATE_COMPLETE`` right after it
stops the deploy with its status and reason. ``Rules``, checked before the create, are removed
from the template moto gets.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ecscp.local.ecs.setup import EcsSetup, create_ecs_setup, with_stack_resources
from ecscp.local.endpoint import aws_client
from ecscp.local.spec import FunctionSpec

from . import DeployError
from .fixups import (
    apply_skipped_properties,
    attach_layers,
    capture_alerts,
    create_skipped_resources,
    redraw_dashboards,
)
from .functions import function_specs
from .intrinsics import IntrinsicResolver
from .package import load_sam_template, local_dirs, package
from .parameters import parameter_values
from .rules import active_logical_ids, broken_rules, resolve_conditionals
from .translate import translate

if TYPE_CHECKING:
    from mypy_boto3_cloudformation.client import CloudFormationClient

_SERVICES = ("s3", "cloudformation", "lambda", "events", "sqs", "sns", "dynamodb", "iam", "cloudwatch", "sts")


@dataclass
class Deployment:
    """The stack as deployed in moto, and how the local runtime wires it."""

    stack_name: str
    ecs: EcsSetup
    parameters: dict[str, str]
    outputs: dict[str, str]
    functions: list[FunctionSpec]
    alert_capture_queue_url: str | None
    #: Resources of the translated template that moto's CloudFormation did not create.
    skipped_resources: dict[str, str]
    #: What was applied by hand because moto's CloudFormation ignores it.
    fixups: list[str]


def _stack_resources(cfn: CloudFormationClient, stack_name: str) -> list[dict[str, Any]]:
    resources: list[dict[str, Any]] = []
    for page in cfn.get_paginator("list_stack_resources").paginate(StackName=stack_name):
        resources.extend(dict(r) for r in page["StackResourceSummaries"])
    return resources


class StackDeployer:
    """Creates the stack in moto and reads back what the local runtime needs."""

    def __init__(self, endpoint_url: str, region: str) -> None:
        self.endpoint_url = endpoint_url
        self.region = region
        self._client = {name: aws_client(name, endpoint_url, region) for name in _SERVICES}

    def deploy(
        self,
        template_path: Path,
        stack_name: str,
        cluster_name: str,
        settings: dict[str, str],
        overrides: dict[str, str],
    ) -> Deployment:
        sam = load_sam_template(template_path)
        dirs = local_dirs(sam, template_path.parent)
        # The template's optional infrastructure: what the stack creates is not created before it.
        ecs = create_ecs_setup(
            self.endpoint_url,
            self.region,
            cluster_name,
            cluster=overrides.get("CreateCluster") != "true",
            task_definition=not overrides.get("Image"),
        )
        parameters = parameter_values(sam, ecs, settings, overrides)
        if broken := broken_rules(sam, parameters):
            raise DeployError("the template's rules refuse these parameters: " + "; ".join(broken))
        translated = resolve_conditionals(
            translate(package(sam, dirs, self._client["s3"]), parameters), parameters
        )
        translated.pop("Rules", None)  # checked above; moto has no use for them
        cfn = self._client["cloudformation"]
        cfn.create_stack(
            StackName=stack_name,
            TemplateBody=json.dumps(translated),
            Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in parameters.items()],
            Capabilities=["CAPABILITY_IAM", "CAPABILITY_NAMED_IAM", "CAPABILITY_AUTO_EXPAND"],
        )
        stack = cfn.describe_stacks(StackName=stack_name)["Stacks"][0]
        if stack["StackStatus"] != "CREATE_COMPLETE":
            raise DeployError(
                f"stack {stack_name} is {stack['StackStatus']}: {stack.get('StackStatusReason')}"
            )
        outputs = {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}
        resources = _stack_resources(cfn, stack_name)
        ecs = with_stack_resources(ecs, self.endpoint_url, self.region, resources)
        physical = {r["LogicalResourceId"]: r.get("PhysicalResourceId", "") for r in resources}
        active = active_logical_ids(translated, parameters)
        skipped = {lid: rtype for lid, rtype in active.items() if lid not in physical}
        resolver = IntrinsicResolver(
            translated,
            parameters,
            physical,
            self._client,
            region=self.region,
            account=self._client["sts"].get_caller_identity()["Account"],
            stack_name=stack_name,
        )
        fixups = apply_skipped_properties(translated, physical, self._client["dynamodb"])
        fixups += create_skipped_resources(translated, skipped, resolver, self._client)
        fixups += redraw_dashboards(translated, physical, resolver, self._client["cloudwatch"])
        functions = function_specs(translated, physical, dirs, resolver, self._client)
        fixups += attach_layers(translated, functions, self._client["lambda"])
        alert_queue = capture_alerts(translated, physical, self._client["sqs"], self._client["sns"])
        return Deployment(
            stack_name=stack_name,
            ecs=ecs,
            parameters=parameters,
            outputs=outputs,
            functions=functions,
            alert_capture_queue_url=alert_queue,
            skipped_resources=skipped,
            fixups=fixups,
        )
