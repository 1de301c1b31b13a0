"""HTTP endpoints of the service itself: health, readiness, metrics.

The WebSocket endpoint ``/ws`` is not an ASGI route: ``ws_protocol`` serves it.

Everything here reads its collaborators from ``request.app.state`` (set up by
``app.create_app``): ``settings``, ``redis``, ``hub``, ``metrics``.
"""

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

import asyncio
import logging


log = logging.getLogger(__name__)

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
