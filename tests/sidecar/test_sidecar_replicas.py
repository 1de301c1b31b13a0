"""Horizontal scale: two sidecar processes, started the way an operator
starts them, against one Redis. Each replica reads the whole stream, so every
alert reaches the clients of every replica, whichever replica (or Plone)
appended it, and a client may reconnect to another replica with `since`."""

from devstack.processes import ManagedProcess, free_port
from eduhub_alerts_sidecar.settings import Settings

from tests.sidecar.helpers import (
    as_delivered,
    Sidecar,
    http_client,
    open_ws,
    recv_json,
    send_json,
    subscribed_client,
)

import asyncio
import pytest
import sys
import uuid


@pytest.fixture
async def replicas(tmp_path, redis_url, redis_client):
    """Two `python -m eduhub_alerts_sidecar` processes sharing a fresh stream."""
    stream_key = f"eduhub:alerts:test:{uuid.uuid4().hex}"
    processes, handles = [], []
    for name in ("replica-a", "replica-b"):
        port = free_port()
        processes.append((ManagedProcess(
            name,
            [sys.executable, "-m", "eduhub_alerts_sidecar", "--port", str(port)],
            tmp_path / f"{name}.log",
            env={"EDUHUB_REDIS_URL": redis_url, "EDUHUB_STREAM_KEY": stream_key,
                 "EDUHUB_LOG_LEVEL": "warning"},
        ), port))
    try:
        for process, port in processes:
            # uvicorn listens only once the app's start-up (reader position) is done.
            await asyncio.to_thread(process.wait_for_port, port, 20)
            settings = Settings(redis_url=redis_url, stream_key=stream_key, port=port)
            handles.append(Sidecar(settings, f"http://127.0.0.1:{port}"))
        yield handles
    finally:
        for process, _ in processes:
            await asyncio.to_thread(process.stop)


async def test_two_sidecar_processes_each_deliver_an_alert_to_their_own_clients(
    replicas, make_token, make_alert, publish
):
    a, b = replicas
    alert = make_alert(audience=["Authenticated"])
    async with open_ws(a, make_token(sub="jane")) as jane, \
            open_ws(b, make_token(sub="bob", principals=("Authenticated", "user:bob"))) as bob:
        await subscribed_client(jane, ["workflow.*"])
        await subscribed_client(bob, ["workflow.*"])
        stream_id = publish(a, alert)  # as Plone does: XADD, no replica involved
        frames = [await recv_json(jane), await recv_json(bob)]
    assert frames == [{"type": "alert", "id": stream_id, "alert": as_delivered(alert)}] * 2


async def test_alert_posted_to_one_replica_reaches_the_clients_of_the_other(
    replicas, make_token, make_alert
):
    a, b = replicas
    alert = make_alert()
    async with open_ws(b, make_token()) as ws:
        await subscribed_client(ws, ["workflow.publish"])
        async with http_client(a) as client:
            response = await client.post(
                "/alerts", json=alert,
                headers={"Authorization": f"Bearer {make_token(scope='alerts:write')}"})
        frame = await recv_json(ws)
    assert response.status_code == 201
    assert frame == {"type": "alert", "id": response.json()["id"], "alert": as_delivered(alert)}


async def test_client_moving_to_the_other_replica_with_since_misses_nothing_and_gets_nothing_twice(
    replicas, make_token, make_alert, publish
):
    a, b = replicas
    async with open_ws(a, make_token()) as ws:
        await subscribed_client(ws, ["workflow.publish"])
        seen = publish(a, make_alert())
        assert (await recv_json(ws))["id"] == seen
    # Replica A goes away for this client; what is published meanwhile...
    missed = [publish(a, make_alert()) for _ in range(3)]
    async with open_ws(b, make_token()) as ws:
        assert (await recv_json(ws))["type"] == "welcome"
        await send_json(ws, {"type": "subscribe", "topics": ["workflow.publish"], "since": seen})
        replayed = [await recv_json(ws) for _ in range(4)]
        live = publish(a, make_alert())
        after = await recv_json(ws)
    assert [f.get("id") for f in replayed] == missed + [None]
    assert replayed[-1] == {"type": "subscribed", "topics": ["workflow.publish"],
                            "recovered": True}
    assert after["id"] == live
