"""Consumes run requests from SQS and starts (or stops) ECS tasks, one record at a time.

Thin adapter: parse, call the control plane, report per-record failures to SQS.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.logging.utils import copy_config_to_registered_loggers
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from ecs_control_plane.contract import MalformedRequestError, RunRequest
from ecs_control_plane.metrics import (
    MALFORMED_RUN_REQUESTS,
    RUN_REQUEST,
    RUN_REQUEST_ERRORS,
    RUN_TASK_RETRIES_LATER,
    publish_result,
)
from ecs_control_plane.results import RetryLater
from ecs_control_plane.runtime import control_plane
from ecs_control_plane.tracing import capture_lambda_handler

logger = Logger()
metrics = Metrics()
# A batch where every record failed is still a partial response: SQS handles each record.
processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)
copy_config_to_registered_loggers(source_logger=logger, include={"ecs_control_plane"})


def record_handler(record: SQSRecord) -> None:
    plane = control_plane()
    try:
        request = RunRequest.from_message(record.body)
    except MalformedRequestError as exc:
        metrics.add_metric(name=MALFORMED_RUN_REQUESTS, unit=MetricUnit.Count, value=1)
        if exc.key:
            plane.fail_malformed(exc.key, exc.owner, exc.reason)
        logger.error("malformed run request", extra={"message_id": record.message_id, "reason": exc.reason})
        raise
    logger.append_keys(task_key=request.key, attempt=request.attempt, kind=request.kind)
    try:
        result = plane.handle_request(request, receive_count=int(record.attributes.approximate_receive_count))
    except RetryLater as later:
        metrics.add_metric(name=RUN_TASK_RETRIES_LATER, unit=MetricUnit.Count, value=1)
        plane.queue.delay_redelivery(record.receipt_handle, later.delay_seconds)
        raise
    except Exception as exc:
        # Type and message only: a traceback's locals could carry the request's command.
        metrics.add_metric(name=RUN_REQUEST_ERRORS, unit=MetricUnit.Count, value=1)
        logger.error("run request failed", extra={"error": type(exc).__name__, "detail": str(exc)[:1000]})
        raise
    finally:
        logger.remove_keys(["task_key", "attempt", "kind"])
    publish_result(metrics, RUN_REQUEST, result)


@logger.inject_lambda_context
@capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    response = process_partial_response(
        event=event, record_handler=record_handler, processor=processor, context=context
    )
    return dict(response)
