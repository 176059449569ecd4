"""Finding a control plane stack and everything of it the operator's commands use.

``--stack NAME``: CloudFormation's DescribeStacks (status, parameters, outputs) and
ListStackResources (the functions, rules, event source mapping and roles by logical id, which
the outputs do not name), with credentials, region and profile found the boto3 way. ``--local``:
the discovery file of a running local stack (:mod:`ecscp.local.discovery`), then the same calls
against its endpoint. Every failure to find it is an :class:`OperationsError` that says what to do.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError, NoRegionError
from pydantic import ValidationError

from ecs_control_plane.store import StateTable
from ecscp.local.discovery import DISCOVERY_FILE, LocalStackDiscovery, user_discovery_path
from ecscp.local.endpoint import FAKE_CREDENTIALS
from ecscp.local.processes import is_alive

#: Logical ids of the template's resources that the commands look up (the outputs lack them).
RUN_TASK_FUNCTION = "RunTaskFunction"
TASK_STATE_FUNCTION = "TaskStateFunction"
RECONCILER_FUNCTION = "ReconcilerFunction"
#: The run_task SQS event source mapping, and the three rules, as SAM names them.
RUN_REQUEST_MAPPING = "RunTaskFunctionRunRequests"
TASK_STATE_RULE = "TaskStateFunctionEcsTaskStateChange"
FAILED_START_RULE = "FailedStartRule"
RECONCILE_SCHEDULE_RULE = "ReconcilerFunctionSchedule"
#: The outputs every command relies on.
REQUIRED_OUTPUTS = (
    "RunRequestQueueUrl",
    "RunRequestQueueArn",
    "DeadLetterQueueUrl",
    "TaskEventDeadLetterQueueUrl",
    "StateTableName",
    "StateTableArn",
    "AlertTopicArn",
    "ControlPlaneId",
    "SchedulerPolicyArn",
    "AirflowEnvironment",
)
_RETRIES = Config(retries={"mode": "standard", "total_max_attempts": 3}, connect_timeout=5, read_timeout=30)


class OperationsError(RuntimeError):
    """The stack cannot be found or read; the message says why and what to do."""


@dataclass
class ControlPlaneStack:
    """One deployed control plane: its CloudFormation view and clients for its region."""

    name: str
    region: str
    status: str
    status_reason: str
    outputs: dict[str, str]
    parameters: dict[str, str]
    #: Logical id -> physical id of every resource of the stack.
    resources: dict[str, str]
    session: boto3.session.Session
    #: The local stack's endpoint; None for AWS.
    endpoint_url: str | None = None
    _clients: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def is_local(self) -> bool:
        return self.endpoint_url is not None

    def client(self, service: str) -> Any:
        """A boto3 client of the stack's region (and endpoint), made once per service."""
        if service not in self._clients:
            self._clients[service] = self.session.client(  # type: ignore[call-overload]
                service, region_name=self.region, endpoint_url=self.endpoint_url, config=_RETRIES
            )
        return self._clients[service]

    def output(self, name: str) -> str:
        try:
            return self.outputs[name]
        except KeyError:
            raise OperationsError(
                f"stack {self.name} has no output {name}: is it this project's template? "
                "Deploy it again (sam build && sam deploy)"
            ) from None

    def resource(self, logical_id: str) -> str | None:
        """The physical id of a resource of the stack; None when it has none."""
        return self.resources.get(logical_id) or None

    @property
    def cluster(self) -> str:
        return self.parameters.get("Cluster", "")

    @property
    def container_name(self) -> str:
        return self.parameters.get("ContainerName", "airflow")

    def state_table(self) -> StateTable:
        return StateTable(self.client("dynamodb"), self.output("StateTableName"))


def _aws_error(exc: Exception) -> str:
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        return f"{error.get('Code', '?')}: {error.get('Message', '')}"
    return str(exc)


