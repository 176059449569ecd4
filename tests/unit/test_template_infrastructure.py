"""The optional ECS infrastructure of template.yaml (CreateCluster, Image), in both shapes.

Off by default, the stack refers to the operator's cluster, task definition and roles; on, it
creates them and every right the functions hold names exactly those. The template is translated
by samtranslator, rendered for a deployment with the local stack's resolver, and its policies
are evaluated as IAM does (tests/support/iam_policies.py).
"""

from __future__ import annotations

from typing import Any

import pytest
from samtranslator.yaml_helper import yaml_parse

from ecs_control_plane.settings import ControlPlaneSettings
from ecscp.local.cloudformation.rules import active_logical_ids, broken_rules
from ecscp.local.cloudformation.translate import translate
from tests.support.iam_policies import (
    ACCOUNT,
    CLUSTER_ARN,
    CONTROL_PLANE_ID,
    REGION,
    REQUIRED,
    SCHEDULER,
    TASK_ROLE,
    TEMPLATE,
    Call,
    Deployment,
    allows,
    role_arn,
    task_definition,
)
from tests.support.templates import packaged_for_s3

IMAGE = f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/airflow:3.3.2"
API_URL = "https://airflow.example.com/execution/"
#: The parameters that turn the whole optional infrastructure on.
INFRASTRUCTURE = {
    "CreateCluster": "true",
    "Image": IMAGE,
    "TaskDefinition": "",
    "ExecutionApiServerUrl": API_URL,
    "Subnets": "subnet-1",
}
CREATED = {
    "AirflowCluster": "AWS::ECS::Cluster",
    "AirflowTaskDefinition": "AWS::ECS::TaskDefinition",
    "AirflowTaskExecutionRole": "AWS::IAM::Role",
    "AirflowTaskRole": "AWS::IAM::Role",
    "AirflowTaskLogGroup": "AWS::Logs::LogGroup",
    "PassTheCreatedRoles": "AWS::IAM::Policy",
}
#: The conditions of the optional infrastructure's resources.
INFRASTRUCTURE_CONDITIONS = {"CreatesCluster", "CreatesTaskDefinition", "HasS3RemoteLogs"}
CREATED_FAMILY = CONTROL_PLANE_ID
TO_ECS = {"iam:PassedToService": "ecs-tasks.amazonaws.com"}
IN_CLUSTER = {"ecs:cluster": CLUSTER_ARN}


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    parsed: dict[str, Any] = yaml_parse(TEMPLATE.read_text())
    return parsed


@pytest.fixture(scope="module")
def created(template: dict[str, Any]) -> Deployment:
    """A deployment with the optional infrastructure on."""
    return Deployment(template, **INFRASTRUCTURE)


def values(template: dict[str, Any], **parameters: str) -> dict[str, str]:
    """Every parameter's value for a deployment (defaults, the required ones, these), as checked
    against the parameters' patterns."""
    return Deployment(template, **parameters).parameters


def run_task_rights(deployment: Deployment) -> list[dict[str, Any]]:
    return deployment.role("RunTaskRole")


# --- both shapes translate; the conditions create exactly the optional resources -------------


