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


async def wait_until(condition, timeout: float = RECV_TIMEOUT) -> None:
    """Let the loop run until ``condition()`` holds; fail after ``timeout`` seconds.

    For state that changes without an event to await (a counter, a registry).
    """
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.001)


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
