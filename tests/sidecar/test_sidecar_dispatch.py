"""The stream reader against the real Redis, and supervision of background tasks."""

from eduhub_alerts_sidecar.app import create_redis
from eduhub_alerts_sidecar.monitoring import Metrics
from eduhub_alerts_sidecar.services import StreamReader, supervise

import asyncio
import json
import pytest


class RecordingHub:
    """Stands in for the hub: records what the reader broadcasts."""

    def __init__(self):
        self.received: asyncio.Queue[tuple[str, dict]] = asyncio.Queue()

    def broadcast(self, stream_id: str, alert: dict) -> int:
        self.received.put_nowait((stream_id, alert))
        return 1

    async def next(self) -> tuple[str, dict]:
        async with asyncio.timeout(5):
            return await self.received.get()


@pytest.fixture
async def redis(make_settings):
    client = create_redis(make_settings(reader_block_ms=200))
    yield client
    await client.aclose()


@pytest.fixture
def reader(redis, make_settings, redis_client):
    settings = make_settings(reader_block_ms=200)
    return StreamReader(redis, RecordingHub(), Metrics(), stream_key=settings.stream_key,
                        block_ms=settings.reader_block_ms)


def xadd(redis_client, reader, alert) -> str:
    return redis_client.xadd(reader.stream_key, {"alert": json.dumps(alert)})


async def test_reader_starts_after_the_newest_entry(reader, redis_client, make_alert):
    xadd(redis_client, reader, make_alert())
    newest = xadd(redis_client, reader, make_alert())
    assert await reader.resolve_start() == newest


async def test_reader_on_an_empty_stream_starts_at_zero(reader):
    assert await reader.resolve_start() == "0-0"


async def test_resolving_again_keeps_the_position_reached(reader, redis_client, make_alert):
    await reader.resolve_start()
    reader.last_id = "5-0"
    xadd(redis_client, reader, make_alert())
    assert await reader.resolve_start() == "5-0"


async def test_reader_broadcasts_entries_added_after_start_in_order(
    reader, redis_client, make_alert
):
    old = make_alert(title="old")
    xadd(redis_client, reader, old)
    await reader.resolve_start()
    task = asyncio.create_task(reader.run())
    try:
        first, second = make_alert(title="first"), make_alert(title="second")
        first_id = xadd(redis_client, reader, first)
        second_id = xadd(redis_client, reader, second)
        assert await reader.hub.next() == (first_id, first)
        assert await reader.hub.next() == (second_id, second)
    finally:
        task.cancel()
        await asyncio.wait([task])


async def test_restarted_reader_delivers_what_was_added_while_it_was_down(
    reader, redis_client, make_alert
):
    await reader.resolve_start()
    task = asyncio.create_task(reader.run())
    before = make_alert(title="before")
    before_id = xadd(redis_client, reader, before)
    assert await reader.hub.next() == (before_id, before)
    task.cancel()
    await asyncio.wait([task])

    missed = make_alert(title="added while down")
    missed_id = xadd(redis_client, reader, missed)
    task = asyncio.create_task(reader.run())
    try:
        assert await reader.hub.next() == (missed_id, missed)
        assert reader.hub.received.empty()  # `before` is not delivered twice
    finally:
        task.cancel()
        await asyncio.wait([task])


def test_dispatch_skips_invalid_entries_and_counts_them(reader, make_alert):
    reader.dispatch("1-0", {b"alert": b"{broken"})
    reader.dispatch("2-0", {b"other": b"x"})
    reader.dispatch("3-0", {b"alert": json.dumps(make_alert()).encode()})
    registry = reader.metrics.registry
    assert registry.get_sample_value("eduhub_alerts_published_total") == 3
    assert registry.get_sample_value(
        "eduhub_alerts_failed_total", {"channel": "websocket", "reason": "invalid"}
    ) == 2
    assert reader.hub.received.qsize() == 1


def test_invalid_entry_is_logged_with_its_stream_id(reader, caplog):
    reader.dispatch("1700000000000-3", {b"alert": b"{broken"})
    assert "1700000000000-3" in caplog.text
    assert "not valid JSON" in caplog.text


# --- supervise ----------------------------------------------------------------


async def test_supervise_restarts_a_crashing_task_and_counts_each_failure(caplog):
    metrics = Metrics()
    calls = 0
    third_run = asyncio.Event()

    async def flaky():
        nonlocal calls
        calls += 1
        if calls <= 2:
            raise ConnectionError(f"crash {calls}")
        third_run.set()
        await asyncio.Event().wait()  # then runs "forever"

    task = asyncio.create_task(supervise("flaky", flaky, metrics=metrics, initial_delay=0.001))
    async with asyncio.timeout(5):
        await third_run.wait()
    task.cancel()
    await asyncio.wait([task])
    assert task.cancelled()  # cancellation propagates
    assert calls == 3
    assert metrics.registry.get_sample_value(
        "eduhub_background_task_failures_total", {"task": "flaky"}
    ) == 2
    assert "background task flaky crashed" in caplog.text
    assert "crash 2" in caplog.text  # with the traceback


