"""Dispatch: read the alert stream and hand alerts to the WebSocket hub, and
keep such background tasks alive.

Every replica reads the whole stream with plain ``XREAD`` and tracks its own
position; Slack delivery with a consumer group comes later.
"""

from collections.abc import Awaitable, Callable

from redis.asyncio import Redis

from .history import decode_entry
from .models import InvalidAlert, routed_to_websocket
from .monitoring import WEBSOCKET, Metrics
from .stream_ids import parse_stream_id
from .websocket_hub import Hub

import asyncio
import logging


log = logging.getLogger(__name__)

EMPTY_STREAM_ID = "0-0"


def raise_if_cancel_requested() -> None:
    """Raise ``CancelledError`` if someone asked to cancel the current task.

    On Python 3.11, ``asyncio.wait_for`` (which redis-py uses to send each
    command) swallows a cancellation that arrives just as the wrapped write
    completes: the command then returns normally and the task would run on.
    The request stays recorded on the task (``Task.cancelling()``), so loops
    check it once per iteration and honour it.
    """
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


async def supervise(
    name: str,
    factory: Callable[[], Awaitable[None]],
    *,
    metrics: Metrics | None = None,
    initial_delay: float = 0.1,
    max_delay: float = 10.0,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> None:
    """Run ``factory()`` and start it again whenever it raises.

    A background task that dies silently stops delivery without anyone
    noticing, so each crash is logged with its traceback, counted in
    ``eduhub_background_task_failures_total{task=name}`` and followed by a
    restart after an exponential back-off (``initial_delay`` doubling up to
    ``max_delay``). A run that lasted longer than ``max_delay`` resets the
    back-off: it was healthy, this is a new incident. Returns when
    ``factory()`` returns normally; cancellation propagates.
    """
    delay = initial_delay
    loop = asyncio.get_running_loop()
    while True:
        started = loop.time()
        try:
            await factory()
            return
        except asyncio.CancelledError:
            raise
        except Exception:
            # A failure right after a swallowed cancellation is not a crash to
            # recover from: we are being stopped.
            raise_if_cancel_requested()
            log.exception("background task %s crashed; restarting in %.1fs", name, delay)
            if metrics is not None:
                metrics.task_failures.labels(task=name).inc()
        if loop.time() - started > max_delay:
            delay = initial_delay
        await sleep(delay)
        delay = min(delay * 2, max_delay)


class StreamReader:
    """Follows the alert stream from "now" and broadcasts each valid alert.

    The position survives restarts of ``run`` (the supervisor calls it again
    after a Redis outage), so entries added while Redis or the connection was
    down are delivered once it is back, and none twice.
    """

    def __init__(self, redis: Redis, hub: Hub, metrics: Metrics, *, stream_key: str,
                 block_ms: int = 1000, batch_size: int = 100):
        self.redis = redis
        self.hub = hub
        self.metrics = metrics
        self.stream_key = stream_key
        self.block_ms = block_ms
        self.batch_size = batch_size
        self.last_id: str | None = None

    async def resolve_start(self) -> str:
        """Fix the position at the stream's newest entry (``0-0`` if empty), once.

        Later calls keep the position already reached. Live delivery starts
        after it; replaying older entries is what ``since`` is for.
        """
        if self.last_id is None:
            newest = await self.redis.xrevrange(self.stream_key, count=1)
            self.last_id = newest[0][0].decode() if newest else EMPTY_STREAM_ID
            log.info("reading %s after %s", self.stream_key, self.last_id)
        return self.last_id

    async def run(self) -> None:
        """Read forever; raises on Redis errors (the supervisor restarts it)."""
        await self.resolve_start()
        while True:
            raise_if_cancel_requested()
            await self.read_batch()

    async def read_batch(self) -> int:
        """One ``XREAD`` (blocking up to ``block_ms``): dispatch what it returns,
        update the lag gauge; returns the number of entries read."""
        response = await self.redis.xread(
            {self.stream_key: self.last_id}, count=self.batch_size, block=self.block_ms
        )
        entries = response[0][1] if response else []
        for entry_id, fields in entries:
            self.dispatch(entry_id.decode(), fields)
            # Advance per entry: a crash mid-batch resumes after the last one handled.
            self.last_id = entry_id.decode()
        await self._measure_lag(full_batch=len(entries) == self.batch_size)
        return len(entries)

    async def _measure_lag(self, *, full_batch: bool) -> None:
        # A batch that was not full means the reader has read everything
        # there was: no lag, and no extra round trip. After a full one, more
        # may be waiting: the lag is how much older the last entry handled
        # is than the newest entry of the stream (XADD times, from the ids).
        lag = 0.0
        if full_batch:
            newest = await self.redis.xrevrange(self.stream_key, count=1)
            if newest:
                newest_ms, _ = parse_stream_id(newest[0][0].decode())
                last_ms, _ = parse_stream_id(self.last_id)
                lag = max(0.0, (newest_ms - last_ms) / 1000)
        self.metrics.reader_lag.set(lag)

    def dispatch(self, stream_id: str, fields: dict[bytes, bytes]) -> None:
        """Validate one entry and broadcast it; invalid entries are logged and counted."""
        self.metrics.published.inc()
        try:
            alert = decode_entry(stream_id, fields)
        except InvalidAlert as exc:
            log.warning("skipping invalid alert at %s %s: %s", self.stream_key, stream_id, exc)
            self.metrics.failure(WEBSOCKET, "invalid")
            return
        if routed_to_websocket(alert):
            self.hub.broadcast(stream_id, alert)
