"""The WebSocket protocol layer on a real socket: handshake refusals,
fragmented and invalid frames, back-pressure from a client that stops
reading, clients that break off, and a server shutting down."""

from contextlib import nullcontext

from eduhub_alerts_sidecar import ws_protocol
from eduhub_alerts_sidecar.app import create_app
from eduhub_alerts_sidecar.ws_protocol import WS_PROTOCOL
from fastapi import FastAPI
from websockets.frames import Close, Frame, Opcode

from tests.sidecar.helpers import (
    UPGRADE_HEADERS,
    RawPeer,
    Sidecar,
    close_of,
    listening_socket,
    open_ws,
    recv_json,
    send_json,
    wait_until,
)

import asyncio
import json
import logging
import pytest
import socket
import uvicorn


BIG = "x" * 60_000  # a few frames this size fill a socket's buffers


def big_alert(n: int) -> dict:
    return {"id": f"{n:032x}", "topic": "workflow.publish", "audience": ["Authenticated"],
            "message": BIG}


async def subscribed_peer(sidecar, token, **kwargs) -> RawPeer:
    peer = await RawPeer.open(sidecar, token, **kwargs)
    assert (await peer.read_json())["type"] == "welcome"
    peer.send_json({"type": "subscribe", "topics": ["workflow.*"]})
    assert (await peer.read_json())["type"] == "subscribed"
    return peer


def only_connection(sidecar):
    (conn,) = sidecar.app.state.hub.connections.values()
    return conn


class Publisher:
    """Broadcasts numbered big alerts through the sidecar's hub, as its reader does."""

    def __init__(self, sidecar):
        self.hub = sidecar.app.state.hub
        self.sent = 0

    def publish(self, count: int = 1) -> None:
        for _ in range(count):
            self.hub.broadcast(f"{self.sent + 1}-0", big_alert(self.sent))
            self.sent += 1

    def publish_until(self, condition, most: int = 2000) -> None:
        for _ in range(most):
            if condition():
                return
            self.publish()
        raise AssertionError(f"still not there after {most} more alerts")


# --- handshake ----------------------------------------------------------------


async def test_upgrade_on_another_path_is_refused_with_404(sidecar):
    peer, head = await RawPeer.connect(sidecar, "/elsewhere")
    peer.close()
    assert head.startswith(b"HTTP/1.1 404")


async def test_upgrade_without_a_key_is_refused_with_400(sidecar):
    no_key = UPGRADE_HEADERS.replace("Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n", "")
    peer, head = await RawPeer.connect(sidecar, headers=no_key)
    await peer.until_hung_up()
    assert head.startswith(b"HTTP/1.1 400")


async def test_request_with_too_many_headers_is_refused_with_431(sidecar):
    too_many_headers = "".join(f"X-Header-{n}: {n}\r\n" for n in range(200))
    peer, head = await RawPeer.connect(sidecar, headers=UPGRADE_HEADERS + too_many_headers)
    await peer.until_hung_up()
    assert head.startswith(b"HTTP/1.1 431")
    assert sidecar.app.state.hub.connections == {}


async def test_websocket_protocol_without_the_sidecar_app_answers_503(make_settings):
    # The protocol class served in front of an app whose lifespan did not set up a hub.
    sock = listening_socket()
    server = uvicorn.Server(uvicorn.Config(FastAPI(), ws=WS_PROTOCOL, log_level="warning"))
    server.capture_signals = nullcontext
    serving = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        not_started = Sidecar(make_settings(), f"http://127.0.0.1:{sock.getsockname()[1]}")
        peer, head = await RawPeer.connect(not_started)
        peer.close()
        assert head.startswith(b"HTTP/1.1 503")
    finally:
        server.should_exit = True
        await serving


async def test_app_served_without_the_websocket_protocol_closes_with_1011_and_says_why(
    make_settings, make_token, caplog
):
    # What `uvicorn eduhub_alerts_sidecar.app:create_app --factory` would run:
    # uvicorn's own WebSocket implementation in front of the app.
    sock = listening_socket()
    settings = make_settings()
    server = uvicorn.Server(uvicorn.Config(create_app(settings), log_level="warning"))
    server.capture_signals = nullcontext
    serving = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        plain = Sidecar(settings, f"http://127.0.0.1:{sock.getsockname()[1]}")
        for _ in range(2):
            async with open_ws(plain, make_token()) as ws:
                assert await close_of(ws) == (1011, "server misconfigured: see the sidecar's log")
    finally:
        server.should_exit = True
        await serving
    told = [r.getMessage() for r in caplog.records if "WebSocket protocol" in r.getMessage()]
    assert len(told) == 1  # once, not once per connection
    assert WS_PROTOCOL in told[0] and "eduhub-alerts-sidecar" in told[0]