async def test_supervise_backs_off_exponentially_up_to_a_cap():
    delays = []

    async def record_sleep(delay):
        delays.append(delay)

    async def always_fails():
        if len(delays) == 6:
            return  # stop the test after six restarts
        raise RuntimeError("down")

    await supervise("down", always_fails, initial_delay=0.1, max_delay=0.5, sleep=record_sleep)
    assert delays == [0.1, 0.2, 0.4, 0.5, 0.5, 0.5]


async def test_supervise_resets_the_back_off_after_a_healthy_run():
    delays = []

    async def record_sleep(delay):
        delays.append(delay)

    async def healthy_for_a_while_then_fails():
        if len(delays) == 3:
            return
        await asyncio.sleep(0.03)  # simulates a run longer than max_delay
        raise RuntimeError("late failure")

    await supervise("late", healthy_for_a_while_then_fails, initial_delay=0.001,
                    max_delay=0.01, sleep=record_sleep)
    assert delays == [0.001, 0.001, 0.001]


async def test_supervise_returns_when_the_task_finishes():
    async def done():
        return None

    await supervise("done", done)


# --- cancellation that Redis swallows ------------------------------------------
# Python 3.11's asyncio.wait_for, which redis-py uses for every command, can
# swallow a cancellation that arrives as the write completes (seen here with
# redis-py 8.1: XREAD then returns [] and the task runs on). The fakes below
# swallow it on purpose to show that the loops still stop.


class SwallowingRedis:
    """A Redis whose XREAD absorbs a cancellation and returns nothing."""

    def __init__(self):
        self.calls = 0

    async def xrevrange(self, key, count):
        return []

    async def xread(self, streams, count, block):
        self.calls += 1
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            return []  # what redis-py does in the race


async def test_reader_stops_even_when_redis_swallows_the_cancellation():
    fake = SwallowingRedis()
    reader = StreamReader(fake, RecordingHub(), Metrics(), stream_key="k")
    task = asyncio.create_task(reader.run())
    await asyncio.sleep(0)  # let it reach XREAD (a step, not a wait for time)
    task.cancel()
    done, _ = await asyncio.wait([task], timeout=2)
    assert task in done and task.cancelled()
    assert fake.calls == 1


async def test_supervise_does_not_restart_a_task_that_is_being_cancelled():
    metrics = Metrics()
    runs = 0
    started = asyncio.Event()

    async def swallows_then_fails():
        nonlocal runs
        runs += 1
        started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            pass  # swallowed, as in the redis-py race
        raise ConnectionError("connection closed")

    task = asyncio.create_task(supervise("victim", swallows_then_fails, metrics=metrics))
    await started.wait()
    task.cancel()
    done, _ = await asyncio.wait([task], timeout=2)
    assert task in done and task.cancelled()
    assert runs == 1
    assert metrics.registry.get_sample_value(
        "eduhub_background_task_failures_total", {"task": "victim"}
    ) is None


async def test_reader_lag_is_how_far_the_last_entry_handled_is_behind_the_newest(
    make_settings, redis, redis_client, make_alert
):
    settings = make_settings()
    reader = StreamReader(redis, RecordingHub(), Metrics(), stream_key=settings.stream_key,
                          block_ms=200, batch_size=1)
    await reader.resolve_start()  # empty stream: from 0-0
    for entry_id in ("1000-1", "3500-1"):  # XADD times 2.5 s apart
        redis_client.xadd(settings.stream_key, {"alert": json.dumps(make_alert())}, id=entry_id)

    assert await reader.read_batch() == 1  # a full batch: more may wait
    assert reader_lag(reader) == 2.5
    assert await reader.read_batch() == 1  # full again, but it was the newest
    assert reader_lag(reader) == 0.0


async def test_reader_lag_is_zero_after_a_batch_that_was_not_full(
    reader, redis_client, make_alert
):
    await reader.resolve_start()
    reader.metrics.reader_lag.set(7)
    xadd(redis_client, reader, make_alert())
    assert await reader.read_batch() == 1  # batch size 100: everything there was
    assert reader_lag(reader) == 0.0


def reader_lag(reader) -> float:
    return reader.metrics.registry.get_sample_value("eduhub_alerts_reader_lag_seconds")
