"""Where an ECS task's Airflow container writes its log: the awslogs stream (pure, no boto3).

ECS's ``awslogs`` log driver sends a container's stdout and stderr to the log stream
``<awslogs-stream-prefix>/<container name>/<ECS task id>`` of the group ``awslogs-group``, in
``awslogs-region`` (the task's own region when the option is absent). Without a stream prefix
the stream is named after the Docker container id, which ECS does not report, and no other log
driver writes to CloudWatch Logs under a name one can compute: nothing is recorded then.

``run_task`` records the location of every task it starts in the state item (``log_group``,
``log_stream``, ``log_region``); the executor's ``get_task_log`` reads it; the local ECS host
writes its containers' output there. This module is the one home of the naming rule.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

logger = logging.getLogger(__name__)

AWSLOGS_DRIVER = "awslogs"


@dataclass(frozen=True)
class TaskLogLocation:
    """One ECS task's container log: a CloudWatch Logs stream."""

    group: str
    stream: str
    region: str


def task_id_of(task_arn: str) -> str:
    """The task id: the last part of ``arn:aws:ecs:<region>:<account>:task/<cluster>/<id>``."""
    return task_arn.rsplit("/", 1)[-1]


def awslogs_location(
    log_configuration: Mapping[str, Any] | None, container_name: str, task_arn: str, default_region: str
) -> TaskLogLocation | None:
    """The stream the ``awslogs`` driver writes the container to; None if it cannot be named."""
    if not isinstance(log_configuration, Mapping) or log_configuration.get("logDriver") != AWSLOGS_DRIVER:
        return None
    options = log_configuration.get("options")
    if not isinstance(options, Mapping):
        return None
    group, prefix = options.get("awslogs-group"), options.get("awslogs-stream-prefix")
    region = options.get("awslogs-region") or default_region
    if not (isinstance(group, str) and group and isinstance(prefix, str) and prefix and region):
        return None
    return TaskLogLocation(group, f"{prefix}/{container_name}/{task_id_of(task_arn)}", str(region))


def container_log_configuration(
    task_definition: Mapping[str, Any], container_name: str
) -> dict[str, Any] | None:
    """The ``logConfiguration`` of ``container_name`` in a DescribeTaskDefinition result."""
    for container in task_definition.get("containerDefinitions") or []:
        if isinstance(container, Mapping) and container.get("name") == container_name:
            config = container.get("logConfiguration")
            return dict(config) if isinstance(config, Mapping) else None
    return None


def _is_revision(task_definition: str) -> bool:
    """Whether the reference names one revision (``family:3`` or its ARN), which never changes."""
    last = task_definition.rsplit("/", 1)[-1]
    return ":" in last and last.rsplit(":", 1)[-1].isdigit()


class TaskDefinitionLogs:
    """The Airflow container's log location per started task, describing each task definition once.

    A revision (``family:3``, or the ARN RunTask returns) never changes, so it is described once
    per container (warm Lambda); a bare family may get a new revision, so it is described again
    after ``family_ttl_seconds``. A describe that fails is not asked again for
    ``failure_ttl_seconds`` (logged once): a start never fails, and never waits, for its log.
    """

    def __init__(
        self,
        describe: Callable[[str], Mapping[str, Any]],
        container_name: str,
        region: str,
        *,
        family_ttl_seconds: float = 300.0,
        failure_ttl_seconds: float = 300.0,
        max_entries: int = 64,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._describe = describe
        self._container = container_name
        self._region = region
        self._family_ttl = family_ttl_seconds
        self._failure_ttl = failure_ttl_seconds
        self._max = max_entries
        self._clock = clock
        self._lock = threading.Lock()
        #: (reference, container) -> (its logConfiguration or None, valid until; None: for ever)
        self._cache: OrderedDict[tuple[str, str], tuple[dict[str, Any] | None, float | None]] = OrderedDict()

    def location(
        self, task_definition: str, task_arn: str, container: str | None = None
    ) -> TaskLogLocation | None:
        """Where ``task_arn``'s Airflow container (``container``, else the stack's) logs; None
        when its task definition says nowhere."""
        if not task_definition:
            return None
        name = container or self._container
        config = self._log_configuration(task_definition, name)
        return awslogs_location(config, name, task_arn, self._region)

    def _log_configuration(self, reference: str, container: str) -> dict[str, Any] | None:
        now = self._clock()
        entry = (reference, container)
        with self._lock:
            cached = self._cache.get(entry)
            if cached is not None and (cached[1] is None or now < cached[1]):
                self._cache.move_to_end(entry)
                return cached[0]
        try:
            config = container_log_configuration(self._describe(reference), container)
            valid_until = None if _is_revision(reference) else now + self._family_ttl
        except Exception as exc:  # noqa: BLE001 - no log location is worth a failed start
            logger.warning(
                "task definition not described: its tasks' log streams are not recorded",
                extra={"task_definition": reference, "error": f"{type(exc).__name__}: {exc}"[:500]},
            )
            config, valid_until = None, now + self._failure_ttl
        with self._lock:
            self._cache[entry] = (config, valid_until)
            self._cache.move_to_end(entry)
            while len(self._cache) > self._max:
                self._cache.popitem(last=False)
        return config
