"""``ecscp status``'s read of the state table on moto: every try in flight, whoever's clock wrote it."""

from __future__ import annotations

from unittest import mock

import boto3
from moto import mock_aws

from ecs_control_plane import store
from ecs_control_plane.contract import now_ms
from ecs_control_plane.store import StateTable
from ecscp.operations.status import read_in_flight
from tests.support.aws import REGION, create_state_table
from tests.support.requests import task_key


def test_a_try_written_by_a_clock_ahead_of_the_operators_is_still_in_flight() -> None:
    with mock_aws():
        # GIVEN two queued tries, one written by a function whose clock is a minute ahead of ours
        client = boto3.client("dynamodb", region_name=REGION)
        create_state_table(client, "state")
        table = StateTable(client, "state")
        table.create_queued(task_key("now"), "scheduler-a", 1, None, {})
        with mock.patch.object(store, "now_ms", return_value=now_ms() + 60_000):
            table.create_queued(task_key("ahead"), "scheduler-a", 1, None, {})

        # WHEN status reads the tries in flight
        keys = {item.key for item in read_in_flight(table)}

    # THEN both are counted
    assert keys == {task_key("now"), task_key("ahead")}
