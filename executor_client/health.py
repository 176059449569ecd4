"""The executor's start-up health check: the stack it is configured for can take its work.

The scheduler holds no ECS rights, so it checks what it can reach (the queue, the table and its
indexes) and reads the control plane's own last check of its stack's settings against ECS.
Every problem is named with the setting (the team's variable, for a team's executor) or the
stack parameter to fix.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from airflow.sdk.exceptions import AirflowException
from botocore.exceptions import BotoCoreError, ClientError

from ecs_control_plane.contract import ACTIVE_INDEX, OWNER_INDEX

from . import config as cfg
from .aws import ControlPlaneClients, describe_error


class HealthCheckMixin:
    """``check_health`` for EcsControlPlaneExecutor."""

    if TYPE_CHECKING:
        queue_url: str | None
        state_table: str | None
        region_name: str | None
        conn_id: str | None
        log: Any

        @property
        def clients(self) -> ControlPlaneClients: ...
        def _env(self, key: str) -> str: ...
        def _name(self) -> str: ...

    def check_health(self) -> None:
        """Raise AirflowException naming what is unreachable and which setting to fix."""
        problems: list[str] = []
        try:
            clients = self.clients
        except (ClientError, BotoCoreError) as exc:
            raise AirflowException(
                f"cannot create AWS clients from connection {self.conn_id!r} "
                f"({self._env(cfg.CONN_ID)}, {self._env(cfg.REGION_NAME)}): {exc}"
            ) from exc
        try:
            clients.queue.attributes()
        except (ClientError, BotoCoreError) as exc:
            problems.append(
                f"queue {self.queue_url!r} is not reachable ({describe_error(exc)}): "
                f"check {self._env(cfg.QUEUE_URL)}"
            )
        try:
            table = clients.table.describe()
        except (ClientError, BotoCoreError) as exc:
            problems.append(
                f"table {self.state_table!r} is not reachable ({describe_error(exc)}): "
                f"check {self._env(cfg.STATE_TABLE)}"
            )
        else:
            indexes = {i.get("IndexName") for i in table.get("GlobalSecondaryIndexes", [])}
            missing = [name for name in (OWNER_INDEX, ACTIVE_INDEX) if name not in indexes]
            if missing:
                problems.append(
                    f"table {self.state_table!r} has no index {' or '.join(map(repr, missing))}: "
                    f"{self._env(cfg.STATE_TABLE)} must name the state table of a stack of this "
                    "version (an older stack's indexes have other names: deploy the stack again)"
                )
            else:
                problems += self._stack_problems(clients)
        if problems:
            raise AirflowException(
                f"{self._name()} health check failed (region {self.region_name or 'from connection'}, "
                f"connection {self.conn_id!r}): " + "; ".join(problems)
            )
        self.log.info("%s health check succeeded", self._name())

    def _stack_problems(self, clients: ControlPlaneClients) -> list[str]:
        """What the control plane found wrong with its stack's settings, the last time it checked.

        The scheduler holds no ECS rights, so it cannot see that the cluster is missing or the
        container unknown; the control plane checks (on every reconciler run, and as the local
        stack starts) and records the result in the table. No record yet is not an error.
        """
        try:
            report = clients.table.readiness()
        except (ClientError, BotoCoreError) as exc:
            self.log.warning("Could not read the control plane's settings check: %s", describe_error(exc))
            return []
        if report is None:
            self.log.warning(
                "The control plane has not checked its settings against ECS yet (its reconciler does "
                "on every run); starting without that check"
            )
            return []
        if report.ready:
            return []
        when = datetime.fromtimestamp(report.checked_at / 1000, tz=timezone.utc)
        checked = when.isoformat(timespec="seconds")
        found = "; ".join(f"stack parameter {p.parameter}: {p.message}" for p in report.problems)
        return [
            f"the control plane stack {report.control_plane!r} cannot run tasks (checked {checked}): "
            f"{found}. Fix these parameters and deploy the stack again (sam deploy --parameter-overrides)"
        ]
