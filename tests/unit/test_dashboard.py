"""The dashboard (and the alarms) read the metrics the functions publish, of this stack's resources.

template.yaml's DashboardBody is rendered for a deployment (its Fn::Sub resolved with the names
a deployment gives), parsed as CloudWatch reads it, and each metric row checked against the
names in ``ecs_control_plane.metrics`` and the template's own queues and functions: a metric
renamed in the code, or a widget naming one nobody publishes, fails here.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from samtranslator.yaml_helper import yaml_parse

from ecs_control_plane.metrics import (
    FAILURE_CLASS,
    MALFORMED_RUN_REQUESTS,
    NAMESPACE,
    RECONCILE,
    RECONCILE_REPAIRS,
    RUN_REQUEST,
    RUN_REQUEST_ERRORS,
    RUN_TASK_RETRIES_LATER,
    SERVICE,
    START_FAILURES,
    STARTS,
    SUBMIT_TO_RUNNING,
    TASK_EVENT,
    metric_name,
)
from ecs_control_plane.results import Outcome, ReconcileReport
from ecs_control_plane.retry import FailureClass
from tests.support.iam_policies import ACCOUNT, REGION, TEMPLATE, Deployment

#: Every metric name the functions publish.
PUBLISHED = {
    *(metric_name(prefix, o.value) for prefix in (RUN_REQUEST, TASK_EVENT) for o in Outcome),
    *(metric_name(RECONCILE, field) for field in ReconcileReport().__dict__),
    START_FAILURES,
    SUBMIT_TO_RUNNING,
    MALFORMED_RUN_REQUESTS,
    RUN_TASK_RETRIES_LATER,
    RUN_REQUEST_ERRORS,
}
FUNCTIONS = ("RunTaskFunction", "TaskStateFunction", "ReconcilerFunction")


class Row:
    """One line of a metric widget: ``[namespace, name, dimension, value, ..., {options}]``."""

    def __init__(self, widget: dict[str, Any], row: list[Any]) -> None:
        options = row[-1] if isinstance(row[-1], dict) else {}
        fields = row[:-1] if options else row
        self.namespace, self.name = fields[0], fields[1]
        self.dimensions = dict(zip(fields[2::2], fields[3::2], strict=True))
        self.stat = options.get("stat", widget["properties"].get("stat"))
        self.period = options.get("period", widget["properties"].get("period"))
        self.widget = widget["properties"]


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    parsed: dict[str, Any] = yaml_parse(TEMPLATE.read_text())
    return parsed


@pytest.fixture(scope="module")
def deployment(template: dict[str, Any]) -> Deployment:
    return Deployment(template)


@pytest.fixture(scope="module")
def widgets(deployment: Deployment) -> list[dict[str, Any]]:
    body = deployment.properties("ControlPlaneDashboard")["DashboardBody"]
    parsed: list[dict[str, Any]] = json.loads(body)["widgets"]
    return parsed


def rows(widgets: list[dict[str, Any]]) -> Iterator[Row]:
    for widget in widgets:
        for row in widget["properties"].get("metrics", []):
            yield Row(widget, row)


def service(deployment: Deployment, template: dict[str, Any]) -> str:
    """The ``service`` dimension the functions' Powertools adds: their POWERTOOLS_SERVICE_NAME."""
    env = template["Globals"]["Function"]["Environment"]["Variables"]
    return str(deployment.resolve(env["POWERTOOLS_SERVICE_NAME"]))


def test_the_functions_publish_in_the_namespace_the_names_module_says(template: dict[str, Any]) -> None:
    env = template["Globals"]["Function"]["Environment"]["Variables"]
    assert env["POWERTOOLS_METRICS_NAMESPACE"] == NAMESPACE


def test_every_control_plane_metric_on_the_dashboard_is_one_the_functions_publish(
    widgets: list[dict[str, Any]], deployment: Deployment, template: dict[str, Any]
) -> None:
    own = [r for r in rows(widgets) if r.namespace not in ("AWS/SQS", "AWS/Lambda")]
    assert own
    for row in own:
        assert row.namespace == NAMESPACE, row.name
        assert row.name in PUBLISHED, row.name
        # exactly the dimensions the metric is published with: CloudWatch matches the whole set
        expected = {SERVICE, FAILURE_CLASS} if row.name == START_FAILURES else {SERVICE}
        assert set(row.dimensions) == expected, row.name
        assert row.dimensions[SERVICE] == service(deployment, template)


