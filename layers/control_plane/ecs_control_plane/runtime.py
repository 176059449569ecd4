"""Wiring for the Lambda functions: clients with botocore's retry modes, made once per container."""

from __future__ import annotations

import functools
import os
from typing import Any

import botocore.session
from botocore.config import Config

from .gateways import EcsGateway, FailedStartAlerts, RunRequestQueue
from .run_task_call import check_run_task_shape
from .services import ControlPlane
from .settings import ControlPlaneSettings
from .store import StateTable

#: ECS throttling is common at scale: let botocore's adaptive mode pace RunTask a little before
#: the control plane's own visibility backoff takes over.
ECS_CONFIG = Config(retries={"mode": "adaptive", "max_attempts": 3}, connect_timeout=3, read_timeout=5)
AWS_CONFIG = Config(retries={"mode": "standard", "max_attempts": 5}, connect_timeout=5, read_timeout=20)


@functools.lru_cache(maxsize=1)
def control_plane() -> ControlPlane:
    """The control plane of this function's stack, from its environment."""
    settings = ControlPlaneSettings.from_env()
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    # botocore's session, not boto3's: boto3 adds nothing to these clients but its import
    # (``s3transfer`` and the resource layer, about 12 ms of every cold start).
    session = botocore.session.get_session()

    def client(service: str, config: Config) -> Any:
        return session.create_client(service, region_name=region, config=config)

    ecs = client("ecs", ECS_CONFIG)
    check_run_task_shape(settings, ecs.meta.service_model)
    return ControlPlane(
        settings=settings,
        table=StateTable(client("dynamodb", AWS_CONFIG), settings.state_table, settings.item_retention_days),
        ecs=EcsGateway(ecs),
        queue=RunRequestQueue(client("sqs", AWS_CONFIG), settings.queue_url),
        alerts=FailedStartAlerts(client("events", AWS_CONFIG), settings.event_bus),
        region=region or "",
    )
