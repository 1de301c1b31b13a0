"""The ``/ws`` endpoint: a uvicorn WebSocket protocol that talks to the hub
directly, without ASGI in between.

uvicorn parses the HTTP request and, for a WebSocket upgrade, hands the
socket to the protocol class it was configured with (``WS_PROTOCOL``);
everything else stays ASGI (FastAPI). The WebSocket protocol itself
(handshake, framing, close handshake, limits) is the ``websockets`` library's
sans-I/O ``ServerProtocol``; this module only wires its events to the hub.

Why not an ASGI endpoint: there, every connection is a task running the
app's middleware stack plus a receive loop, about 40 KiB per idle
connection measured here. This protocol is event-driven: an idle connection
is this object, the ``websockets`` state machine, the hub's ``Connection``
and one timer, and a broadcast writes the same frame bytes to each socket's
transport in one loop.

What one client can make the process hold is bounded: while its socket's
buffer is full, the pongs websockets writes for its pings count towards the
send queue like any frame (hub.pong_written), a fragmented message is one
buffer within ``max_message_bytes``, and every close, whoever starts it,
ends within ``CLOSE_TIMEOUT_SECONDS`` even when the client reads nothing
more (a closing connection is not read from while its buffer is full).
"""

from dataclasses import dataclass
from urllib.parse import parse_qs

from websockets.frames import Frame, Opcode
from websockets.http11 import Request
from websockets.protocol import State
from websockets.server import ServerProtocol

from .auth import AuthError
from .connection import Connection
from .settings import Settings
from .websocket_hub import (
    CLOSE_ABNORMAL,
    CLOSE_FORBIDDEN_ORIGIN,
    CLOSE_SERVICE_RESTART,
    CLOSE_TOO_MANY,
    CLOSE_UNAUTHORIZED,
    Hub,
    TooManyConnections,
)

import asyncio
import logging
import os


log = logging.getLogger(__name__)

# Where the app's lifespan leaves the endpoint for the protocol (uvicorn passes
# the lifespan state to every protocol it creates).
ENDPOINT_STATE_KEY = "eduhub_websocket_endpoint"
# What uvicorn is given as its ``ws`` protocol (``cli.uvicorn_config``).
WS_PROTOCOL = f"{__name__}:AlertsWebSocketProtocol"
BEARER_PREFIX = "bearer."
# How long a closing handshake may take before the socket is closed anyway.
CLOSE_TIMEOUT_SECONDS = 5.0
CLOSE_INVALID_DATA = 1007  # RFC 6455: a text frame that is not UTF-8


class _DebugOnly(logging.LoggerAdapter):
    """websockets logs each connection's opening and closing at INFO: for a
    hub of thousands of browsers that is noise, so it goes to DEBUG (the
    sidecar logs refusals and drops itself)."""

    def info(self, msg, *args, **kwargs):
        self.debug(msg, *args, **kwargs)


WEBSOCKETS_LOG = _DebugOnly(logging.getLogger(f"{__name__}.websockets"))


@dataclass(frozen=True, slots=True)
class WebSocketEndpoint:
    """What the protocol needs from the app: the hub and the settings."""

    hub: Hub
    settings: Settings
    path: str = "/ws"


def offered_token(request: Request) -> str | None:
    """The token from the ``token`` query parameter or a ``bearer.<token>`` subprotocol.

    Browsers cannot set headers on a WebSocket, hence these two carriers.
    """
    _, _, query = request.path.partition("?")
    tokens = parse_qs(query).get("token")
    if tokens and tokens[0]:
        return tokens[0]
    for subprotocol in offered_subprotocols(request):
        if subprotocol.startswith(BEARER_PREFIX):
            return subprotocol[len(BEARER_PREFIX):]
    return None


def offered_subprotocols(request: Request) -> list[str]:
    return [
        value.strip()
        for header in request.headers.get_all("Sec-WebSocket-Protocol")
        for value in header.split(",")
        if value.strip()
    ]


def chosen_subprotocol(offered: list[str]) -> str | None:
    """The subprotocol to accept with: browsers fail the handshake unless the
    server echoes one they offered. Prefer one that is not the token."""
    for subprotocol in offered:
        if not subprotocol.startswith(BEARER_PREFIX):
            return subprotocol
    return offered[0] if offered else None


