"""What the running Airflow hands an executor, release by release, and how each becomes a request.

Airflow 3.1, 3.2 and 3.3 differ in the workloads they send and the keys they name them by (see
``docs/executor.md``, "Airflow releases"). This module is the one place that knows:

- ``ExecuteTask``: every release; key ``TaskInstanceKey``.
- ``ExecuteCallback``: handed over from 3.2 on, keyed by a plain ``str`` on 3.2 and by a
  ``CallbackKey`` (``.id``) on 3.3. Only 3.3's task runner (``execute_workload``) can run one in a
  container. Callbacks are still claimed on 3.2 (``supports_callbacks``): the scheduler routes a
  callback to its DAG's executor whatever that executor claims, and an executor that does not
  claim them makes ``queue_workload`` raise out of the scheduler loop, again after every restart.
  On 3.2 each callback is failed at once with the reason, which Airflow stores as its output.
- ``TestConnection`` (3.3): not claimed (``supports_connection_test`` stays False), so the
  scheduler fails such a request with "does not support connection testing" instead of queueing
  it; a connection test must answer within ``[connection_test] timeout`` (60 s), less than an ECS
  task takes to start.

Anything else that reaches the executor is failed alone with a reason; nothing here raises into
the scheduler's heartbeat.
"""

from __future__ import annotations

import base64
import json
from enum import Enum
from typing import Any

from airflow.executors.base_executor import BaseExecutor
from airflow.models.taskinstancekey import TaskInstanceKey

from ecs_control_plane.contract import TaskKey, now_ms

#: Airflow's key of one workload (TaskInstanceKey; a callback's str or CallbackKey).
AirflowKey = Any

WORKLOAD_MODULE = "airflow.sdk.execution_time.execute_workload"

_ExecuteCallback: type[Any] | None
try:  # Airflow >= 3.2 hands callbacks over; the module path is the same on 3.2 and 3.3.
    from airflow.executors.workloads.callback import ExecuteCallback as _ExecuteCallback
except ImportError:  # Airflow 3.1
    _ExecuteCallback = None
ExecuteCallback = _ExecuteCallback


def callbacks_runnable(base: type, execute_callback: type | None) -> bool:
    """Whether a container can run an ``ExecuteCallback`` of this Airflow.

    The task runner's ``execute_workload`` runs one only where ``BaseExecutor.run_workload``
    exists (Airflow >= 3.3); 3.2 hands callbacks to executors but its ``execute_workload``
    refuses them ("does not know how to handle"), so claiming them there would fail every one.
    """
    return execute_callback is not None and hasattr(base, "run_workload")


#: Whether the running Airflow hands callbacks to executors at all (>= 3.2): claim them, so that
#: one routed here never raises out of the scheduler loop.
SUPPORTS_CALLBACKS = ExecuteCallback is not None
#: Whether a container can run them (>= 3.3); where not, each is failed with this reason.
CALLBACKS_RUNNABLE = callbacks_runnable(BaseExecutor, ExecuteCallback)
CALLBACKS_NOT_RUNNABLE_REASON = (
    "this Airflow's task runner (airflow.sdk.execution_time.execute_workload) cannot run an "
    "executor callback in a container (Airflow >= 3.3 can): route the DAG's callbacks to an "
    "executor that runs them in process (e.g. LocalExecutor), or upgrade Airflow"
)
#: From Airflow 3.2 on, the scheduler gives each queueing of a task instance a fresh UUID as its
#: external_executor_id, stored with the QUEUED state (so it survives a scheduler crash) and
#: carried by the workload: it names the submission, and adoption finds the item from it.
PRE_ASSIGNED_IDS = hasattr(BaseExecutor, "pre_assigns_external_executor_id")


class WorkloadKind(Enum):
    """What the executor does with a workload."""

    TASK = "task"
    CALLBACK = "callback"
    #: A callback this Airflow cannot run in a container: failed, with the reason.
    CALLBACK_NOT_RUNNABLE = "callback_not_runnable"
    #: A workload type Airflow takes no event for here (a connection test, a later release's).
    UNSUPPORTED = "unsupported"


def kind_of(workload: Any) -> WorkloadKind:
    from airflow.executors import workloads as wl  # noqa: PLC0415 - Airflow imports it lazily too

    if isinstance(workload, wl.ExecuteTask):
        return WorkloadKind.TASK
    if ExecuteCallback is not None and isinstance(workload, ExecuteCallback):
        return WorkloadKind.CALLBACK if CALLBACKS_RUNNABLE else WorkloadKind.CALLBACK_NOT_RUNNABLE
    return WorkloadKind.UNSUPPORTED


def key_of_workload(workload: Any) -> AirflowKey | None:
    """The key Airflow files a workload under, for any workload type (None if it has none)."""
    callback = getattr(workload, "callback", None)
    if callback is not None:
        return getattr(callback, "key", None)
    try:
        return getattr(workload, "key", None)
    except Exception:  # noqa: BLE001 - a property of an unknown type may raise; then it has no key
        return None


def is_task_instance_key(key: AirflowKey) -> bool:
    return isinstance(key, TaskInstanceKey)


def workload_command(workload: Any) -> list[str]:
    """The container command for a workload, as the provider's ECS executor builds it."""
    return ["python", "-m", WORKLOAD_MODULE, "--json-string", workload.model_dump_json()]


def task_key_for(key: AirflowKey) -> TaskKey:
    """The contract's task key for an Airflow workload key.

    A TaskInstanceKey names a try; a callback is named by its id: 3.3's ``CallbackKey`` carries
    it as ``.id``, 3.2's key is the id itself (a ``str``).
    """
    if isinstance(key, TaskInstanceKey):
        return TaskKey(
            dag_id=key.dag_id,
            task_id=key.task_id,
            run_id=key.run_id,
            map_index=key.map_index,
            try_number=key.try_number,
        )
    callback_id = key if isinstance(key, str) else getattr(key, "id", None)
    if not isinstance(callback_id, str) or not callback_id:
        raise TypeError(f"cannot make a task key from {type(key).__name__}")
    return TaskKey.for_callback(callback_id)


def token_expiry_ms(workload: Any, fallback_seconds: float) -> int:
    """When the workload's token expires (its JWT ``exp``), else ``fallback_seconds`` from now.

    The payload is only read, not verified: the control plane needs the time, Airflow's API
    server checks the signature.
    """
    token = getattr(workload, "token", None)
    if isinstance(token, str) and token.count(".") == 2:
        payload = token.split(".")[1]
        try:
            claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
            expires = float(claims["exp"]) if isinstance(claims, dict) else None
        except (ValueError, KeyError, TypeError):
            expires = None
        if expires is not None and 0 < expires < 2**40:
            return int(expires * 1000)
    return now_ms() + int(fallback_seconds * 1000)
