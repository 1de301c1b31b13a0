"""Stream ids as positions, and reading the stream's history from real Redis:
pages in order, invalid entries skipped, and whether a trim took anything
after the requested position."""

from eduhub_alerts_sidecar.app import create_redis
from eduhub_alerts_sidecar.history import StreamHistory, visible_after, visible_latest
from eduhub_alerts_sidecar.stream_ids import (
    MAX_PART,
    ORIGIN,
    format_stream_id,
    parse_stream_id,
    successor,
)

import json
import pytest


# --- stream ids ---------------------------------------------------------------


def test_stream_ids_compare_as_numbers_not_strings():
    assert parse_stream_id("10-0") > parse_stream_id("9-5")
    assert parse_stream_id("1700000000000-2") == (1700000000000, 2)


def test_stream_id_without_sequence_means_sequence_zero():
    assert parse_stream_id("1700000000000") == (1700000000000, 0)


@pytest.mark.parametrize("text", ["", "yesterday", "1-", "-1", "1-2-3", "1.5-0", " 1-0"])
def test_text_that_is_no_stream_id_is_refused(text):
    with pytest.raises(ValueError, match="not a stream id"):
        parse_stream_id(text)


def test_stream_id_parts_beyond_64_bits_are_refused():
    with pytest.raises(ValueError, match="64 bits"):
        parse_stream_id(f"{MAX_PART + 1}-0")
    assert parse_stream_id(f"{MAX_PART}-{MAX_PART}") == (MAX_PART, MAX_PART)


def test_successor_is_the_next_sequence_then_the_next_millisecond():
    assert successor((5, 0)) == (5, 1)
    assert successor((5, MAX_PART)) == (6, 0)
    assert successor((MAX_PART, MAX_PART)) is None
    assert format_stream_id(successor(ORIGIN)) == "0-1"


# --- history from Redis -------------------------------------------------------


@pytest.fixture
async def history(make_settings):
    settings = make_settings()
    redis = create_redis(settings)
    yield StreamHistory(redis, settings.stream_key, page_size=2)
    await redis.aclose()


def xadd(redis_client, history, alert=None, *, fields=None, entry_id="*") -> str:
    fields = fields if fields is not None else {"alert": json.dumps(alert)}
    return redis_client.xadd(history.stream_key, fields, id=entry_id)


async def test_page_holds_the_valid_alerts_strictly_after_the_position(
    history, redis_client, make_alert
):
    first = xadd(redis_client, history, make_alert())
    second_alert = make_alert()
    second = xadd(redis_client, history, second_alert)
    broken = xadd(redis_client, history, fields={"alert": "{not json"})
    page = await history.page_after(parse_stream_id(first))
    assert page.alerts == [(second, second_alert)]
    assert page.last == parse_stream_id(broken)  # the invalid entry was read, and skipped
    assert page.complete and page.more


async def test_pages_follow_each_other_to_the_end_of_the_stream(history, redis_client, make_alert):
    written = [xadd(redis_client, history, make_alert()) for _ in range(5)]
    pages = [page async for page in history.pages_after(ORIGIN)]
    assert [stream_id for page in pages for stream_id, _ in page.alerts] == written
    assert [page.more for page in pages] == [True, True, False]


async def test_pages_up_to_a_position_stop_there(history, redis_client, make_alert):
    written = [xadd(redis_client, history, make_alert()) for _ in range(5)]
    pages = [page async for page in history.pages_after(ORIGIN, parse_stream_id(written[2]))]
    assert [stream_id for page in pages for stream_id, _ in page.alerts] == written[:3]


async def test_history_is_complete_while_the_oldest_entry_is_at_most_right_after_the_position(
    history, redis_client, make_alert
):
    for entry_id in ("5-0", "5-1", "9-0"):
        xadd(redis_client, history, make_alert(), entry_id=entry_id)
    redis_client.xtrim(history.stream_key, maxlen=2, approximate=False)  # 5-0 is gone
    assert (await history.page_after((5, 0))).complete  # 5-1 is its successor: nothing lost
    assert not (await history.page_after((4, 0))).complete  # 5-0 was after it, and is lost
    assert not (await history.page_after(ORIGIN)).complete


async def test_empty_or_missing_stream_is_complete_only_from_the_origin(history):
    assert (await history.page_after(ORIGIN)).complete
    page = await history.page_after((5, 0))
    assert not page.complete
    assert page.alerts == [] and page.last is None and not page.more


async def test_a_position_beyond_the_newest_entry_is_not_complete(
    history, redis_client, make_alert
):
    newest = xadd(redis_client, history, make_alert(), entry_id="5-0")
    assert (await history.page_after((5, 0))).complete
    page = await history.page_after((9, 0))  # from another stream, or a clock ahead
    assert not page.complete and page.newest == parse_stream_id(newest)


async def test_nothing_comes_after_the_largest_stream_id(history):
    page = await history.page_after((MAX_PART, MAX_PART))
    assert page.alerts == [] and page.complete and not page.more


# --- what a token may see (GET /alerts) -------------------------------------------


async def test_visible_after_stops_at_the_scan_limit_and_says_where(
    history, redis_client, make_alert
):
    ids = [xadd(redis_client, history, make_alert(audience=["user:bob"])) for _ in range(6)]
    found = await visible_after(history, frozenset({"user:jane"}), ORIGIN, limit=5,
                                scan_limit=4)
    assert found.alerts == []
    assert found.next == parse_stream_id(ids[3])  # two pages of two looked at


async def test_visible_latest_stops_at_the_scan_limit(history, redis_client, make_alert):
    mine = make_alert(audience=["user:jane"])
    xadd(redis_client, history, mine)
    ids = [xadd(redis_client, history, make_alert(audience=["user:bob"])) for _ in range(4)]
    found = await visible_latest(history, frozenset({"user:jane"}), limit=5, scan_limit=4)
    assert found.alerts == []  # Jane's alert lies beyond the four entries looked at
    assert found.next == parse_stream_id(ids[-1])