@pytest.mark.parametrize(
    ("parameters", "expected"),
    [
        ({}, {}),
        ({"CreateCluster": "true"}, {"AirflowCluster": "AWS::ECS::Cluster"}),
        (INFRASTRUCTURE, CREATED),
        (
            INFRASTRUCTURE | {"RemoteBaseLogFolder": "s3://logs/airflow"},
            CREATED | {"AirflowTaskRemoteLogs": "AWS::IAM::Policy"},
        ),
        (
            INFRASTRUCTURE | {"RemoteBaseLogFolder": "cloudwatch://arn:aws:logs:us-east-1:1:log-group:x"},
            CREATED,
        ),
    ],
    ids=["off", "cluster-only", "on", "on-with-s3-logs", "on-with-other-remote-logs"],
)
def test_each_shape_translates_and_creates_only_the_resources_it_asks_for(
    template: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
    parameters: dict[str, str],
    expected: dict[str, str],
) -> None:
    # GIVEN the template translated by SAM (the translator wants S3 code locations)
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    given = values(template, **parameters)
    translated = translate(packaged_for_s3(template), given)

    # WHEN CloudFormation decides the resources' conditions for these parameters
    active = active_logical_ids(translated, given)

    # THEN exactly the asked-for optional resources are created, beside the control plane itself
    optional = {
        lid for lid, r in translated["Resources"].items() if r.get("Condition") in INFRASTRUCTURE_CONDITIONS
    }
    assert {lid: rtype for lid, rtype in active.items() if lid in optional} == expected
    assert {"RunTaskFunction", "StateTable", "SchedulerPolicy"} <= set(active)
    assert broken_rules(template, given) == []


def test_the_created_cluster_offers_fargate_and_fargate_spot_with_container_insights(
    created: Deployment,
) -> None:
    # GIVEN the cluster the stack creates
    cluster = created.properties("AirflowCluster")

    # THEN it is the Cluster parameter's cluster (every ARN of the template names it), with both
    # Fargate capacity providers, FARGATE by default, and Container Insights
    assert cluster["ClusterName"] == REQUIRED["Cluster"]
    assert cluster["CapacityProviders"] == ["FARGATE", "FARGATE_SPOT"]
    assert cluster["DefaultCapacityProviderStrategy"] == [{"CapacityProvider": "FARGATE", "Weight": 1}]
    assert {"Name": "containerInsights", "Value": "enabled"} in cluster["ClusterSettings"]


def test_the_created_task_definition_runs_the_image_in_the_airflow_container_and_logs_to_the_stack(
    template: dict[str, Any],
) -> None:
    # GIVEN the task definition created with remote logging to S3 and a renamed container
    deployment = Deployment(
        template, **INFRASTRUCTURE, ContainerName="worker", RemoteBaseLogFolder="s3://logs/airflow"
    )
    definition = deployment.properties("AirflowTaskDefinition")

    # THEN it is a Fargate task definition of the stack's family, with the created roles
    assert definition["Family"] == CREATED_FAMILY
    assert definition["RequiresCompatibilities"] == ["FARGATE"]
    assert definition["NetworkMode"] == "awsvpc"
    assert (definition["Cpu"], definition["Memory"]) == ("1024", "2048")
    assert definition["TaskRoleArn"] == role_arn("AirflowTaskRole")
    assert definition["ExecutionRoleArn"] == role_arn("AirflowTaskExecutionRole")
    # AND its one container is ContainerName, running Image with the Airflow settings, no command
    (container,) = definition["ContainerDefinitions"]
    assert (container["Name"], container["Image"], container["Essential"]) == ("worker", IMAGE, True)
    assert "Command" not in container
    assert {e["Name"]: e["Value"] for e in container["Environment"]} == {
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": API_URL,
        "AIRFLOW__LOGGING__REMOTE_LOGGING": "True",
        "AIRFLOW__LOGGING__REMOTE_BASE_LOG_FOLDER": "s3://logs/airflow",
        "AIRFLOW__LOGGING__REMOTE_LOG_CONN_ID": "aws_default",
    }
    # AND it logs through awslogs into the stack's log group, kept LogRetentionDays
    assert container["LogConfiguration"] == {
        "LogDriver": "awslogs",
        "Options": {
            "awslogs-group": "AirflowTaskLogGroup",
            "awslogs-region": REGION,
            "awslogs-stream-prefix": "ecs",
        },
    }
    assert deployment.properties("AirflowTaskLogGroup") == {
        "LogGroupName": f"/ecs/{CONTROL_PLANE_ID}",
        "RetentionInDays": "30",
    }


