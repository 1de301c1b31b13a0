"""The status page: a small page that connects to this sidecar with a pasted
token and shows the connection state and the alerts that arrive, so an
operator can check a deployment end to end. It uses the project's own
JavaScript client, shipped in the package."""

from importlib import resources

from fastapi import APIRouter
from fastapi.responses import HTMLResponse
from fastapi.responses import Response


router = APIRouter(include_in_schema=False)

_STATIC = resources.files(__package__).joinpath("static")


@router.get("/status")
async def status_page() -> HTMLResponse:
    return HTMLResponse(_STATIC.joinpath("status.html").read_text("utf-8"))


@router.get("/alerts-client.js")
async def alerts_client() -> Response:
    return Response(
        _STATIC.joinpath("alerts-client.js").read_text("utf-8"),
        media_type="text/javascript",
    )
