"""Test-wide settings: fake AWS credentials, no tracing, and the moto control plane fixture."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator

import pytest
from botocore.loaders import JSONFileLoader

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

# Every executor start makes new boto3 sessions (the provider's AWS hook), and each session parses
# botocore's JSON data files again: endpoints, partitions, the service models. That was two thirds
# of the executor tests' time. Parse each file once per test run instead. botocore already shares
# one parsed model between all the clients of a session, so sharing it between sessions is safe.
_parsed_botocore_files: dict[str, object] = {}
_load_botocore_file = JSONFileLoader.load_file


def _load_botocore_file_once(loader: JSONFileLoader, file_path: str) -> object:
    if file_path not in _parsed_botocore_files:
        _parsed_botocore_files[file_path] = _load_botocore_file(loader, file_path)
    return _parsed_botocore_files[file_path]


JSONFileLoader.load_file = _load_botocore_file_once  # type: ignore[method-assign,assignment]


@pytest.fixture
def control_plane_aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[object]:
    """A complete control plane on moto (table, queue, cluster, alerts), with the real handlers."""
    from tests.support.aws import mocked_control_plane  # noqa: PLC0415 - after the env is set

    with mocked_control_plane(monkeypatch) as plane:
        yield plane