def test_without_a_remote_log_folder_the_container_gets_no_remote_logging(created: Deployment) -> None:
    (container,) = created.properties("AirflowTaskDefinition")["ContainerDefinitions"]
    assert [e["Name"] for e in container["Environment"]] == ["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"]


# --- the functions use what the stack created ------------------------------------------------


def test_the_functions_run_the_created_task_definition_with_the_created_roles(
    template: dict[str, Any], created: Deployment
) -> None:
    # GIVEN the functions' environment in a deployment with the infrastructure on
    environment = created.resolve(template["Globals"]["Function"]["Environment"]["Variables"])

    # WHEN the functions read their settings from it
    settings = ControlPlaneSettings.from_env(environment)

    # THEN they run the created task definition (its Ref: the revision's ARN) with its roles
    assert settings.task_definition == "AirflowTaskDefinition"
    assert settings.task_role_arn == role_arn("AirflowTaskRole")
    assert settings.execution_role_arn == role_arn("AirflowTaskExecutionRole")
    assert settings.cluster == REQUIRED["Cluster"]


def test_run_task_may_run_the_created_family_only(created: Deployment) -> None:
    # GIVEN run_task's rights with the infrastructure on
    run_task = run_task_rights(created)

    # THEN it may run any revision of the created family in the cluster
    for revision in (CREATED_FAMILY, f"{CREATED_FAMILY}:1", f"{CREATED_FAMILY}:7"):
        assert allows(run_task, Call("ecs:RunTask", task_definition(revision), IN_CLUSTER)), revision
    # AND no other family (the default deployment's family is refused now), nor elsewhere
    for other in ("airflow-task:3", f"{CREATED_FAMILY}-other:1", "airflow:1"):
        assert not allows(run_task, Call("ecs:RunTask", task_definition(other), IN_CLUSTER)), other
    elsewhere = {"ecs:cluster": CLUSTER_ARN.replace(":cluster/airflow", ":cluster/other")}
    assert not allows(run_task, Call("ecs:RunTask", task_definition(f"{CREATED_FAMILY}:1"), elsewhere))


def test_run_task_may_pass_exactly_the_created_roles_to_ecs(created: Deployment) -> None:
    # GIVEN run_task's rights with the infrastructure on
    run_task = run_task_rights(created)

    # THEN it may pass the two created roles, to ECS tasks only
    for role in (role_arn("AirflowTaskRole"), role_arn("AirflowTaskExecutionRole")):
        assert allows(run_task, Call("iam:PassRole", role, TO_ECS)), role
        assert not allows(
            run_task, Call("iam:PassRole", role, {"iam:PassedToService": "lambda.amazonaws.com"})
        )
    # AND no other role: not the role a bring-your-own deployment names, not the functions' own
    for other in (TASK_ROLE, role_arn("RunTaskRole"), f"arn:aws:iam::{ACCOUNT}:role/Admin"):
        assert not allows(run_task, Call("iam:PassRole", other, TO_ECS)), other


def test_the_created_roles_trust_ecs_tasks_of_this_account_only(created: Deployment) -> None:
    for logical_id in ("AirflowTaskRole", "AirflowTaskExecutionRole"):
        (trust,) = created.properties(logical_id)["AssumeRolePolicyDocument"]["Statement"]
        assert trust["Principal"] == {"Service": "ecs-tasks.amazonaws.com"}
    (task_trust,) = created.properties("AirflowTaskRole")["AssumeRolePolicyDocument"]["Statement"]
    assert task_trust["Condition"]["StringEquals"] == {"aws:SourceAccount": ACCOUNT}


