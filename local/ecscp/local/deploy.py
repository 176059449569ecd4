"""Deploy the project's SAM template into moto, as ``sam package`` + ``sam deploy`` would.

Everything is driven by the template and the deployed stack (resource types, logical ids,
parameters, outputs), never by hard-coded resource names:

1. the ECS side that the stack only refers to (cluster, VPC, subnet, security group, task
   definition, task and execution roles) is created first, as it exists before a real deploy;
2. ``CodeUri``/``ContentUri`` directories are zipped into moto's S3;
3. ``samtranslator`` (offline) turns the SAM template into CloudFormation;
4. moto's CloudFormation creates the stack with local parameter values;
5. what moto's CloudFormation silently skips and matters is applied (DynamoDB TTL and PITR,
   function layers, queue policies, alarms); conditional values (``Fn::If``) are decided before
   moto sees them, since moto keeps an ``AWS::NoValue`` list item as a null (a policy statement
   that is left out becomes a malformed policy document);
6. the wiring the local runtime needs is read back from moto: functions with their deployed
   configuration, SQS event source mappings, EventBridge rules and their targets.
"""

from __future__ import annotations

import copy
import io
import json
import logging
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError
from samtranslator.translator.transform import transform
from samtranslator.yaml_helper import yaml_parse

from .endpoint import aws_client
from .moto_patches.events_targets import delivery_queue_name
from .schedules import UnsupportedSchedule, check_schedule
from .spec import (
    DEFAULT_ASYNC_MAX_EVENT_AGE_SECONDS,
    DEFAULT_ASYNC_RETRIES,
    FunctionSpec,
    RuleSource,
    ScheduleSource,
    SqsSource,
)

if TYPE_CHECKING:
    from mypy_boto3_cloudformation.client import CloudFormationClient

logger = logging.getLogger(__name__)

ARTIFACT_BUCKET = "ecscp-local-artifacts"
ALERT_CAPTURE_QUEUE = "ecscp-local-alert-capture"
URI_PROPERTIES = {"AWS::Serverless::Function": "CodeUri", "AWS::Serverless::LayerVersion": "ContentUri"}
#: The Airflow container's task definition: moto needs container-level memory.
CONTAINER_NAME = "airflow"
TASK_FAMILY = "airflow"
AIRFLOW_IMAGE = "apache/airflow:3.3.2-python3.11"
_ALARM_KEYS = frozenset(
    {
        "ActionsEnabled",
        "AlarmActions",
        "AlarmDescription",
        "ComparisonOperator",
        "DatapointsToAlarm",
        "Dimensions",
        "EvaluateLowSampleCountPercentile",
        "EvaluationPeriods",
        "ExtendedStatistic",
        "InsufficientDataActions",
        "MetricName",
        "Metrics",
        "Namespace",
        "OKActions",
        "Period",
        "Statistic",
        "Threshold",
        "ThresholdMetricId",
        "TreatMissingData",
        "Unit",
    }
)


class DeployError(RuntimeError):
    """The template could not be deployed into the local stack."""


class _OfflinePolicyLoader:
    """samtranslator resolves managed policy names from its bundled map; nothing to fetch."""

    def load(self) -> dict[str, str]:
        return {}


@dataclass(frozen=True)
class EcsSetup:
    """The ECS side the stack runs tasks in: created before the stack, like on a real account."""

    cluster_name: str
    cluster_arn: str
    subnet_id: str
    security_group_id: str
    task_definition: str
    task_definition_arn: str
    task_role_arn: str
    execution_role_arn: str
    container_name: str = CONTAINER_NAME


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


