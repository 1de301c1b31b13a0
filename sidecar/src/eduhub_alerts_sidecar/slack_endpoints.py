"""The operator's view of Slack delivery over HTTP: list and re-drive dead letters.

Both need a Bearer token with ``alerts:write`` (the scope that may send
alerts may also send them again).
"""

from typing import Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from .alerts_api import AUTH_RESPONSES, Problem, bearer_identity

WRITE_SCOPE = "alerts:write"

router = APIRouter(tags=["slack"])


class DeadLetter(BaseModel):
    id: str = Field(description="Id of the entry in the dead-letter stream.")
    alert: dict[str, Any] = Field(description="The alert that could not be posted.")
    stream_id: str = Field(description="Its id in the alert stream.")
    reason: str = Field(description="Why: a permanent Slack error (channel_not_found...) or "
                        "max_attempts.")
    errors: list[dict[str, Any]] = Field(description="The failed routes: route, status, "
                                         "reason, error.")
    attempts: int
    consumer: str = Field(description="The replica that gave up.")
    failed_at: str


class DeadLetterList(BaseModel):
    dead_letters: list[DeadLetter] = Field(description="Oldest first.")


class Redrive(BaseModel):
    id: str
    redriven: bool = Field(description="True when every route is now posted and the dead "
                           "letter was deleted.")
    routes: list[dict[str, Any]] = Field(description="What happened to each route.")


NOT_CONFIGURED = {503: {"model": Problem, "description": "Slack delivery is off "
                        "(no EDUHUB_SLACK_BOT_TOKEN)"}}


def _delivery(request: Request):
    bearer_identity(request, WRITE_SCOPE)
    return request.app.state.slack_delivery


def _not_configured() -> JSONResponse:
    return JSONResponse({"detail": "Slack delivery is off: EDUHUB_SLACK_BOT_TOKEN is not set"},
                        status_code=503)


@router.get("/dead-letters", summary="Dead-lettered Slack deliveries (alerts:write)",
            response_model=DeadLetterList, responses={**AUTH_RESPONSES, **NOT_CONFIGURED})
async def list_dead_letters(request: Request, count: int = Query(100, ge=1, le=1000)):
    """The oldest `count` entries of the dead-letter stream."""
    delivery = _delivery(request)
    if delivery is None:
        return _not_configured()
    return {"dead_letters": await delivery.dead_letters(count)}


@router.post("/dead-letters/{dead_id}/redrive",
             summary="Post a dead-lettered alert to Slack again (alerts:write)",
             response_model=Redrive,
             responses={**AUTH_RESPONSES, **NOT_CONFIGURED,
                        404: {"model": Problem, "description": "No such dead letter"}})
async def redrive_dead_letter(request: Request, dead_id: str):
    """Deliver the alert again now; routes posted before are skipped. The dead letter
    is deleted when every route succeeded, kept otherwise."""
    delivery = _delivery(request)
    if delivery is None:
        return _not_configured()
    outcomes = await delivery.redrive(dead_id)
    if outcomes is None:
        return JSONResponse({"detail": f"no dead letter {dead_id}"}, status_code=404)
    return {"id": dead_id, "redriven": all(o.status in ("sent", "skipped") for o in outcomes),
            "routes": [o.as_dict() for o in outcomes]}
