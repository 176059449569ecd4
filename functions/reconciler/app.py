"""Runs on a schedule and repairs what lost ECS events or lost run requests left behind.

Thin adapter: call the control plane's reconcile, publish what it found as metrics.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.logging.utils import copy_config_to_registered_loggers
from aws_lambda_powertools.utilities.typing import LambdaContext

from ecs_control_plane.metrics import publish_report
from ecs_control_plane.runtime import control_plane
from ecs_control_plane.tracing import capture_lambda_handler

logger = Logger()
metrics = Metrics()
copy_config_to_registered_loggers(source_logger=logger, include={"ecs_control_plane"})


@logger.inject_lambda_context
@capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    report = control_plane().reconcile()
    publish_report(metrics, report)
    return dict(report.__dict__)
