"""The operator's status page and the client module it loads are served by
the sidecar itself (the page in a browser: tests/e2e/test_classic_ui_toasts.py)."""

from tests.sidecar.helpers import http_client


async def test_status_page_loads_the_client_module_from_the_sidecar(sidecar):
    async with http_client(sidecar) as client:
        page = await client.get("/status")
        module = await client.get("/alerts-client.js")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert 'import { AlertsClient } from "./alerts-client.js"' in page.text
    assert module.headers["content-type"].startswith("text/javascript")
    assert "export class AlertsClient" in module.text


async def test_status_page_is_not_part_of_the_api_description(sidecar):
    async with http_client(sidecar) as client:
        paths = (await client.get("/openapi.json")).json()["paths"]
    assert "/status" not in paths and "/alerts-client.js" not in paths
