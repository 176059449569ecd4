"""The executor's AWS clients, made from the Airflow AWS connection (as the provider's executor does).

Only SQS (send run/stop requests) and DynamoDB (read and adopt state items) are needed: the
scheduler never calls ECS. With ``read_task_logs``, the process serving Airflow's log view also
reads CloudWatch Logs (``task_logs.py``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from botocore.config import Config
from botocore.exceptions import ClientError, NoCredentialsError

from ecs_control_plane.gateways import RunRequestQueue
from ecs_control_plane.store import StateTable

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.client import DynamoDBClient
    from mypy_boto3_sqs.client import SQSClient

#: botocore's standard retry mode: throttling and 5xx are retried with jittered backoff inside
#: each call, so a sync rarely sees them.
CLIENT_CONFIG = Config(retries={"mode": "standard", "max_attempts": 5}, connect_timeout=5, read_timeout=15)
#: Reads for Airflow's log view, which a person waits for: fewer retries, shorter waits.
LOG_READ_CONFIG = Config(retries={"mode": "standard", "max_attempts": 3}, connect_timeout=3, read_timeout=10)

#: Error codes that mean "these credentials no longer work": the clients are made again.
CREDENTIAL_ERROR_CODES = frozenset(
    {
        "ExpiredTokenException",
        "ExpiredToken",
        "RequestExpired",
        "InvalidClientTokenId",
        "UnrecognizedClientException",
        "InvalidSignatureException",
    }
)


def is_credential_error(exc: BaseException) -> bool:
    if isinstance(exc, NoCredentialsError):
        return True
    if isinstance(exc, ClientError):
        return str(exc.response.get("Error", {}).get("Code", "")) in CREDENTIAL_ERROR_CODES
    return False


def mentions_credential_error(reason: str) -> bool:
    """Whether a send failure's text (as RunRequestQueue.send_batch reports it) is a credential error."""
    return any(code in reason for code in CREDENTIAL_ERROR_CODES) or "NoCredentialsError" in reason


@dataclass(frozen=True)
class ControlPlaneClients:
    queue: RunRequestQueue
    table: StateTable


def team_connection(conn_id: str, team_name: str) -> Any:
    """The connection ``conn_id`` as team ``team_name`` sees it: its team's own, else the global one.

    Airflow's hooks look connections up without a team (``BaseHook.get_connection``), so a
    team-scoped connection (``AIRFLOW_CONN__<TEAM>___<CONN_ID>`` or one the metadata database
    assigns to the team) would be missed and the AWS hook would fall back to the default
    credential chain without a word. Airflow >= 3.2's ``Connection.get_connection_from_secrets``
    takes the team.
    """
    from airflow.models.connection import Connection  # noqa: PLC0415

    return Connection.get_connection_from_secrets(conn_id, team_name=team_name)


def multi_team_enabled() -> bool:
    """``[core] multi_team``: only then does Airflow look connections up by team."""
    from airflow.configuration import conf  # noqa: PLC0415

    return conf.getboolean("core", "multi_team", fallback=False)


def _client(
    service: str,
    conn_id: str | None,
    region_name: str | None,
    team_name: str | None,
    config: Config = CLIENT_CONFIG,
) -> Any:
    # Imported here: the provider's hook module is heavy and only needed once the executor starts.
    from airflow.providers.amazon.aws.hooks.base_aws import AwsBaseHook  # noqa: PLC0415

    class TeamAwsHook(AwsBaseHook):
        """The provider's AWS hook, finding its connection the way the executor's team does."""

        def get_connection(self, conn_id: str) -> Any:  # type: ignore[override]
            if team_name and multi_team_enabled():
                return team_connection(conn_id, team_name)
            return super().get_connection(conn_id)

    hook = TeamAwsHook(aws_conn_id=conn_id, region_name=region_name, client_type=service, config=config)
    return hook.get_client_type(region_name=region_name)


def make_clients(
    *,
    queue_url: str,
    state_table: str,
    conn_id: str | None,
    region_name: str | None,
    team_name: str | None = None,
) -> ControlPlaneClients:
    """Fresh clients (and so freshly resolved credentials) for the queue and the state table."""
    sqs: SQSClient = _client("sqs", conn_id, region_name, team_name)
    dynamodb: DynamoDBClient = _client("dynamodb", conn_id, region_name, team_name)
    return ControlPlaneClients(queue=RunRequestQueue(sqs, queue_url), table=StateTable(dynamodb, state_table))


def describe_error(exc: BaseException) -> str:
    """An AWS error as its code and message (``Code: message``); other errors by type and text."""
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        return f"{error.get('Code', 'Error')}: {error.get('Message', '')}".strip()
    return f"{type(exc).__name__}: {exc}"


def make_log_reader_table(
    *, state_table: str, conn_id: str | None, region_name: str | None, team_name: str | None = None
) -> StateTable:
    """The state table, for the log view's reads (a submission's task and log stream)."""
    return StateTable(_client("dynamodb", conn_id, region_name, team_name, LOG_READ_CONFIG), state_table)


def make_logs_client(*, conn_id: str | None, region_name: str | None, team_name: str | None = None) -> Any:
    """A CloudWatch Logs client for the log view, in the region of a task's log group."""
    return _client("logs", conn_id, region_name, team_name, LOG_READ_CONFIG)