def test_the_execution_role_pulls_from_this_account_and_logs_to_the_task_log_group_only(
    created: Deployment,
) -> None:
    # GIVEN the created execution role's rights
    execution = created.role("AirflowTaskExecutionRole")
    group = f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:/ecs/{CONTROL_PLANE_ID}:*"
    repository = f"arn:aws:ecr:{REGION}:{ACCOUNT}:repository/airflow"

    # THEN it pulls images of this account's repositories and writes the task log group
    assert allows(execution, Call("ecr:GetAuthorizationToken", "*"))
    assert allows(execution, Call("ecr:BatchGetImage", repository))
    assert allows(execution, Call("logs:PutLogEvents", group))
    # AND nothing of another account, nor another log group
    assert not allows(execution, Call("ecr:BatchGetImage", repository.replace(ACCOUNT, "210987654321")))
    assert not allows(execution, Call("logs:PutLogEvents", group.replace("/ecs/", "/aws/lambda/")))


def test_the_task_role_reads_and_writes_the_s3_remote_log_folder_only(template: dict[str, Any]) -> None:
    # GIVEN the task role with an S3 remote log folder and an operator's managed policy
    policies = [f"arn:aws:iam::{ACCOUNT}:policy/dag-rights", "arn:aws:iam::aws:policy/AmazonS3ReadOnlyAccess"]
    deployment = Deployment(
        template,
        **INFRASTRUCTURE,
        RemoteBaseLogFolder="s3://logs/airflow/prod",
        TaskRolePolicyArns=",".join(policies),
    )
    role = deployment.properties("AirflowTaskRole")
    statements = [
        s
        for _, p in deployment.resources("AWS::IAM::Policy")
        if "AirflowTaskRole" in p["Roles"]
        for s in p["PolicyDocument"]["Statement"]
    ]

    # THEN it writes and reads log files under that prefix, and lists that bucket
    for action in ("s3:PutObject", "s3:GetObject"):
        assert allows(statements, Call(action, "arn:aws:s3:::logs/airflow/prod/dag_id=x/attempt=1.log"))
        assert not allows(statements, Call(action, "arn:aws:s3:::logs/airflow/staging/attempt=1.log"))
        assert not allows(statements, Call(action, "arn:aws:s3:::other/airflow/prod/attempt=1.log"))
    assert allows(statements, Call("s3:ListBucket", "arn:aws:s3:::logs"))
    assert not allows(statements, Call("s3:ListBucket", "arn:aws:s3:::other"))
    # AND carries the operator's managed policies
    assert role["ManagedPolicyArns"] == policies


def test_the_task_role_has_no_rights_of_its_own_without_an_s3_folder_or_policies(created: Deployment) -> None:
    assert "ManagedPolicyArns" not in created.properties("AirflowTaskRole")
    assert [lid for lid, p in created.resources("AWS::IAM::Policy") if "AirflowTaskRole" in p["Roles"]] == []


def test_the_scheduler_reads_the_created_task_log_group_and_turns_read_task_logs_on(
    template: dict[str, Any], created: Deployment
) -> None:
    # GIVEN the scheduler's policy and the AirflowEnvironment output with the infrastructure on
    scheduler = created.managed_policy("SchedulerPolicy")
    environment = created.resolve(template["Outputs"]["AirflowEnvironment"]["Value"]).splitlines()

    # THEN it may read the created log group's streams (its Ref is its name), and only those
    group = f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:AirflowTaskLogGroup"
    assert allows(
        scheduler, Call("logs:GetLogEvents", f"{group}:log-stream:ecs/airflow/1", principal=SCHEDULER)
    )
    assert not allows(
        scheduler, Call("logs:GetLogEvents", f"{group}-other:log-stream:x", principal=SCHEDULER)
    )
    assert "AIRFLOW__ECS_CONTROL_PLANE__READ_TASK_LOGS=True" in environment