def test_the_dashboard_shows_what_issue_14_asks_for(widgets: list[dict[str, Any]]) -> None:
    found = list(rows(widgets))

    def of(name: str) -> list[Row]:
        return [r for r in found if r.name == name]

    # starts per minute
    assert [(r.stat, r.period) for r in of(STARTS)] == [("Sum", 60)]
    # start failures by class: every class there is, stacked
    failures = of(START_FAILURES)
    assert sorted(r.dimensions[FAILURE_CLASS] for r in failures) == sorted(c.value for c in FailureClass)
    assert all(r.widget["stacked"] and r.stat == "Sum" for r in failures)
    # submit -> RUNNING latency, median and tail
    assert sorted(r.stat for r in of(SUBMIT_TO_RUNNING)) == ["p50", "p99"]
    # every repair the reconciler counts
    assert {r.name for r in found if r.name.startswith(RECONCILE)} >= set(RECONCILE_REPAIRS)
    # every widget draws this stack's region
    assert {w["properties"]["region"] for w in widgets if w["type"] == "metric"} == {REGION}


def test_queue_widgets_read_the_stacks_own_queues(
    widgets: list[dict[str, Any]], deployment: Deployment
) -> None:
    sqs = {(r.name, r.dimensions["QueueName"]) for r in rows(widgets) if r.namespace == "AWS/SQS"}
    names = {
        lid: deployment.attribute(lid, "QueueName") for lid, _ in deployment.resources("AWS::SQS::Queue")
    }
    assert {queue for _, queue in sqs} <= set(names.values())
    assert ("ApproximateAgeOfOldestMessage", names["RunRequestQueue"]) in sqs
    for queue in ("RunRequestQueue", "RunRequestDLQ", "TaskEventDLQ"):
        assert ("ApproximateNumberOfMessagesVisible", names[queue]) in sqs, queue


def test_function_widgets_read_the_stacks_three_functions(
    widgets: list[dict[str, Any]], template: dict[str, Any], deployment: Deployment
) -> None:
    lam = [r for r in rows(widgets) if r.namespace == "AWS/Lambda"]
    deployed = {deployment.ref(lid): lid for lid in FUNCTIONS}
    assert {template["Resources"][lid]["Type"] for lid in FUNCTIONS} == {"AWS::Serverless::Function"}
    assert {r.dimensions["FunctionName"] for r in lam} == set(deployed)
    for function in deployed:
        shown = {(r.name, r.stat) for r in lam if r.dimensions["FunctionName"] == function}
        assert shown == {("Errors", "Sum"), ("Duration", "p50"), ("Duration", "p99")}, function


def test_alarms_on_control_plane_metrics_name_metrics_the_functions_publish(
    deployment: Deployment, template: dict[str, Any]
) -> None:
    own = [
        props
        for _, props in deployment.resources("AWS::CloudWatch::Alarm")
        if props["Namespace"] not in ("AWS/SQS", "AWS/Lambda")
    ]
    assert own
    for alarm in own:
        assert alarm["Namespace"] == NAMESPACE
        assert alarm["MetricName"] in PUBLISHED, alarm["MetricName"]
        assert alarm["Dimensions"] == [{"Name": SERVICE, "Value": service(deployment, template)}]


def test_the_dashboard_url_output_opens_this_dashboard(
    deployment: Deployment, template: dict[str, Any]
) -> None:
    url = deployment.resolve(template["Outputs"]["DashboardUrl"]["Value"])
    assert url.startswith(f"https://console.aws.amazon.com/cloudwatch/home?region={REGION}#dashboards:name=")
    assert url.endswith(deployment.ref("ControlPlaneDashboard"))


def test_the_alarm_widget_shows_every_alarm_of_the_stack(
    widgets: list[dict[str, Any]], deployment: Deployment
) -> None:
    # A new alarm joins the status row at the top, or this fails.
    shown = [a for w in widgets if w["type"] == "alarm" for a in w["properties"]["alarms"]]
    alarms = [lid for lid, _ in deployment.resources("AWS::CloudWatch::Alarm")]
    prefix = f"arn:aws:cloudwatch:{REGION}:{ACCOUNT}:alarm:"
    assert sorted(shown) == sorted(prefix + deployment.ref(lid) for lid in alarms)
