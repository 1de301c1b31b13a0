"""A real HTTP server that speaks enough of the Slack Web API for the tests.

It listens on a free port of 127.0.0.1 (aiohttp.web, in the test's event
loop) and answers ``chat.postMessage``, ``chat.update`` and
``conversations.open`` like Slack does, and incoming webhooks at
``POST /hooks/<id>`` (``webhook_url(id)``; scripts and records under the
method name ``hooks/<id>``; success is HTTP 200 ``ok`` in plain text, errors
are a status with a plain-text code such as 404 ``no_service``). Tests script the next answers of a
method (429 with Retry-After, 500, ``ok: false`` errors, slow answers,
dropped connections); without a script every call succeeds. Every request is
recorded with the time it arrived, so tests assert on what Slack saw and
when, instead of sleeping.
"""

from collections import defaultdict, deque
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

import asyncio
import itertools
import json
import pytest
import socket
import time


@dataclass
class Reply:
    """One scripted answer."""

    status: int = 200
    body: Any = None  # None: the method's normal successful answer
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0  # seconds before answering (a slow Slack)
    drop: bool = False  # close the connection without answering

    @classmethod
    def error(cls, error: str) -> "Reply":
        """Slack's way of refusing: HTTP 200 with ``ok: false``."""
        return cls(body={"ok": False, "error": error})

    @classmethod
    def rate_limited(cls, retry_after: float | str = 1) -> "Reply":
        return cls(status=429, body={"ok": False, "error": "ratelimited"},
                   headers={"Retry-After": str(retry_after)})

    @classmethod
    def webhook_error(cls, status: int, error: str) -> "Reply":
        """An incoming webhook's refusal: an HTTP status and a plain-text code."""
        return cls(status=status, body=error)

    @classmethod
    def server_error(cls, status: int = 500) -> "Reply":
        return cls(status=status, body="upstream trouble")


@dataclass
class Request:
    """A request as the server received it."""

    method: str
    params: dict
    headers: dict
    at: float  # time.monotonic() on arrival

    @property
    def channel(self) -> str | None:
        return self.params.get("channel")


class FakeSlack:
    """The server; ``await start()``, point ``base_url`` at it, ``await stop()``."""

    def __init__(self):
        self.requests: list[Request] = []
        self.scripts: dict[str, deque[Reply]] = defaultdict(deque)
        self.base_url = ""
        self.root_url = ""
        self._ts = itertools.count(1)
        self._runner: web.AppRunner | None = None

    def script(self, method: str, *replies: Reply) -> None:
        """Answer the next calls of ``method`` with ``replies``, in order."""
        self.scripts[method].extend(replies)

    def calls(self, method: str, channel: str | None = None) -> list[Request]:
        return [r for r in self.requests
                if r.method == method and (channel is None or r.channel == channel)]

    def posts(self, channel: str | None = None) -> list[Request]:
        return self.calls("chat.postMessage", channel)

    def webhook_url(self, hook: str) -> str:
        """The URL of the incoming webhook ``hook`` (any id is accepted)."""
        return f"{self.root_url}/hooks/{hook}"

    def webhook_posts(self, hook: str) -> list[Request]:
        return self.calls(f"hooks/{hook}")

    async def start(self) -> "FakeSlack":
        app = web.Application()
        app.router.add_post("/api/{method}", self._handle)
        app.router.add_post("/hooks/{hook:.+}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        sock.listen(128)
        await web.SockSite(self._runner, sock).start()
        self.root_url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        self.base_url = f"{self.root_url}/api/"
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        method = request.match_info.get("method") or f"hooks/{request.match_info['hook']}"
        if request.content_type == "application/json":
            params = await request.json()
        else:
            params = dict(await request.post())
        self.requests.append(Request(method, params, dict(request.headers), time.monotonic()))
        script = self.scripts[method]
        reply = script.popleft() if script else Reply()
        if reply.delay:
            await asyncio.sleep(reply.delay)  # the slow Slack being simulated, not a sync
        if reply.drop:
            request.transport.abort()
            raise ConnectionResetError("dropped by the fake Slack")
        if reply.body is None:
            body = self._success(method, params)
        else:
            body = reply.body
        if isinstance(body, str):
            return web.Response(status=reply.status, text=body, headers=reply.headers)
        return web.Response(status=reply.status, text=json.dumps(body),
                            content_type="application/json", headers=reply.headers)

    def _success(self, method: str, params: dict) -> dict | str:
        if method.startswith("hooks/"):
            return "ok"
        if method == "conversations.open":
            return {"ok": True, "channel": {"id": "D" + str(params.get("users", ""))}}
        if method == "chat.update":
            return {"ok": True, "channel": params.get("channel"), "ts": params.get("ts")}
        return {"ok": True, "channel": params.get("channel"),
                "ts": f"1700000000.{next(self._ts):06d}", "message": {"text": params.get("text")}}


@pytest.fixture
async def fake_slack():
    """A running fake Slack server, stopped after the test (import it into a test module)."""
    server = await FakeSlack().start()
    yield server
    await server.stop()


# --- clients pointed at the fake server (shared by the Slack test modules) ----


@pytest.fixture
async def make_slack_client(fake_slack):  # noqa: F811
    """``make(token, **overrides)``: a SlackClient on the fake server with fast
    back-off and no Retry-After jitter; closed after the test."""
    from eduhub_alerts_sidecar.monitoring import Metrics
    from eduhub_alerts_sidecar.slack_client import FullJitterBackoff
    from eduhub_alerts_sidecar.slack_client import SlackClient

    clients = []

    def make(token, **overrides):
        options = dict(base_url=fake_slack.base_url, timeout=2.0, max_retries=3,
                       backoff=FullJitterBackoff(0.01, 0.05), retry_after_jitter=0.0,
                       metrics=Metrics())
        options.update(overrides)
        client = SlackClient(token, **options)
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.aclose()


def retries(client) -> float:
    """The client's eduhub_slack_retries_total."""
    return client.metrics.registry.get_sample_value("eduhub_slack_retries_total") or 0.0
