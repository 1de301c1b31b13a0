"""``POST /alerts`` and ``GET /alerts``: the HTTP API for producers and
readers that are not Plone. Thin adapters: authentication, parsing and
answers here; the work is in ``publisher``, ``history`` and ``models``.

Collaborators come from ``request.app.state``: ``verify_token``,
``publisher``, ``history``, ``post_limiter`` and ``metrics``.
"""

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from .auth import READ_SCOPE, WRITE_SCOPE, AuthError, Identity
from .history import visible_after, visible_latest
from .models import (
    InvalidAlert,
    complete_producer_alert,
    for_readers,
    producer_alert_schema,
    validate_alert,
)
from .stream_ids import format_stream_id, parse_stream_id

import json
import math


HTTP = "http"  # the rate-limit metric's scope
GET_LIMIT_DEFAULT = 50
GET_LIMIT_MAX = 500
SCAN_LIMIT = 10_000  # stream entries one GET looks at, at most

router = APIRouter(tags=["alerts"])


# --- shapes (for OpenAPI as much as for us) -----------------------------------


class StreamAlert(BaseModel):
    id: str = Field(description="Stream id of the entry; pass it as `since` to resume after it.")
    alert: dict[str, Any] = Field(
        description="The alert (schema version 1) without `audience` and `routes`, "
        "which say who else may see it and where Slack posts it.")


class PublishedAlert(BaseModel):
    id: str | None = Field(
        description="Stream id of the new entry; null when an alert with this `id` was "
        "published before (within a week) and nothing was appended.")
    alert: dict[str, Any] = Field(description="The alert as published, defaults filled in.")
    duplicate: bool = Field(False, description="True when the alert `id` was published before.")


class AlertHistory(BaseModel):
    alerts: list[StreamAlert] = Field(description="Oldest first.")
    next: str = Field(description="Pass as `since` to get what comes after this answer.")
    complete: bool = Field(
        description="False when the stream had been trimmed past `since` (alerts are lost), "
        "or `since` is beyond its newest entry.")


class ErrorItem(BaseModel):
    loc: list[str | int] = Field(description="Where: `body`, then the path of the field.")
    msg: str
    type: str


class ErrorList(BaseModel):
    detail: list[ErrorItem]


class Problem(BaseModel):
    detail: str


def error_list(status: int, loc: list, msg: str, kind: str) -> JSONResponse:
    """An error in FastAPI's own 422 shape, so clients parse one form."""
    return JSONResponse({"detail": [{"loc": loc, "msg": msg, "type": kind}]}, status_code=status)


# --- authentication -------------------------------------------------------------


class Unauthorized(Exception):
    """A request without an acceptable bearer token; becomes 401 or 403."""

    def __init__(self, error: AuthError):
        self.error = error


def bearer_identity(request: Request, scope: str) -> Identity:
    """The identity of the request's ``Authorization: Bearer`` token with ``scope``."""
    header = request.headers.get("authorization", "")
    kind, _, token = header.partition(" ")
    token = token.strip() if kind.lower() == "bearer" else None
    try:
        return request.app.state.verify_token(token, required_scope=scope)
    except AuthError as exc:
        raise Unauthorized(exc) from None


async def unauthorized_handler(request: Request, exc: Unauthorized) -> JSONResponse:
    # RFC 6750: 401 invalid_token, or 403 insufficient_scope when only the scope is missing.
    reason = exc.error.reason
    status, error = (403, "insufficient_scope") if reason == "missing_scope" else (
        401, "invalid_token")
    return JSONResponse(
        {"detail": f"unauthorized: {reason}"},
        status_code=status,
        headers={"WWW-Authenticate": f'Bearer realm="eduhub-alerts", error="{error}"'},
    )


AUTH_RESPONSES = {
    401: {"model": Problem, "description": "Missing, forged, expired or wrong-audience token"},
    403: {"model": Problem, "description": "The token lacks the scope"},
}


# --- POST /alerts -----------------------------------------------------------------


async def read_body(request: Request, limit: int) -> bytes | None:
    """The request body, or None when it is larger than ``limit`` (read no further)."""
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            return None
    return bytes(body)


