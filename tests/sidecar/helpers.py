"""Helpers of the sidecar suite: the running-server handle and a real
WebSocket client whose every wait has a timeout (no sleeping to synchronise)."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from urllib.parse import urlencode

from eduhub_alerts_sidecar.settings import Settings
from fastapi import FastAPI
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed
from websockets.frames import Frame, Opcode

import asyncio
import httpx
import json
import socket
import uvicorn


RECV_TIMEOUT = 5.0


@dataclass
class Sidecar:
    """Where a sidecar listens and with which settings (any process)."""

    settings: Settings
    base_url: str

    @property
    def ws_url(self) -> str:
        return self.base_url.replace("http://", "ws://") + "/ws"


@dataclass
class RunningSidecar(Sidecar):
    """A sidecar served in the test's own event loop: its app is at hand."""

    app: FastAPI
    server: uvicorn.Server
    task: asyncio.Task

    @property
    def metrics(self):
        return self.app.state.metrics

    def metric(self, name: str, **labels) -> float:
        """Current value of a sample in this app's registry (0 when absent)."""
        return self.metrics.registry.get_sample_value(name, labels) or 0.0

    async def stop(self):
        self.server.should_exit = True
        async with asyncio.timeout(15):
            await self.task


def as_delivered(alert: dict) -> dict:
    """What a reader receives of ``alert`` (WebSocket, GET /alerts): everything
    but who else may see it (``audience``) and where Slack posts it (``routes``)."""
    return {key: value for key, value in alert.items() if key not in ("audience", "routes")}


async def wait_until(condition, timeout: float = RECV_TIMEOUT, *, every: float = 0.001) -> None:
    """Let the loop run until ``condition()`` holds; fail after ``timeout`` seconds.

    For state that changes without an event to await (a counter, a registry,
    a Redis key). Each check is immediate; ``every`` only paces the checks
    (longer for a condition that asks Redis).
    """
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(every)


def listening_socket() -> socket.socket:
    # Listening before uvicorn starts: clients that connect early wait in the
    # backlog until the app is ready, so no polling for "server up" is needed.
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    return sock


def http_client(sidecar: Sidecar) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=sidecar.base_url, trust_env=False, timeout=10)


@asynccontextmanager
async def open_ws(sidecar: Sidecar, token: str | None = None, *, origin=None,
                  subprotocols=None, **kwargs) -> AsyncIterator[ClientConnection]:
    """A real WebSocket client connection; ``token`` goes in the query string."""
    url = sidecar.ws_url
    if token is not None:
        url += "?" + urlencode({"token": token})
    async with connect(url, origin=origin, subprotocols=subprotocols, proxy=None,
                       open_timeout=RECV_TIMEOUT, **kwargs) as ws:
        yield ws


async def recv_json(ws: ClientConnection, timeout: float = RECV_TIMEOUT) -> dict:
    """The next frame, decoded; fails the test after ``timeout`` seconds."""
    async with asyncio.timeout(timeout):
        return json.loads(await ws.recv())


async def send_json(ws: ClientConnection, message: dict) -> None:
    await ws.send(json.dumps(message))


async def close_of(ws: ClientConnection, timeout: float = RECV_TIMEOUT) -> tuple[int, str]:
    """Read until the server closes; the close code and reason it sent."""
    async with asyncio.timeout(timeout):
        try:
            while True:
                await ws.recv()
        except ConnectionClosed as exc:
            assert exc.rcvd is not None, "connection dropped without a close frame"
            return exc.rcvd.code, exc.rcvd.reason


async def subscribed_client(ws: ClientConnection, topics: list[str]) -> dict:
    """Consume the welcome frame, subscribe, and return the welcome."""
    welcome = await recv_json(ws)
    assert welcome["type"] == "welcome"
    await send_json(ws, {"type": "subscribe", "topics": topics})
    reply = await recv_json(ws)
    assert reply["type"] == "subscribed", reply
    return welcome


UPGRADE_HEADERS = (
    "Upgrade: websocket\r\nConnection: Upgrade\r\n"
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
)


class RawPeer:
    """A WebSocket client made by hand on a TCP stream, for what a well-behaved
    client library never does: stop reading, never answer pings or the close
    handshake, break the protocol, hang up without a close frame."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self.reader = reader
        self.writer = writer

    @classmethod
    async def connect(cls, sidecar: Sidecar, path: str = "/ws", headers: str = UPGRADE_HEADERS,
                      receive_buffer: int | None = None) -> tuple["RawPeer", bytes]:
        """Send a GET for ``path`` with ``headers``; returns the peer and the response head.

        ``receive_buffer`` shrinks the socket's receive buffer, so a peer that
        stops reading backs up into the server's transport sooner.
        """
        host, port = sidecar.base_url.removeprefix("http://").split(":")
        sock = socket.socket()
        if receive_buffer is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, (host, int(port)))
        reader, writer = await asyncio.open_connection(sock=sock)
        writer.write(f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\n{headers}\r\n".encode())
        async with asyncio.timeout(RECV_TIMEOUT):
            head = await reader.readuntil(b"\r\n\r\n")
        return cls(reader, writer), head

    @classmethod
    async def open(cls, sidecar: Sidecar, token: str, extra_headers: str = "",
                   receive_buffer: int | None = None) -> "RawPeer":
        """A peer past the handshake on ``/ws`` (the 101 is checked)."""
        peer, head = await cls.connect(sidecar, f"/ws?{urlencode({'token': token})}",
                                       UPGRADE_HEADERS + extra_headers, receive_buffer)
        assert head.startswith(b"HTTP/1.1 101"), head
        return peer

    async def read_frame(self, timeout: float = RECV_TIMEOUT) -> tuple[Opcode, bytes]:
        """The next frame from the server (servers never mask): opcode and payload."""
        async with asyncio.timeout(timeout):
            first, second = await self.reader.readexactly(2)
            length = second & 0x7F
            if length == 126:
                length = int.from_bytes(await self.reader.readexactly(2))
            elif length == 127:
                length = int.from_bytes(await self.reader.readexactly(8))
            return Opcode(first & 0x0F), await self.reader.readexactly(length)

    async def read_json(self) -> dict:
        opcode, payload = await self.read_frame()
        assert opcode is Opcode.TEXT, (opcode, payload)
        return json.loads(payload)

    def send_frame(self, opcode: Opcode, data: bytes, fin: bool = True) -> None:
        self.writer.write(Frame(opcode, data, fin).serialize(mask=True))

    def send_json(self, message: dict) -> None:
        self.send_frame(Opcode.TEXT, json.dumps(message).encode())

    async def until_hung_up(self, timeout: float = RECV_TIMEOUT) -> bytes:
        """Read until the server ends the TCP connection; what arrived meanwhile."""
        received = bytearray()
        async with asyncio.timeout(timeout):
            while chunk := await self.reader.read(65536):
                received += chunk
        return bytes(received)

    def close(self) -> None:
        self.writer.close()
