"""POST /alerts and GET /alerts over real HTTP against real Redis."""

from eduhub_alerts_sidecar.app import create_redis
from eduhub_alerts_sidecar.publisher import AlertPublisher

from tests.sidecar.helpers import (
    as_delivered,
    http_client,
    open_ws,
    recv_json,
    subscribed_client,
)

import json
import pytest


WRITE = "alerts:read alerts:write"


def bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


async def post(sidecar, body, token=None, **kwargs):
    content = body if isinstance(body, (str, bytes)) else json.dumps(body)
    headers = bearer(token) if token else {}
    async with http_client(sidecar) as client:
        return await client.post("/alerts", content=content, headers=headers, **kwargs)


async def get(sidecar, token, **params):
    async with http_client(sidecar) as client:
        return await client.get("/alerts", params=params, headers=bearer(token))


# --- POST -------------------------------------------------------------------------


async def test_posted_alert_is_appended_and_reaches_websocket_subscribers(
    sidecar, make_token, make_alert, redis_client
):
    alert = make_alert()
    async with open_ws(sidecar, make_token()) as ws:
        await subscribed_client(ws, ["workflow.publish"])
        response = await post(sidecar, alert, make_token(scope=WRITE))
        frame = await recv_json(ws)
    assert response.status_code == 201
    body = response.json()
    assert body == {"id": body["id"], "alert": alert, "duplicate": False}
    [(stream_id, fields)] = redis_client.xrange(sidecar.settings.stream_key)
    assert stream_id == body["id"]
    assert json.loads(fields["alert"]) == alert
    assert frame == {"type": "alert", "id": stream_id, "alert": as_delivered(alert)}


async def test_posted_alert_gets_id_version_and_created_at_when_left_out(
    sidecar, make_token, make_alert
):
    alert = make_alert()
    for name in ("id", "version", "created_at"):
        del alert[name]
    response = await post(sidecar, alert, make_token(scope=WRITE))
    published = response.json()["alert"]
    assert response.status_code == 201
    assert len(published["id"]) == 32 and published["version"] == 1
    assert published["created_at"].endswith("Z")


async def test_posting_the_same_alert_id_again_appends_nothing_and_says_duplicate(
    sidecar, make_token, make_alert, redis_client
):
    alert = make_alert()
    first = await post(sidecar, alert, make_token(scope=WRITE))
    again = await post(sidecar, alert, make_token(scope=WRITE))
    assert first.status_code == 201
    assert again.status_code == 200
    assert again.json() == {"id": None, "alert": alert, "duplicate": True}
    assert redis_client.xlen(sidecar.settings.stream_key) == 1


@pytest.mark.parametrize(
    "change, loc",
    [
        ({"title": None}, ["body", "title"]),
        ({"severity": "apocalyptic"}, ["body", "severity"]),
        ({"audience": ["Anonymous", 7]}, ["body", "audience", 1]),
        ({"source": {"path": 3}}, ["body", "source", "path"]),
        ({"surprise": True}, ["body", "surprise"]),
    ],
    ids=["missing-title", "bad-severity", "audience-item", "nested", "unknown-field"],
)
async def test_alert_breaking_the_schema_is_422_naming_the_field(
    sidecar, make_token, make_alert, change, loc
):
    alert = make_alert(**change)
    if change == {"title": None}:
        del alert["title"]
    response = await post(sidecar, alert, make_token(scope=WRITE))
    assert response.status_code == 422
    [error] = response.json()["detail"]
    assert error["loc"] == loc
    assert error["type"] == "alert_schema"


@pytest.mark.parametrize("body", ["{not json", "[1, 2]", "null"])
async def test_body_that_is_not_a_json_object_is_refused(sidecar, make_token, body):
    response = await post(sidecar, body, make_token(scope=WRITE))
    assert response.status_code in (400, 422)
    assert response.json()["detail"][0]["loc"] == ["body"]


async def test_body_larger_than_the_message_limit_is_413(sidecar, make_token):
    response = await post(sidecar, "x" * 70_000, make_token(scope=WRITE))
    assert response.status_code == 413


@pytest.mark.parametrize(
    "claims, status, reason",
    [
        (None, 401, "missing"),
        ({"secret": "an-attacker-secret-that-is-long-enough-32", "scope": WRITE}, 401,
         "bad_signature"),
        ({"expires_in": -10, "scope": WRITE}, 401, "expired"),
        ({"scope": "alerts:read"}, 403, "missing_scope"),
    ],
    ids=["no-token", "forged", "expired", "read-only"],
)
async def test_post_without_an_acceptable_write_token_is_refused(
    sidecar, make_token, make_alert, redis_client, claims, status, reason
):
    token = make_token(**claims) if claims is not None else None
    response = await post(sidecar, make_alert(), token)
    assert response.status_code == status
    assert response.json() == {"detail": f"unauthorized: {reason}"}
    assert response.headers["www-authenticate"].startswith('Bearer realm="eduhub-alerts"')
    assert redis_client.xlen(sidecar.settings.stream_key) == 0