def zip_directory(path: Path) -> bytes:
    """The directory as a deployment package (no build: the local runtime runs the sources)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for file in sorted(path.rglob("*")):
            if file.is_file() and "__pycache__" not in file.parts:
                archive.write(file, file.relative_to(path).as_posix())
    return buffer.getvalue()


def load_sam_template(path: Path) -> dict[str, Any]:
    template: dict[str, Any] = yaml_parse(path.read_text())
    return template


def local_dirs(template: dict[str, Any], base: Path) -> dict[str, Path]:
    """Logical id -> local directory of every function's CodeUri and layer's ContentUri."""
    dirs: dict[str, Path] = {}
    for logical_id, resource in (template.get("Resources") or {}).items():
        prop = URI_PROPERTIES.get(resource.get("Type", ""))
        uri = (resource.get("Properties") or {}).get(prop) if prop else None
        if isinstance(uri, str) and not uri.startswith("s3://"):
            dirs[logical_id] = (base / uri).resolve()
    return dirs


def create_ecs_setup(endpoint_url: str, region: str, cluster_name: str) -> EcsSetup:
    """Cluster, network, roles and the Airflow task definition, shaped so moto's RunTask works."""
    ec2 = aws_client("ec2", endpoint_url, region)
    ecs = aws_client("ecs", endpoint_url, region)
    iam = aws_client("iam", endpoint_url, region)
    vpc_id = ec2.create_vpc(CidrBlock="10.42.0.0/16")["Vpc"]["VpcId"]
    ec2.modify_vpc_attribute(VpcId=vpc_id, EnableDnsSupport={"Value": True})
    # moto's awsvpc RunTask fails with HTTP 500 without DNS hostnames.
    ec2.modify_vpc_attribute(VpcId=vpc_id, EnableDnsHostnames={"Value": True})
    subnet_id = ec2.create_subnet(VpcId=vpc_id, CidrBlock="10.42.1.0/24", AvailabilityZone=f"{region}a")[
        "Subnet"
    ]["SubnetId"]
    group_id = ec2.create_security_group(
        GroupName=f"{cluster_name}-tasks", Description="Airflow tasks (local)", VpcId=vpc_id
    )["GroupId"]
    cluster_arn = ecs.create_cluster(clusterName=cluster_name)["cluster"]["clusterArn"]
    trust = json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": {"Service": "ecs-tasks.amazonaws.com"},
                    "Action": "sts:AssumeRole",
                }
            ],
        }
    )
    task_role = iam.create_role(RoleName=f"{cluster_name}-task", AssumeRolePolicyDocument=trust)["Role"][
        "Arn"
    ]
    execution_role = iam.create_role(RoleName=f"{cluster_name}-execution", AssumeRolePolicyDocument=trust)[
        "Role"
    ]["Arn"]
    task_definition = ecs.register_task_definition(
        family=TASK_FAMILY,
        networkMode="awsvpc",
        requiresCompatibilities=["FARGATE"],
        cpu="512",
        memory="1024",
        taskRoleArn=task_role,
        executionRoleArn=execution_role,
        containerDefinitions=[
            # Container-level memory: moto's RunTask fails (HTTP 500) with task-level memory only.
            {"name": CONTAINER_NAME, "image": AIRFLOW_IMAGE, "essential": True, "memory": 1024}
        ],
    )["taskDefinition"]
    return EcsSetup(
        cluster_name=cluster_name,
        cluster_arn=cluster_arn,
        subnet_id=subnet_id,
        security_group_id=group_id,
        task_definition=TASK_FAMILY,
        task_definition_arn=task_definition["taskDefinitionArn"],
        task_role_arn=task_role,
        execution_role_arn=execution_role,
    )


def _candidates(ecs: EcsSetup, settings: dict[str, str]) -> dict[str, list[str]]:
    """Local values for the parameters a control-plane template may declare, best first."""
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


def package(
    template: dict[str, Any], dirs: dict[str, Path], s3: Any, bucket: str = ARTIFACT_BUCKET
) -> dict[str, Any]:
    """Zip every local CodeUri/ContentUri into S3 and point the template at it."""
    packaged = copy.deepcopy(template)
    s3.create_bucket(Bucket=bucket)
    for logical_id, path in dirs.items():
        if not path.is_dir():
            raise DeployError(f"{logical_id}: {path} is not a directory")
        resource = packaged["Resources"][logical_id]
        key = f"{logical_id}.zip"
        s3.put_object(Bucket=bucket, Key=key, Body=zip_directory(path))
        resource["Properties"][URI_PROPERTIES[resource["Type"]]] = f"s3://{bucket}/{key}"
    return packaged


def translate(packaged: dict[str, Any], parameters: dict[str, str]) -> dict[str, Any]:
    """SAM -> CloudFormation, offline (the managed policy map ships with samtranslator)."""
    translated: dict[str, Any] = transform(packaged, dict(parameters), _OfflinePolicyLoader())
    return translated


def _stack_resources(cfn: CloudFormationClient, stack_name: str) -> list[dict[str, Any]]:
    resources: list[dict[str, Any]] = []
    for page in cfn.get_paginator("list_stack_resources").paginate(StackName=stack_name):
        resources.extend(dict(r) for r in page["StackResourceSummaries"])
    return resources


