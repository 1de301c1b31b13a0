"""HTTP endpoints of the service itself: health, readiness, metrics.

The WebSocket endpoint ``/ws`` is not an ASGI route: ``ws_protocol`` serves it
when the server runs with ``cli.uvicorn_config``. The ASGI ``/ws`` route here
only catches a server started another way, and says so.

Everything here reads its collaborators from ``request.app.state`` (set up by
``app.create_app``): ``settings``, ``redis``, ``hub``, ``metrics``.
"""

from fastapi import APIRouter, Request, Response, WebSocket
from fastapi.responses import JSONResponse

from .ws_protocol import WS_PROTOCOL

import asyncio
import logging


log = logging.getLogger(__name__)

READYZ_TIMEOUT_SECONDS = 2.0
CLOSE_INTERNAL_ERROR = 1011  # RFC 6455: the server cannot fulfil the request

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


# --- WebSocket, misconfigured -----------------------------------------------


@router.websocket("/ws")
async def websocket_not_served(websocket: WebSocket) -> None:
    """Reached only when the server does not use the sidecar's WebSocket protocol.

    A plain ``uvicorn ... --factory`` (or another ASGI server) hands WebSocket
    upgrades to the app, which has no hub behind ``/ws``: rather than a bare
    403 that looks like an auth failure, close with 1011 and tell the
    operator, once per app, what to run instead.
    """
    state = websocket.app.state
    if not getattr(state, "told_ws_protocol_missing", False):
        state.told_ws_protocol_missing = True
        log.error("a WebSocket reached the ASGI app: the server is not using the sidecar's "
                  "WebSocket protocol; start it with eduhub-alerts-sidecar, or give uvicorn "
                  "ws=%r", WS_PROTOCOL)
    await websocket.accept()
    await websocket.close(CLOSE_INTERNAL_ERROR, "server misconfigured: see the sidecar's log")
