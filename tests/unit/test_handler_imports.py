"""What each handler's ``import app`` loads: nothing that only a later call needs.

Each case runs in a fresh interpreter with the function's folder and the layer on ``sys.path``,
as Lambda has them, with tracing off (as outside Lambda): what a module imports is per process.
The import is the measured part of a cold start (issue 12: at most 200 ms of CPU per handler).
"""

from __future__ import annotations

import os
import subprocess
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from boto3.dynamodb.types import Binary
from boto3.dynamodb.types import TypeDeserializer as Boto3TypeDeserializer
from boto3.dynamodb.types import TypeSerializer as Boto3TypeSerializer

from ecs_control_plane.dynamodb_types import TypeDeserializer, TypeSerializer

ROOT = Path(__file__).resolve().parents[2]
FUNCTIONS = ("reconciler", "run_task", "task_state")


def _python(function: str, code: str) -> subprocess.CompletedProcess[str]:
    folder = ROOT / "functions" / function
    env = {
        "PATH": os.environ.get("PATH", ""),
        "PYTHONPATH": os.pathsep.join([str(folder), str(ROOT / "layers" / "control_plane")]),
        "AWS_REGION": "us-east-1",
        "POWERTOOLS_SERVICE_NAME": function,
        "POWERTOOLS_METRICS_NAMESPACE": "EcsControlPlaneTests",
    }
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize("function", FUNCTIONS)
def test_handler_import_does_not_load_boto3(function: str) -> None:
    # WHEN the function's module loads
    done = _python(
        function, "import sys, app; print(sorted(m for m in ('boto3', 's3transfer') if m in sys.modules))"
    )

    # THEN neither boto3 nor s3transfer was imported: the clients are botocore's
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_run_task_import_builds_no_ecs_task_model() -> None:
    # WHEN run_task's module loads (it never reads an ECS task)
    done = _python(
        "run_task",
        "import app\nfrom ecs_control_plane.ecs_events import EcsTask\nprint(EcsTask.__pydantic_complete__)",
    )

    # THEN the ECS task model's schema was not built
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"


_VALUES: list[Any] = [
    None,
    True,
    "text",
    "",
    0,
    -7,
    2**53,
    Decimal("1.25"),
    Decimal("1E+2"),
    b"\x00\xff",
    Binary(b"raw"),
    {"a": [1, "b", {"c": None}]},
    [],
    {1, 2},
    {"x", "y"},
    {b"p", b"q"},
]


@pytest.mark.parametrize("value", _VALUES, ids=repr)
def test_serialized_values_are_boto3s(value: Any) -> None:
    # WHEN a value is serialized and read back through the layer's (de)serializers
    serialized = TypeSerializer().serialize(value)
    back = TypeDeserializer().deserialize(serialized)

    # THEN both steps give exactly what boto3's own give
    assert serialized == Boto3TypeSerializer().serialize(value)
    assert back == Boto3TypeDeserializer().deserialize(serialized)
    assert type(back) is type(Boto3TypeDeserializer().deserialize(serialized))


@pytest.mark.parametrize("value", [1.5, Decimal("1." + "1" * 40), {"s", 1}], ids=repr)
def test_values_boto3_refuses_are_refused(value: Any) -> None:
    # WHEN a value boto3 cannot store is serialized, THEN it is refused as boto3 refuses it
    with pytest.raises((TypeError, ArithmeticError)) as ours:
        TypeSerializer().serialize(value)
    with pytest.raises((TypeError, ArithmeticError)) as boto3s:
        Boto3TypeSerializer().serialize(value)
    assert type(ours.value) is type(boto3s.value)


def test_number_beyond_dynamodbs_precision_is_refused_when_read() -> None:
    # WHEN a number with more digits than DynamoDB keeps is read, THEN it is refused, as by boto3
    raw = {"N": "1." + "1" * 40}
    with pytest.raises((TypeError, ArithmeticError)) as ours:
        TypeDeserializer().deserialize(raw)
    with pytest.raises((TypeError, ArithmeticError)) as boto3s:
        Boto3TypeDeserializer().deserialize(raw)
    assert type(ours.value) is type(boto3s.value)
