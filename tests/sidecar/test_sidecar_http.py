"""Health, readiness, metrics and OpenAPI over real HTTP."""

from devstack.processes import free_port

from tests.sidecar.helpers import http_client


async def test_healthz_says_ok(sidecar):
    async with http_client(sidecar) as client:
        response = await client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_readyz_is_ready_when_redis_answers(sidecar):
    async with http_client(sidecar) as client:
        response = await client.get("/readyz")
    assert response.status_code == 200
    assert response.json() == {"status": "ready"}


async def test_readyz_is_503_when_redis_is_unreachable_but_healthz_stays_ok(start_sidecar):
    # Nothing listens on this port: the sidecar starts anyway and says why it is not ready.
    sidecar = await start_sidecar(redis_url=f"redis://127.0.0.1:{free_port()}/0")
    async with http_client(sidecar) as client:
        ready = await client.get("/readyz")
        health = await client.get("/healthz")
    assert ready.status_code == 503
    body = ready.json()
    assert body["status"] == "unavailable"
    assert "connect" in body["redis"].lower()
    assert health.status_code == 200


async def test_metrics_endpoint_serves_prometheus_text(sidecar):
    async with http_client(sidecar) as client:
        response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    for name in (
        "eduhub_alerts_published_total",
        "eduhub_alerts_sent_total",
        "eduhub_alerts_failed_total",
        "eduhub_alerts_broadcast_latency_seconds",
        "eduhub_websocket_connections",
        "eduhub_alerts_rate_limited_total",
        "eduhub_background_task_failures_total",
        "eduhub_alerts_reader_lag_seconds",
        "eduhub_alerts_replayed_total",
        "eduhub_websocket_dead_peers_total",
    ):
        assert f"# TYPE {name} " in response.text, name


async def test_openapi_document_lists_the_http_endpoints(sidecar):
    async with http_client(sidecar) as client:
        response = await client.get("/openapi.json")
    assert response.status_code == 200
    paths = response.json()["paths"]
    assert {"/healthz", "/readyz", "/metrics"} <= set(paths)


async def test_two_apps_in_one_process_have_separate_metrics(start_sidecar):
    one = await start_sidecar()
    two = await start_sidecar()
    one.metrics.published.inc()
    assert one.metric("eduhub_alerts_published_total") == 1
    assert two.metric("eduhub_alerts_published_total") == 0