def _active_logical_ids(template: dict[str, Any], parameters: dict[str, str]) -> dict[str, str]:
    """Logical id -> type of every resource whose Condition does not obviously exclude it."""
    conditions = template.get("Conditions") or {}

    def holds(name: str) -> bool | None:
        expr = conditions.get(name)
        return _evaluate(expr, conditions, parameters) if expr is not None else None

    active: dict[str, str] = {}
    for logical_id, resource in (template.get("Resources") or {}).items():
        condition = resource.get("Condition")
        if condition and holds(condition) is False:
            continue
        active[logical_id] = resource.get("Type", "")
    return active


def _evaluate(expr: Any, conditions: dict[str, Any], parameters: dict[str, str]) -> bool | None:
    """A small evaluator for Fn::Equals/Not/And/Or/Condition over parameters; None if unknown."""
    if not isinstance(expr, dict) or len(expr) != 1:
        return None
    ((op, args),) = expr.items()
    if op == "Condition":
        inner = conditions.get(args)
        return _evaluate(inner, conditions, parameters) if inner is not None else None
    if op == "Fn::Equals":
        left, right = (_value(a, parameters) for a in args)
        return None if left is None or right is None else left == right
    results = [_evaluate(a, conditions, parameters) for a in args]
    if op == "Fn::Not":
        return None if results[0] is None else not results[0]
    if any(r is None for r in results):
        return None
    if op == "Fn::And":
        return all(results)
    if op == "Fn::Or":
        return any(results)
    return None


def _value(arg: Any, parameters: dict[str, str]) -> str | None:
    if isinstance(arg, str):
        return arg
    if isinstance(arg, dict) and set(arg) == {"Ref"}:
        return parameters.get(arg["Ref"])
    return None


def broken_rules(template: dict[str, Any], parameters: dict[str, str]) -> list[str]:
    """The template's ``Rules`` the parameters break, each as "Rule: its AssertDescription".

    CloudFormation refuses such a deploy before creating anything; moto ignores Rules, so the
    local stack checks them itself. A rule the small evaluator cannot decide is left alone.
    """
    broken = []
    for name, rule in (template.get("Rules") or {}).items():
        condition = rule.get("RuleCondition")
        if condition is not None and _evaluate(condition, {}, parameters) is not True:
            continue
        for assertion in rule.get("Assertions") or []:
            if _evaluate(assertion.get("Assert"), {}, parameters) is False:
                broken.append(
                    f"{name}: {str(assertion.get('AssertDescription', 'assertion failed')).strip()}"
                )
    return broken


_UNRESOLVED = object()


def resolve_conditionals(template: dict[str, Any], parameters: dict[str, str]) -> dict[str, Any]:
    """The template with every ``Fn::If`` whose condition is decided by the parameters replaced by
    its chosen value; an ``AWS::NoValue`` so chosen leaves its list item or property out.

    CloudFormation drops such a value; moto keeps a list item as null. Conditions the local
    evaluator cannot decide are left for moto.
    """
    conditions = template.get("Conditions") or {}
    no_value = object()

    def walk(value: Any) -> Any:
        if isinstance(value, list):
            return [v for v in (walk(item) for item in value) if v is not no_value]
        if not isinstance(value, dict):
            return value
        if set(value) == {"Fn::If"} and isinstance(value["Fn::If"], list) and len(value["Fn::If"]) == 3:
            name, when_true, when_false = value["Fn::If"]
            holds = _evaluate({"Condition": name}, conditions, parameters)
            if holds is not None:
                return walk(when_true if holds else when_false)
        if value == {"Ref": "AWS::NoValue"}:
            return no_value
        walked = {k: walk(v) for k, v in value.items()}
        return {k: v for k, v in walked.items() if v is not no_value}

    resolved = copy.deepcopy(template)
    for section in ("Resources", "Outputs"):
        if section in resolved:
            resolved[section] = walk(resolved[section])
    return resolved


