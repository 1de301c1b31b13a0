"""One WebSocket connection as the hub sees it: identity, subscriptions,
a bounded send queue drained by its own writer task, and the state of a
``since`` replay.

Transport-agnostic: the connection writes only through ``Transport``
(``send_text`` / ``close``), so the ASGI endpoint of today and a different
server tomorrow plug in the same way.
"""

from collections import deque
from typing import Protocol

from .auth import Identity
from .monitoring import Metrics
from .rate_limit import Rate, TokenBucket
from .stream_ids import StreamPosition, parse_stream_id
from .topics import Subscriptions

import asyncio
import logging
import time
import uuid


log = logging.getLogger(__name__)

# How long a close handshake may take before we give up on a peer.
CLOSE_TIMEOUT_SECONDS = 5.0

# A queued frame: its text, and the XADD time in ms for alerts (None for
# replies), so the writer can measure publish -> write latency.
QueueItem = tuple[str, int | None]


class Transport(Protocol):
    """What the hub needs from a WebSocket implementation."""

    async def send_text(self, data: str) -> None:
        """Write one text frame; may wait for the socket to drain; raises when the peer is gone."""

    async def close(self, code: int, reason: str = "") -> None:
        """Start the closing handshake with ``code``; a no-op on a closed connection."""


class Connection:
    """One authenticated client: identity, subscriptions, send queue and writer.

    Created and owned by ``Hub.connect``; callers use the hub's methods.
    """

    __slots__ = (
        "id", "identity", "subscriptions", "_transport", "_queue", "_writer",
        "_metrics", "_on_dead", "_closed", "_space", "expiry", "held", "replayed",
        "bucket", "strikes",
    )

    def __init__(self, transport: Transport, identity: Identity, queue_size: int,
                 metrics: Metrics, on_dead, message_rate: Rate):
        self.id = uuid.uuid4().hex
        self.identity = identity
        self.subscriptions = Subscriptions()
        self._transport = transport
        self._queue: asyncio.Queue[QueueItem] = asyncio.Queue(maxsize=queue_size)
        self._metrics = metrics
        self._on_dead = on_dead
        self._closed = False
        self._writer: asyncio.Task | None = None
        self._space: asyncio.Future | None = None  # awaited by put() while the queue is full
        self.expiry: asyncio.TimerHandle | None = None
        # While a replay runs: live alerts held back, as (stream id, alert, item).
        self.held: deque[tuple[str, dict, QueueItem]] | None = None
        # After a replay: (watermark, topics it covered) until live delivery passes the watermark.
        self.replayed: tuple[StreamPosition, Subscriptions] | None = None
        self.bucket = TokenBucket(message_rate, time.monotonic())  # client message rate
        self.strikes = 0  # client messages refused in a row

    @property
    def principals(self) -> frozenset[str]:
        return self.identity.principals

    @property
    def closed(self) -> bool:
        return self._closed

    def start(self) -> None:
        self._writer = asyncio.create_task(self._write_loop(), name=f"ws-writer-{self.id}")

    def offer(self, item: QueueItem) -> bool:
        """Queue a frame without waiting; False when the queue is full (a slow consumer)."""
        if self._closed:
            return True  # being closed already: nothing to count twice
        try:
            self._queue.put_nowait(item)
        except asyncio.QueueFull:
            return False
        return True

    async def put(self, item: QueueItem) -> bool:
        """Queue a frame, waiting while the queue is half full; False once the connection closes.

        For replays: they go at the pace the client reads instead of cutting
        it off, and leave half the queue free, so live alerts arriving right
        after a replay do not find it full.
        """
        queue = self._queue
        while not self._closed:
            if queue.qsize() < max(1, queue.maxsize // 2):
                queue.put_nowait(item)
                return True
            self._space = asyncio.get_running_loop().create_future()
            await self._space
        return False

    def _wake_putter(self) -> None:
        space, self._space = self._space, None
        if space is not None and not space.done():
            space.set_result(None)

    def already_replayed(self, stream_id: str, topic: str, segments: tuple[str, ...]) -> bool:
        """Whether the last replay sent this live alert already.

        Live alerts arrive in stream order, so once one is past the watermark
        the replay is forgotten.
        """
        if self.replayed is None:
            return False
        watermark, topics = self.replayed
        if parse_stream_id(stream_id) > watermark:
            self.replayed = None
            return False
        return topics.matches(topic, segments)

    async def _write_loop(self) -> None:
        # The only coroutine that writes to the transport, so frames keep
        # their order and the transport never sees two concurrent sends.
        queue, transport, metrics = self._queue, self._transport, self._metrics
        try:
            while True:
                text, published_ms = await queue.get()
                if self._space is not None:
                    self._wake_putter()
                await transport.send_text(text)
                if published_ms is not None:
                    metrics.observe_delivery(published_ms)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            # The peer went away mid-write. Stop queueing for it at once; the
            # endpoint sees the disconnect and finishes the cleanup.
            log.debug("connection %s: write failed: %r", self.id, exc)
            self.begin_close()  # nothing will drain the queue any more
            self._on_dead(self)

    def begin_close(self) -> bool:
        """Mark the connection as closing, synchronously; False if it already was.

        From then on frames offered to it are dropped silently, so a client
        cut off as a slow consumer is counted once, not once per frame.
        """
        if self._closed:
            return False
        self._closed = True
        if self.expiry is not None:
            self.expiry.cancel()
        self._wake_putter()
        return True

    async def close(self, code: int, reason: str = "") -> None:
        """Stop writing and close the transport with ``code``; idempotent."""
        if self.begin_close():
            await self.finish_close(code, reason)

    async def finish_close(self, code: int, reason: str) -> None:
        """The asynchronous half of ``close``, after ``begin_close`` returned True."""
        writer = self._writer
        if writer is not None and writer is not asyncio.current_task():
            writer.cancel()
            # asyncio.wait, not `await writer`: the writer's CancelledError is
            # expected, while our own cancellation must still propagate.
            await asyncio.wait([writer])
        try:
            async with asyncio.timeout(CLOSE_TIMEOUT_SECONDS):
                await self._transport.close(code, reason)
        except Exception as exc:  # closed already, or a peer that never drains
            log.debug("connection %s: close(%s) failed: %r", self.id, code, exc)
