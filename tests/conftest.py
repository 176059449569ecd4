"""Test-wide settings: fake AWS credentials, no tracing, and the moto control plane fixture."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator

import pytest

from ecscp.local.endpoint import FAKE_CREDENTIALS_ENV

# Before anything makes a boto3 client: never reach a real account from the tests.
for _name, _value in {
    **FAKE_CREDENTIALS_ENV,
    "AWS_SECURITY_TOKEN": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
    "POWERTOOLS_TRACE_DISABLED": "true",
    "POWERTOOLS_SERVICE_NAME": "ecscp-tests",
    "POWERTOOLS_METRICS_NAMESPACE": "EcsControlPlaneTests",
    "POWERTOOLS_LOG_LEVEL": "WARNING",
}.items():
    os.environ[_name] = _value
os.environ.pop("AWS_ENDPOINT_URL", None)
# Airflow reads AIRFLOW_HOME when first imported: never the developer's ~/airflow.
os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="ecscp-tests-airflow-"))
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
os.environ.pop("AWS_PROFILE", None)


@pytest.fixture
def control_plane_aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[object]:
    """A complete control plane on moto (table, queue, cluster, alerts), with the real handlers."""
    from tests.support.aws import mocked_control_plane  # noqa: PLC0415 - after the env is set

    with mocked_control_plane(monkeypatch) as plane:
        yield plane