class AlertsServerProtocol(ServerProtocol):
    """``websockets``' server state machine with our subprotocol choice."""

    def select_subprotocol(self, subprotocols):
        return chosen_subprotocol(list(subprotocols))


class AlertsWebSocketProtocol(asyncio.Protocol):
    """One WebSocket connection on a socket, handed over by uvicorn.

    Implements ``connection.Transport`` for the hub. Two timers: the
    heartbeat (ping, then the pong deadline) while open, and the deadline of
    the closing handshake once closing.
    """

    __slots__ = (
        "_endpoint", "_server_connections", "_ws", "_transport", "_conn", "_fragments",
        "_timer", "_deadline", "_ping_sent",
    )

    def __init__(self, config, server_state, app_state: dict, _loop=None):
        # The signature uvicorn creates WebSocket protocols with.
        self._endpoint: WebSocketEndpoint | None = app_state.get(ENDPOINT_STATE_KEY)
        self._server_connections = server_state.connections  # uvicorn shuts these down
        max_size = (self._endpoint.settings.max_message_bytes if self._endpoint
                    else config.ws_max_size)
        self._ws = AlertsServerProtocol(max_size=max_size, logger=WEBSOCKETS_LOG)
        self._transport: asyncio.Transport | None = None
        self._conn: Connection | None = None
        # (opcode, data so far) of a fragmented message; websockets bounds its size.
        self._fragments: tuple[Opcode, bytearray] | None = None
        self._timer: asyncio.TimerHandle | None = None  # the heartbeat
        self._deadline: asyncio.TimerHandle | None = None  # the end of closing
        self._ping_sent: bytes | None = None  # the payload of the ping awaiting its pong

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.Transport) -> None:
        self._transport = transport
        self._server_connections.add(self)

    def data_received(self, data: bytes) -> None:
        ws = self._ws
        ws.receive_data(data)
        for event in ws.events_received():
            if isinstance(event, Request):
                self._handshake(event)
            else:
                self._frame(event)
        # A request websockets cannot parse it has answered itself (400, 414, 431).
        self._flush()

    def eof_received(self) -> None:
        self._ws.receive_eof()
        self._flush()

    def pause_writing(self) -> None:
        # An open connection is still read (its pongs and messages keep it
        # alive while it catches up); a closing one needs nothing more.
        if self._ws.state is not State.OPEN:
            self._transport.pause_reading()
        if self._conn is not None:
            self._conn.pause()

    def resume_writing(self) -> None:
        self._transport.resume_reading()
        if self._conn is not None:
            self._conn.resume()

    def connection_lost(self, exc: Exception | None) -> None:
        self._server_connections.discard(self)
        self._forget()
        self._cancel_timer()
        if self._deadline is not None:
            self._deadline.cancel()

    def shutdown(self) -> None:
        """uvicorn is stopping: tell the client to come back (1012)."""
        if self._conn is not None and self._ws.state is State.OPEN:
            self._endpoint.hub.drop(self._conn, CLOSE_SERVICE_RESTART, "service restart")
        else:  # closing already, or refused, or still in the handshake
            self._transport.close()
            self._closing()

    # connection.Transport

    def write_frame(self, frame: bytes) -> None:
        if self._ws.state is State.OPEN:
            self._transport.write(frame)

    def close(self, code: int, reason: str = "") -> None:
        ws = self._ws
        if ws.state is not State.OPEN or self._transport.is_closing():
            return  # closing already, or the socket is gone
        ws.send_close(code, reason)
        self._flush()
        self._closing()

    # the handshake

    def _handshake(self, request: Request) -> None:
        endpoint, ws = self._endpoint, self._ws
        path = request.path.partition("?")[0]
        if endpoint is None:
            self._refuse(503, "The sidecar is not started.\n")
            return
        if path != endpoint.path:
            self._refuse(404, "Not Found\n")
            return
        response = ws.accept(request)
        ws.send_response(response)
        self._flush()
        if response.status_code != 101:
            return  # a malformed handshake: websockets answered it (400) and ends the connection
        # Refusals come after the handshake, as close codes: a browser never
        # sees the HTTP status of a failed handshake, but it sees these.
        origin = request.headers.get("Origin")
        if not endpoint.settings.origin_allowed(origin):
            log.info("websocket refused: origin %r not allowed", origin)
            self.close(CLOSE_FORBIDDEN_ORIGIN, "origin not allowed")
            return
        hub = endpoint.hub
        try:
            identity = hub.verify_token(offered_token(request))
        except AuthError as exc:
            log.info("websocket refused: %s", exc.reason)
            self.close(CLOSE_UNAUTHORIZED, f"unauthorized: {exc.reason}")
            return
        try:
            self._conn = hub.connect(self, identity)
        except TooManyConnections:
            log.info("websocket refused: %s has too many connections", identity.sub)
            self.close(CLOSE_TOO_MANY, "too many connections")
            return
        log.debug("websocket accepted: %s as connection %s", identity.sub, self._conn.id)
        self._schedule_ping(endpoint.settings.heartbeat_seconds)

    def _refuse(self, status: int, text: str) -> None:
        self._ws.send_response(self._ws.reject(status, text))

    # frames

    def _frame(self, frame: Frame) -> None:
        conn = self._conn
        opcode = frame.opcode
        if opcode is Opcode.PONG:
            if frame.data == self._ping_sent:  # not just any pong: a client that
                self._ping_sent = None         # reads nothing cannot know the payload
            return
        if conn is None:
            return  # a refused client, being closed
        if opcode is Opcode.PING:
            if self._ws.state is State.OPEN:  # websockets wrote the answer
                self._endpoint.hub.pong_written(conn)
            return
        if opcode not in (Opcode.TEXT, Opcode.BINARY, Opcode.CONT):
            return  # websockets answers CLOSE itself
        if opcode is Opcode.CONT:
            # websockets checks that a continuation follows a first fragment.
            opcode, data = self._fragments
            data += frame.data
            if not frame.fin:
                return
            self._fragments = None
        elif not frame.fin:
            self._fragments = (opcode, bytearray(frame.data))
            return
        else:
            data = frame.data
        hub = self._endpoint.hub
        if opcode is Opcode.BINARY:
            hub.handle_binary(conn)
            return
        try:
            text = bytes(data).decode()
        except UnicodeDecodeError:
            hub.drop(conn, CLOSE_INVALID_DATA, "text frames must be UTF-8")
            return
        hub.handle_text(conn, text)

    # heartbeat

    def _schedule_ping(self, delay: float) -> None:
        self._timer = asyncio.get_running_loop().call_later(delay, self._ping)

    def _ping(self) -> None:
        if self._ws.state is not State.OPEN:
            return
        self._ping_sent = os.urandom(4)
        self._ws.send_ping(self._ping_sent)
        self._flush()
        timeout = self._endpoint.settings.heartbeat_timeout_seconds
        self._timer = asyncio.get_running_loop().call_later(timeout, self._pong_due)

    def _pong_due(self) -> None:
        if self._ping_sent is not None:
            # A dead peer would not answer a close frame either: drop the socket.
            self._transport.abort()
            return
        settings = self._endpoint.settings
        # Pings stay heartbeat_seconds apart, however long the pong took.
        self._schedule_ping(
            max(0.0, settings.heartbeat_seconds - settings.heartbeat_timeout_seconds))

    # plumbing

    def _flush(self) -> None:
        """Write what the state machine has to send; an empty chunk means
        "end the TCP connection"."""
        transport = self._transport
        for data in self._ws.data_to_send():
            if data:
                transport.write(data)
            else:
                transport.close()
                self._closing()
                self._forget()

    def _forget(self) -> None:
        """The WebSocket has ended: the hub forgets the connection at once, even
        if the socket takes until the deadline to close."""
        conn, self._conn = self._conn, None
        if conn is not None:
            # The client's close frame, else ours (websockets fails a
            # connection, 1009 say, with a close frame of its own).
            ws = self._ws
            close = ws.close_rcvd or ws.close_sent
            hub = self._endpoint.hub
            hub.peer_gone(conn, close.code if close is not None else CLOSE_ABNORMAL)
            hub.disconnect(conn)

    def _closing(self) -> None:
        """The connection is ending: no more heartbeat, and an end in time.

        ``transport.close()`` waits for the client to read what is buffered;
        one that never does would keep the connection (and uvicorn's
        shutdown) forever, so it is aborted at the deadline.
        """
        self._cancel_timer()
        if self._conn is not None and self._conn.paused:
            self._transport.pause_reading()  # see pause_writing
        if self._deadline is None:
            self._deadline = asyncio.get_running_loop().call_later(
                CLOSE_TIMEOUT_SECONDS, self._transport.abort)

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
