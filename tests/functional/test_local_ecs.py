"""The local ECS: its moto side (ecscp.local.ecs.backend: notices for the host, one record per
change) and the host (ecscp.local.ecs.host: which container it runs, its fault injection).

In this process, inside ``mock_aws``, with the two ECS lifecycle patches applied for each test
and put back after it.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from moto import mock_aws
from moto.moto_api import state_manager

from ecs_control_plane.contract import ATTEMPT_ENV, TASK_KEY_ENV
from ecscp.local.ecs.backend import BACKEND
from ecscp.local.ecs.host import SPOT_INTERRUPTED, SPOT_UNAVAILABLE_ENV, EcsHost
from ecscp.local.ecs.profiles import ON_DEMAND, SPOT
from ecscp.local.ecs.records import ContainerOverride, ContainerState, TaskNotice, TaskStateRecord
from ecscp.local.moto_patches import _replace, ecs_stop_task, ecs_task_lifecycle
from tests.support.aws import CLUSTER, CONTAINER
from tests.support.moto_ecs import Ecs, EcsEvents


@pytest.fixture
def ecs() -> Iterator[Ecs]:
    transitions = dict(state_manager._transitions)
    with mock_aws():
        ecs_task_lifecycle.apply()
        ecs_stop_task.apply()
        try:
            yield Ecs()
        finally:
            _replace.restore()
            BACKEND.reset()
            state_manager._transitions.clear()
            state_manager._transitions.update(transitions)


def _stopped(arn: str, stop_code: str, reason: str, exit_code: int | None) -> TaskStateRecord:
    return TaskStateRecord(
        task_arn=arn,
        last_status="STOPPED",
        container=ContainerState(last_status="STOPPED", exit_code=exit_code),
        stop_code=stop_code,
        stopped_reason=reason,
        stopped_at=time.time(),
    )


def test_a_notice_wakes_the_waiting_host_and_is_dropped_once_read_past(ecs: Ecs) -> None:
    got: list[list[str]] = []
    waiter = threading.Thread(
        target=lambda: got.append([n.kind for n in BACKEND.notices(after=0, wait_seconds=10)])
    )
    waiter.start()
    time.sleep(0.2)
    started = time.monotonic()
    arn = ecs.run(overrides={"containerOverrides": [{"name": CONTAINER, "command": ["true"]}]})
    waiter.join(timeout=5)
    assert got == [["run"]]
    assert time.monotonic() - started < 5  # woken by RunTask, not by the wait running out

    ecs.client.stop_task(cluster=CLUSTER, task=arn, reason="bye")
    pending = BACKEND.notices(after=0, wait_seconds=0)
    assert [(n.kind, n.task_arn) for n in pending] == [("run", arn), ("stop", arn)]
    assert pending[1].stopped_reason == "bye"
    assert BACKEND.notices(after=pending[0].seq, wait_seconds=0) == [pending[1]]
    assert BACKEND.notices(after=pending[1].seq, wait_seconds=0) == []


def test_a_run_notice_carries_the_log_configuration_of_the_revision_the_task_runs(ecs: Ecs) -> None:
    # GIVEN a new revision whose Airflow container logs with awslogs
    awslogs = {"logDriver": "awslogs", "options": {"awslogs-group": "/ecs/x", "awslogs-stream-prefix": "ecs"}}
    ecs.client.register_task_definition(
        family="airflow",
        networkMode="awsvpc",
        requiresCompatibilities=["FARGATE"],
        cpu="512",
        memory="1024",
        containerDefinitions=[
            {"name": CONTAINER, "image": "airflow", "memory": 1024, "logConfiguration": awslogs}
        ],
    )
    # WHEN a task of it starts: THEN the host's notice says where the container logs
    ecs.run()
    [notice] = BACKEND.notices(after=0, wait_seconds=0)
    assert notice.log_configurations == {CONTAINER: awslogs}


def test_a_stoptask_taken_before_the_hosts_record_wins_over_its_stop_code(ecs: Ecs) -> None:
    events = EcsEvents()
    arn = ecs.run()
    BACKEND.apply(
        TaskStateRecord(task_arn=arn, last_status="RUNNING", container=ContainerState(last_status="RUNNING"))
    )
    # WHEN StopTask arrives as the container exits on its own, and the host records that exit
    ecs.client.stop_task(cluster=CLUSTER, task=arn, reason="Airflow asked")
    BACKEND.apply(_stopped(arn, "EssentialContainerExited", "Essential container in task exited", 0))

    # THEN the task ended as stopped by the user, with the container's exit code
    (task,) = ecs.describe(arn)
    assert (task["lastStatus"], task["stopCode"], task["stoppedReason"]) == (
        "STOPPED",
        "UserInitiated",
        "Airflow asked",
    )
    assert task["containers"][0]["exitCode"] == 0
    # AND every change was one event, in order, versions increasing with the task's
    changes = [(e["lastStatus"], e["desiredStatus"], e["version"]) for e in events.received()]
    assert changes == [
        ("PROVISIONING", "RUNNING", 1),
        ("RUNNING", "RUNNING", 2),
        ("RUNNING", "STOPPED", 3),
        ("STOPPED", "STOPPED", 4),
    ]
    assert task["version"] == 4


def test_a_task_that_ends_on_its_own_keeps_the_hosts_stop_code(ecs: Ecs) -> None:
    arn = ecs.run()
    BACKEND.apply(_stopped(arn, "EssentialContainerExited", "Essential container in task exited", 3))
    (task,) = ecs.describe(arn)
    assert (task["stopCode"], task["containers"][0]["exitCode"], task["desiredStatus"]) == (
        "EssentialContainerExited",
        3,
        "STOPPED",
    )
    assert "stoppingAt" in task
    assert "executionStoppedAt" in task


def test_a_record_for_a_stopped_or_unknown_task_is_refused(ecs: Ecs) -> None:
    arn = ecs.run()
    BACKEND.apply(_stopped(arn, "EssentialContainerExited", "done", 0))
    with pytest.raises(LookupError):
        BACKEND.apply(_stopped(arn, "EssentialContainerExited", "done", 0))
    with pytest.raises(LookupError):
        BACKEND.apply(_stopped(arn.replace(arn[-4:], "0000"), "EssentialContainerExited", "done", 0))


# --- the host, driven by notices (no moto: its records are read from its outbox) ---------------


def _notice(seq: int, kind: str, arn: str, command: list[str] | None = None) -> TaskNotice:
    return TaskNotice(
        seq=seq,
        kind=kind,  # type: ignore[arg-type]
        task_arn=arn,
        cluster_arn=f"arn:aws:ecs:us-east-1:123456789012:cluster/{CLUSTER}",
        started_by="ecscp-test",
        created_at=time.time(),
        overrides=[ContainerOverride(name=CONTAINER, command=command or [])],
        stopped_reason="Airflow asked" if kind == "stop" else "",
    )


def test_a_task_stopped_while_it_waits_for_capacity_ends_without_ever_running(tmp_path: Path) -> None:
    host = EcsHost(
        endpoint_url="http://127.0.0.1:9",  # never reached: nothing is posted in this test
        region="us-east-1",
        cluster=CLUSTER,
        container_name=CONTAINER,
        state_dir=tmp_path,
        task_env={},
        started_by="ecscp-test",
        max_concurrent=1,
    )
    host.tasks_dir.mkdir(parents=True)
    sleeper = [sys.executable, "-c", "import time; time.sleep(30)"]
    try:
        # GIVEN one container running and a second task waiting for capacity
        host._handle(_notice(1, "run", "arn:task/running", sleeper))
        host._handle(_notice(2, "run", "arn:task/waiting", sleeper))
        host._launch()
        assert [r.last_status for r in host._outbox] == ["PENDING", "PENDING", "RUNNING"]

        # WHEN StopTask stops the waiting one, and capacity frees up later
        host._outbox.clear()
        host._handle(_notice(3, "stop", "arn:task/waiting"))
        running = host._tasks["arn:task/running"]
        host._exited(running, 0)
        host._launch()

        # THEN it ended stopped by the user without starting, and nothing else ran
        stopped = {r.task_arn: r for r in host._outbox if r.last_status == "STOPPED"}
        assert (stopped["arn:task/waiting"].stop_code, stopped["arn:task/waiting"].started_at) == (
            "UserInitiated",
            None,
        )
        assert [r.last_status for r in host._outbox if r.task_arn == "arn:task/waiting"] == ["STOPPED"]
        assert host._tasks["arn:task/waiting"].process is None
    finally:
        host.stop()


class RecordingDriver:
    """Stands in for the host's awslogs driver: what each stream got, and when it was closed."""

    def __init__(self) -> None:
        self.lines: dict[str, list[str]] = {}
        self.closed: list[str] = []

    def open(self, location: Any) -> Any:
        return lambda lines: self.lines.setdefault(location.stream, []).extend(line for _, line in lines)

    def close(self, location: Any, timeout: float = 5.0) -> bool:
        time.sleep(0.2)  # as if the last lines took a while to go out
        self.closed.append(location.stream)
        return True

    def stop(self) -> None:
        pass