# --- frames -------------------------------------------------------------------


async def test_fragmented_text_message_is_reassembled(sidecar, make_token):
    async with open_ws(sidecar, make_token()) as ws:
        await recv_json(ws)
        await ws.send(['{"type":', ' "ping"}'])  # one message in two frames
        assert await recv_json(ws) == {"type": "pong"}


async def test_message_in_many_empty_fragments_is_reassembled(sidecar, make_token):
    peer = await RawPeer.open(sidecar, make_token())
    try:
        assert (await peer.read_json())["type"] == "welcome"
        peer.send_frame(Opcode.TEXT, b'{"type":', fin=False)
        for _ in range(1000):  # cost the server nothing but time
            peer.send_frame(Opcode.CONT, b"", fin=False)
        peer.send_frame(Opcode.CONT, b'"ping"}')
        assert await peer.read_json() == {"type": "pong"}
    finally:
        peer.close()


async def test_fragmented_binary_message_gets_one_error(sidecar, make_token):
    async with open_ws(sidecar, make_token()) as ws:
        await recv_json(ws)
        await ws.send([b"\x00\x01", b"\x02"])
        assert (await recv_json(ws))["code"] == "bad_request"
        await send_json(ws, {"type": "ping"})
        assert await recv_json(ws) == {"type": "pong"}  # and nothing else came before it


async def test_text_frame_that_is_not_utf8_closes_that_connection_with_1007(
    sidecar, make_token
):
    async with open_ws(sidecar, make_token()) as bystander:
        await recv_json(bystander)
        async with open_ws(sidecar, make_token()) as ws:
            await recv_json(ws)
            await ws.send(b"\xff\xfe not UTF-8", text=True)
            assert await close_of(ws) == (1007, "text frames must be UTF-8")
        await send_json(bystander, {"type": "ping"})
        assert await recv_json(bystander) == {"type": "pong"}


# --- clients that misbehave ---------------------------------------------------


async def test_peer_hanging_up_without_a_close_frame_is_forgotten_and_counted(
    sidecar, make_token
):
    hub = sidecar.app.state.hub
    peer = await RawPeer.open(sidecar, make_token())
    assert (await peer.read_json())["type"] == "welcome"
    peer.writer.write_eof()
    await wait_until(lambda: not hub.connections)
    peer.close()
    assert sidecar.metric("eduhub_websocket_dead_peers_total") == 1
    assert sidecar.metric("eduhub_websocket_connections") == 0


def never_pausing(sidecar):
    """The only connection's socket transport, made to buffer without limit:
    a client that stops reading then leaves unsent data behind without the
    transport ever pausing (as with large kernel buffers)."""
    transport = only_connection(sidecar).transport._transport
    transport.set_write_buffer_limits(high=2**30)
    return transport


@pytest.mark.parametrize(("how", "dead_peer"), [
    ("close frame", 0),
    ("message over the size limit", 0),  # websockets fails it with 1009
    ("end of stream", 1),
])
async def test_peer_that_ends_while_data_waits_for_it_is_forgotten_in_time(
    start_sidecar, make_token, monkeypatch, how, dead_peer
):
    monkeypatch.setattr(ws_protocol, "CLOSE_TIMEOUT_SECONDS", 0.2)
    sidecar = await start_sidecar(max_message_bytes=1024)
    hub = sidecar.app.state.hub
    peer = await subscribed_peer(sidecar, make_token(), receive_buffer=4096)
    try:
        transport = never_pausing(sidecar)
        Publisher(sidecar).publish_until(lambda: transport.get_write_buffer_size() > 0)
        if how == "close frame":
            peer.send_frame(Opcode.CLOSE, Close(1000, "bye").serialize())
        elif how == "message over the size limit":
            peer.send_frame(Opcode.TEXT, b"x" * 2048)
        else:
            peer.writer.write_eof()
        # The peer reads nothing more: the hub forgets it at once, and the
        # socket is closed at the deadline all the same.
        await wait_until(lambda: not hub.connections)
        assert sidecar.metric("eduhub_websocket_connections") == 0
        assert sidecar.metric("eduhub_websocket_dead_peers_total") == dead_peer
        await wait_until(lambda: not sidecar.server.server_state.connections)
        await sidecar.stop()  # nothing left for the shutdown to wait for
    finally:
        peer.close()


