"""Delivery survives Redis trouble: a killed connection, and a Redis server
that goes away and comes back (a private server, so the session's shared one
keeps running for everybody else)."""

from devstack.processes import free_port
from devstack.redis_server import start_redis

from tests.sidecar.helpers import (
    http_client,
    open_ws,
    recv_json,
    subscribed_client,
    wait_until,
)

import asyncio
import json
import redis


REDIS_CLIENT_NAME = "eduhub-alerts-sidecar"


async def test_delivery_resumes_after_the_readers_redis_connection_is_killed(
    sidecar, make_token, make_alert, publish, redis_client
):
    async with open_ws(sidecar, make_token()) as ws:
        await subscribed_client(ws, ["workflow.publish"])
        killed = 0
        for client in redis_client.client_list():
            if client["name"] == REDIS_CLIENT_NAME:
                redis_client.client_kill_filter(_id=client["id"])
                killed += 1
        assert killed >= 1  # at least the reader's blocking XREAD
        alert = make_alert()
        publish(sidecar, alert)
        frame = await recv_json(ws, timeout=10)
    assert frame["alert"]["id"] == alert["id"]


async def test_delivery_resumes_when_redis_comes_back(start_sidecar, make_token, make_alert,
                                                      tmp_path):
    port = free_port()
    data, log = tmp_path / "data", tmp_path / "redis.log"
    server = await asyncio.to_thread(start_redis, port, data, log)
    url = f"redis://127.0.0.1:{port}/0"
    sidecar = await start_sidecar(redis_url=url, task_restart_max_delay_seconds=0.5)
    producer = redis.Redis.from_url(url, decode_responses=True)

    def publish(alert):
        return producer.xadd(sidecar.settings.stream_key, {"alert": json.dumps(alert)})

    def reader_failures():
        return sidecar.metric("eduhub_background_task_failures_total", task="stream_reader")

    try:
        async with open_ws(sidecar, make_token()) as ws, http_client(sidecar) as http:
            await subscribed_client(ws, ["workflow.publish"])
            before = make_alert(title="before the outage")
            publish(before)
            assert (await recv_json(ws))["alert"]["id"] == before["id"]

            await asyncio.to_thread(server.stop)
            assert (await http.get("/readyz")).status_code == 503
            # The reader crashes on the outage, is logged, counted and restarted.
            await wait_until(lambda: reader_failures() >= 1, 15)  # the reader failed

            server = await asyncio.to_thread(start_redis, port, data, log)
            assert (await http.get("/readyz")).status_code == 200
            after = make_alert(title="after the outage")
            publish(after)
            frame = await recv_json(ws, timeout=15)
        # The WebSocket itself never noticed: same connection, next alert.
        assert frame["alert"]["id"] == after["id"]
    finally:
        producer.close()
        await sidecar.stop()
        await asyncio.to_thread(server.stop)
