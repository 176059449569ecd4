"""Adoption: a scheduler takes over the tries of one that died, and reports them as they end.

The submission comes from the task instance's ``external_executor_id``; the item moves to the new
owner through an ``adopt`` request (the scheduler writes nothing to the table). See
``docs/executor.md`` ("Adoption").
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from ecs_control_plane.contract import RunRequest, TaskKey, TaskState, TaskStateItem, is_submission_id, now_ms
from ecs_control_plane.store import UnreadableItemError

from .aws import ControlPlaneClients, describe_error
from .workloads import AirflowKey, task_key_for

if TYPE_CHECKING:
    from airflow.models.taskinstance import TaskInstance

    from .metrics import ExecutorMetrics

ADOPT_ATTEMPTS = 3
ADOPT_RETRY_SECONDS = 0.2
#: An adopt request not carried out after this long is sent again (it is idempotent).
ADOPT_RESEND_MS = 60_000


class AdoptionMixin:
    """``try_adopt_task_instances`` and the retries it leaves, for EcsControlPlaneExecutor."""

    if TYPE_CHECKING:
        owner: str
        log: Any
        running: set[Any]
        tracked: dict[str, AirflowKey]
        metrics: ExecutorMetrics
        _pending_adoption: dict[str, bool]
        _adopting: dict[str, int]
        _sent_at: dict[str, int]
        _outbox: dict[tuple[str, str], RunRequest]

        @property
        def clients(self) -> ControlPlaneClients: ...
        def _key_of(self, ti: Any) -> AirflowKey: ...
        def _track(self, encoded: str, key: AirflowKey) -> None: ...
        def _forget(self, encoded: str) -> None: ...
        def _untrack(self, encoded: str) -> None: ...
        def log_task_event(self, *, event: str, extra: str, ti_key: AirflowKey) -> None: ...
        def fail(self, key: Any, info: Any = None) -> None: ...

    def try_adopt_task_instances(self, tis: Sequence[TaskInstance]) -> Sequence[TaskInstance]:
        """Take over the submissions of tasks whose scheduler died; hand back what cannot be.

        The submission comes from the task instance's ``external_executor_id``. Its item moves
        to this owner whatever its state: a try that finished since the old scheduler's last sync
        is reported as it ended, not reset and run again. A submission whose run request is still
        on the queue gets a QUEUED item of this owner, so its task starts watched (or fails as
        overdue if the request never arrives). Only a try with no item and no known submission
        (a request of the previous contract) is handed back for reset. A DynamoDB error is not
        "no item": the try is tracked and its adoption retried on each sync.
        """
        not_adopted: list[TaskInstance] = []
        adopted: list[str] = []
        pending = 0
        for ti in tis:
            key = self._key_of(ti)
            external = getattr(ti, "external_executor_id", None)
            submission = str(external) if is_submission_id(external) else ""
            base = task_key_for(key)
            # With the submission known, its item is claimed even if its request has not arrived;
            # without it, the try's newest submission is looked up (or its v1 item).
            encoded = base.with_submission(submission).encode()
            claim = bool(submission)
            try:
                found = encoded if claim else self._find_submission(base, ti)
                item = self._adopt_item(found, claim) if found else None
            except (ClientError, BotoCoreError) as exc:
                self.log.warning(
                    "Could not adopt %s yet (%s); tracking it and retrying on each sync",
                    encoded,
                    describe_error(exc),
                )
                self._pending_adoption[encoded] = claim
                self._adopted(encoded, key)
                adopted.append(f"{encoded} (adoption pending)")
                pending += 1
                continue
            except UnreadableItemError as exc:
                self.log.error("Cannot adopt %s, handing it back: %s", encoded, exc)
                not_adopted.append(ti)
                continue
            if item is None or found is None:  # no item, none may be claimed: the scheduler resets it
                not_adopted.append(ti)
                continue
            self._adopted(found, key)
            adopted.append(f"{encoded} ({item.state.value}, {item.task_arn or 'no ECS task yet'})")
        if adopted:
            self.log.info(
                "Adopted %d task(s) as owner %s:\n\t%s", len(adopted), self.owner, "\n\t".join(adopted)
            )
        self.metrics.adoption(len(adopted) - pending, pending, len(not_adopted))
        return not_adopted

    def _find_submission(self, base: TaskKey, ti: Any) -> str | None:
        """The key of the try's newest submission, for a task instance that names none.

        That is a task instance of the v1 contract (its id was an ECS task ARN) or of an Airflow
        older than 3.3 whose scheduler died before recording the id. A QUEUED task instance
        whose newest submission already succeeded was queued again after it (the next poke of a
        sensor): that submission is not its own, and the task instance is handed back.
        """
        table = self.clients.table
        keys = table.submissions_of(base.try_key)
        if not keys:
            return base.try_key  # a v1 item, if any
        newest = table.get(keys[-1])
        if newest is None:
            return None
        queued = str(getattr(ti, "state", "") or "").lower().endswith("queued")
        if queued and newest.state is TaskState.SUCCESS:
            return None
        return newest.key

    def _adopted(self, encoded: str, key: AirflowKey) -> None:
        self._track(encoded, key)
        self._sent_at[encoded] = now_ms()
        self.running.add(key)

    def _adopt_item(self, encoded: str, claim: bool) -> TaskStateItem | None:
        """Read the item and ask the control plane to move it to this owner; None if there is none.

        The scheduler writes nothing to the table (its policy allows no write): an ``adopt``
        request makes ``run_task`` move the item, whatever its state, or create a QUEUED item of
        this owner when the submission's run request has not arrived yet (``claim``: its id is
        known). Until the move shows, the item is kept tracked (see :meth:`_apply`). DynamoDB
        errors are retried here, then raised (the caller keeps the adoption pending).
        """
        table = self.clients.table
        for attempt in range(ADOPT_ATTEMPTS):
            try:
                item = table.get(encoded)
                break
            except (ClientError, BotoCoreError):
                if attempt == ADOPT_ATTEMPTS - 1:
                    raise
                time.sleep(ADOPT_RETRY_SECONDS * 2**attempt)
        else:  # pragma: no cover - the loop breaks or raises
            return None
        if item is None and not claim:
            return None
        if item is None or item.owner != self.owner:
            self._request_adoption(encoded)
        return item or TaskStateItem(
            key=encoded, owner=self.owner, state=TaskState.QUEUED, awaiting_request=True
        )

    def _request_adoption(self, encoded: str) -> None:
        """Buffer an ``adopt`` request (sent with the next flush), and remember when it was asked."""
        self._outbox[("adopt", encoded)] = RunRequest(
            kind="adopt", key=encoded, owner=self.owner, reason="adopted by a new scheduler"
        )
        self._adopting[encoded] = now_ms()

    def _retry_pending_adoptions(self) -> None:
        for encoded, claim in list(self._pending_adoption.items()):
            airflow_key = self.tracked.get(encoded)
            try:
                found: str | None = encoded
                parsed = TaskKey.parse(encoded)
                if not claim and not parsed.submission:  # the submission is still to be found
                    found = self._find_submission(parsed, None)
                item = self._adopt_item(found, claim) if found else None
            except (ClientError, BotoCoreError) as exc:
                self.log.warning("Adoption of %s still pending: %s", encoded, describe_error(exc))
                return
            except UnreadableItemError as exc:
                self.log.error("Cannot adopt %s: %s", encoded, exc)
                item = found = None
            del self._pending_adoption[encoded]
            if item is not None and found is not None and found != encoded and airflow_key is not None:
                self._forget(encoded)
                self._adopted(found, airflow_key)
                continue
            if item is None and airflow_key is not None:
                reason = "adopted, but the control plane has no state for this try: it cannot be watched"
                self.log.error("Task %s: %s", encoded, reason)
                self.log_task_event(event="ecs control plane task lost", extra=reason, ti_key=airflow_key)
                self._untrack(encoded)
                self.fail(airflow_key)