def test_a_container_is_recorded_stopped_only_once_its_last_lines_went_to_its_stream(tmp_path: Path) -> None:
    # GIVEN a host whose task definition gives the Airflow container an awslogs configuration
    host = EcsHost(
        endpoint_url="http://127.0.0.1:9",
        region="eu-west-1",
        cluster=CLUSTER,
        container_name=CONTAINER,
        state_dir=tmp_path,
        task_env={},
        started_by="ecscp-test",
    )
    driver = RecordingDriver()
    host.awslogs = driver  # type: ignore[assignment]
    host.tasks_dir.mkdir(parents=True)
    arn = "arn:aws:ecs:eu-west-1:123456789012:task/airflow/0123abcd"
    notice = _notice(1, "run", arn, [sys.executable, "-c", "print('hello'); print('bye')"])
    awslogs = {"logDriver": "awslogs", "options": {"awslogs-group": "/ecs/x", "awslogs-stream-prefix": "ecs"}}
    notice = notice.model_copy(update={"log_configurations": {CONTAINER: awslogs}})
    try:
        # WHEN its container runs and exits
        host._handle(notice)
        host._launch()
        exited = host._inbox.get(timeout=10)

        # THEN its lines went to <prefix>/<container>/<task id> in the task's region, and the exit
        # reached the host only after the stream was closed
        task = host._tasks[arn]
        assert task.log_location is not None
        assert (task.log_location.group, task.log_location.region) == ("/ecs/x", "eu-west-1")
        assert driver.lines == {"ecs/airflow/0123abcd": ["hello", "bye"]}
        assert driver.closed == ["ecs/airflow/0123abcd"]
        assert getattr(exited, "returncode", None) == 0
    finally:
        host.stop()


