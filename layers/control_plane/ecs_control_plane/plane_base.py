"""What every use case of the control plane shares: its adapters and the decisions they all make.

Run requests, ECS task changes and reconciliation each live in their own module; the readiness
verdict, a try's start deadline, the placement of a start attempt and failing a start (with its
one alert) are needed by more than one of them, so they live here, once.
"""

from __future__ import annotations

import logging

from .contract import FailedStartDetail, RunRequest, TaskState, TaskStateItem
from .gateways import EcsGateway, FailedStartAlerts, RunRequestQueue
from .log_location import TaskDefinitionLogs
from .placements import PLACEMENT_FAILURE_LIMIT, AttemptPlacement
from .queue_profiles import describe_placement
from .readiness import FALLBACK_LAUNCH_TYPE, CheckError, ReadinessReport, check_readiness, default_placement
from .results import Outcome, Result
from .run_task_call import stack_run_task_kwargs
from .settings import ControlPlaneSettings
from .store import StateTable

logger = logging.getLogger(__name__)


class PlaneBase:
    """The adapters, and the decisions more than one use case makes with them."""

    def __init__(
        self,
        settings: ControlPlaneSettings,
        table: StateTable,
        ecs: EcsGateway,
        queue: RunRequestQueue,
        alerts: FailedStartAlerts,
        *,
        region: str = "",
    ) -> None:
        self.settings = settings
        self.table = table
        self.ecs = ecs
        self.queue = queue
        self.alerts = alerts
        self.region = region
        self._fallback: tuple[str | None] | None = None
        #: Where each started task's Airflow container logs (one DescribeTaskDefinition per
        #: revision per container).
        self.task_logs = TaskDefinitionLogs(self._describe_task_definition, settings.container_name, region)

    def _describe_task_definition(self, reference: str) -> dict[str, object]:
        return self.ecs.describe_task_definition(reference)  # the gateway of now: it may be replaced

    # -- readiness --------------------------------------------------------------------------------

    def check_readiness(self) -> ReadinessReport:
        """Check the stack's settings against ECS and record the result for the executors."""
        try:
            report = check_readiness(self.settings, self.ecs, self.region)
        except CheckError as exc:  # transient: no verdict; the last one stands until the next run
            logger.warning("readiness check not made: ECS did not answer", extra={"error": str(exc)})
            raise
        self.table.record_readiness(report)
        if report.problems:
            logger.error(
                "the stack's settings cannot run tasks: fix these template parameters",
                extra={"problems": [str(p) for p in report.problems]},
            )
        self._fallback = (report.fallback_launch_type,) if not report.problems else self._fallback
        return report

    def _fallback_launch_type(self) -> str | None:
        """The launch type to send when no level chooses a placement (the provider's fallback).

        Asked of ECS once per container, and only if the settings choose no placement.
        """
        if self._fallback is None:
            placement = stack_run_task_kwargs(self.settings)
            if placement.get("launchType") or placement.get("capacityProviderStrategy"):
                self._fallback = (FALLBACK_LAUNCH_TYPE,)  # only a task's executor_config could clear it
            else:
                try:
                    self._fallback = (default_placement(self.ecs.describe_cluster(self.settings.cluster)),)
                except CheckError as exc:
                    # Send neither: ECS then applies the cluster's default strategy, if any.
                    logger.warning("cluster not described; no launch type sent", extra={"error": str(exc)})
                    return None
        return self._fallback[0]

    # -- placement ------------------------------------------------------------------------------

    def _profile_name(self, queue: str | None) -> str | None:
        """The queue's name when it has a profile (what the item records), else None."""
        return queue if self.settings.profile_for(queue) is not None else None

    def _placement(
        self, request: RunRequest, call: dict[str, object], failure: str | None = None
    ) -> AttemptPlacement:
        """Where this start attempt was placed, for the item (and alerts, and ``explain``)."""
        profile = self.settings.profile_for(request.queue)
        fell_back = (
            request.fallback and profile is not None and bool(profile.fallback_capacity_provider_strategy)
        )
        return AttemptPlacement(
            attempt=request.attempt,
            placement=describe_placement(call),
            fallback=fell_back,
            failure=failure[:PLACEMENT_FAILURE_LIMIT] if failure else None,
        )

    def _next_on_fallback(self, queue: str | None, on_fallback: bool, capacity_failure: bool) -> bool:
        """Whether the next start attempt goes to the queue profile's fallback capacity: after a
        capacity failure, and for good once a try has fallen back."""
        profile = self.settings.profile_for(queue)
        if profile is None or not profile.fallback_capacity_provider_strategy:
            return False
        return on_fallback or capacity_failure

    # -- deadlines ------------------------------------------------------------------------------

    def _deadline_ms(self, item: TaskStateItem, request: RunRequest | None = None) -> int:
        """The latest time a start may begin: the workload token's expiry less the start margin.

        Requests of contract v1 carry no expiry; their tries are bounded by QueuedTimeoutSeconds.
        """
        expires = item.token_expires_at or (request.token_expires_at if request else None)
        if expires is None:
            created = item.created_at or item.updated_at
            return created + self.settings.queued_timeout_seconds * 1000
        return expires - self.settings.token_start_margin_seconds * 1000

    def _token_expired_reason(self, attempt: int, what: str) -> str:
        return (
            f"{what}, but start attempt {attempt} could not begin before the workload token expires: "
            "Airflow signs it for [scheduler] task_queued_timeout, and a container started later could "
            "not reach Airflow. Airflow's own retry (with a fresh token) takes over"
        )

    # -- failed starts --------------------------------------------------------------------------

    def fail_start(
        self,
        key: str,
        owner: str,
        reason: str,
        *,
        attempt: int,
        task_arn: str | None = None,
        changes: dict[str, object] | None = None,
        only_if_queued: bool = False,
        placement: AttemptPlacement | None = None,
    ) -> Result:
        """FAILED for good, then the failed-start event (once per item; re-sent if putting it failed).

        ``only_if_queued``: the decision was made by run_task without a task of its own, so it
        holds only while the item is still QUEUED with no task (or missing): a start that a
        concurrent invocation recorded meanwhile is never undone.
        """
        item = self.table.mark_failed(
            key,
            owner,
            reason,
            attempt=attempt,
            start_failed=True,
            changes=dict(changes or {}),
            only_if_queued=only_if_queued,
            placement=placement,
        )
        if item is None:
            item = self.table.get(key)
            if only_if_queued and item is not None and not item.is_terminal:
                logger.info("failure not applied: the try moved on meanwhile", extra={"key": key})
                why = f"not failed, already {item.state.value}"
                return Result(Outcome.DUPLICATE, key, why, attempt=attempt)
        logger.error("task failed to start", extra={"key": key, "attempt": attempt, "reason": reason})
        if item is not None:
            self._alert_once(item, task_arn)
        return Result(Outcome.FAILED, key, reason, task_arn, attempt)

    def fail_malformed(self, key: str, owner: str | None, reason: str) -> Result:
        """A message naming ``key`` could not be read: fail the try, unless it is already under way.

        A bad message (say, from a newer executor during a rolling upgrade) must not fail a
        task that a good message already started.
        """
        item = self.table.mark_failed(
            key, owner or "unknown", reason, attempt=1, start_failed=True, only_if_queued=True
        )
        if item is None:
            return Result(Outcome.DROPPED, key, f"{reason}; the try is already under way or over")
        self._alert_once(item)
        return Result(Outcome.FAILED, key, reason)

    def _alert_once(self, item: TaskStateItem, task_arn: str | None = None) -> bool:
        """Put the failed-start event of a try that failed to start, unless it went out already."""
        if item.state is not TaskState.FAILED or not item.start_failed or item.alerted:
            return False
        self.alerts.publish(
            FailedStartDetail.build(
                key=item.key,
                owner=item.owner,
                attempt=item.attempt,
                reason=item.reason or "failed to start",
                cluster=self.settings.cluster,
                control_plane=self.settings.control_plane_id,
                task_arn=task_arn or item.task_arn,
                profile=item.profile,
                placements=item.placements,
            )
        )
        self.table.mark_alerted(item.key)
        return True