async def test_client_that_closes_is_forgotten_at_once_not_cut_off_as_slow(
    start_sidecar, make_token
):
    sidecar = await start_sidecar(send_queue_size=4, reader_batch_size=1)
    hub = sidecar.app.state.hub
    peer = await subscribed_peer(sidecar, make_token(), receive_buffer=4096)
    try:
        conn = only_connection(sidecar)
        publisher = Publisher(sidecar)
        publisher.publish_until(lambda: conn.paused)  # and it reads nothing more
        peer.send_frame(Opcode.CLOSE, Close(1000, "bye").serialize())
        await wait_until(lambda: not hub.connections)  # before its socket is closed
        publisher.publish(5)
        assert sidecar.metric("eduhub_alerts_failed_total", channel="websocket",
                              reason="slow_consumer") == 0
        assert sidecar.metric("eduhub_websocket_dead_peers_total") == 0
    finally:
        peer.writer.transport.abort()


async def test_close_frame_without_a_code_is_not_counted_as_a_dead_peer(sidecar, make_token):
    hub = sidecar.app.state.hub
    peer = await RawPeer.open(sidecar, make_token())
    try:
        assert (await peer.read_json())["type"] == "welcome"
        peer.send_frame(Opcode.CLOSE, b"")  # 1005: no status, but a proper close
        opcode, _ = await peer.read_frame()
        assert opcode is Opcode.CLOSE
        await wait_until(lambda: not hub.connections)
        assert sidecar.metric("eduhub_websocket_dead_peers_total") == 0
    finally:
        peer.close()


async def test_ping_flood_from_a_peer_that_does_not_read_is_cut_off_not_buffered(
    start_sidecar, make_token, monkeypatch
):
    monkeypatch.setattr(ws_protocol, "CLOSE_TIMEOUT_SECONDS", 0.2)
    sidecar = await start_sidecar(send_queue_size=16, reader_batch_size=16)
    peer = await RawPeer.open(sidecar, make_token(), receive_buffer=4096)
    try:
        assert (await peer.read_json())["type"] == "welcome"
        conn = only_connection(sidecar)
        transport = conn.transport._transport
        ping = Frame(Opcode.PING, b"p" * 125).serialize(mask=True)
        peer.writer.write(ping * 130_000)  # 17 MB of pings, and never a read
        # websockets answers each ping; once the socket's buffer is full those
        # answers count like any frame, and the client is cut off.
        await wait_until(lambda: conn.closed)
        assert not transport.is_reading()  # nor are its pings answered while it closes
        assert transport.get_write_buffer_size() < 1_000_000
        assert sidecar.metric("eduhub_alerts_failed_total", channel="websocket",
                              reason="slow_consumer") == 1
        await wait_until(lambda: not sidecar.app.state.hub.connections)
    finally:
        peer.writer.transport.abort()  # a close would wait to send the rest first


async def test_slow_client_that_keeps_reading_survives_a_long_replay(
    start_sidecar, make_token, make_alert, publish
):
    # The replay keeps the client's socket buffer full for seconds, without
    # waiting for Redis in between: the client's pongs must be read meanwhile.
    # One page, read at about 300 KB/s: 3 s, longer than the first ping and
    # its deadline, while a ping waits well under a tenth of a second behind
    # what is buffered for the client.
    sidecar = await start_sidecar(heartbeat_seconds=1, heartbeat_timeout_seconds=1.5,
                                  send_queue_size=600, reader_batch_size=600)
    for _ in range(600):
        publish(sidecar, make_alert(topic="workflow.publish", message="x" * 1500))
    peer = await RawPeer.open(sidecar, make_token(), receive_buffer=4096)
    try:
        assert (await peer.read_json())["type"] == "welcome"
        # Small buffers: the transport pauses often and little waits ahead of a ping.
        transport = only_connection(sidecar).transport._transport
        transport.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 8192)
        transport.set_write_buffer_limits(high=8192)
        peer.send_json({"type": "subscribe", "topics": ["workflow.*"], "since": "0-0"})
        alerts, pings = 0, 0
        while True:
            opcode, payload = await peer.read_frame(timeout=10)
            if opcode is Opcode.PING:
                pings += 1
                peer.send_frame(Opcode.PONG, payload)
                continue
            assert opcode is Opcode.TEXT, (opcode, payload)
            frame = json.loads(payload)
            if frame["type"] == "subscribed":
                break
            alerts += 1
            await asyncio.sleep(0.005)  # a slow link, not a synchronisation
        assert alerts == 600 and pings >= 1
        assert sidecar.metric("eduhub_websocket_dead_peers_total") == 0
    finally:
        peer.close()


