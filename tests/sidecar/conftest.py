"""Fixtures of the sidecar suite: a real uvicorn server on a real socket, in
this test's event loop, against the session's real Redis; tokens signed like
Plone's @alerts-token; helpers that wait on events, never on the clock."""

from collections.abc import AsyncIterator
from contextlib import nullcontext

from eduhub_alerts_sidecar.app import create_app
from eduhub_alerts_sidecar.cli import uvicorn_config
from eduhub_alerts_sidecar.settings import Settings

from tests.sidecar.helpers import RunningSidecar, Sidecar, http_client, listening_socket

import asyncio
import json
import jwt
import pytest
import time
import uuid
import uvicorn


@pytest.fixture
def make_settings(redis_url):
    """Settings for one test: the session Redis and a stream key of its own."""

    def make(**overrides) -> Settings:
        values = {"redis_url": redis_url, "stream_key": f"eduhub:alerts:test:{uuid.uuid4().hex}"}
        values.update(overrides)
        return Settings(**values)

    return make


@pytest.fixture
async def start_sidecar(make_settings, redis_client) -> AsyncIterator:
    """Start sidecars (``await start_sidecar(**settings)``); all stop after the test."""
    running: list[RunningSidecar] = []

    async def start(**overrides) -> RunningSidecar:
        sock = listening_socket()
        port = sock.getsockname()[1]
        settings = make_settings(port=port, **overrides)
        app = create_app(settings)
        server = uvicorn.Server(uvicorn_config(settings, app))
        server.capture_signals = nullcontext  # leave pytest's signal handlers alone
        task = asyncio.create_task(server.serve(sockets=[sock]))
        sidecar = RunningSidecar(settings=settings, base_url=f"http://127.0.0.1:{port}",
                                 app=app, server=server, task=task)
        running.append(sidecar)
        # The first answer arrives only once the lifespan start-up has run.
        async with http_client(sidecar) as client:
            (await client.get("/healthz")).raise_for_status()
        return sidecar

    yield start
    for sidecar in running:
        await sidecar.stop()


@pytest.fixture
async def sidecar(start_sidecar) -> RunningSidecar:
    return await start_sidecar()


@pytest.fixture
def make_token(alerts_secret):
    """Sign a token like Plone's @alerts-token; keyword arguments change claims."""

    def make(sub="jane", principals=("Anonymous", "Authenticated", "user:jane"),
             scope="alerts:read", expires_in=300, audience="eduhub-alerts",
             secret=None, drop=(), **extra) -> str:
        claims = {
            "sub": sub,
            "principals": list(principals) if isinstance(principals, (list, tuple)) else principals,
            "scope": scope,
            "exp": int(time.time()) + expires_in,
            "aud": audience,
            **extra,
        }
        for name in drop:
            claims.pop(name)
        return jwt.encode(claims, secret or alerts_secret, algorithm="HS256")

    return make


@pytest.fixture
def make_alert(sample_alert):
    """A valid alert: the sample with a fresh id and the given changes."""

    def make(**changes) -> dict:
        alert = json.loads(json.dumps(sample_alert))
        alert["id"] = uuid.uuid4().hex
        alert.update(changes)
        return alert

    return make


@pytest.fixture
def publish(redis_client):
    """XADD an alert (dict, or raw fields) to a sidecar's stream; returns the stream id."""

    def publish(sidecar: Sidecar, alert=None, *, fields=None) -> str:
        fields = fields if fields is not None else {"alert": json.dumps(alert)}
        return redis_client.xadd(sidecar.settings.stream_key, fields)

    return publish


