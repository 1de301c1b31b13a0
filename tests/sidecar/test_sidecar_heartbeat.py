"""Heartbeat: a peer that stops answering WebSocket pings is dropped and
counted. The silent peer is a raw TCP socket that completes the handshake
and then never reads nor answers — what a vanished laptop looks like."""

from websockets.frames import Opcode

from tests.sidecar.helpers import RawPeer, open_ws, recv_json, wait_until


async def test_peer_that_stops_answering_pings_is_dropped_and_counted(
    start_sidecar, make_token
):
    sidecar = await start_sidecar(heartbeat_seconds=1, heartbeat_timeout_seconds=0.3)
    hub = sidecar.app.state.hub
    peer = await RawPeer.open(sidecar, make_token())
    try:
        await wait_until(lambda: len(hub.connections) == 1)
        # The server pings after 1 s, waits 0.3 s for the pong, then closes
        # the TCP connection: reading reaches its end.
        await peer.until_hung_up()
    finally:
        peer.close()
    await wait_until(lambda: not hub.connections)
    assert sidecar.metric("eduhub_websocket_dead_peers_total") == 1
    assert sidecar.metric("eduhub_websocket_connections") == 0


async def test_pong_without_the_pings_payload_does_not_answer_it(start_sidecar, make_token):
    # Unsolicited pongs are allowed (RFC 6455 5.5.3) but answer no ping, or
    # a client that reads nothing could keep itself connected with them.
    sidecar = await start_sidecar(heartbeat_seconds=1, heartbeat_timeout_seconds=0.3)
    peer = await RawPeer.open(sidecar, make_token())
    try:
        assert (await peer.read_json())["type"] == "welcome"
        opcode, payload = await peer.read_frame()
        assert opcode is Opcode.PING and payload
        peer.send_frame(Opcode.PONG, b"")
        assert await peer.until_hung_up() == b""  # dropped at that ping's deadline
    finally:
        peer.close()
    assert sidecar.metric("eduhub_websocket_dead_peers_total") == 1


async def test_peer_that_answers_pings_is_kept_heartbeat_after_heartbeat(
    start_sidecar, make_token
):
    sidecar = await start_sidecar(heartbeat_seconds=1, heartbeat_timeout_seconds=0.3)
    peer = await RawPeer.open(sidecar, make_token())
    try:
        assert (await peer.read_json())["type"] == "welcome"
        payloads = []
        for _ in range(2):  # a ping, the pong, and the next ping comes: still connected
            opcode, payload = await peer.read_frame()
            assert opcode is Opcode.PING
            payloads.append(payload)
            peer.send_frame(Opcode.PONG, payload)
    finally:
        peer.close()
    assert sidecar.metric("eduhub_websocket_dead_peers_total") == 0
    assert payloads[0] != payloads[1]  # each ping its own: an old pong does not answer it


async def test_client_that_closes_properly_is_not_a_dead_peer(sidecar, make_token):
    hub = sidecar.app.state.hub
    async with open_ws(sidecar, make_token()) as ws:
        await recv_json(ws)
    await wait_until(lambda: not hub.connections)
    assert sidecar.metric("eduhub_websocket_dead_peers_total") == 0
