"""The public REST API (``/api/v2``) of a real Airflow 3 api-server: a small client, and the records it reads.

Nothing here is simulated: :class:`AirflowApi` talks HTTP to the api-server that
:class:`ecscp.local.airflow.LocalAirflow` starts, and the demo and the e2e tests read task
instances and DAG runs through it. It authenticates the way the simple auth manager with
``simple_auth_manager_all_admins`` allows (a token without credentials), the only mode
``LocalAirflow`` starts.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import httpx

TERMINAL_RUN_STATES = frozenset({"success", "failed"})

_HTTP_TIMEOUT_SECONDS = 30.0
_PAGE_LIMIT = 100


class AirflowError(RuntimeError):
    """Airflow could not be set up, a service stopped while it was needed, or the REST API
    refused a request."""


@dataclass(frozen=True)
class TaskInstance:
    """The parts of a task instance the demo reports."""

    dag_id: str
    task_id: str
    run_id: str
    map_index: int
    state: str | None
    try_number: int
    duration: float | None

    @classmethod
    def from_api(cls, body: Mapping[str, Any]) -> TaskInstance:
        return cls(
            dag_id=body["dag_id"],
            task_id=body["task_id"],
            run_id=body["dag_run_id"],
            map_index=int(body["map_index"]),
            state=body.get("state"),
            try_number=int(body.get("try_number") or 0),
            duration=body.get("duration"),
        )


@dataclass(frozen=True)
class DagRun:
    dag_id: str
    run_id: str
    state: str


@dataclass(frozen=True)
class ParsedDags:
    """What the dag-processor made of a DAGs folder."""

    dag_ids: list[str]
    import_errors: dict[str, str] = field(default_factory=dict)


def _part(value: str) -> str:
    """One URL path segment (run ids carry ``+`` and ``:``)."""
    return quote(value, safe="")


class AirflowApi:
    """A small client for the public REST API (``/api/v2``) of one api-server."""

    def __init__(self, base_url: str) -> None:
        self._http = httpx.Client(base_url=base_url, timeout=_HTTP_TIMEOUT_SECONDS)
        self._token: str | None = None

    def close(self) -> None:
        self._http.close()

    def healthy(self) -> dict[str, Any] | None:
        try:
            response = self._http.get("/api/v2/monitor/health")
        except httpx.TransportError:
            return None
        if response.status_code != httpx.codes.OK:
            return None
        body: dict[str, Any] = response.json()
        return body

    def _authorized(self) -> dict[str, str]:
        if self._token is None:
            # The simple auth manager hands out admin tokens without credentials when
            # simple_auth_manager_all_admins is on (the only mode this class starts).
            response = self._http.get("/auth/token")
            response.raise_for_status()
            self._token = str(response.json()["access_token"])
        return {"Authorization": f"Bearer {self._token}"}

    def _request(
        self, method: str, url: str, *, headers: Mapping[str, str] | None = None, **kwargs: Any
    ) -> Any:
        response = self._http.request(
            method, url, headers={**(headers or {}), **self._authorized()}, **kwargs
        )
        if response.status_code >= httpx.codes.BAD_REQUEST:
            raise AirflowError(f"{method} {url}: HTTP {response.status_code}: {response.text[:500]}")
        return response.json()

    def _pages(self, url: str, key: str, params: Mapping[str, Any] | None = None) -> Iterator[Any]:
        offset = 0
        while True:
            body = self._request(
                "GET", url, params={**(params or {}), "limit": _PAGE_LIMIT, "offset": offset}
            )
            items = body[key]
            yield from items
            offset += len(items)
            if not items or offset >= body["total_entries"]:
                return

    def dags(self) -> list[dict[str, Any]]:
        return list(self._pages("/api/v2/dags", "dags"))

    def import_errors(self) -> list[dict[str, Any]]:
        return list(self._pages("/api/v2/importErrors", "import_errors"))

    def unpause(self, dag_id: str) -> None:
        self._request("PATCH", f"/api/v2/dags/{_part(dag_id)}", json={"is_paused": False})

    def trigger(self, dag_id: str) -> str:
        body = self._request("POST", f"/api/v2/dags/{_part(dag_id)}/dagRuns", json={"logical_date": None})
        return str(body["dag_run_id"])

    def run_state(self, dag_id: str, run_id: str) -> str:
        body = self._request("GET", f"/api/v2/dags/{_part(dag_id)}/dagRuns/{_part(run_id)}")
        return str(body["state"])

    def task_instances(self, dag_id: str, run_id: str) -> list[TaskInstance]:
        url = f"/api/v2/dags/{_part(dag_id)}/dagRuns/{_part(run_id)}/taskInstances"
        return [TaskInstance.from_api(item) for item in self._pages(url, "task_instances")]

    def dag_runs(self, dag_id: str) -> list[DagRun]:
        runs = self._pages(f"/api/v2/dags/{_part(dag_id)}/dagRuns", "dag_runs")
        return [DagRun(run["dag_id"], run["dag_run_id"], run["state"]) for run in runs]

    def task_log(
        self, dag_id: str, run_id: str, task_id: str, try_number: int, map_index: int = -1
    ) -> list[dict[str, Any]]:
        """One try's log as the UI's first read gets it: every structured record (JSON)."""
        url = (
            f"/api/v2/dags/{_part(dag_id)}/dagRuns/{_part(run_id)}/taskInstances/{_part(task_id)}"
            f"/logs/{try_number}"
        )
        body = self._request(
            "GET", url, params={"map_index": map_index}, headers={"Accept": "application/json"}
        )
        content: list[dict[str, Any]] = body["content"]
        return content
