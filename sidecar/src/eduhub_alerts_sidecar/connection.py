"""One WebSocket connection as the hub sees it: identity, subscriptions,
back-pressure and what its ``since`` replays send.

Writes are synchronous: a frame goes straight to the socket's transport, so a
broadcast to thousands of connections is one loop, with no task, queue or
coroutine per connection (that is what keeps an idle connection small). The
transport buffers what the kernel does not take at once; when it asks us to
pause (its buffer passed the high-water mark), frames still go into it but
are counted, and a client that falls ``max_backlog`` frames behind is cut off
(close 1013) rather than growing memory without bound.

Transport-agnostic: the connection writes only through ``Transport``, which
``ws_protocol`` implements on a socket and the tests with a recorder.
"""

from collections import deque
from typing import Protocol

from websockets.frames import Frame, Opcode

from .auth import Identity
from .rate_limit import Rate, TokenBucket
from .stream_ids import ORIGIN, StreamPosition
from .topics import Subscriptions

import asyncio
import time
import uuid


def text_frame(text: str) -> bytes:
    """``text`` as one complete WebSocket text frame, ready for the wire.

    Server frames are not masked and the sidecar negotiates no extension
    (no compression), so the same bytes are valid on every connection: a
    broadcast encodes them once and writes that one object everywhere.
    """
    return Frame(Opcode.TEXT, text.encode()).serialize(mask=False)


class Transport(Protocol):
    """What the hub needs from a WebSocket implementation. Nothing here waits."""

    def write_frame(self, frame: bytes) -> None:
        """Write one complete frame (from ``text_frame``); ignored once closing."""

    def close(self, code: int, reason: str = "") -> None:
        """Start the closing handshake with ``code``; a no-op when closing already."""


class ReplayMark:
    """What one ``since`` replay sends: the alerts on ``topics`` up to ``upto``.

    ``upto`` starts at ``since`` (the client has what came before) and moves
    on as the replay reads the stream. While it is still ``reading``, the
    replay also sends every live alert on ``topics`` that arrives meanwhile:
    the connection notes the newest as ``owed`` and the replay reads at least
    that far, so such alerts need not be held back, however many come.
    """

    __slots__ = ("upto", "topics", "reading", "owed")

    def __init__(self, since: StreamPosition, topics: Subscriptions):
        self.upto = since
        self.topics = topics
        self.reading = True
        self.owed = ORIGIN  # none yet

    def merged(self, other: "ReplayMark", subscribed: Subscriptions) -> "ReplayMark":
        """One finished mark for two: their topics still ``subscribed`` (no
        others are delivered), up to the lower position. It covers less than
        the two did, never an alert that was not sent."""
        topics = Subscriptions()
        topics.add(pattern for mark in (self, other) for pattern in mark.topics.topics()
                   if pattern in subscribed)
        mark = ReplayMark(min(self.upto, other.upto), topics)
        mark.reading = False
        return mark

    def covers(self, position: StreamPosition, topic: str, segments: tuple[str, ...]) -> bool:
        """Whether the replay sends (or sent) the alert at ``position`` on ``topic``."""
        if not self.topics.matches(topic, segments):
            return False
        if self.reading:
            if position > self.owed:
                self.owed = position
            return True
        return position <= self.upto


class Connection:
    """One authenticated client: identity, subscriptions, back-pressure.

    Created and owned by ``Hub.connect``; callers use the hub's methods. The
    transport reports back-pressure with ``pause`` and ``resume``.
    """

    __slots__ = (
        "id", "identity", "subscriptions", "transport", "max_backlog", "backlog", "paused",
        "_drained", "closed", "expiry", "held", "marks", "replay", "inbox", "bucket",
        "strikes",
    )

    def __init__(self, transport: Transport, identity: Identity, max_backlog: int,
                 message_rate: Rate):
        self.id = uuid.uuid4().hex
        self.identity = identity
        self.subscriptions = Subscriptions()
        self.transport = transport
        self.max_backlog = max_backlog
        self.backlog = 0  # frames written since the transport paused us
        self.paused = False
        self._drained: asyncio.Future | None = None  # awaited by drained() while paused
        self.closed = False
        self.expiry: asyncio.TimerHandle | None = None
        # While a replay runs: the task, live alerts it does not send, held back
        # as (stream id, alert, frame), and client messages that arrive
        # meanwhile (answered in order afterwards).
        self.replay: asyncio.Task | None = None
        self.held: deque[tuple[str, dict, bytes]] | None = None
        self.inbox: deque[str] | None = None
        # The running replay's mark (last) and those of earlier ones that live
        # delivery has not passed yet; None when there are none.
        self.marks: list[ReplayMark] | None = None
        self.bucket = TokenBucket(message_rate, time.monotonic())  # client message rate
        self.strikes = 0  # client messages refused in a row

    @property
    def principals(self) -> frozenset[str]:
        return self.identity.principals

    def send(self, frame: bytes) -> bool:
        """Write ``frame`` now; False when the client is too far behind (a slow consumer)."""
        if self.closed:
            return True  # being closed already: nothing to count twice
        if not self.count_frame():
            return False
        self.transport.write_frame(frame)
        return True

    def count_frame(self) -> bool:
        """Count one more frame for the client; False when it is too far behind."""
        if self.paused:
            if self.backlog >= self.max_backlog:
                return False
            self.backlog += 1
        return True

    def pause(self) -> None:
        """The transport's buffer is full: count what is written from now on."""
        self.paused = True

    def resume(self) -> None:
        """The transport's buffer drained: the client is keeping up again."""
        self.paused = False
        self.backlog = 0
        self._wake()

    async def drained(self) -> bool:
        """Wait until the transport is not paused; False once the connection closes.

        Replays write at the pace the client reads instead of counting as a
        backlog, so a long history never cuts a client off.
        """
        while self.paused and not self.closed:
            if self._drained is None:
                self._drained = asyncio.get_running_loop().create_future()
            await self._drained
        return not self.closed

    def _wake(self) -> None:
        waiter, self._drained = self._drained, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def replay_covers(self, position: StreamPosition, topic: str,
                      segments: tuple[str, ...]) -> bool:
        """Whether a replay sends (or sent) this live alert, so live delivery must not.

        Once no replay runs, the marks are final; live alerts arrive in stream
        order, so a mark this alert is past covers nothing any more and is
        forgotten.
        """
        marks = self.marks
        if self.replay is None:
            marks = [mark for mark in marks if position <= mark.upto]
            self.marks = marks or None
        # Every mark is asked, not just until one covers: a running replay
        # must learn what it owes.
        covered = False
        for mark in marks:
            covered = mark.covers(position, topic, segments) or covered
        return covered

    def close(self, code: int, reason: str = "") -> bool:
        """Stop sending and close the transport with ``code``; False if closed already.

        From then on frames offered to it are dropped silently, so a client
        cut off as a slow consumer is counted once, not once per frame.
        """
        if self.closed:
            return False
        self.closed = True
        if self.expiry is not None:
            self.expiry.cancel()
        if self.replay is not None:
            self.replay.cancel()
        self._wake()
        self.transport.close(code, reason)
        return True
