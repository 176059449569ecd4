"""Applies "ECS Task State Change" events from EventBridge to the state table.

Thin adapter: parse the event's detail, call the control plane.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.logging.utils import copy_config_to_registered_loggers
from aws_lambda_powertools.utilities.parser import event_parser
from aws_lambda_powertools.utilities.parser.models import EventBridgeModel
from aws_lambda_powertools.utilities.typing import LambdaContext

from ecs_control_plane.ecs_events import EcsTask
from ecs_control_plane.metrics import TASK_EVENT, publish_result
from ecs_control_plane.runtime import control_plane
from ecs_control_plane.tracing import capture_lambda_handler

logger = Logger()
metrics = Metrics()
copy_config_to_registered_loggers(source_logger=logger, include={"ecs_control_plane"})


class EcsTaskStateChange(EventBridgeModel):
    detail: EcsTask


@logger.inject_lambda_context
@capture_lambda_handler
@metrics.log_metrics
@event_parser(model=EcsTaskStateChange)
def lambda_handler(event: EcsTaskStateChange, context: LambdaContext) -> dict[str, Any]:
    result = control_plane().handle_task_change(event.detail)
    publish_result(metrics, TASK_EVENT, result)
    return {"outcome": result.outcome.value, "key": result.key, "reason": result.reason}
