"""Contract v1: task keys, run requests, client tokens, the failed-start detail."""

from __future__ import annotations

import json
from urllib.parse import quote

import pytest

from ecs_control_plane.contract import (
    FailedStartDetail,
    InvalidTaskKeyError,
    MalformedRequestError,
    RunRequest,
    TaskKey,
    TaskStateItem,
    client_token,
)
from tests.support.requests import SECRET_TOKEN, run_request, task_key


@pytest.mark.parametrize(
    "key",
    [
        TaskKey("etl", "extract", "manual__2026-11-25T10:00:00+00:00"),
        TaskKey("etl", "group.extract", "scheduled__2026-11-25T00:00:00+00:00", map_index=17, try_number=3),
        TaskKey("d", "t", "run|with|pipes and spaces/%/ü", map_index=0, try_number=1),
        TaskKey.for_callback("0190b7c2-0000-7000-8000-000000000000"),
    ],
    ids=["plain", "mapped", "odd-run-id", "callback"],
)
def test_task_key_round_trips(key: TaskKey) -> None:
    assert TaskKey.parse(key.encode()) == key


def test_task_key_is_readable_for_ordinary_ids() -> None:
    key = TaskKey("etl", "extract", "manual__2026-11-25T10:00:00+00:00", 2, 1)
    assert key.encode() == "ti|etl|extract|manual__2026-11-25T10:00:00+00:00|2|1"
    assert key.describe() == "etl.extract[2] run manual__2026-11-25T10:00:00+00:00 try 1"


@pytest.mark.parametrize(
    "value",
    [
        "",
        "ti|a|b",
        "xx|a|b|c|1|1",
        "ti|a|b|c|one|1",
        "cb",
        "ti|a|b|c|1|1|sub|extra",
        "ti|a|b|c|1|1|not a submission",
        "ti|a|b|c|1|1|-leading-dash",
    ],
)
def test_task_key_parse_refuses_other_strings(value: str) -> None:
    with pytest.raises(InvalidTaskKeyError):
        TaskKey.parse(value)


def test_submissions_of_one_try_have_distinct_keys_and_tokens() -> None:
    # GIVEN two submissions of the same try (a reschedule poke, a resume after deferral)
    first = TaskKey("etl", "wait", "manual__1", submission="0199a1b2-0000-7000-8000-000000000001")
    second = first.with_submission("0199a1b2-0000-7000-8000-000000000002")
    # THEN each has its own key and client tokens, and both name the same try
    assert first.encode() != second.encode()
    assert client_token(first.encode(), 1) != client_token(second.encode(), 1)
    assert first.try_key == second.try_key == "ti|etl|wait|manual__1|-1|1"
    assert TaskKey.parse(second.encode()) == second
    assert TaskKey.parse(TaskKey.for_callback("cb-1", "s1").encode()).submission == "s1"


def test_v1_keys_without_a_submission_are_still_read() -> None:
    key = TaskKey.parse("ti|etl|extract|manual__1|-1|2")
    assert (key.task_id, key.try_number, key.submission) == ("extract", 2, "")
    assert key.encode() == "ti|etl|extract|manual__1|-1|2"


@pytest.mark.parametrize(
    "key",
    ["ti|etl|%65xtract|manual__1|-1|1", "ti|etl|extract|manual__1|-01|1", "ti|etl|extract|manual__1|-1|+1"],
    ids=["needless-quoting", "padded-number", "signed-number"],
)
def test_run_requests_refuse_keys_that_are_not_canonical(key: str) -> None:
    body = json.dumps({"kind": "run", "key": key, "owner": "o", "command": ["x"]})
    with pytest.raises(MalformedRequestError, match="canonical"):
        RunRequest.from_message(body)


def test_v1_run_request_in_flight_during_an_upgrade_is_still_read() -> None:
    body = json.dumps(
        {"version": 1, "kind": "run", "key": "ti|etl|extract|manual__1|-1|1", "owner": "o", "command": ["x"]}
    )
    request = RunRequest.from_message(body)
    assert (request.version, request.token_expires_at, request.throttled) == (1, None, 0)


def test_absurd_attempt_numbers_are_refused_readably() -> None:
    body = json.dumps({"kind": "run", "key": task_key(), "owner": "o", "command": ["x"], "attempt": 10**40})
    with pytest.raises(MalformedRequestError, match="attempt"):
        RunRequest.from_message(body)


def test_client_token_is_stable_per_attempt_and_fits_ecs() -> None:
    key = task_key()
    assert client_token(key, 1) == client_token(key, 1)
    assert client_token(key, 1) != client_token(key, 2)
    assert len(client_token(key, 1)) <= 64


