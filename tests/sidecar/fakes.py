"""Stand-ins for the hub's collaborators: a transport that records frames
(or never drains, which is the point of a client that stopped reading) and a
history whose pages the test controls, so interleavings are exact rather than
left to timing."""

from eduhub_alerts_sidecar.auth import Identity
from eduhub_alerts_sidecar.history import HistoryPage
from eduhub_alerts_sidecar.stream_ids import parse_stream_id

import asyncio
import json
import time


class FakeTransport:
    """Records frames and the close; ``stuck=True`` never finishes a send."""

    def __init__(self, stuck: bool = False, fail: bool = False, fail_close: bool = False,
                 gate: asyncio.Event | None = None):
        self.stuck = stuck
        self.gate = gate  # when given, each send waits until it is set: a client reading late
        self.fail = fail
        self.fail_close = fail_close
        self.frames: asyncio.Queue[str] = asyncio.Queue()
        self.closed = asyncio.Event()
        self.close_code: tuple[int, str] | None = None

    async def send_text(self, data: str) -> None:
        if self.fail:
            raise ConnectionResetError("peer went away")
        if self.stuck:
            await asyncio.Event().wait()  # a client that stopped reading
        if self.gate is not None:
            await self.gate.wait()
        self.frames.put_nowait(data)

    async def close(self, code: int, reason: str = "") -> None:
        self.close_code = (code, reason)
        self.closed.set()
        if self.fail_close:
            raise ConnectionResetError("peer went away first")

    async def next_frame(self) -> str:
        async with asyncio.timeout(2):
            return await self.frames.get()

    async def next_json(self) -> dict:
        return json.loads(await self.next_frame())

    async def wait_closed(self) -> tuple[int, str]:
        async with asyncio.timeout(2):
            await self.closed.wait()
        return self.close_code


def identity(sub="jane", principals=("Authenticated", "user:jane"), expires_in=300):
    scopes = frozenset({"alerts:read"})
    return Identity(sub, frozenset(principals), scopes, time.time() + expires_in)


def alert(topic="workflow.publish", audience=("Authenticated",), **extra):
    return {"id": "a" * 32, "topic": topic, "audience": list(audience), **extra}


async def connected(hub, transport, topics=(), **who):
    conn = hub.connect(transport, identity(**who))
    assert (await transport.next_json())["type"] == "welcome"
    if topics:
        await hub.handle_text(conn, json.dumps({"type": "subscribe", "topics": list(topics)}))
        assert (await transport.next_json())["type"] == "subscribed"
    return conn


class FakeHistory:
    """Serves fixed pages of ``(stream id, alert)``; ``between(n)`` runs before page n > 0.

    ``fail_at`` makes page n raise, as a Redis error would.
    """

    def __init__(self, *pages, complete=True, between=None, fail_at=None):
        self.pages = pages
        self.complete = complete
        self.between = between
        self.fail_at = fail_at
        self.asked_after = []

    async def pages_after(self, after):
        self.asked_after.append(after)
        for n, alerts in enumerate(self.pages):
            if n and self.between is not None:
                self.between(n)
            if n == self.fail_at:
                raise ConnectionError("redis went away")
            last = parse_stream_id(alerts[-1][0]) if alerts else None
            yield HistoryPage(list(alerts), last, self.complete, n < len(self.pages) - 1)