def test_the_outputs_name_what_the_stack_created_and_only_when_it_did(template: dict[str, Any]) -> None:
    outputs = template["Outputs"]
    conditions = {name: outputs[name].get("Condition") for name in outputs if name.startswith("Created")}
    assert conditions == {
        "CreatedClusterArn": "CreatesCluster",
        "CreatedTaskDefinitionArn": "CreatesTaskDefinition",
        "CreatedTaskRoleArn": "CreatesTaskDefinition",
        "CreatedTaskExecutionRoleArn": "CreatesTaskDefinition",
        "CreatedTaskLogGroupName": "CreatesTaskDefinition",
    }


# --- the Rules refuse what cannot work -------------------------------------------------------


@pytest.mark.parametrize(
    ("parameters", "rule"),
    [
        ({"TaskDefinition": ""}, "TaskDefinitionOrImage"),
        (INFRASTRUCTURE | {"TaskDefinition": "airflow-task:3"}, "CreatedTaskDefinition"),
        (INFRASTRUCTURE | {"TaskRoleArn": TASK_ROLE}, "CreatedTaskDefinition"),
        (INFRASTRUCTURE | {"TaskLogGroupName": "/ecs/airflow"}, "CreatedTaskDefinition"),
        (INFRASTRUCTURE | {"ExecutionApiServerUrl": ""}, "CreatedTaskDefinition"),
        (INFRASTRUCTURE | {"Subnets": ""}, "CreatedTaskDefinition"),
        (INFRASTRUCTURE | {"CreateCluster": "false", "LaunchType": "EC2"}, "CreatedTaskDefinition"),
        ({"ExecutionApiServerUrl": API_URL}, "ImageOptionsNeedImage"),
        ({"RemoteBaseLogFolder": "s3://logs/airflow"}, "ImageOptionsNeedImage"),
        ({"TaskRolePolicyArns": f"arn:aws:iam::{ACCOUNT}:policy/x"}, "ImageOptionsNeedImage"),
        ({"CreateCluster": "true", "LaunchType": "EXTERNAL"}, "CreatedClusterIsFargate"),
    ],
    ids=[
        "no-task-definition-nor-image",
        "image-and-task-definition",
        "image-and-task-role",
        "image-and-task-log-group",
        "image-without-execution-api",
        "image-without-subnets",
        "image-on-ec2",
        "execution-api-without-image",
        "remote-logs-without-image",
        "task-role-policies-without-image",
        "created-cluster-on-external",
    ],
)
def test_the_deploy_refuses_contradictory_infrastructure_options(
    template: dict[str, Any], parameters: dict[str, str], rule: str
) -> None:
    # GIVEN parameters that cannot work together
    given = values(template, **parameters)

    # THEN exactly one Rule refuses the deploy, and says what to change
    broken = broken_rules(template, given)
    assert [b.split(":", 1)[0] for b in broken] == [rule]
    assert len(broken[0]) > len(rule) + 20


def test_the_default_parameters_and_the_whole_infrastructure_break_no_rule(template: dict[str, Any]) -> None:
    assert broken_rules(template, values(template)) == []
    assert broken_rules(template, values(template, **INFRASTRUCTURE, LaunchType="FARGATE")) == []
    assert (
        broken_rules(
            template,
            values(
                template,
                **INFRASTRUCTURE,
                CapacityProviderStrategy='[{"capacityProvider":"FARGATE_SPOT","weight":1}]',
            ),
        )
        == []
    )


@pytest.mark.parametrize(
    ("parameter", "value"),
    [
        ("RemoteBaseLogFolder", "s3://logs/airflow/"),
        ("RemoteBaseLogFolder", "logs/airflow"),
        ("ExecutionApiServerUrl", "airflow:8080/execution/"),
        ("TaskRolePolicyArns", "arn:aws:iam::*:policy/x"),
        ("TaskDefinition", "family:latest"),
    ],
)
def test_cloudformation_refuses_malformed_infrastructure_values(
    template: dict[str, Any], parameter: str, value: str
) -> None:
    with pytest.raises(AssertionError, match="refused by CloudFormation"):
        Deployment(template, **INFRASTRUCTURE | {parameter: value})
