"""Stand-ins for the hub's collaborators: a transport that records frames
and a history whose pages the test controls, so interleavings are exact
rather than left to timing. A client that stopped reading is what a real
socket shows only after megabytes of kernel buffers; here the test pauses the
connection, as the socket's transport does when its buffer is full."""

from eduhub_alerts_sidecar.auth import Identity
from eduhub_alerts_sidecar.history import HistoryPage
from eduhub_alerts_sidecar.stream_ids import parse_stream_id

import asyncio
import json
import time


class FakeTransport:
    """Records the frames written to it and the first close.

    A client that stops reading is simulated the way the socket reports it:
    ``conn.pause()`` (the transport's buffer is full), ``conn.resume()``.
    """

    def __init__(self, on_write=None):
        self.on_write = on_write  # called with each frame's text, e.g. to pause the connection
        self.written: list[bytes] = []  # the frame objects, as written
        self.frames: asyncio.Queue[str] = asyncio.Queue()
        self.closed = asyncio.Event()
        self.close_code: tuple[int, str] | None = None

    def write_frame(self, frame: bytes) -> None:
        assert not self.closed.is_set(), "written after close"
        self.written.append(frame)
        text = decode_text_frame(frame)
        self.frames.put_nowait(text)
        if self.on_write is not None:
            self.on_write(text)

    def close(self, code: int, reason: str = "") -> None:
        if self.close_code is None:
            self.close_code = (code, reason)
            self.closed.set()

    async def next_frame(self) -> str:
        async with asyncio.timeout(2):
            return await self.frames.get()

    async def next_json(self) -> dict:
        return json.loads(await self.next_frame())

    async def wait_closed(self) -> tuple[int, str]:
        async with asyncio.timeout(2):
            await self.closed.wait()
        return self.close_code


def decode_text_frame(frame: bytes) -> str:
    """The text of one complete, unmasked, unfragmented text frame (RFC 6455 5.2)."""
    assert frame[0] == 0x81, "FIN + text opcode"
    length, start = frame[1], 2
    assert length < 0x80, "server frames are not masked"
    if length == 126:
        length, start = int.from_bytes(frame[2:4], "big"), 4
    elif length == 127:
        length, start = int.from_bytes(frame[2:10], "big"), 10
    assert len(frame) == start + length
    return frame[start:].decode()


def identity(sub="jane", principals=("Authenticated", "user:jane"), expires_in=300):
    scopes = frozenset({"alerts:read"})
    return Identity(sub, frozenset(principals), scopes, time.time() + expires_in)


def alert(topic="workflow.publish", audience=("Authenticated",), **extra):
    return {"id": "a" * 32, "topic": topic, "audience": list(audience), **extra}


async def connected(hub, transport, topics=(), **who):
    conn = hub.connect(transport, identity(**who))
    assert (await transport.next_json())["type"] == "welcome"
    if topics:
        hub.handle_text(conn, json.dumps({"type": "subscribe", "topics": list(topics)}))
        assert (await transport.next_json())["type"] == "subscribed"
    return conn


class FakeHistory:
    """The alert stream, read the way ``StreamHistory`` reads it: pages of
    ``page_size`` entries, each taken from what the stream holds when it is read.

    Page reads are numbered across the test (0, 1, ...): ``before[n]`` runs
    just before read n, ``after[n]`` just after it (the page is read but not
    handed over yet, as when Redis's reply is still on its way), read n
    raises when n is in ``fail``, as a Redis error would, and says entries
    were trimmed before it when n is in ``incomplete``.
    """

    def __init__(self, entries=(), *, page_size=2, incomplete=(), before=None, after=None,
                 fail=()):
        self.entries = list(entries)
        self.page_size = page_size
        self.incomplete = set(incomplete)
        self.before = dict(before or {})
        self.after = dict(after or {})
        self.fail = set(fail)
        self.reads = 0
        self.asked_after = []

    def add(self, stream_id, alert):
        """What XADD does: append an entry (ids only grow)."""
        assert not self.entries or parse_stream_id(stream_id) > parse_stream_id(
            self.entries[-1][0])
        self.entries.append((stream_id, alert))

    def _read(self, after, until):
        n, self.reads = self.reads, self.reads + 1
        if n in self.before:
            self.before.pop(n)()
        if n in self.fail:
            raise ConnectionError("redis went away")
        page = [(i, a) for i, a in self.entries
                if after < parse_stream_id(i) <= (until or parse_stream_id(i))][:self.page_size]
        if n in self.after:
            self.after.pop(n)()
        last = parse_stream_id(page[-1][0]) if page else None
        newest = parse_stream_id(self.entries[-1][0]) if self.entries else (0, 0)
        complete = n not in self.incomplete and after <= newest
        return HistoryPage(page, last, complete, len(page) == self.page_size, newest)

    async def pages_after(self, after, until=None):
        self.asked_after.append(after if until is None else (after, until))
        while True:
            page = self._read(after, until)
            yield page
            if not page.more:
                return
            after = page.last