def test_a_run_notice_carries_the_capacity_provider_the_task_was_placed_on(ecs: Ecs) -> None:
    # GIVEN a cluster with Fargate's capacity providers
    events = EcsEvents()
    ecs.client.put_cluster_capacity_providers(
        cluster=CLUSTER, capacityProviders=[ON_DEMAND, SPOT], defaultCapacityProviderStrategy=[]
    )
    # WHEN a task is started on FARGATE_SPOT, and another with the FARGATE launch type
    (spot,) = ecs.client.run_task(
        cluster=CLUSTER,
        taskDefinition="airflow",
        capacityProviderStrategy=[{"capacityProvider": SPOT, "weight": 1}],
        networkConfiguration=ecs.network,
    )["tasks"]
    launched = ecs.run()

    # THEN the host's notice says where each was placed, as DescribeTasks and the event do
    notices = {n.task_arn: n.capacity_provider for n in BACKEND.notices(after=0, wait_seconds=0)}
    assert notices == {spot["taskArn"]: SPOT, launched: ""}
    assert ecs.describe(spot["taskArn"])[0]["capacityProviderName"] == SPOT
    assert [e.get("capacityProviderName") for e in events.received()] == [SPOT, None]


def _host(tmp_path: Path) -> EcsHost:
    host = EcsHost(
        endpoint_url="http://127.0.0.1:9",  # never reached: records stay in the outbox
        region="us-east-1",
        cluster=CLUSTER,
        container_name=CONTAINER,
        state_dir=tmp_path,
        task_env={},
        started_by="ecscp-test",
    )
    host.tasks_dir.mkdir(parents=True)
    return host


def _keyed(notice: TaskNotice, key: str, container: str = CONTAINER, **environment: str) -> TaskNotice:
    """The notice with one override, for ``container``, carrying the task key (as run_task sets it)."""
    (override,) = notice.overrides
    keyed = override.model_copy(
        update={"name": container, "environment": {TASK_KEY_ENV: key, ATTEMPT_ENV: "1", **environment}}
    )
    return notice.model_copy(update={"overrides": [keyed]})


