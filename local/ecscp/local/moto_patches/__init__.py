"""Where moto differs from AWS in ways the control plane can observe, and what is done about it.

One module per moto behaviour, named after it. Each module's docstring says what moto does, what
AWS does instead and why the difference matters here; each has one idempotent ``apply()``; and
``tests/functional/moto_patches/`` has a test per module that fails both when the patch
stops working and when moto as released no longer behaves that way (then drop the module).

:func:`apply_all` applies them in this order (the local stack's moto server calls it before
it serves; the benchmarks' moto applies only the two cost fixes):

1. :mod:`.dispatch_services_cached`: the dispatcher's list of services is read once.
2. :mod:`.events_default_input_account`: events carry ``account``.
3. :mod:`.events_targets`: Lambda and SNS targets are delivered; inputs rendered as AWS does.
4. :mod:`.events_schedule_and_disabled_rules`: schedule-only and disabled rules get no
   PutEvents events (applied after 3, so it filters before delivery).
5. :mod:`.dynamodb_atomic_requests`: each DynamoDB request is atomic.
6. :mod:`.dynamodb_item_results`: item results are dumped as the DynamoDB JSON they are.
7. :mod:`.dynamodb_item_copies`: items are not deep-copied when only read.
8. :mod:`.dynamodb_expressions_parsed_once`: an UpdateItem parses each expression once.
9. :mod:`.dynamodb_update_validation`: its validation copies the tree node by node and reads
   each walk's node types once.
10. :mod:`.dynamodb_update_shape_checks`: an expression's shape is checked until it passes,
    not at every request.
11. :mod:`.dynamodb_query_sorting`: a Query sorts only what it keeps (not the whole table,
    not the items that fail its sort-key condition).
12. :mod:`.dynamodb_item_projection`: a projection converts only the attributes it names.
13. :mod:`.sqs_no_lambda_invoke`: SendMessage never invokes moto's Lambda.
14. :mod:`.sqs_send_attributes`: sending and receiving do not count the queue.
15. :mod:`.sqs_message_scans`: receiving reads the clock once per scan; deleting finds the
    message in one pass.
16. :mod:`.ecs_task_lifecycle`: tasks start PROVISIONING, RunTask hands them to the local ECS,
    and they move only when the local ECS host says so.
17. :mod:`.ecs_run_task_client_token`: RunTask honours ``clientToken``.
18. :mod:`.ecs_stop_task`: StopTask asks for a stop; the host stops the container.
19. :mod:`.ecs_describe_tasks_lookup`: DescribeTasks matches by ARN or id, by set look-up.
20. :mod:`.ecs_cloudformation_properties`: CloudFormation's ECS clusters and task definitions
    get every property (capacity providers, network mode, compatibilities, cpu, roles).
21. :mod:`.ecs_task_level_memory`: RunTask starts a task definition with task-level memory only.

The order matters only for 3 and 4, which both wrap ``Rule.send_to_targets``.
"""

from __future__ import annotations

from . import (
    dispatch_services_cached,
    dynamodb_atomic_requests,
    dynamodb_expressions_parsed_once,
    dynamodb_item_copies,
    dynamodb_item_projection,
    dynamodb_item_results,
    dynamodb_query_sorting,
    dynamodb_update_shape_checks,
    dynamodb_update_validation,
    ecs_cloudformation_properties,
    ecs_describe_tasks_lookup,
    ecs_run_task_client_token,
    ecs_stop_task,
    ecs_task_level_memory,
    ecs_task_lifecycle,
    events_default_input_account,
    events_schedule_and_disabled_rules,
    events_targets,
    sqs_message_scans,
    sqs_no_lambda_invoke,
    sqs_send_attributes,
)

#: Every patch, in the order :func:`apply_all` applies them.
PATCHES = (
    dispatch_services_cached,
    events_default_input_account,
    events_targets,
    events_schedule_and_disabled_rules,
    dynamodb_atomic_requests,
    dynamodb_item_results,
    dynamodb_item_copies,
    dynamodb_expressions_parsed_once,
    dynamodb_update_validation,
    dynamodb_update_shape_checks,
    dynamodb_query_sorting,
    dynamodb_item_projection,
    sqs_no_lambda_invoke,
    sqs_send_attributes,
    sqs_message_scans,
    ecs_task_lifecycle,
    ecs_run_task_client_token,
    ecs_stop_task,
    ecs_describe_tasks_lookup,
    ecs_cloudformation_properties,
    ecs_task_level_memory,
)


def apply_all() -> None:
    """Apply every patch (idempotent)."""
    for patch in PATCHES:
        patch.apply()
