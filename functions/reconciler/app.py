"""Runs on a schedule and repairs what lost ECS events or lost run requests left behind.

Thin adapter: call the control plane's reconcile, publish what it found as metrics.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.logging.utils import copy_config_to_registered_loggers
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

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
    for name, value in report.__dict__.items():
        metrics.add_metric(
            name=f"Reconcile{name.title().replace('_', '')}", unit=MetricUnit.Count, value=value
        )
    return dict(report.__dict__)
