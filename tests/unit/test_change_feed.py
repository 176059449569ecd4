"""The executor's change feed: read bound, paging across heartbeats, versions applied (pure)."""

from __future__ import annotations

from executor_client.change_feed import ChangeFeed

START = 1_000_000
CURSOR = {"key": {"S": "k"}, "owner": {"S": "o"}, "updated_at": {"N": "1"}}


def feed(overlap_ms: int = 2_000) -> ChangeFeed:
    return ChangeFeed.starting_at(START, overlap_ms=overlap_ms)


def test_first_read_reaches_back_the_overlap_from_the_start():
    assert feed().since_ms() == START - 2_000


def test_a_finished_read_moves_the_bound_to_the_newest_item_seen():
    # GIVEN a feed whose read returns items up to START + 5 s, and no cursor
    f = feed()
    f.page_read([START + 1_000, START + 5_000], None)
    # THEN the next read starts one overlap before that
    assert f.since_ms() == START + 5_000 - 2_000


def test_a_read_that_goes_on_keeps_its_bound_until_its_last_page():
    # GIVEN a read whose first page has a cursor
    f = feed()
    since = f.since_ms()
    f.page_read([START + 1_000, START + 9_000], CURSOR)
    # THEN the next call goes on from the cursor with the same bound
    assert (f.since_ms(), f.cursor) == (since, CURSOR)
    # AND once its last page is read, the bound follows the newest item of every page
    f.page_read([START + 3_000], None)
    assert (f.since_ms(), f.cursor) == (START + 9_000 - 2_000, None)


def test_the_bound_never_moves_backwards():
    f = feed()
    f.page_read([START + 5_000], None)
    f.page_read([START + 1_000], None)
    f.page_read([], None)
    assert f.watermark_ms == START + 5_000


def test_a_version_applied_is_not_new_again_and_a_later_one_is():
    # GIVEN a key whose RUNNING version at START was applied
    f = feed()
    assert f.is_new("a", START, "RUNNING")
    f.applied("a", START, "RUNNING")
    # THEN the same version read again (the overlap) and an older one (a stale read) are not new
    assert not f.is_new("a", START, "RUNNING")
    assert not f.is_new("a", START - 1, "SUCCESS")
    # AND a later write, or another state in the same millisecond, is
    assert f.is_new("a", START + 1, "RUNNING")
    assert f.is_new("a", START, "SUCCESS")


def test_a_forgotten_key_is_new_again_and_not_remembered():
    f = feed()
    f.applied("a", START, "RUNNING")
    f.forget("a")
    assert f.is_new("a", START, "RUNNING")
    assert f.remembered == 0


def test_a_negative_overlap_is_taken_as_none():
    assert ChangeFeed.starting_at(START, overlap_ms=-5).since_ms() == START
