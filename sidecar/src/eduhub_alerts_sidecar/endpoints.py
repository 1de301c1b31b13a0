"""HTTP and WebSocket endpoints: thin adapters between ASGI and the hub.

Everything here reads its collaborators from ``request.app.state`` (set up by
``app.create_app``): ``settings``, ``redis``, ``hub``, ``metrics``.
"""

from fastapi import APIRouter, Request, Response, WebSocket
from fastapi.responses import JSONResponse
from starlette.websockets import WebSocketState

from .auth import AuthError
from .websocket_hub import (
    CLOSE_FORBIDDEN_ORIGIN,
    CLOSE_TOO_MANY,
    CLOSE_UNAUTHORIZED,
    Hub,
    TooManyConnections,
)

import asyncio
import logging


log = logging.getLogger(__name__)

BEARER_PREFIX = "bearer."
READYZ_TIMEOUT_SECONDS = 2.0

router = APIRouter()


# --- HTTP -------------------------------------------------------------------


@router.get("/healthz", summary="Liveness: the process serves requests")
async def healthz() -> dict:
    """Always ``{"status": "ok"}`` while the event loop runs."""
    return {"status": "ok"}


@router.get(
    "/readyz",
    summary="Readiness: Redis is reachable",
    responses={503: {"description": "Redis is not reachable"}},
)
async def readyz(request: Request):
    """``200 {"status":"ready"}`` when Redis answers PING, else ``503`` with the error."""
    try:
        async with asyncio.timeout(READYZ_TIMEOUT_SECONDS):
            await request.app.state.redis.ping()
    except Exception as exc:
        detail = str(exc) or type(exc).__name__
        return JSONResponse({"status": "unavailable", "redis": detail}, status_code=503)
    return {"status": "ready"}


@router.get("/metrics", summary="Prometheus metrics", response_class=Response)
async def metrics(request: Request) -> Response:
    """The app's metrics in the Prometheus text format."""
    body, content_type = request.app.state.metrics.render()
    return Response(content=body, media_type=content_type)


# --- WebSocket --------------------------------------------------------------


class StarletteTransport:
    """``websocket_hub.Transport`` over a Starlette/FastAPI ``WebSocket``."""

    __slots__ = ("websocket",)

    def __init__(self, websocket: WebSocket):
        self.websocket = websocket

    async def send_text(self, data: str) -> None:
        await self.websocket.send_text(data)

    async def close(self, code: int, reason: str = "") -> None:
        ws = self.websocket
        # Nothing to close when either side has gone already.
        connected = WebSocketState.CONNECTED
        if ws.application_state is connected and ws.client_state is connected:
            await ws.close(code=code, reason=reason)


def offered_token(websocket: WebSocket) -> str | None:
    """The token from the ``token`` query parameter or a ``bearer.<token>`` subprotocol.

    Browsers cannot set headers on a WebSocket, hence these two carriers.
    """
    token = websocket.query_params.get("token")
    if token:
        return token
    for subprotocol in websocket.scope.get("subprotocols", ()):
        if subprotocol.startswith(BEARER_PREFIX):
            return subprotocol[len(BEARER_PREFIX):]
    return None


def chosen_subprotocol(websocket: WebSocket) -> str | None:
    """The subprotocol to accept with: browsers fail the handshake unless the
    server echoes one they offered. Prefer one that is not the token."""
    offered = list(websocket.scope.get("subprotocols", ()))
    for subprotocol in offered:
        if not subprotocol.startswith(BEARER_PREFIX):
            return subprotocol
    return offered[0] if offered else None


async def reject(websocket: WebSocket, code: int, reason: str) -> None:
    """Accept, then close with ``code``.

    Closing before accepting makes the server answer the handshake with HTTP
    403, and the client would never see the 44xx code that says why.
    """
    await websocket.accept(subprotocol=chosen_subprotocol(websocket))
    await websocket.close(code=code, reason=reason)


@router.websocket("/ws")
async def websocket_endpoint(websocket: WebSocket) -> None:
    """The alert WebSocket (protocol in sidecar/README.md)."""
    settings = websocket.app.state.settings
    hub: Hub = websocket.app.state.hub

    origin = websocket.headers.get("origin")
    if not settings.origin_allowed(origin):
        log.info("websocket refused: origin %r not allowed", origin)
        await reject(websocket, CLOSE_FORBIDDEN_ORIGIN, "origin not allowed")
        return
    try:
        identity = websocket.app.state.verify_token(offered_token(websocket))
    except AuthError as exc:
        log.info("websocket refused: %s", exc.reason)
        await reject(websocket, CLOSE_UNAUTHORIZED, f"unauthorized: {exc.reason}")
        return

    await websocket.accept(subprotocol=chosen_subprotocol(websocket))
    try:
        conn = hub.connect(StarletteTransport(websocket), identity)
    except TooManyConnections:
        log.info("websocket refused: %s has too many connections", identity.sub)
        await websocket.close(code=CLOSE_TOO_MANY, reason="too many connections")
        return
    try:
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                hub.peer_gone(conn, message.get("code"))
                break
            text = message.get("text")
            if text is not None:
                await hub.handle_text(conn, text)
            else:
                hub.handle_binary(conn)
    finally:
        await hub.disconnect(conn)