class IntrinsicResolver:
    """Resolves Ref, Fn::GetAtt and Fn::Sub of the translated template against the deployed stack.

    Only what the fix-ups need: parameters, pseudo parameters, physical ids, ``Fn::Join``,
    ``Fn::Split`` and ``Fn::Select``, and the ``Arn`` / ``QueueName`` attributes of queues, topics,
    tables, functions, rules and roles. Anything else is reported as unresolvable rather than
    guessed.
    """

    def __init__(
        self,
        template: dict[str, Any],
        parameters: dict[str, str],
        physical: dict[str, str],
        clients: dict[str, Any],
        *,
        region: str,
        account: str,
        stack_name: str,
    ) -> None:
        self._resources: dict[str, Any] = template.get("Resources") or {}
        self._clients = clients
        self._values: dict[str, str] = {
            **parameters,
            **{lid: pid for lid, pid in physical.items() if pid},
            "AWS::Region": region,
            "AWS::AccountId": account,
            "AWS::StackName": stack_name,
            "AWS::Partition": "aws",
            "AWS::URLSuffix": "amazonaws.com",
        }

    def resolve(self, value: Any) -> Any:
        """The value with its intrinsics resolved, or raise LookupError naming the first that is not."""
        if isinstance(value, list):
            resolved = [self.resolve(v) for v in value]
            return [v for v in resolved if v is not _UNRESOLVED]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            ((name, arg),) = value.items()
            if name == "Ref":
                if arg == "AWS::NoValue":
                    return _UNRESOLVED
                if arg not in self._values:
                    raise LookupError(f"Ref {arg}")
                return self._values[arg]
            if name == "Fn::GetAtt":
                lid, attribute = arg if isinstance(arg, list) else str(arg).split(".", 1)
                return self.attribute(lid, attribute)
            if name == "Fn::Sub":
                return self._sub(arg)
            if name == "Fn::Join":
                separator, parts = arg
                return str(separator).join(str(p) for p in self.resolve(parts))
            if name == "Fn::Split":
                separator, text = arg
                return str(self.resolve(text)).split(str(separator))
            if name == "Fn::Select":
                index, items = arg
                return self.resolve(items)[int(self.resolve(index))]
            if name.startswith("Fn::"):
                raise LookupError(name)
        return {k: v for k, v in ((k, self.resolve(v)) for k, v in value.items()) if v is not _UNRESOLVED}

    def _sub(self, arg: Any) -> str:
        template, extra = (arg, {}) if isinstance(arg, str) else (arg[0], arg[1])
        local = {k: self.resolve(v) for k, v in extra.items()}

        def replace(match: re.Match[str]) -> str:
            name = match.group(1)
            if name in local:
                return str(local[name])
            if "." in name:
                lid, attribute = name.split(".", 1)
                return str(self.attribute(lid, attribute))
            return str(self.resolve({"Ref": name}))

        return re.sub(r"\$\{([^}!]+)\}", replace, template)

    def attribute(self, lid: str, attribute: str) -> str:
        resource = self._resources.get(lid)
        physical = self._values.get(lid)
        if resource is None or physical is None:
            raise LookupError(f"Fn::GetAtt {lid}.{attribute}")
        rtype = resource.get("Type")
        if rtype == "AWS::SQS::Queue" and attribute == "QueueName":
            return physical.rsplit("/", 1)[-1]
        if rtype == "AWS::SQS::Queue" and attribute == "Arn":
            attributes = self._clients["sqs"].get_queue_attributes(
                QueueUrl=physical, AttributeNames=["QueueArn"]
            )
            return str(attributes["Attributes"]["QueueArn"])
        if rtype == "AWS::SNS::Topic" and attribute in ("Arn", "TopicArn"):
            return physical
        if rtype == "AWS::DynamoDB::Table" and attribute == "Arn":
            return str(self._clients["dynamodb"].describe_table(TableName=physical)["Table"]["TableArn"])
        if rtype == "AWS::Lambda::Function" and attribute == "Arn":
            return str(
                self._clients["lambda"].get_function_configuration(FunctionName=physical)["FunctionArn"]
            )
        if rtype == "AWS::Events::Rule" and attribute == "Arn":
            return str(self._clients["events"].describe_rule(Name=physical.split("|")[-1])["Arn"])
        if rtype == "AWS::IAM::Role" and attribute == "Arn":
            return str(self._clients["iam"].get_role(RoleName=physical)["Role"]["Arn"])
        raise LookupError(f"Fn::GetAtt {lid}.{attribute}")