def _load(
    name: str, session: boto3.session.Session, region: str, endpoint_url: str | None
) -> ControlPlaneStack:
    stack = ControlPlaneStack(
        name=name,
        region=region,
        status="",
        status_reason="",
        outputs={},
        parameters={},
        resources={},
        session=session,
        endpoint_url=endpoint_url,
    )
    cfn = stack.client("cloudformation")
    where = f"the local stack at {endpoint_url}" if endpoint_url else f"region {region}"
    try:
        described = cfn.describe_stacks(StackName=name)["Stacks"][0]
        summaries: list[dict[str, Any]] = []
        for page in cfn.get_paginator("list_stack_resources").paginate(StackName=name):
            summaries.extend(page["StackResourceSummaries"])
    except NoCredentialsError:
        raise OperationsError(
            "no AWS credentials: set AWS_PROFILE (or --profile), or the AWS_ACCESS_KEY_ID variables, "
            "or run where an instance or task role applies"
        ) from None
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "")
        message = str(exc.response.get("Error", {}).get("Message", ""))
        if code == "ValidationError" and "does not exist" in message:
            raise OperationsError(
                f"no stack {name!r} in {where}: check the name and --region (or AWS_REGION)"
            ) from None
        if code in ("ExpiredToken", "InvalidClientTokenId", "UnrecognizedClientException", "AccessDenied"):
            raise OperationsError(f"AWS refused the credentials in {where} ({_aws_error(exc)})") from None
        raise OperationsError(f"cannot describe stack {name!r} in {where}: {_aws_error(exc)}") from None
    except BotoCoreError as exc:
        raise OperationsError(f"cannot reach CloudFormation in {where}: {exc}") from None
    stack.status = str(described.get("StackStatus", ""))
    stack.status_reason = str(described.get("StackStatusReason") or "")
    stack.outputs = {o["OutputKey"]: o["OutputValue"] for o in described.get("Outputs", [])}
    parameters = described.get("Parameters", [])
    stack.parameters = {p["ParameterKey"]: p.get("ParameterValue", "") for p in parameters}
    stack.resources = {r["LogicalResourceId"]: r.get("PhysicalResourceId", "") for r in summaries}
    return stack


def find_stack(name: str, *, region: str | None = None, profile: str | None = None) -> ControlPlaneStack:
    """A deployed stack by name: region and credentials as boto3 finds them (or as given)."""
    try:
        session = boto3.session.Session(profile_name=profile, region_name=region)
    except BotoCoreError as exc:
        raise OperationsError(f"AWS profile: {exc}") from None
    if not session.region_name:
        raise OperationsError("no AWS region: pass --region, or set AWS_REGION or the profile's region")
    try:
        return _load(name, session, session.region_name, None)
    except NoRegionError:
        raise OperationsError("no AWS region: pass --region, or set AWS_REGION") from None


def find_local(state_dir: Path | None = None) -> ControlPlaneStack:
    """The running local stack: the one of ``state_dir``, else the last ``ecscp local up``."""
    path = state_dir / DISCOVERY_FILE if state_dir else user_discovery_path()
    try:
        discovery = LocalStackDiscovery.read(path)
    except (ValidationError, ValueError) as exc:
        raise OperationsError(f"{path} is not a local stack's discovery file: {exc}") from None
    if discovery is None:
        raise OperationsError(
            f"no local stack is running ({path} does not exist): start one with `ecscp local up`"
            + ("" if state_dir else ", or pass the --state-dir of one started from Python")
        )
    if not is_alive(discovery.pid):
        raise OperationsError(
            f"the local stack of {discovery.state_dir} is gone (process {discovery.pid} ended); "
            "start one with `ecscp local up`"
        )
    session = boto3.session.Session(
        aws_access_key_id=FAKE_CREDENTIALS["aws_access_key_id"],
        aws_secret_access_key=FAKE_CREDENTIALS["aws_secret_access_key"],
        region_name=discovery.region,
    )
    try:
        return _load(discovery.stack_name, session, discovery.region, discovery.endpoint_url)
    except OperationsError as exc:
        raise OperationsError(f"the local stack of {discovery.state_dir} does not answer: {exc}") from None
