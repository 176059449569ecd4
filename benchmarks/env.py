"""The measuring ground: one moto server in a child process, AWS resources in it, call counting."""

from __future__ import annotations

import collections
import contextlib
import json
import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

import botocore.session
import httpx
from botocore.config import Config

from ecs_control_plane.store import state_table_definition
from ecscp.local.ecs import setup as ecs_setup
from ecscp.local.ecs.setup import create_ecs_setup
from ecscp.local.endpoint import FAKE_CREDENTIALS, FAKE_CREDENTIALS_ENV, aws_client

# moto advances an ECS task one state per DescribeTasks unless told otherwise; this pins it.
from ecscp.local.moto_patches.ecs_task_lifecycle import PINNED_TRANSITION
from ecscp.local.moto_server import start_server
from ecscp.local.processes import stop_child

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.client import DynamoDBClient
    from mypy_boto3_ec2.client import EC2Client
    from mypy_boto3_ecs.client import ECSClient
    from mypy_boto3_sqs.client import SQSClient

PROJECT_ROOT = Path(__file__).resolve().parents[1]
REGION = "us-east-1"
CLUSTER = "bench"
#: The task definition the local stack registers (created by create_ecs_setup).
CONTAINER = ecs_setup.CONTAINER_NAME
TASK_FAMILY = ecs_setup.TASK_FAMILY
TABLE = "bench-state"
QUEUE = "bench-run-requests"
#: Benchmarks measure the happy path: a retry would hide a slow call inside a count of one.
NO_RETRY = Config(retries={"total_max_attempts": 1}, read_timeout=600, connect_timeout=10)


def configure_process_env(state_dir: Path) -> None:
    """Fake AWS credentials and a throw-away AIRFLOW_HOME, before boto3 or Airflow read them."""
    state_dir.mkdir(parents=True, exist_ok=True)
    os.environ.update(
        **FAKE_CREDENTIALS_ENV,
        AWS_DEFAULT_REGION=REGION,
        AWS_REGION=REGION,
        AIRFLOW_HOME=str(state_dir / "airflow"),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        AIRFLOW__CORE__UNIT_TEST_MODE="False",
        AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=f"sqlite:///{state_dir / 'airflow' / 'airflow.db'}",
        AIRFLOW__LOGGING__LOGGING_LEVEL="ERROR",
        POWERTOOLS_TRACE_DISABLED="true",
        POWERTOOLS_METRICS_NAMESPACE="bench",
        POWERTOOLS_LOG_LEVEL="ERROR",
    )
    os.environ.pop("AWS_ENDPOINT_URL", None)


class MotoServer:
    """The local stack's moto server (:func:`ecscp.local.moto_server.start_server`) in a child
    process, so its CPU is not charged to the executor, with the benchmarks' patches only
    (``benchmarks/moto_child.py``: the local stack's other patches change what the executors see)."""

    def __init__(self, *, raw: bool = False) -> None:
        self.raw = raw
        self.endpoint = ""
        self.port = 0
        self._process: subprocess.Popen[bytes] | None = None
        self._http: httpx.Client | None = None

    def __enter__(self) -> MotoServer:
        env = dict(
            os.environ,
            PYTHONPATH=os.pathsep.join(filter(None, [str(PROJECT_ROOT), os.environ.get("PYTHONPATH")])),
        )
        self._process, self.endpoint = start_server(
            subprocess.DEVNULL,
            module="benchmarks.moto_child",
            args=["--raw"] if self.raw else [],
            timeout=60,
            env=env,
        )
        self.port = int(self.endpoint.rsplit(":", 1)[1])
        self._http = httpx.Client(base_url=self.endpoint, timeout=60)
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._http is not None:
            self._http.close()
        stop_child(self._process, grace_seconds=10)

    @property
    def http(self) -> httpx.Client:
        assert self._http is not None, "the moto server is not started"
        return self._http

    @property
    def pid(self) -> int:
        assert self._process is not None
        return self._process.pid

    def reset(self) -> None:
        """Forget every resource, so one scenario's data never slows down the next one's scans."""
        self.http.post("/moto-api/reset").raise_for_status()
        self.pin_ecs_tasks()

    def pin_ecs_tasks(self) -> None:
        response = self.http.post(
            "/moto-api/state-manager/set-transition",
            json={"model_name": "ecs::task", "transition": PINNED_TRANSITION},
        )
        response.raise_for_status()

    def client(self, service: str) -> Any:
        return aws_client(service, self.endpoint, REGION, config=NO_RETRY)

    def airflow_connection(self) -> str:
        """``AIRFLOW_CONN_AWS_DEFAULT`` for this server (the provider's hook reads endpoint_url)."""
        return json.dumps(
            {
                "conn_type": "aws",
                "login": FAKE_CREDENTIALS["aws_access_key_id"],
                "password": FAKE_CREDENTIALS["aws_secret_access_key"],
                "extra": {
                    "endpoint_url": self.endpoint,
                    "region_name": REGION,
                    "config_kwargs": {"retries": {"total_max_attempts": 1}, "read_timeout": 600},
                },
            }
        )