def test_the_container_carrying_the_task_key_is_run_even_when_it_is_not_the_configured_one(
    tmp_path: Path,
) -> None:
    # GIVEN a host configured for container "airflow", and a task of a profile whose task
    # definition's Airflow container is "worker" (its own environment and awslogs settings)
    host = _host(tmp_path)
    driver = RecordingDriver()
    host.awslogs = driver  # type: ignore[assignment]
    arn = "arn:aws:ecs:us-east-1:123456789012:task/airflow/0badcafe"
    prints_size = [sys.executable, "-c", "import os; print(os.environ['ECSCP_TASK_SIZE'])"]
    awslogs = {"logDriver": "awslogs", "options": {"awslogs-group": "/ecs/x", "awslogs-stream-prefix": "ecs"}}
    notice = _keyed(_notice(1, "run", arn, prints_size), "ti|d|t|r|-1|1|1", container="worker")
    notice = notice.model_copy(
        update={
            "environments": {
                CONTAINER: {"ECSCP_TASK_SIZE": "standard"},
                "worker": {"ECSCP_TASK_SIZE": "large"},
            },
            "log_configurations": {CONTAINER: {"logDriver": "none"}, "worker": awslogs},
        }
    )
    try:
        # WHEN it runs to its end
        host._handle(notice)
        host._launch()
        host._handle(host._inbox.get(timeout=10))

        # THEN the host ran "worker": its command, its environment, its log stream, its exit code
        task = host._tasks[arn]
        assert (task.container_name, task.key, task.attempt) == ("worker", "ti|d|t|r|-1|1|1", 1)
        assert driver.lines == {"ecs/worker/0badcafe": ["large"]}
        (stopped,) = [r for r in host._outbox if r.last_status == "STOPPED"]
        assert (stopped.stop_code, stopped.container.exit_code) == ("EssentialContainerExited", 0)
        assert task.identity()["container_name"] == "worker"
    finally:
        host.stop()


@pytest.mark.parametrize(("placed_on", "interrupted"), [(SPOT, True), (ON_DEMAND, False), ("", False)])
def test_spot_unavailable_stops_only_a_start_on_fargate_spot_before_it_starts(
    tmp_path: Path, placed_on: str, interrupted: bool
) -> None:
    # GIVEN a task whose override asks for one Spot capacity shortage, placed on `placed_on`
    host = _host(tmp_path)
    arn = "arn:aws:ecs:us-east-1:123456789012:task/airflow/5907"
    notice = _keyed(
        _notice(1, "run", arn, [sys.executable, "-c", "pass"]),
        "ti|d|t|r|-1|1|1",
        **{SPOT_UNAVAILABLE_ENV: "1"},
    )
    try:
        # WHEN the host admits it
        host._handle(notice.model_copy(update={"capacity_provider": placed_on}))
        host._launch()

        # THEN on FARGATE_SPOT it stops as an interrupted Spot task, never started; elsewhere it runs
        task = host._tasks[arn]
        assert task.capacity_provider == (placed_on or None)
        # (its folder says which ECS task it is and where it was placed, started or not)
        identity = json.loads((host.tasks_dir / str(task.number) / "task.json").read_text())
        assert (identity["task_arn"], identity["capacity_provider"]) == (arn, placed_on or None)
        statuses = [r.last_status for r in host._outbox]
        if interrupted:
            assert statuses == ["PENDING", "STOPPED"]
            stopped = host._outbox[-1]
            assert (stopped.stop_code, stopped.stopped_reason) == ("SpotInterruption", SPOT_INTERRUPTED)
            assert (stopped.started_at, stopped.container.exit_code, task.process) == (None, None, None)
        else:
            assert statuses == ["PENDING", "RUNNING"]
    finally:
        host.stop()


def test_spot_unavailable_counts_only_the_starts_placed_on_fargate_spot(tmp_path: Path) -> None:
    # GIVEN a task key that asks for two Spot capacity shortages
    host = _host(tmp_path)
    command = [sys.executable, "-c", "pass"]

    def start(n: int, placed_on: str) -> str:
        arn = f"arn:aws:ecs:us-east-1:123456789012:task/airflow/{n:04d}"
        notice = _keyed(_notice(n, "run", arn, command), "ti|d|t|r|-1|1|1", **{SPOT_UNAVAILABLE_ENV: "2"})
        host._handle(notice.model_copy(update={"capacity_provider": placed_on}))
        return str(host._tasks[arn].stop_code)

    try:
        # WHEN it starts on Spot, on demand, then twice more on Spot
        # THEN the first two Spot starts are interrupted, the on-demand one and the third Spot one run
        assert [start(1, SPOT), start(2, ON_DEMAND), start(3, SPOT), start(4, SPOT)] == [
            "SpotInterruption",
            "None",
            "SpotInterruption",
            "None",
        ]
    finally:
        host.stop()