class StackDeployer:
    """Creates the stack in moto and reads back what the local runtime needs."""

    def __init__(self, endpoint_url: str, region: str) -> None:
        self.endpoint_url = endpoint_url
        self.region = region
        self._client = {
            name: aws_client(name, endpoint_url, region)
            for name in ("s3", "cloudformation", "lambda", "events", "sqs", "sns", "dynamodb", "iam")
        }

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
        ecs = create_ecs_setup(self.endpoint_url, self.region, cluster_name)
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
        physical = {r["LogicalResourceId"]: r.get("PhysicalResourceId", "") for r in resources}
        active = _active_logical_ids(translated, parameters)
        skipped = {lid: rtype for lid, rtype in active.items() if lid not in physical}
        resolver = IntrinsicResolver(
            translated,
            parameters,
            physical,
            self._client,
            region=self.region,
            account=ecs.cluster_arn.split(":")[4],
            stack_name=stack_name,
        )
        fixups = self._apply_skipped_properties(translated, physical)
        fixups += self._create_skipped_resources(translated, skipped, resolver)
        functions = self._functions(translated, physical, dirs, resolver)
        fixups += self._attach_layers(translated, functions)
        alert_queue = self._capture_alerts(translated, physical)
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

    # -- what moto's CloudFormation ignores ---------------------------------------------------

    def _create_skipped_resources(
        self, translated: dict[str, Any], skipped: dict[str, str], resolver: IntrinsicResolver
    ) -> list[str]:
        """Create through the service APIs what moto's CloudFormation cannot; report the rest."""
        done: list[str] = []
        for lid, rtype in skipped.items():
            creator = self._creators().get(rtype)
            if creator is None:
                logger.warning("moto's CloudFormation did not create %s (%s); not needed locally", lid, rtype)
                continue
            try:
                props = resolver.resolve(translated["Resources"][lid].get("Properties") or {})
                creator(lid, props)
            except (LookupError, ClientError, ValueError) as exc:
                logger.warning(
                    "moto's CloudFormation did not create %s (%s), nor could we: %s", lid, rtype, exc
                )
                continue
            done.append(f"{lid}: created {rtype} through its API")
        return done

    def _creators(self) -> dict[str, Any]:
        cloudwatch = aws_client("cloudwatch", self.endpoint_url, self.region)
        sqs, sns, lam = self._client["sqs"], self._client["sns"], self._client["lambda"]

        def alarm(lid: str, props: dict[str, Any]) -> None:
            numbers = {"Period": int, "EvaluationPeriods": int, "DatapointsToAlarm": int, "Threshold": float}
            kwargs = {k: numbers[k](v) if k in numbers else v for k, v in props.items() if k in _ALARM_KEYS}
            cloudwatch.put_metric_alarm(AlarmName=props.get("AlarmName") or lid, **kwargs)

        def queue_policy(lid: str, props: dict[str, Any]) -> None:
            for url in props["Queues"]:
                sqs.set_queue_attributes(
                    QueueUrl=url, Attributes={"Policy": json.dumps(props["PolicyDocument"])}
                )

        def topic_policy(lid: str, props: dict[str, Any]) -> None:
            for topic in props["Topics"]:
                sns.set_topic_attributes(
                    TopicArn=topic, AttributeName="Policy", AttributeValue=json.dumps(props["PolicyDocument"])
                )

        def invoke_config(lid: str, props: dict[str, Any]) -> None:
            kwargs = {k: props[k] for k in ("MaximumRetryAttempts", "MaximumEventAgeInSeconds") if k in props}
            lam.put_function_event_invoke_config(
                FunctionName=props["FunctionName"],
                Qualifier=props.get("Qualifier", "$LATEST"),
                **{k: int(v) for k, v in kwargs.items()},
            )

        return {
            "AWS::CloudWatch::Alarm": alarm,
            "AWS::SQS::QueuePolicy": queue_policy,
            "AWS::SNS::TopicPolicy": topic_policy,
            "AWS::Lambda::EventInvokeConfig": invoke_config,
        }

    def _apply_skipped_properties(self, translated: dict[str, Any], physical: dict[str, str]) -> list[str]:
        ddb = self._client["dynamodb"]
        done: list[str] = []
        for lid, resource in translated["Resources"].items():
            if resource.get("Type") != "AWS::DynamoDB::Table" or not physical.get(lid):
                continue
            props = resource.get("Properties") or {}
            ttl = props.get("TimeToLiveSpecification")
            if isinstance(ttl, dict) and ttl.get("Enabled") in (True, "true"):
                ddb.update_time_to_live(
                    TableName=physical[lid],
                    TimeToLiveSpecification={"AttributeName": ttl["AttributeName"], "Enabled": True},
                )
                done.append(f"{lid}: TTL on {ttl['AttributeName']}")
            pitr = props.get("PointInTimeRecoverySpecification")
            if isinstance(pitr, dict) and pitr.get("PointInTimeRecoveryEnabled") in (True, "true"):
                ddb.update_continuous_backups(
                    TableName=physical[lid],
                    PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": True},
                )
                done.append(f"{lid}: point-in-time recovery")
        return done

    def _attach_layers(self, translated: dict[str, Any], functions: list[FunctionSpec]) -> list[str]:
        """moto drops a function's Layers; attach the deployed layer versions by logical id."""
        lam = self._client["lambda"]
        versions: dict[str, str] = {}
        for layer in lam.list_layers().get("Layers", []):
            for lid, resource in translated["Resources"].items():
                if resource.get("Type") == "AWS::Lambda::LayerVersion" and f"-{lid}" in layer["LayerName"]:
                    versions[lid] = layer["LatestMatchingVersion"]["LayerVersionArn"]
        done: list[str] = []
        for function in functions:
            refs = translated["Resources"][function.logical_id]["Properties"].get("Layers") or []
            arns = [versions[r["Ref"]] for r in refs if isinstance(r, dict) and r.get("Ref") in versions]
            if arns:
                lam.update_function_configuration(FunctionName=function.name, Layers=arns)
                done.append(f"{function.logical_id}: layers {', '.join(a.split(':')[-2] for a in arns)}")
        return done

    # -- wiring ---------------------------------------------------------------------------------

    def _functions(
        self,
        translated: dict[str, Any],
        physical: dict[str, str],
        dirs: dict[str, Path],
        resolver: IntrinsicResolver,
    ) -> list[FunctionSpec]:
        lam, sqs, events = self._client["lambda"], self._client["sqs"], self._client["events"]
        layer_dirs = self._layer_dirs(translated, dirs)
        by_arn: dict[str, FunctionSpec] = {}
        for lid, resource in translated["Resources"].items():
            if resource.get("Type") != "AWS::Lambda::Function" or not physical.get(lid):
                continue
            if lid not in dirs:
                raise DeployError(f"function {lid} has no local CodeUri directory to run")
            config = lam.get_function_configuration(FunctionName=physical[lid])
            refs = resource["Properties"].get("Layers") or []
            variables = (config.get("Environment") or {}).get("Variables") or {}
            retries, max_age = _async_invoke_config(translated, resolver, config["FunctionName"])
            mappings = lam.list_event_source_mappings(FunctionName=config["FunctionName"])
            spec = FunctionSpec(
                logical_id=lid,
                name=config["FunctionName"],
                arn=config["FunctionArn"],
                handler=config["Handler"],
                code_dir=dirs[lid],
                layer_dirs=tuple(
                    layer_dirs[r["Ref"]] for r in refs if isinstance(r, dict) and r.get("Ref") in layer_dirs
                ),
                environment={k: str(v) for k, v in variables.items()},
                # moto's Lambda has no DeadLetterConfig: take it from the template.
                dead_letter_arn=_optional(
                    resolver, (resource["Properties"].get("DeadLetterConfig") or {}).get("TargetArn")
                ),
                async_max_retries=retries,
                async_max_event_age_seconds=max_age,
                memory_mb=int(config.get("MemorySize") or 128),
                timeout_seconds=int(config.get("Timeout") or 3),
                sqs_sources=tuple(
                    SqsSource(
                        uuid=mapping["UUID"],
                        queue_arn=mapping["EventSourceArn"],
                        queue_url=sqs.get_queue_url(QueueName=mapping["EventSourceArn"].rsplit(":", 1)[-1])[
                            "QueueUrl"
                        ],
                        batch_size=int(mapping.get("BatchSize") or 10),
                        report_batch_item_failures="ReportBatchItemFailures"
                        in (mapping.get("FunctionResponseTypes") or []),
                        maximum_batching_window_seconds=int(
                            mapping.get("MaximumBatchingWindowInSeconds") or 0
                        ),
                    )
                    for mapping in mappings.get("EventSourceMappings", [])
                    if ":sqs:" in mapping.get("EventSourceArn", "")
                    and mapping.get("State") in ("Enabled", "Enabling", "Creating")
                ),
            )
            by_arn[spec.arn] = spec
        rule_sources: dict[str, list[RuleSource]] = {arn: [] for arn in by_arn}
        schedules: dict[str, list[ScheduleSource]] = {arn: [] for arn in by_arn}
        for bus in events.list_event_buses().get("EventBuses", []):
            for rule in events.list_rules(EventBusName=bus["Name"]).get("Rules", []):
                if rule.get("State") != "ENABLED":
                    continue
                targets = events.list_targets_by_rule(Rule=rule["Name"], EventBusName=bus["Name"]).get(
                    "Targets", []
                )
                for target in targets:
                    function_arn = unqualified_function_arn(target["Arn"])
                    if function_arn not in by_arn:
                        continue
                    queue_name = delivery_queue_name(rule["Arn"], target["Id"])
                    url = sqs.create_queue(QueueName=queue_name)["QueueUrl"]
                    schedule = rule.get("ScheduleExpression")
                    if schedule:
                        try:
                            check_schedule(schedule)
                        except UnsupportedSchedule as exc:
                            logger.warning("rule %s is not run locally: %s", rule["Name"], exc)
                            continue
                        schedules[function_arn].append(
                            ScheduleSource(
                                rule_name=rule["Name"],
                                rule_arn=rule["Arn"],
                                target=dict(target),
                                expression=schedule,
                                delivery_queue_url=url,
                            )
                        )
                    rule_sources[function_arn].append(
                        RuleSource(
                            rule_name=rule["Name"],
                            rule_arn=rule["Arn"],
                            target_id=target["Id"],
                            delivery_queue_url=url,
                        )
                    )
        return [
            spec.model_copy(
                update={"rule_sources": tuple(rule_sources[arn]), "schedules": tuple(schedules[arn])}
            )
            for arn, spec in by_arn.items()
        ]

    @staticmethod
    def _layer_dirs(translated: dict[str, Any], dirs: dict[str, Path]) -> dict[str, Path]:
        """Translated layer logical id (SAM adds a hash) -> its local ContentUri directory."""
        found: dict[str, Path] = {}
        for lid, resource in translated["Resources"].items():
            if resource.get("Type") != "AWS::Lambda::LayerVersion":
                continue
            content = (resource.get("Properties") or {}).get("Content") or {}
            key = str(content.get("S3Key", ""))
            sam_id = key[: -len(".zip")] if key.endswith(".zip") else ""
            if sam_id in dirs:
                found[lid] = dirs[sam_id]
        return found

    def _capture_alerts(self, translated: dict[str, Any], physical: dict[str, str]) -> str | None:
        """Subscribe a queue to every topic of the stack, so the alerts can be read back."""
        topics = [
            physical[lid]
            for lid, r in translated["Resources"].items()
            if r.get("Type") == "AWS::SNS::Topic" and physical.get(lid)
        ]
        if not topics:
            return None
        sqs, sns = self._client["sqs"], self._client["sns"]
        url = sqs.create_queue(QueueName=ALERT_CAPTURE_QUEUE)["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        for topic in topics:
            sns.subscribe(
                TopicArn=topic, Protocol="sqs", Endpoint=arn, Attributes={"RawMessageDelivery": "true"}
            )
        return str(url)


def unqualified_function_arn(arn: str) -> str:
    """A Lambda function ARN without its version or alias qualifier."""
    return ":".join(arn.split(":")[:7])


def _optional(resolver: IntrinsicResolver, value: Any) -> Any:
    if value is None:
        return None
    try:
        return resolver.resolve(value)
    except LookupError as exc:
        logger.warning("could not resolve %s: %s", value, exc)
        return None


def _async_invoke_config(
    translated: dict[str, Any], resolver: IntrinsicResolver, function_name: str
) -> tuple[int, int]:
    """(retries, maximum event age) of the function's asynchronous invocations."""
    retries, max_age = DEFAULT_ASYNC_RETRIES, DEFAULT_ASYNC_MAX_EVENT_AGE_SECONDS
    for resource in translated["Resources"].values():
        props = resource.get("Properties") or {}
        if resource.get("Type") != "AWS::Lambda::EventInvokeConfig":
            continue
        if _optional(resolver, props.get("FunctionName")) != function_name:
            continue
        retries = int(props.get("MaximumRetryAttempts", retries))
        max_age = int(props.get("MaximumEventAgeInSeconds", max_age))
    return retries, max_age