def test_run_request_repr_and_redaction_hide_the_command() -> None:
    request = run_request()
    assert SECRET_TOKEN not in repr(request)
    assert SECRET_TOKEN not in json.dumps(request.redacted())


@pytest.mark.parametrize(
    ("body", "readable_key", "mentions"),
    [
        ("{not json", False, "body"),
        (
            json.dumps(
                {"version": 1, "kind": "run", "key": task_key(), "owner": "o", "command": ["x"], "attempt": 0}
            ),
            True,
            "attempt",
        ),
        (
            json.dumps({"version": 1, "kind": "run", "key": task_key(), "owner": "o", "command": []}),
            True,
            "command",
        ),
        (
            json.dumps({"version": 3, "kind": "run", "key": task_key(), "owner": "o", "command": ["x"]}),
            True,
            "version",
        ),
        (
            json.dumps({"version": 1, "kind": "run", "key": "nope", "owner": "o", "command": ["x"]}),
            False,
            "key",
        ),
    ],
    ids=["not-json", "attempt-0", "run-without-command", "future-version", "bad-key"],
)
def test_malformed_messages_are_refused_with_the_key_when_readable(
    body: str, readable_key: bool, mentions: str
) -> None:
    with pytest.raises(MalformedRequestError) as caught:
        RunRequest.from_message(body)
    assert (caught.value.key == task_key()) is readable_key
    assert mentions in caught.value.reason


def test_stop_request_needs_no_command() -> None:
    request = RunRequest.from_message(json.dumps({"kind": "stop", "key": task_key(), "owner": "o"}))
    assert request.kind == "stop"
    assert request.command == []


def test_state_item_reads_executor_config_stored_as_json() -> None:
    item = TaskStateItem.model_validate(
        {"key": task_key(), "owner": "o", "state": "QUEUED", "executor_config": '{"overrides": {}}'}
    )
    assert item.executor_config == {"overrides": {}}
    assert not item.is_terminal


def test_failed_start_detail_names_the_task() -> None:
    detail = FailedStartDetail.build(
        key=task_key("load", try_number=2), owner="o", attempt=3, reason="r", cluster="c", control_plane="p"
    )
    assert (detail.dag_id, detail.task_id, detail.try_number) == ("example", "load", 2)


@pytest.mark.parametrize(
    "run_id",
    ["manual__1\n", "manual__1\u202e", "manual__\u200b1", "manual\x1b[31m", "r\u2028FAKE", "r\u2029x"],
    ids=["newline", "bidi-override", "zero-width-space", "terminal-escape", "line-separator", "paragraph"],
)
def test_keys_whose_names_hold_control_or_format_characters_are_refused(run_id: str) -> None:
    # GIVEN a key that encodes cleanly (percent-quoted) but names a run that reads as another
    key = "ti|etl|extract|" + quote(run_id, safe="") + "|-1|1"
    body = json.dumps({"kind": "run", "key": key, "owner": "o", "command": ["x"]})
    # THEN it is no task key
    with pytest.raises(InvalidTaskKeyError, match="control or format character"):
        TaskKey.parse(key)
    with pytest.raises(MalformedRequestError, match="key"):
        RunRequest.from_message(body)


@pytest.mark.parametrize("owner", ["sched\nuler", "sched\u202euler", "\x00"])
def test_owners_with_control_or_format_characters_are_refused(owner: str) -> None:
    body = json.dumps({"kind": "run", "key": task_key(), "owner": owner, "command": ["x"]})
    with pytest.raises(MalformedRequestError, match="owner") as refused:
        RunRequest.from_message(body)
    # AND such an owner is never taken from the refused request to record its failure
    assert refused.value.owner is None


@pytest.mark.parametrize("depth", [300, 5000])
def test_deeply_nested_json_fails_the_request_readably(depth: int) -> None:
    # GIVEN a run request whose executor_config nests deeper than any parser should follow
    nested = '{"a":' * depth + "1" + "}" * depth
    key = task_key()
    body = f'{{"kind":"run","key":"{key}","owner":"o","command":["x"],"executor_config":{nested}}}'
    # THEN it is a malformed request that still names its key, not a RecursionError
    with pytest.raises(MalformedRequestError, match="recursion") as refused:
        RunRequest.from_message(body)
    assert refused.value.key in (None, key)


@pytest.mark.parametrize(
    "key",
    ["ti|d|t|r|-1|" + "9" * 40, "ti|d|t|r|" + "9" * 40 + "|1", "ti|d|t|r|-1|-3", "ti|d|t|r|-5|1"],
    ids=["huge-try", "huge-map-index", "negative-try", "map-index-below-minus-one"],
)
def test_keys_with_absurd_numbers_are_refused(key: str) -> None:
    with pytest.raises(InvalidTaskKeyError, match="out of range"):
        TaskKey.parse(key)
