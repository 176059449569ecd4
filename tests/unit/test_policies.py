"""The security boundary as the template's policy documents enforce it, not as the docs say it.

The template is rendered for a deployment (its intrinsics resolved with given parameter values,
the way CloudFormation would) and its identity and queue policies are evaluated the way IAM
evaluates them, for the calls the control plane and the scheduler make and for the calls they
must not be able to make. Each test names one guard; removing that guard from template.yaml makes
it fail.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from samtranslator.yaml_helper import yaml_parse

from ecs_control_plane.contract import (
    ACTIVE_INDEX,
    CONTROL_PLANE_TAG,
    EVENT_SOURCE,
    OWNER_INDEX,
    TRY_INDEX,
)
from ecs_control_plane.services import ReconcileReport
from ecscp.local.cloudformation.translate import translate
from tests.support.iam_policies import (
    ACCOUNT,
    ADMIN,
    CLUSTER,
    CLUSTER_ARN,
    CONTROL_PLANE_ID,
    EXECUTION_ROLE,
    FUNCTION_ROLES,
    QUEUE_KEY,
    QUEUES,
    REGION,
    REQUIRED,
    SCHEDULER,
    TASK_ROLE,
    TEMPLATE,
    Call,
    Deployment,
    allows,
    denies,
    listed,
    queue_arn,
    role_arn,
    table_arn,
    task,
    task_definition,
)
from tests.support.queue_profiles import EXAMPLE_PARAMETERS, LARGE_TASK_ROLE
from tests.support.templates import packaged_for_s3

# --- fixtures ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    parsed: dict[str, Any] = yaml_parse(TEMPLATE.read_text())
    return parsed


@pytest.fixture(scope="module")
def default(template: dict[str, Any]) -> Deployment:
    """A deployment that sets only the required parameters."""
    return Deployment(template)


TASK_LOG_GROUP = "/ecs/airflow"


def rights(deployment: Deployment, function: str) -> list[dict[str, Any]]:
    return deployment.role(FUNCTION_ROLES[function])


def actions(statements: list[dict[str, Any]]) -> set[str]:
    return {a for s in statements for a in listed(s["Action"])}


# --- the scheduler -------------------------------------------------------------------------


def test_scheduler_policy_has_no_ecs_no_iam_and_no_wildcard_action(template: dict[str, Any]) -> None:
    # GIVEN the scheduler's policy, with every optional statement present
    deployment = Deployment(template, QueueKmsKeyArn=QUEUE_KEY, TaskLogGroupName=TASK_LOG_GROUP)
    granted = actions(deployment.managed_policy("SchedulerPolicy"))

    # THEN it names no ECS or IAM action, and no action by wildcard
    assert granted
    assert not {a for a in granted if a.lower().startswith(("ecs:", "iam:")) or "*" in a}
    # AND, evaluated, it can neither start, stop nor pass a role
    scheduler = deployment.managed_policy("SchedulerPolicy")
    for call in (
        Call("ecs:RunTask", task_definition("airflow-task:3"), {"ecs:cluster": CLUSTER_ARN}),
        Call("ecs:StopTask", task(), {"ecs:cluster": CLUSTER_ARN}),
        Call("iam:PassRole", TASK_ROLE, {"iam:PassedToService": "ecs-tasks.amazonaws.com"}),
    ):
        assert not allows(scheduler, call), call


def test_scheduler_policy_grants_exactly_the_queue_and_table(default: Deployment) -> None:
    # GIVEN the scheduler's policy
    scheduler = default.managed_policy("SchedulerPolicy")

    # THEN it may send requests and read its items' changes: nothing more
    assert actions(scheduler) == {
        "sqs:SendMessage",
        "sqs:GetQueueAttributes",
        "dynamodb:Query",
        "dynamodb:BatchGetItem",
        "dynamodb:GetItem",
        "dynamodb:DescribeTable",
    }
    assert allows(scheduler, Call("dynamodb:Query", table_arn(OWNER_INDEX)))
    assert allows(scheduler, Call("dynamodb:Query", table_arn(TRY_INDEX)))
    assert allows(scheduler, Call("dynamodb:Query", table_arn(ACTIVE_INDEX)))  # the safety net
    assert not allows(scheduler, Call("dynamodb:Scan", table_arn()))


def log_stream(group: str, stream: str = "ecs/airflow/0123456789abcdef") -> str:
    return f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:{group}:log-stream:{stream}"


def test_scheduler_reads_the_task_log_group_only_with_task_log_group_name(template: dict[str, Any]) -> None:
    # GIVEN the scheduler's policy with and without TaskLogGroupName
    with_logs = Deployment(template, TaskLogGroupName=TASK_LOG_GROUP).managed_policy("SchedulerPolicy")
    without = Deployment(template).managed_policy("SchedulerPolicy")
    group = f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:{TASK_LOG_GROUP}"

    # THEN with it, GetLogEvents on that group's streams (as IAM names the group: plain and
    # with ":*"), nothing else of CloudWatch Logs, and no other group (not even one whose name
    # starts with it)
    assert actions(with_logs) - actions(without) == {"logs:GetLogEvents"}
    for resource in (log_stream(TASK_LOG_GROUP), group, f"{group}:*"):
        assert allows(with_logs, Call("logs:GetLogEvents", resource)), resource
    for resource in (log_stream("/ecs/other"), log_stream(f"{TASK_LOG_GROUP}-prod"), log_stream("*")):
        assert not allows(with_logs, Call("logs:GetLogEvents", resource)), resource
    for action in ("logs:FilterLogEvents", "logs:PutLogEvents", "logs:DeleteLogGroup"):
        assert not allows(with_logs, Call(action, log_stream(TASK_LOG_GROUP))), action
    # AND without it, no CloudWatch Logs right at all
    assert not {a for a in actions(without) if a.startswith("logs:")}
    assert not allows(without, Call("logs:GetLogEvents", log_stream(TASK_LOG_GROUP)))


def test_task_log_group_name_cannot_widen_the_read_right(template: dict[str, Any]) -> None:
    # A wildcard (or an ARN pasted in) would widen the scheduler's read to other groups:
    # CloudFormation refuses the value (AllowedPattern).
    pattern = template["Parameters"]["TaskLogGroupName"]["AllowedPattern"]
    for value in ("/ecs/*", "*", "/ecs/air?low", "arn:aws:logs:us-east-1:1:log-group:x", "/ecs/a:b"):
        assert not re.fullmatch(pattern, value), value
    for value in ("", TASK_LOG_GROUP, "/aws/ecs/airflow-prod_1.v2#x"):
        assert re.fullmatch(pattern, value), value


@pytest.mark.parametrize(
    "action",
    [
        "dynamodb:UpdateItem",
        "dynamodb:PutItem",
        "dynamodb:DeleteItem",
        "dynamodb:BatchWriteItem",
        "dynamodb:PartiQLUpdate",
        "dynamodb:PartiQLInsert",
        "dynamodb:PartiQLDelete",
        "dynamodb:TransactWriteItems",
    ],
)
def test_scheduler_writes_nothing_to_the_state_table(default: Deployment, action: str) -> None:
    # Adoption is an "adopt" request on the queue: no attribute of any item, owner included, is
    # the scheduler's to write (IAM cannot tell SET from REMOVE, nor an existing item from a new one).
    scheduler = default.managed_policy("SchedulerPolicy")
    for attributes in ([], ["key", "owner", "updated_at"], ["key", "state"]):
        call = Call(action, table_arn(), {"dynamodb:Attributes": attributes} if attributes else {})
        assert not allows(scheduler, call), (action, attributes)


def test_scheduler_may_send_run_requests_but_never_receive_them(default: Deployment) -> None:
    # GIVEN the scheduler's policy
    scheduler = default.managed_policy("SchedulerPolicy")
    queue = queue_arn("RunRequestQueue")

    # THEN it sends to the run-request queue only, and receives from no queue
    assert allows(scheduler, Call("sqs:SendMessage", queue))
    assert not allows(scheduler, Call("sqs:SendMessage", queue_arn("SomeOtherQueue")))
    for action in ("sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:ChangeMessageVisibility"):
        assert not allows(scheduler, Call(action, queue)), action


# --- RunTask: the configured family, and the families the operator allows -----------------


@pytest.mark.parametrize(
    "parameter",
    ["airflow-task", "airflow-task:3", f"arn:aws:ecs:{REGION}:{ACCOUNT}:task-definition/airflow-task:3"],
)
def test_run_task_may_run_only_the_task_definition_parameters_family(
    template: dict[str, Any], parameter: str
) -> None:
    # GIVEN a deployment whose TaskDefinition is a family, a family:revision or an ARN
    run_task = rights(Deployment(template, TaskDefinition=parameter), "run_task")
    in_cluster = {"ecs:cluster": CLUSTER_ARN}

    # THEN run_task may run any revision of that family, or its latest (no revision), in the cluster
    for revision in ("airflow-task:3", "airflow-task:12", "airflow-task"):
        assert allows(run_task, Call("ecs:RunTask", task_definition(revision), in_cluster)), revision
    # AND no other family, not even one whose name starts the same, and nothing in another cluster
    for other in ("other:1", "airflow-task-admin:1", "airflow-taskx"):
        assert not allows(run_task, Call("ecs:RunTask", task_definition(other), in_cluster)), other
    elsewhere = {"ecs:cluster": f"arn:aws:ecs:{REGION}:{ACCOUNT}:cluster/production"}
    assert not allows(run_task, Call("ecs:RunTask", task_definition("airflow-task:3"), elsewhere))


def test_run_task_may_run_the_families_the_operator_allows_and_no_others(template: dict[str, Any]) -> None:
    # GIVEN a deployment that allows two more families
    run_task = rights(Deployment(template, AllowedTaskDefinitionFamilies="batch,gpu-jobs"), "run_task")
    in_cluster = {"ecs:cluster": CLUSTER_ARN}

    # THEN those run in the cluster, with or without a revision; a family they prefix does not
    for allowed in ("batch:1", "batch", "gpu-jobs:7", "airflow-task:3"):
        assert allows(run_task, Call("ecs:RunTask", task_definition(allowed), in_cluster)), allowed
    for refused in ("batchx:1", "gpu:1", "other:1"):
        assert not allows(run_task, Call("ecs:RunTask", task_definition(refused), in_cluster)), refused
    elsewhere = {"ecs:cluster": f"arn:aws:ecs:{REGION}:{ACCOUNT}:cluster/production"}
    assert not allows(run_task, Call("ecs:RunTask", task_definition("batch:1"), elsewhere))


def test_run_task_may_run_the_queue_profiles_families_and_no_others(template: dict[str, Any]) -> None:
    # GIVEN a deployment whose queue profiles name two families of their own
    deployment = Deployment(
        template, **EXAMPLE_PARAMETERS | {"QueueProfileTaskDefinitionFamilies": "large,gpu-jobs"}
    )
    in_cluster = {"ecs:cluster": CLUSTER_ARN}
    elsewhere = {"ecs:cluster": f"arn:aws:ecs:{REGION}:{ACCOUNT}:cluster/production"}

    # THEN run_task runs those in the cluster, any revision or none; a family they prefix does not
    run_task = rights(deployment, "run_task")
    for listed_family in ("large:1", "large:42", "large", "gpu-jobs:7", "airflow-task:3"):
        assert allows(run_task, Call("ecs:RunTask", task_definition(listed_family), in_cluster)), (
            listed_family
        )
    for refused in ("largex:1", "larg:1", "gpu-jobsx:1", "gpu:1", "other:1"):
        assert not allows(run_task, Call("ecs:RunTask", task_definition(refused), in_cluster)), refused
    assert not allows(run_task, Call("ecs:RunTask", task_definition("large:1"), elsewhere))
    # AND no other function may run them
    for fn in ("task_state", "reconciler"):
        assert not allows(
            rights(deployment, fn), Call("ecs:RunTask", task_definition("large:1"), in_cluster)
        ), fn


def test_run_task_may_pass_exactly_the_queue_profiles_roles_to_ecs(template: dict[str, Any]) -> None:
    # GIVEN a deployment whose queue profiles name a task role and an execution role of their own
    execution = f"arn:aws:iam::{ACCOUNT}:role/airflow-large-execution"
    deployment = Deployment(
        template, **EXAMPLE_PARAMETERS | {"QueueProfileRoleArns": f"{LARGE_TASK_ROLE},{execution}"}
    )
    to_ecs = {"iam:PassedToService": "ecs-tasks.amazonaws.com"}

    # THEN exactly those may be passed, only by run_task, and only to ECS tasks
    assert pass_role_resources(deployment) == {LARGE_TASK_ROLE, execution}
    run_task = rights(deployment, "run_task")
    for role in (LARGE_TASK_ROLE, execution):
        assert allows(run_task, Call("iam:PassRole", role, to_ecs)), role
        assert not allows(
            run_task, Call("iam:PassRole", role, {"iam:PassedToService": "lambda.amazonaws.com"})
        )
        assert not allows(run_task, Call("iam:PassRole", role)), role
    for role in (f"{LARGE_TASK_ROLE}-admin", f"arn:aws:iam::{ACCOUNT}:role/Admin", TASK_ROLE):
        assert not allows(run_task, Call("iam:PassRole", role, to_ecs)), role


def test_queue_profiles_without_their_lists_add_no_right(
    template: dict[str, Any], default: Deployment
) -> None:
    # GIVEN profiles that name only the stack's own task definition and roles (the lists empty)
    deployment = Deployment(template, QueueProfiles=EXAMPLE_PARAMETERS["QueueProfiles"])
    run_task = rights(deployment, "run_task")

    # THEN neither queue profile policy exists: run_task runs the stack's family only, passes no role
    policies = {lid for lid, _ in deployment.resources("AWS::IAM::Policy")}
    assert not {"RunTheQueueProfileTaskDefinitionFamilies", "PassTheQueueProfileRoles"} & policies
    assert {r for s in run_task if "ecs:RunTask" in listed(s["Action"]) for r in listed(s["Resource"])} == {
        task_definition("airflow-task"),
        task_definition("airflow-task:*"),
    }
    assert pass_role_resources(deployment) == set()
    # AND every function holds exactly what it holds without profiles
    for fn in FUNCTION_ROLES:
        assert rights(deployment, fn) == rights(default, fn), fn
    assert deployment.managed_policy("SchedulerPolicy") == default.managed_policy("SchedulerPolicy")


def test_allowed_families_and_roles_cannot_smuggle_in_a_wildcard(template: dict[str, Any]) -> None:
    # GIVEN the parameters whose values become IAM resources
    parameters = template["Parameters"]

    # THEN CloudFormation refuses wildcards (and anything else that is not a name or ARN) in them
    for name, value in (
        ("AllowedTaskDefinitionFamilies", "*"),
        ("AllowedTaskDefinitionFamilies", "batch,air*"),
        ("AllowedTaskRoleArns", f"arn:aws:iam::{ACCOUNT}:role/*"),
        ("AllowedExecutionRoleArns", f"arn:aws:iam::{ACCOUNT}:role/x,*"),
        ("QueueProfileTaskDefinitionFamilies", "*"),
        ("QueueProfileTaskDefinitionFamilies", "large,air*"),
        ("QueueProfileTaskDefinitionFamilies", "large:3"),
        ("QueueProfileRoleArns", f"arn:aws:iam::{ACCOUNT}:role/*"),
        ("QueueProfileRoleArns", f"{LARGE_TASK_ROLE},*"),
        ("TaskRoleArn", f"arn:aws:iam::{ACCOUNT}:role/*"),
        ("ExecutionRoleArn", "*"),
        ("TaskDefinition", "air*"),
        ("QueueKmsKeyArn", f"arn:aws:kms:{REGION}:{ACCOUNT}:key/*"),
    ):
        assert not re.fullmatch(parameters[name]["AllowedPattern"], value), (name, value)


def test_only_run_task_may_start_tasks(default: Deployment) -> None:
    # GIVEN the other two functions
    call = Call("ecs:RunTask", task_definition("airflow-task:3"), {"ecs:cluster": CLUSTER_ARN})

    # THEN neither may run a task
    assert allows(rights(default, "run_task"), call)
    assert not allows(rights(default, "task_state"), call)
    assert not allows(rights(default, "reconciler"), call)


def test_the_functions_read_ecs_tasks_in_the_cluster_only(default: Deployment) -> None:
    # GIVEN the functions that follow tasks
    task_state, reconciler = rights(default, "task_state"), rights(default, "reconciler")
    here, there = (
        {"ecs:cluster": CLUSTER_ARN},
        {"ecs:cluster": f"arn:aws:ecs:{REGION}:{ACCOUNT}:cluster/prod"},
    )

    # THEN all three describe tasks of the cluster only (run_task to check a stop request), and
    # the cluster itself; the reconciler lists tasks there only
    for held in (task_state, reconciler, rights(default, "run_task")):
        assert allows(held, Call("ecs:DescribeTasks", task(), here))
        assert not allows(held, Call("ecs:DescribeTasks", task(cluster="prod"), there))
    for held in (reconciler, rights(default, "run_task")):
        assert allows(held, Call("ecs:DescribeClusters", CLUSTER_ARN))
        assert not allows(held, Call("ecs:DescribeClusters", f"arn:aws:ecs:{REGION}:{ACCOUNT}:cluster/prod"))
    assert allows(reconciler, Call("ecs:ListTasks", "*", here))
    assert not allows(reconciler, Call("ecs:ListTasks", "*", there))
    assert not allows(task_state, Call("ecs:ListTasks", "*", here))


def test_each_function_holds_only_what_it_calls(default: Deployment) -> None:
    # GIVEN each function's rights
    common = {"events:PutEvents", "xray:PutTraceSegments", "xray:PutTelemetryRecords"}
    common |= {"logs:CreateLogStream", "logs:PutLogEvents"}

    # THEN each holds what its handler calls, and nothing else
    assert actions(rights(default, "run_task")) == common | {
        "sqs:ReceiveMessage",
        "sqs:DeleteMessage",
        "sqs:GetQueueAttributes",
        "sqs:ChangeMessageVisibility",
        "sqs:SendMessage",
        "ecs:RunTask",
        "ecs:TagResource",
        "ecs:StopTask",
        "ecs:DescribeTasks",  # a stop request is checked against the task ECS describes
        "ecs:DescribeClusters",  # the FARGATE fallback needs the cluster's default strategy
        "ecs:DescribeTaskDefinition",  # where a started task's container logs
        "dynamodb:GetItem",
        "dynamodb:UpdateItem",
    }
    assert actions(rights(default, "task_state")) == common | {
        "dynamodb:GetItem",
        "dynamodb:UpdateItem",
        "sqs:SendMessage",
        "ecs:DescribeTasks",
    }
    assert actions(rights(default, "reconciler")) == common | {
        "dynamodb:Query",
        "dynamodb:GetItem",
        "dynamodb:BatchGetItem",
        "dynamodb:UpdateItem",
        "ecs:DescribeTasks",
        "ecs:StopTask",
        "ecs:ListTasks",
        "ecs:DescribeClusters",  # the readiness check
        "ecs:DescribeTaskDefinition",
        "sqs:SendMessage",
    }


def test_functions_reach_the_state_table_and_the_reconciler_only_its_index(default: Deployment) -> None:
    for fn in FUNCTION_ROLES:
        held = rights(default, fn)
        assert allows(held, Call("dynamodb:UpdateItem", table_arn())), fn
        assert not allows(held, Call("dynamodb:UpdateItem", table_arn().replace("StateTable", "Other"))), fn
        assert not allows(held, Call("dynamodb:DeleteItem", table_arn())), fn
    reconciler = rights(default, "reconciler")
    assert allows(reconciler, Call("dynamodb:Query", table_arn(ACTIVE_INDEX)))
    assert not allows(reconciler, Call("dynamodb:Query", table_arn(OWNER_INDEX)))


def test_task_state_sends_its_own_dead_letters_and_retries_only(default: Deployment) -> None:
    # GIVEN task_state's rights (Lambda sends its failed events to the DLQ with them)
    task_state = rights(default, "task_state")

    # THEN it may send to the run-request queue and the task event DLQ, and nowhere else
    assert allows(task_state, Call("sqs:SendMessage", queue_arn("RunRequestQueue")))
    assert allows(task_state, Call("sqs:SendMessage", queue_arn("TaskEventDLQ")))
    assert not allows(task_state, Call("sqs:SendMessage", queue_arn("RunRequestDLQ")))


# --- iam:PassRole: exactly the role parameters, no fallback --------------------------------


def pass_role_resources(deployment: Deployment) -> set[str]:
    return {
        r
        for fn in FUNCTION_ROLES
        for s in rights(deployment, fn)
        if "iam:PassRole" in listed(s["Action"])
        for r in listed(s["Resource"])
    }


def test_without_role_parameters_no_role_may_be_passed(default: Deployment) -> None:
    # GIVEN a deployment that names no role
    # THEN no function may pass any role: there is no role/* fallback
    assert pass_role_resources(default) == set()
    for fn in FUNCTION_ROLES:
        call = Call("iam:PassRole", TASK_ROLE, {"iam:PassedToService": "ecs-tasks.amazonaws.com"})
        assert not allows(rights(default, fn), call), fn


def test_pass_role_resources_are_exactly_the_role_parameters(template: dict[str, Any]) -> None:
    # GIVEN a deployment naming the task definition's roles and the roles tasks may choose
    allowed_task = [f"arn:aws:iam::{ACCOUNT}:role/etl-a", f"arn:aws:iam::{ACCOUNT}:role/etl-b"]
    allowed_execution = [f"arn:aws:iam::{ACCOUNT}:role/etl-execution"]
    deployment = Deployment(
        template,
        TaskRoleArn=TASK_ROLE,
        ExecutionRoleArn=EXECUTION_ROLE,
        AllowedTaskRoleArns=",".join(allowed_task),
        AllowedExecutionRoleArns=",".join(allowed_execution),
    )

    # THEN exactly those may be passed, only by run_task, and only to ECS tasks
    assert pass_role_resources(deployment) == {TASK_ROLE, EXECUTION_ROLE, *allowed_task, *allowed_execution}
    run_task = rights(deployment, "run_task")
    to_ecs = {"iam:PassedToService": "ecs-tasks.amazonaws.com"}
    for role in (TASK_ROLE, EXECUTION_ROLE, *allowed_task, *allowed_execution):
        assert allows(run_task, Call("iam:PassRole", role, to_ecs)), role
        assert not allows(
            run_task, Call("iam:PassRole", role, {"iam:PassedToService": "lambda.amazonaws.com"})
        )
    assert not allows(run_task, Call("iam:PassRole", f"arn:aws:iam::{ACCOUNT}:role/Admin", to_ecs))


@pytest.mark.parametrize(
    ("given", "passable"), [("TaskRoleArn", TASK_ROLE), ("ExecutionRoleArn", EXECUTION_ROLE)]
)
def test_one_role_parameter_allows_that_role_only(
    template: dict[str, Any], given: str, passable: str
) -> None:
    # GIVEN a task definition with only one of the two roles
    deployment = Deployment(template, **{given: passable})

    # THEN only that role may be passed
    assert pass_role_resources(deployment) == {passable}


# --- StopTask and tags: only the tasks this control plane started --------------------------


@pytest.mark.parametrize("function", ["run_task", "reconciler"])
def test_stop_task_only_on_tasks_carrying_this_control_planes_tag(default: Deployment, function: str) -> None:
    # GIVEN a function that stops tasks
    held = rights(default, function)

    def stop(tags: dict[str, str], cluster: str = CLUSTER) -> Call:
        keys = {"ecs:cluster": f"arn:aws:ecs:{REGION}:{ACCOUNT}:cluster/{cluster}"}
        keys |= {f"aws:ResourceTag/{k}": v for k, v in tags.items()}
        return Call("ecs:StopTask", task(cluster=cluster), keys)

    # THEN it may stop this control plane's tasks in the cluster, and no other task
    assert allows(held, stop({CONTROL_PLANE_TAG: CONTROL_PLANE_ID}))
    assert not allows(held, stop({}))
    assert not allows(held, stop({CONTROL_PLANE_TAG: "ecscp-another-stack"}))
    assert not allows(held, stop({CONTROL_PLANE_TAG: CONTROL_PLANE_ID}, cluster="production"))


def test_task_state_may_not_stop_tasks(default: Deployment) -> None:
    call = Call(
        "ecs:StopTask",
        task(),
        {"ecs:cluster": CLUSTER_ARN, f"aws:ResourceTag/{CONTROL_PLANE_TAG}": CONTROL_PLANE_ID},
    )
    assert not allows(rights(default, "task_state"), call)


def test_run_task_tags_only_as_a_task_starts_and_only_with_its_own_tag(default: Deployment) -> None:
    # GIVEN run_task's rights
    run_task = rights(default, "run_task")
    ours = {f"aws:RequestTag/{CONTROL_PLANE_TAG}": CONTROL_PLANE_ID}

    # THEN tags go on a task as RunTask creates it, carrying this control plane's tag
    assert allows(run_task, Call("ecs:TagResource", task(), {"ecs:CreateAction": "RunTask"} | ours))
    # AND never on an existing task (a TagResource call of its own), nor as another control plane
    assert not allows(run_task, Call("ecs:TagResource", task(), ours))
    theirs = {f"aws:RequestTag/{CONTROL_PLANE_TAG}": "ecscp-another-stack"}
    assert not allows(run_task, Call("ecs:TagResource", task(), {"ecs:CreateAction": "RunTask"} | theirs))
    assert not allows(run_task, Call("ecs:TagResource", task(), {"ecs:CreateAction": "RunTask"}))


# --- events: only the control plane's own source -------------------------------------------


@pytest.mark.parametrize("function", list(FUNCTION_ROLES))
def test_put_events_only_with_the_control_planes_source(default: Deployment, function: str) -> None:
    # GIVEN a function's rights, and the default bus
    held = rights(default, function)
    bus = f"arn:aws:events:{REGION}:{ACCOUNT}:event-bus/default"

    # THEN it may put the contract's failed-start events, and no event of another source
    assert allows(held, Call("events:PutEvents", bus, {"events:source": EVENT_SOURCE}))
    for source in ("aws.ecs", "airflow.other", "com.example"):
        assert not allows(held, Call("events:PutEvents", bus, {"events:source": source})), source
    assert not allows(held, Call("events:PutEvents", bus))


# --- SQS: run_task consumes its own queue, nothing else -------------------------------------


RECEIVING = (
    "sqs:ReceiveMessage",
    "sqs:DeleteMessage",
    "sqs:ChangeMessageVisibility",
    "sqs:GetQueueAttributes",
)


def test_run_task_receives_from_its_queue_only(default: Deployment) -> None:
    # GIVEN run_task's rights
    run_task = rights(default, "run_task")

    # THEN it consumes the run-request queue, and no other queue of the account
    for action in RECEIVING:
        assert allows(run_task, Call(action, queue_arn("RunRequestQueue"))), action
        for other in ("RunRequestDLQ", "TaskEventDLQ", "SomeoneElsesQueue"):
            assert not allows(run_task, Call(action, queue_arn(other))), (action, other)


@pytest.mark.parametrize("function", ["task_state", "reconciler"])
def test_other_functions_receive_from_no_queue(default: Deployment, function: str) -> None:
    held = rights(default, function)
    for action in RECEIVING[:3]:
        for queue in (*QUEUES, "SomeoneElsesQueue"):
            assert not allows(held, Call(action, queue_arn(queue))), (action, queue)


def test_no_role_gets_the_managed_policies_sam_would_attach(template: dict[str, Any]) -> None:
    # GIVEN the template as SAM translates it
    translated = translate(packaged_for_s3(template), dict(REQUIRED))
    resources = translated["Resources"]

    # THEN every function runs with the role written for it, and no role carries a managed
    # policy (AWSLambdaSQSQueueExecutionRole would let run_task receive from every queue)
    for function, role in (
        ("RunTaskFunction", "RunTaskRole"),
        ("TaskStateFunction", "TaskStateRole"),
        ("ReconcilerFunction", "ReconcilerRole"),
    ):
        assert resources[function]["Properties"]["Role"] == {"Fn::GetAtt": [role, "Arn"]}
    # (the conditional roles are the ECS tasks' own, created with Image: test_template_infrastructure.py)
    roles = {lid: r for lid, r in resources.items() if r["Type"] == "AWS::IAM::Role" and "Condition" not in r}
    assert set(roles) == set(FUNCTION_ROLES.values())
    assert [lid for lid, r in roles.items() if r["Properties"].get("ManagedPolicyArns")] == []


@pytest.mark.parametrize("function", list(FUNCTION_ROLES))
def test_each_function_writes_only_its_own_logs(default: Deployment, function: str) -> None:
    # GIVEN a function's rights and the log group of each function
    held = rights(default, function)
    own = {
        "run_task": "RunTaskFunction",
        "task_state": "TaskStateFunction",
        "reconciler": "ReconcilerFunction",
    }

    # THEN it writes log streams of its own group only
    for fn, name in own.items():
        stream = f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:/aws/lambda/{name}:log-stream:2026/01/01/abc"
        assert allows(held, Call("logs:PutLogEvents", stream)) == (fn == function), name


def test_no_identity_statement_allows_every_resource_except_those_without_resource_level_rights(
    template: dict[str, Any],
) -> None:
    # GIVEN every identity statement the stack creates, with every option set
    deployment = Deployment(
        template,
        TaskRoleArn=TASK_ROLE,
        ExecutionRoleArn=EXECUTION_ROLE,
        AllowedTaskDefinitionFamilies="batch",
        AllowedTaskRoleArns=TASK_ROLE,
        AllowedExecutionRoleArns=EXECUTION_ROLE,
        QueueKmsKeyArn=QUEUE_KEY,
        TaskLogGroupName=TASK_LOG_GROUP,
        **EXAMPLE_PARAMETERS,
    )
    statements = [s for fn in FUNCTION_ROLES for s in rights(deployment, fn)]
    statements += deployment.managed_policy("SchedulerPolicy")

    # THEN "*" is the resource only of actions that have no resource-level permissions
    on_everything = {a for s in statements if "*" in listed(s["Resource"]) for a in listed(s["Action"])}
    assert on_everything == {
        "xray:PutTraceSegments",
        "xray:PutTelemetryRecords",
        "ecs:ListTasks",
        "ecs:DescribeTaskDefinition",
    }


# --- queue policies: TLS only, only run_task receives, named senders and readers ----------


@pytest.mark.parametrize("queue", QUEUES)
def test_queue_policies_deny_plain_http_to_everyone(default: Deployment, queue: str) -> None:
    # GIVEN a queue's policy
    policy = default.queue_policy(queue)

    # THEN no principal, not even run_task, may use it without TLS
    for principal in (role_arn("RunTaskRole"), SCHEDULER, ADMIN):
        for action in ("sqs:SendMessage", "sqs:ReceiveMessage"):
            plain = Call(action, queue_arn(queue), {"aws:SecureTransport": "false"}, principal)
            assert denies(policy, plain), (principal, action)


def test_only_run_task_may_receive_run_requests_whatever_other_policies_allow(default: Deployment) -> None:
    # GIVEN the run-request queue's policy
    policy = default.queue_policy("RunRequestQueue")
    queue = queue_arn("RunRequestQueue")

    # THEN receiving (the workload tokens) is denied to every principal but run_task's role
    for action in RECEIVING[:3]:
        assert not denies(policy, Call(action, queue, principal=role_arn("RunTaskRole"))), action
        for principal in (SCHEDULER, ADMIN, role_arn("TaskStateRole"), role_arn("ReconcilerRole")):
            assert denies(policy, Call(action, queue, principal=principal)), (action, principal)
    # AND nothing is allowed by the queue policies themselves: no other account gets in
    run_request_policies = [s for q in ("RunRequestQueue", "RunRequestDLQ") for s in default.queue_policy(q)]
    assert [s for s in run_request_policies if s["Effect"] == "Allow"] == []


def test_without_named_senders_any_account_principal_iam_allows_may_send(default: Deployment) -> None:
    policy = default.queue_policy("RunRequestQueue")
    for principal in (SCHEDULER, ADMIN):
        assert not denies(policy, Call("sqs:SendMessage", queue_arn("RunRequestQueue"), principal=principal))


def test_named_senders_and_the_functions_are_the_only_ones_that_may_send(template: dict[str, Any]) -> None:
    # GIVEN a deployment that names the schedulers' roles
    deployment = Deployment(template, RunRequestSenderArns=f"arn:aws:iam::{ACCOUNT}:role/airflow-scheduler*")
    policy = deployment.queue_policy("RunRequestQueue")

    def send(principal: str) -> Call:
        return Call("sqs:SendMessage", queue_arn("RunRequestQueue"), principal=principal)

    # THEN they and the three functions may send; everyone else is denied
    for principal in (SCHEDULER, f"{SCHEDULER}-b", *(role_arn(r) for r in FUNCTION_ROLES.values())):
        assert not denies(policy, send(principal)), principal
    for principal in (ADMIN, f"arn:aws:iam::{ACCOUNT}:user/someone"):
        assert denies(policy, send(principal)), principal


@pytest.mark.parametrize("queue", ["RunRequestDLQ", "TaskEventDLQ"])
def test_named_dead_letter_readers_are_the_only_ones_that_may_read(
    template: dict[str, Any], queue: str
) -> None:
    # GIVEN the dead-letter queue policies, without and with named readers
    ops = f"arn:aws:iam::{ACCOUNT}:role/on-call"
    unnamed = Deployment(template).queue_policy(queue)
    named = Deployment(template, DeadLetterReaderArns=ops).queue_policy(queue)

    # THEN without names IAM decides; with them, only they may read, delete, purge or redrive
    for action in ("sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:PurgeQueue", "sqs:StartMessageMoveTask"):
        assert not denies(unnamed, Call(action, queue_arn(queue), principal=ADMIN)), action
        assert not denies(named, Call(action, queue_arn(queue), principal=ops)), action
        assert denies(named, Call(action, queue_arn(queue), principal=ADMIN)), action


def test_eventbridge_may_still_keep_undeliverable_task_events(default: Deployment) -> None:
    # GIVEN the task event DLQ's policy
    policy = default.queue_policy("TaskEventDLQ")
    (grant,) = [s for s in policy if s["Effect"] == "Allow"]

    # THEN EventBridge may send (over TLS) on behalf of the task_state rule only
    assert grant["Principal"] == {"Service": "events.amazonaws.com"}
    assert grant["Condition"] == {
        "ArnEquals": {
            "aws:SourceArn": f"arn:aws:events:{REGION}:{ACCOUNT}:rule/TaskStateFunctionEcsTaskStateChange"
        }
    }
    assert not denies(policy, Call("sqs:SendMessage", queue_arn("TaskEventDLQ")))


# --- the optional customer managed key of the queues --------------------------------------


def test_queues_use_sqs_managed_encryption_by_default(default: Deployment) -> None:
    for queue in QUEUES:
        props = default.properties(queue)
        assert props.get("SqsManagedSseEnabled") is True, queue
        assert "KmsMasterKeyId" not in props, queue
    # AND no one is granted any KMS right
    statements = [s for fn in FUNCTION_ROLES for s in rights(default, fn)]
    statements += default.managed_policy("SchedulerPolicy")
    assert not {a for a in actions(statements) if a.startswith("kms:")}


def test_queue_key_encrypts_the_queues_with_workload_tokens_and_is_usable_through_sqs_only(
    template: dict[str, Any],
) -> None:
    # GIVEN a deployment with the operator's key
    deployment = Deployment(template, QueueKmsKeyArn=QUEUE_KEY)

    # THEN the run-request queue and its DLQ are encrypted with it (instead of SQS-managed SSE)
    for queue in ("RunRequestQueue", "RunRequestDLQ"):
        props = deployment.properties(queue)
        assert props["KmsMasterKeyId"] == QUEUE_KEY, queue
        assert "SqsManagedSseEnabled" not in props, queue
    # AND the functions and the scheduler may use that key, through SQS only
    via_sqs = {"kms:ViaService": f"sqs.{REGION}.amazonaws.com"}
    holders = {fn: rights(deployment, fn) for fn in FUNCTION_ROLES}
    holders["scheduler"] = deployment.managed_policy("SchedulerPolicy")
    for holder, held in holders.items():
        for action in ("kms:GenerateDataKey", "kms:Decrypt"):
            assert allows(held, Call(action, QUEUE_KEY, via_sqs)), (holder, action)
            assert not allows(held, Call(action, QUEUE_KEY)), (holder, action)
            assert not allows(held, Call(action, QUEUE_KEY.replace("1234abcd", "99999999"), via_sqs))


# --- alarms an operator needs -------------------------------------------------------------


def alarms(deployment: Deployment) -> dict[str, dict[str, Any]]:
    return dict(deployment.resources("AWS::CloudWatch::Alarm"))


@pytest.mark.parametrize("function", ["RunTaskFunction", "TaskStateFunction", "ReconcilerFunction"])
def test_each_functions_errors_alert(default: Deployment, function: str) -> None:
    # GIVEN the alarms on Lambda errors
    on_errors = {
        a["Dimensions"][0]["Value"]: a
        for a in alarms(default).values()
        if (a["Namespace"], a["MetricName"]) == ("AWS/Lambda", "Errors")
    }

    # THEN one watches this function alone, and any error notifies the alert topic
    alarm = on_errors[function]
    assert alarm["Dimensions"] == [{"Name": "FunctionName", "Value": function}]
    assert (alarm["Statistic"], alarm["Threshold"], alarm["ComparisonOperator"]) == (
        "Sum",
        0,
        "GreaterThanThreshold",
    )
    assert alarm["AlarmActions"] == ["AlertTopic"]


def printed_metrics(capsys: pytest.CaptureFixture[str]) -> list[dict[str, Any]]:
    """The EMF documents (JSON lines with ``_aws``) printed to stdout since the last read."""
    return [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line]


#: A reconciler report whose counts all differ, so each metric tells which count it carries.
REPORT = ReconcileReport(**{name: i + 1 for i, name in enumerate(ReconcileReport().__dict__)})


def reconciler_metrics(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    """The EMF document one reconciler run prints for REPORT."""
    from ecscp.local.lambda_context import LambdaContext  # noqa: PLC0415
    from functions.reconciler import app  # noqa: PLC0415 - the handler module, once the env is set

    report = REPORT

    class Plane:
        def reconcile(self) -> ReconcileReport:
            return report

    monkeypatch.setattr(app, "control_plane", Plane)
    capsys.readouterr()
    app.lambda_handler({}, LambdaContext(function_name="reconciler"))
    (emf,) = printed_metrics(capsys)
    return emf


@pytest.mark.parametrize(
    ("alarm_id", "what"),
    [
        ("ReconcileLostAlarm", "lost"),
        ("ReconcileTimedOutAlarm", "timed_out"),
        ("SettingsProblemsAlarm", "settings_problems"),
        ("ReconcileErrorsAlarm", "errors"),
    ],
)
def test_the_reconcilers_lost_and_timed_out_tries_and_settings_problems_alert(
    default: Deployment,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    alarm_id: str,
    what: str,
) -> None:
    # GIVEN the alarm, the functions' environment, and what a reconciler run publishes
    alarm = alarms(default)[alarm_id]
    environment = default.resolve(default.template["Globals"]["Function"]["Environment"]["Variables"])
    emf = reconciler_metrics(monkeypatch, capsys)
    (directive,) = emf["_aws"]["CloudWatchMetrics"]
    published = {m["Name"] for m in directive["Metrics"]}

    # THEN the alarm watches a metric the reconciler publishes for this count, in the functions'
    # namespace, with exactly the dimensions it publishes (the service: this control plane)
    assert alarm["MetricName"] in published
    assert listed(emf[alarm["MetricName"]]) == [getattr(REPORT, what)]
    assert alarm["Namespace"] == environment["POWERTOOLS_METRICS_NAMESPACE"]
    assert directive["Dimensions"] == [["service"]]
    assert alarm["Dimensions"] == [{"Name": "service", "Value": environment["POWERTOOLS_SERVICE_NAME"]}]
    assert environment["POWERTOOLS_SERVICE_NAME"] == CONTROL_PLANE_ID  # one stack's alarms, its metrics
    assert (alarm["Statistic"], alarm["Threshold"], alarm["ComparisonOperator"]) == (
        "Sum",
        0,
        "GreaterThanThreshold",
    )
    assert alarm["AlarmActions"] == ["AlertTopic"]


def test_run_requests_run_task_fails_to_handle_alert(
    default: Deployment, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN run_task failing to handle a record (it is reported to SQS, so no Lambda Errors)
    from ecscp.local.lambda_context import LambdaContext  # noqa: PLC0415
    from ecscp.local.lambda_runtime.sqs_source import sqs_record  # noqa: PLC0415
    from functions.run_task import app  # noqa: PLC0415 - the handler module, once the env is set
    from tests.support.requests import run_request  # noqa: PLC0415

    class Plane:
        def handle_request(self, request: Any, receive_count: int = 1) -> Any:
            raise RuntimeError("DynamoDB is down")

    monkeypatch.setattr(app, "control_plane", Plane)
    message = {
        "MessageId": "m-1", "ReceiptHandle": "r-1", "Body": run_request().model_dump_json(),
        "Attributes": {"ApproximateReceiveCount": "1"}, "MD5OfBody": "x",
    }  # fmt: skip
    record = sqs_record(message, queue_arn("RunRequestQueue"), REGION)
    capsys.readouterr()
    response = app.lambda_handler({"Records": [record]}, LambdaContext(function_name="run_task"))
    emf = printed_metrics(capsys)[0]

    # THEN the record is reported failed, the count published, and the alarm watches exactly it
    assert response["batchItemFailures"] == [{"itemIdentifier": "m-1"}]
    alarm = alarms(default)["RunRequestErrorsAlarm"]
    environment = default.resolve(default.template["Globals"]["Function"]["Environment"]["Variables"])
    assert listed(emf[alarm["MetricName"]]) == [1]
    assert alarm["Namespace"] == environment["POWERTOOLS_METRICS_NAMESPACE"]
    assert alarm["Dimensions"] == [{"Name": "service", "Value": environment["POWERTOOLS_SERVICE_NAME"]}]
    assert (alarm["Statistic"], alarm["Threshold"], alarm["ComparisonOperator"]) == (
        "Sum",
        0,
        "GreaterThanThreshold",
    )


def test_every_alarm_notifies_the_alert_topic(default: Deployment) -> None:
    found = alarms(default)
    assert {
        "RunRequestDLQAlarm",
        "TaskEventDLQAlarm",
        "RunTaskErrorsAlarm",
        "TaskStateErrorsAlarm",
        "ReconcilerErrorsAlarm",
        "ReconcileLostAlarm",
        "ReconcileTimedOutAlarm",
    } <= set(found)
    assert {lid: a["AlarmActions"] for lid, a in found.items()} == {lid: ["AlertTopic"] for lid in found}


# --- checkov's findings are suppressed with a reason --------------------------------------


def test_every_checkov_suppression_gives_its_reason() -> None:
    # GIVEN the checkov suppressions in the template
    skips = re.findall(r"checkov:skip=([A-Z0-9_,]+)(:?)(.*)", TEMPLATE.read_text())

    # THEN each names a check and says why it does not apply
    assert skips
    assert [check for check, colon, reason in skips if not colon or len(reason.strip()) < 20] == []
