"""Heartbeat: a peer that stops answering WebSocket pings is dropped and
counted. The silent peer is a raw TCP socket that completes the handshake
and then never reads nor answers — what a vanished laptop looks like."""

from tests.sidecar.helpers import open_ws, recv_json, wait_until

from urllib.parse import urlencode

import asyncio


async def silent_peer(sidecar, token) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """Open /ws by hand and stop there; returns the raw stream after the 101."""
    host, port = sidecar.base_url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(
        f"GET /ws?{urlencode({'token': token})} HTTP/1.1\r\n"
        f"Host: {host}:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        .encode()
    )
    async with asyncio.timeout(5):
        head = await reader.readuntil(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 101"), head
    return reader, writer


async def test_peer_that_stops_answering_pings_is_dropped_and_counted(
    start_sidecar, make_token
):
    sidecar = await start_sidecar(heartbeat_seconds=1, heartbeat_timeout_seconds=0.3)
    hub = sidecar.app.state.hub
    reader, writer = await silent_peer(sidecar, make_token())
    try:
        await wait_until(lambda: len(hub.connections) == 1)
        # The server pings after 1 s, waits 0.3 s for the pong, then closes
        # the TCP connection: reading reaches its end.
        async with asyncio.timeout(5):
            while await reader.read(4096):
                pass
    finally:
        writer.close()
    await wait_until(lambda: not hub.connections)
    assert sidecar.metric("eduhub_websocket_dead_peers_total") == 1
    assert sidecar.metric("eduhub_websocket_connections") == 0


async def test_client_that_closes_properly_is_not_a_dead_peer(sidecar, make_token):
    hub = sidecar.app.state.hub
    async with open_ws(sidecar, make_token()) as ws:
        await recv_json(ws)
    await wait_until(lambda: not hub.connections)
    assert sidecar.metric("eduhub_websocket_dead_peers_total") == 0
