"""``ecscp redrive``: how a dead letter is named when it is listed or moved."""

from __future__ import annotations

import json

from ecscp.operations.redrive import describe_run_request, describe_task_event
from tests.support.events import load_event
from tests.support.requests import SECRET_TOKEN, run_request, task_key


def test_a_run_request_is_named_by_kind_key_attempt_and_owner_never_its_command() -> None:
    text = describe_run_request(run_request(task_key("extract"), attempt=2).model_dump_json())
    assert text == f"run {task_key('extract')} attempt 2 owner scheduler-a"
    assert SECRET_TOKEN not in text


def test_a_malformed_run_request_says_so_with_its_key() -> None:
    body = json.dumps({"kind": "run", "key": task_key(), "owner": "a", "command": [SECRET_TOKEN], "extra": 1})
    text = describe_run_request(body)
    assert text.startswith("malformed (")
    assert task_key() in text
    assert SECRET_TOKEN not in text


def test_a_task_event_is_named_by_status_task_and_key() -> None:
    event = load_event("ecs_task_stopped_exit1.json")
    text = describe_task_event(json.dumps(event))
    assert text.startswith("STOPPED ")
    assert "ti|" in text


def test_what_is_not_a_task_event_says_so() -> None:
    assert describe_task_event("{}") == "not an ECS task state change event"
