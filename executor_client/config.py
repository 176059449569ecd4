"""The executor's Airflow configuration section ``[ecs_control_plane]``: keys, defaults, docs.

Pure data (no Airflow import): ``provider.py`` publishes ``OPTIONS`` to Airflow so that
``airflow config list`` shows them, and the executor reads them with ``conf.get(SECTION, KEY,
fallback=DEFAULTS[KEY])``.
"""

from __future__ import annotations

from typing import Any, Final

SECTION: Final = "ecs_control_plane"

QUEUE_URL: Final = "queue_url"
STATE_TABLE: Final = "state_table"
REGION_NAME: Final = "region_name"
CONN_ID: Final = "conn_id"
CONTAINER_NAME: Final = "container_name"
CHECK_HEALTH_ON_STARTUP: Final = "check_health_on_startup"
OWNER_ID: Final = "owner_id"
SYNC_OVERLAP_SECONDS: Final = "sync_overlap_seconds"
FULL_RESYNC_INTERVAL_SECONDS: Final = "full_resync_interval_seconds"
MISSING_ITEM_GRACE_SECONDS: Final = "missing_item_grace_seconds"
MAX_SEND_ATTEMPTS: Final = "max_send_attempts"
END_TIMEOUT_SECONDS: Final = "end_timeout_seconds"
READ_TASK_LOGS: Final = "read_task_logs"


def env_name(key: str, team_name: str | None = None) -> str:
    """The environment variable that sets ``key`` for the executor of ``team_name`` (None: global).

    Airflow's form: ``AIRFLOW__ECS_CONTROL_PLANE__KEY``, and for a team's executor
    ``AIRFLOW__<TEAM>___ECS_CONTROL_PLANE__KEY`` (three underscores after the team). A team's
    executor reads only its team's values (environment, or the ``[<team>=ecs_control_plane]``
    section of airflow.cfg), never the global ones.
    """
    team = f"{team_name.upper()}___" if team_name else ""
    return f"AIRFLOW__{team}{SECTION.upper()}__{key.upper()}"


def section_name(team_name: str | None = None) -> str:
    """The airflow.cfg section that holds the settings of ``team_name``'s executor."""
    return f"{team_name}={SECTION}" if team_name else SECTION


#: provider.yaml-style option metadata; ``default`` is a string (or None), as Airflow expects.
OPTIONS: dict[str, dict[str, Any]] = {
    QUEUE_URL: {
        "description": "URL of the control plane's run-request SQS queue (stack output RunRequestQueueUrl). "
        "Required.\n",
        "type": "string",
        "example": "https://sqs.us-east-1.amazonaws.com/123456789012/airflow-ecscp-run-requests",
        "default": None,
    },
    STATE_TABLE: {
        "description": "Name of the control plane's DynamoDB state table (stack output StateTableName). "
        "Required.\n",
        "type": "string",
        "example": "airflow-ecscp-state",
        "default": None,
    },
    REGION_NAME: {
        "description": "AWS region of the control plane stack. Empty: the region of the AWS connection "
        "or of the environment.\n",
        "type": "string",
        "example": "us-east-1",
        "default": None,
    },
    CONN_ID: {
        "description": "Airflow AWS connection whose credentials the scheduler uses for SQS and DynamoDB. "
        "Empty: boto3's default credential chain.\n",
        "type": "string",
        "example": "aws_default",
        "default": "aws_default",
    },
    CONTAINER_NAME: {
        "description": "Name of the Airflow container in the task definition; must match the stack's "
        "ContainerName parameter. Used to refuse a task's executor_config before it is sent.\n",
        "type": "string",
        "example": "airflow",
        "default": "airflow",
    },
    CHECK_HEALTH_ON_STARTUP: {
        "description": "Check at scheduler start that the queue, the table and its owner and active "
        "indexes are reachable, and that the control plane found its stack's settings able to run "
        "tasks (its reconciler's last check against ECS); refuse to start otherwise, naming the "
        "setting or stack parameter to fix.\n",
        "type": "boolean",
        "example": "True",
        "default": "True",
    },
    OWNER_ID: {
        "description": "Identity this executor writes into run requests; it only reads state items of "
        "this owner. Must be unique per running scheduler. Empty: generated per executor instance, "
        "unique: [<team>-]<hostname>-<pid>[-job<scheduler job id>]-<8 hex digits>.\n",
        "type": "string",
        "example": "scheduler-a",
        "default": None,
    },
    SYNC_OVERLAP_SECONDS: {
        "description": "Each sync reads the items changed since the newest one it saw minus this "
        "overlap, so writes that become visible after a newer one (write latency, index lag, "
        "clock skew) are not missed. Versions already applied cost no parsing; a write later than "
        "this is found by the safety net.\n",
        "type": "integer",
        "example": "1",
        "default": "1",
    },
    FULL_RESYNC_INTERVAL_SECONDS: {
        "description": "About every this many seconds the executor re-checks every task it "
        "tracks, a safety net under the incremental read: it reads the in-flight items of the "
        "active index and, by key, the tracked tasks not found there, one DynamoDB call per "
        "heartbeat.\n",
        "type": "integer",
        "example": "60",
        "default": "60",
    },
    MISSING_ITEM_GRACE_SECONDS: {
        "description": "A task sent this long ago that still has no state item is reported in the "
        "logs and the task's audit log (the request may be stuck or in the dead-letter queue). "
        "Airflow's [scheduler] task_queued_timeout still decides when it fails.\n",
        "type": "integer",
        "example": "300",
        "default": "300",
    },
    MAX_SEND_ATTEMPTS: {
        "description": "Heartbeats on which a run request may fail to be sent to SQS before its task "
        "is failed. Failures caused by expired credentials do not count.\n",
        "type": "integer",
        "example": "10",
        "default": "10",
    },
    END_TIMEOUT_SECONDS: {
        "description": "On scheduler shutdown, how long end() waits for tracked tasks to finish "
        "(syncing meanwhile) before it returns and leaves them to be adopted.\n",
        "type": "integer",
        "example": "60",
        "default": "60",
    },
    READ_TASK_LOGS: {
        "description": "Show a running task's ECS container log in Airflow's task log view: the "
        "process serving the view (the api-server) reads, for each submission of the try, the "
        "CloudWatch Logs stream (awslogs) the control plane recorded for its ECS task, with this "
        "section's connection and region, and appends the stop code and reason of a task that "
        "failed. It needs the state_table setting in that process too, and logs:GetLogEvents on "
        "the task definition's log group (deploy the stack with TaskLogGroupName, or with Image: "
        "the task log group the stack creates; SchedulerPolicy then grants it, and its "
        "AirflowEnvironment output turns this option on). Airflow asks only "
        "while the task instance is running; a finished try's log comes from Airflow's own (remote) "
        "logging.\n",
        "type": "boolean",
        "example": "True",
        "default": "False",
    },
}

DEFAULTS: dict[str, str | None] = {key: option["default"] for key, option in OPTIONS.items()}

SECTION_DESCRIPTION = (
    "Settings of executor_client.EcsControlPlaneExecutor, which hands Airflow tasks to the "
    "event-driven ECS control plane (SQS run requests, DynamoDB state table).\n"
)