async def test_websockets_per_connection_chatter_is_logged_at_debug_only(
    sidecar, make_token, caplog
):
    caplog.set_level(logging.DEBUG)
    async with open_ws(sidecar, make_token()) as ws:
        await recv_json(ws)
    await wait_until(lambda: not sidecar.app.state.hub.connections)
    chatter = [r for r in caplog.records if r.name.endswith(".websockets")]
    assert "connection open" in {r.getMessage() for r in chatter}
    assert {r.levelname for r in chatter} == {"DEBUG"}


async def test_peer_that_ignores_the_closing_handshake_is_cut_after_the_timeout(
    sidecar, make_token, monkeypatch
):
    monkeypatch.setattr(ws_protocol, "CLOSE_TIMEOUT_SECONDS", 0.2)
    peer = await RawPeer.open(sidecar, make_token(), "Origin: https://evil.example\r\n")
    try:
        opcode, payload = await peer.read_frame()
        assert opcode is Opcode.CLOSE
        assert Close.parse(payload).code == 4403
        await peer.until_hung_up()  # without the peer ever answering the close
    finally:
        peer.close()


async def test_client_that_falls_behind_for_a_while_catches_up_and_misses_nothing(
    start_sidecar, make_token
):
    sidecar = await start_sidecar(send_queue_size=1000)
    peer = await subscribed_peer(sidecar, make_token(), receive_buffer=4096)
    try:
        conn = only_connection(sidecar)
        publisher = Publisher(sidecar)
        publisher.publish_until(lambda: conn.paused)  # the peer is not reading
        publisher.publish(3)
        received = [(await peer.read_json())["alert"]["id"] for _ in range(publisher.sent)]
        assert received == [big_alert(n)["id"] for n in range(publisher.sent)]
        await wait_until(lambda: not conn.paused)
        assert not conn.closed and conn.backlog == 0
    finally:
        peer.close()


async def test_client_that_stops_reading_is_cut_off_with_1013_after_the_send_queue(
    start_sidecar, make_token
):
    sidecar = await start_sidecar(send_queue_size=2, reader_batch_size=1)
    peer = await subscribed_peer(sidecar, make_token(), receive_buffer=4096)
    try:
        conn = only_connection(sidecar)
        publisher = Publisher(sidecar)
        publisher.publish_until(lambda: conn.closed)
        publisher.publish(3)  # offered to nobody: the connection is gone from the hub
        assert sidecar.metric("eduhub_alerts_failed_total", channel="websocket",
                              reason="slow_consumer") == 1
        # What was written before the cut-off still arrives, then the close frame.
        alerts = 0
        while (frame := await peer.read_frame())[0] is Opcode.TEXT:
            alerts += 1
        assert frame[0] is Opcode.CLOSE and Close.parse(frame[1]).code == 1013
        assert alerts == publisher.sent - 4  # all but the one refused and the three after
    finally:
        peer.close()


# --- shutdown -----------------------------------------------------------------


async def test_stopping_the_server_closes_connections_with_1012(sidecar, make_token):
    async with open_ws(sidecar, make_token()) as ws:
        await recv_json(ws)
        stopping = asyncio.create_task(sidecar.stop())
        assert await close_of(ws) == (1012, "service restart")
    await stopping


async def test_stopping_the_server_does_not_wait_for_a_refused_peer_to_close(
    sidecar, make_token
):
    peer = await RawPeer.open(sidecar, make_token(), "Origin: https://evil.example\r\n")
    try:
        assert (await peer.read_frame())[0] is Opcode.CLOSE  # and the peer never answers
        stopping = asyncio.create_task(sidecar.stop())
        await peer.until_hung_up(timeout=ws_protocol.CLOSE_TIMEOUT_SECONDS / 2)
        await stopping
    finally:
        peer.close()