async def test_posts_beyond_the_rate_per_address_are_429_with_retry_after(
    start_sidecar, make_token, make_alert
):
    sidecar = await start_sidecar(http_post_rate_per_minute=2)
    token = make_token(scope=WRITE)
    statuses = [(await post(sidecar, make_alert(), token)).status_code for _ in range(2)]
    refused = await post(sidecar, make_alert(), token)
    assert statuses == [201, 201]
    assert refused.status_code == 429
    assert 1 <= int(refused.headers["retry-after"]) <= 30
    assert refused.json() == {"detail": "rate limited: at most 2 alerts per minute per address"}
    assert sidecar.metric("eduhub_alerts_rate_limited_total", scope="http") == 1


async def test_publisher_caps_the_stream_near_maxlen(make_settings, make_alert, redis_client):
    settings = make_settings()
    redis = create_redis(settings)
    publisher = AlertPublisher(redis, settings.stream_key, maxlen=10)
    try:
        for _ in range(300):
            await publisher.publish(make_alert())
    finally:
        await redis.aclose()
    # MAXLEN ~ trims whole radix-tree nodes (100 entries each by default).
    assert redis_client.xlen(settings.stream_key) < 200


# --- GET --------------------------------------------------------------------------


@pytest.fixture
def jane_history(sidecar, make_alert, publish):
    """Six entries: Jane may see the 1st, 3rd, 4th and 6th; one is invalid."""
    entries = []
    for audience in (["user:jane"], ["user:bob"], ["Authenticated"], ["Anonymous"]):
        alert = make_alert(audience=audience)
        entries.append((publish(sidecar, alert), alert))
    entries.append((publish(sidecar, fields={"alert": "{broken"}), None))
    alert = make_alert(audience=["user:jane"])
    entries.append((publish(sidecar, alert), alert))
    visible = [{"id": i, "alert": as_delivered(a)}
               for i, a in entries if a and a["audience"] != ["user:bob"]]
    return [i for i, _ in entries], visible


JANE = ("Anonymous", "Authenticated", "user:jane")


async def test_get_since_answers_the_visible_alerts_after_it_oldest_first(
    sidecar, make_token, jane_history
):
    ids, visible = jane_history
    response = await get(sidecar, make_token(principals=JANE), since=ids[0])
    assert response.status_code == 200
    assert response.json() == {"alerts": visible[1:], "next": ids[-1], "complete": True}


async def test_get_without_since_answers_the_newest_visible_alerts_oldest_first(
    sidecar, make_token, jane_history
):
    ids, visible = jane_history
    response = await get(sidecar, make_token(principals=JANE), limit=2)
    assert response.json() == {"alerts": visible[-2:], "next": ids[-1], "complete": True}


async def test_following_next_pages_through_every_visible_alert_once(
    start_sidecar, make_token, make_alert, publish
):
    sidecar = await start_sidecar(reader_batch_size=3)  # history pages of 3 entries
    ids = [publish(sidecar, make_alert(audience=["user:jane" if n % 2 else "user:bob"]))
           for n in range(11)]
    seen, since = [], "0-0"
    for _ in range(10):
        body = (await get(sidecar, make_token(principals=JANE), since=since, limit=2)).json()
        if not body["alerts"]:
            break
        seen += [a["id"] for a in body["alerts"]]
        since = body["next"]
    assert seen == ids[1::2]


async def test_get_on_an_empty_stream_answers_nothing_and_next_0_0(sidecar, make_token):
    body = (await get(sidecar, make_token())).json()
    assert body == {"alerts": [], "next": "0-0", "complete": True}


async def test_get_since_trimmed_away_says_not_complete(
    sidecar, make_token, make_alert, publish, redis_client
):
    ids = [publish(sidecar, make_alert()) for _ in range(4)]
    redis_client.xtrim(sidecar.settings.stream_key, maxlen=1, approximate=False)
    body = (await get(sidecar, make_token(), since=ids[0])).json()
    assert [a["id"] for a in body["alerts"]] == ids[3:]
    assert body["complete"] is False


@pytest.mark.parametrize(
    "params, loc",
    [({"since": "yesterday"}, ["query", "since"]), ({"limit": 0}, ["query", "limit"]),
     ({"limit": 501}, ["query", "limit"])],
)
async def test_get_with_invalid_parameters_is_422_naming_them(sidecar, make_token, params, loc):
    response = await get(sidecar, make_token(), **params)
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == loc


async def test_get_needs_a_read_token(sidecar, make_token):
    async with http_client(sidecar) as client:
        missing = await client.get("/alerts")
    write_only = await get(sidecar, make_token(scope="alerts:write"))
    assert (missing.status_code, write_only.status_code) == (401, 403)


# --- OpenAPI ----------------------------------------------------------------------


async def test_openapi_describes_the_alerts_api_with_the_alert_schema(sidecar):
    async with http_client(sidecar) as client:
        document = (await client.get("/openapi.json")).json()
    post_op = document["paths"]["/alerts"]["post"]
    get_op = document["paths"]["/alerts"]["get"]
    body_schema = post_op["requestBody"]["content"]["application/json"]["schema"]
    assert "title" in body_schema["required"] and "id" not in body_schema["required"]
    assert set(body_schema["properties"]["severity"]["enum"]) >= {"info", "critical"}
    assert {"201", "200", "400", "401", "403", "413", "422", "429"} <= set(post_op["responses"])
    assert {p["name"] for p in get_op["parameters"]} == {"since", "limit"}