class CallCounter:
    """Counts every AWS API call (and HTTP request) made by any botocore client of this process.

    Installed on ``botocore.session.Session.create_client`` so that clients made inside an
    executor (Airflow hooks make their own sessions) are counted too, with botocore's own
    ``before-call`` / ``before-send`` events: exact counts, not estimates.
    """

    def __init__(self) -> None:
        self.calls: collections.Counter[str] = collections.Counter()
        self.sends = 0
        #: Items returned by DynamoDB Query calls (what an incremental sync had to read).
        self.query_items = 0
        self._installed = False

    def install(self) -> None:
        if self._installed:
            return
        original = botocore.session.Session.create_client
        counter = self

        def create_client(session: botocore.session.Session, *args: Any, **kwargs: Any) -> Any:
            client = original(session, *args, **kwargs)
            client.meta.events.register("before-call.*.*", counter._on_call)
            client.meta.events.register("before-send.*.*", counter._on_send)
            client.meta.events.register("after-call.dynamodb.Query", counter._on_query)
            return client

        botocore.session.Session.create_client = create_client  # type: ignore[method-assign,assignment]
        self._installed = True

    def _on_call(self, model: Any, **_: Any) -> None:
        self.calls[f"{model.service_model.service_name}.{model.name}"] += 1

    def _on_send(self, **_: Any) -> None:
        self.sends += 1

    def _on_query(self, parsed: dict[str, Any], **_: Any) -> None:
        self.query_items += int(parsed.get("Count", 0))

    def reset(self) -> None:
        self.calls.clear()
        self.sends = 0
        self.query_items = 0

    @property
    def total(self) -> int:
        return sum(self.calls.values())

    def snapshot(self) -> dict[str, int]:
        return dict(sorted(self.calls.items()))

    @contextlib.contextmanager
    def measure(self) -> Iterator[CallCounter]:
        self.reset()
        yield self


COUNTER = CallCounter()


@dataclass
class Network:
    subnet: str
    security_group: str


class AwsFixture:
    """Creates the resources both executors need: ECS cluster and task definition, table, queue."""

    def __init__(self, server: MotoServer) -> None:
        self.server = server
        self.ecs: ECSClient = server.client("ecs")
        self.dynamodb: DynamoDBClient = server.client("dynamodb")
        self.sqs: SQSClient = server.client("sqs")
        self.ec2: EC2Client = server.client("ec2")
        self.network: Network | None = None
        self.queue_url = ""

    def create_all(self) -> None:
        self.create_ecs()
        self.create_table()
        self.create_queue()

    def create_ecs(self) -> None:
        # The local stack's ECS side (network, cluster, roles, task definition), shaped as moto's
        # RunTask needs it: both executors start tasks into what the local stack runs tasks in.
        setup = create_ecs_setup(self.server.endpoint, REGION, CLUSTER)
        self.network = Network(setup.subnet_id, setup.security_group_id)

    def create_table(self, name: str = TABLE) -> None:
        """The state table's key schema and indexes, as template.yaml declares them."""
        self.dynamodb.create_table(**state_table_definition(name))

    def create_queue(self) -> None:
        self.queue_url = self.sqs.create_queue(QueueName=QUEUE)["QueueUrl"]

    def network_kwargs(self) -> dict[str, Any]:
        assert self.network is not None
        return {
            "awsvpcConfiguration": {
                "subnets": [self.network.subnet],
                "securityGroups": [self.network.security_group],
                "assignPublicIp": "DISABLED",
            }
        }
