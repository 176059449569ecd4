"""The control plane's CloudWatch metrics: their names, and how a use case's result becomes them.

One home for every name: the handlers publish through here, and template.yaml's dashboard and
alarms name the same metrics (``tests/unit/test_dashboard.py`` holds the two together). The
functions publish with Powertools (EMF) in ``NAMESPACE`` (their POWERTOOLS_METRICS_NAMESPACE),
each metric with the ``service`` dimension Powertools adds (POWERTOOLS_SERVICE_NAME, the control
plane id), so the stacks of one account never mix.
"""

from __future__ import annotations

from aws_lambda_powertools.metrics import Metrics, MetricUnit, single_metric

from .results import Outcome, ReconcileReport, Result

NAMESPACE = "AirflowEcsControlPlane"
SERVICE = "service"
#: The dimension of START_FAILURES: a ``retry.FailureClass`` value.
FAILURE_CLASS = "FailureClass"

#: run_task counts each run request as ``RunRequest<Outcome>``, task_state each ECS event as
#: ``TaskEvent<Outcome>``, the reconciler each field of its report as ``Reconcile<Field>``.
RUN_REQUEST = "RunRequest"
TASK_EVENT = "TaskEvent"
RECONCILE = "Reconcile"
#: A start that failed (Count, dimension FAILURE_CLASS): by run_task for a RunTask call that
#: started nothing or a run_task call that cannot be built, by task_state for an ECS task that
#: stopped before it ran.
START_FAILURES = "StartFailures"
#: Milliseconds from the executor's submission (its run request's ``sent_at``) to ECS's
#: ``startedAt``, by task_state for the event that moves a try to RUNNING.
SUBMIT_TO_RUNNING = "SubmitToRunning"
MALFORMED_RUN_REQUESTS = "MalformedRunRequests"
RUN_TASK_RETRIES_LATER = "RunTaskRetriesLater"
RUN_REQUEST_ERRORS = "RunRequestErrors"


def metric_name(prefix: str, member: str) -> str:
    """``RunRequest`` and ``STOP_SENT``: ``RunRequestStopSent``; ``Reconcile`` and ``timed_out``:
    ``ReconcileTimedOut``."""
    return prefix + member.title().replace("_", "")


#: An ECS task started (and recorded) for a run request.
STARTS = metric_name(RUN_REQUEST, Outcome.STARTED.value)
#: What the reconciler repaired: items brought up to date from ECS, tries failed whose task ECS
#: forgot or whose run request was lost, orphan tasks stopped, failed-start alerts sent again.
RECONCILE_REPAIRS = tuple(
    metric_name(RECONCILE, field)
    for field in ("repaired", "lost", "timed_out", "orphans_stopped", "alerts_resent")
)


def publish_result(metrics: Metrics, prefix: str, result: Result) -> None:
    """The result's outcome, and the start failure and submit-to-RUNNING latency it carries."""
    metrics.add_metric(name=metric_name(prefix, result.outcome.value), unit=MetricUnit.Count, value=1)
    if result.submit_to_running_ms is not None:
        metrics.add_metric(
            name=SUBMIT_TO_RUNNING, unit=MetricUnit.Milliseconds, value=result.submit_to_running_ms
        )
    if result.start_failure is not None:
        # A record of its own: the class is a dimension of this metric, not of the batch's others
        # (single_metric adds the service dimension from POWERTOOLS_SERVICE_NAME, as Metrics does).
        with single_metric(
            name=START_FAILURES, unit=MetricUnit.Count, value=1, namespace=metrics.namespace
        ) as metric:
            metric.add_dimension(name=FAILURE_CLASS, value=result.start_failure.value)


def publish_report(metrics: Metrics, report: ReconcileReport) -> None:
    """Every field of the reconciler's report, zeros included (a dashboard line never gaps)."""
    for field, value in report.__dict__.items():
        metrics.add_metric(name=metric_name(RECONCILE, field), unit=MetricUnit.Count, value=value)