@router.post(
    "/alerts",
    status_code=201,
    summary="Publish an alert (Bearer token with alerts:write)",
    response_model=PublishedAlert,
    responses={
        200: {"model": PublishedAlert, "description": "This alert `id` was published before"},
        400: {"model": ErrorList, "description": "The body is not JSON"},
        413: {"model": Problem, "description": "The body is larger than "
              "EDUHUB_MAX_MESSAGE_BYTES (64 KiB)"},
        422: {"model": ErrorList, "description": "The alert breaks the schema; `loc` names "
              "the field"},
        429: {"model": Problem, "description": "Too many requests from this address; see "
              "Retry-After"},
        **AUTH_RESPONSES,
    },
    openapi_extra={"requestBody": {"required": True, "content": {
        "application/json": {"schema": producer_alert_schema()}}}},
)
async def post_alert(request: Request):
    """Validate the alert against the shared schema and append it to the stream.

    `id`, `version` and `created_at` may be left out: the sidecar fills them.
    Send your own `id` to retry safely: an `id` published before (by anyone,
    within a week) is answered 200 with `duplicate: true` and not appended again.
    """
    state = request.app.state
    address = request.client.host if request.client else "unknown"
    wait = state.post_limiter.check(address)
    if wait is not None:
        state.metrics.rate_limited.labels(scope=HTTP).inc()
        per_minute = state.settings.http_post_rate_per_minute
        return JSONResponse(
            {"detail": f"rate limited: at most {per_minute} alerts per minute per address"},
            status_code=429,
            headers={"Retry-After": str(max(1, math.ceil(wait)))},
        )
    bearer_identity(request, WRITE_SCOPE)
    max_bytes = state.settings.max_message_bytes
    raw = await read_body(request, max_bytes)
    if raw is None:
        return JSONResponse({"detail": f"body larger than {max_bytes} bytes"}, status_code=413)
    try:
        body = json.loads(raw)
    except (ValueError, RecursionError) as exc:
        return error_list(400, ["body"], f"not valid JSON: {exc}", "json_invalid")
    try:
        alert = validate_alert(complete_producer_alert(body))
    except InvalidAlert as exc:
        loc = ["body", *(int(p) if p.isdigit() else p for p in exc.field.split(".") if p)]
        return error_list(422, loc, exc.message, "alert_schema")
    stream_id = await state.publisher.publish(alert)
    if stream_id is None:
        return JSONResponse({"id": None, "alert": alert, "duplicate": True}, status_code=200)
    return PublishedAlert(id=stream_id, alert=alert)


# --- GET /alerts ------------------------------------------------------------------


@router.get(
    "/alerts",
    summary="Alerts the token may see (Bearer token with alerts:read)",
    response_model=AlertHistory,
    responses={422: {"model": ErrorList, "description": "Invalid `since` or `limit`"},
               **AUTH_RESPONSES},
)
async def get_alerts(
    request: Request,
    since: Annotated[str | None, Query(
        description="Stream id: the alerts after it, oldest first. Without it: the newest "
        "`limit` alerts, oldest first.", examples=["1764753300000-0"])] = None,
    limit: Annotated[int, Query(ge=1, le=GET_LIMIT_MAX)] = GET_LIMIT_DEFAULT,
):
    """From the stream's history, only alerts whose audience meets the token's principals.

    Always oldest first; `next` is where to continue with `since`. One request
    looks at 10,000 stream entries at most, so it may return fewer than
    `limit` alerts although more follow: ask again from `next`.
    """
    identity = bearer_identity(request, READ_SCOPE)
    history = request.app.state.history
    if since is None:
        page = await visible_latest(history, identity.principals, limit=limit,
                                    scan_limit=SCAN_LIMIT)
    else:
        try:
            position = parse_stream_id(since)
        except ValueError as exc:
            return error_list(422, ["query", "since"], str(exc), "value_error")
        page = await visible_after(history, identity.principals, position, limit=limit,
                                   scan_limit=SCAN_LIMIT)
    return AlertHistory(
        alerts=[StreamAlert(id=stream_id, alert=for_readers(alert))
                for stream_id, alert in page.alerts],
        next=format_stream_id(page.next),
        complete=page.complete,
    )
