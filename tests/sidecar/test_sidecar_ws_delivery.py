"""Alerts XADDed to the stream reach exactly the subscribed connections whose
token principals intersect the alert's audience — real Redis, real sockets."""

from tests.sidecar.helpers import (
    as_delivered,
    close_of,
    http_client,
    open_ws,
    recv_json,
    send_json,
    subscribed_client,
)

import json


JANE = ("Anonymous", "Authenticated", "user:jane")
BOB = ("Anonymous", "Authenticated", "user:bob")


async def test_subscriber_in_the_audience_receives_the_alert_frame(
    sidecar, make_token, make_alert, publish
):
    alert = make_alert(topic="workflow.publish", audience=["user:jane", "Editor"])
    async with open_ws(sidecar, make_token(principals=JANE)) as ws:
        await subscribed_client(ws, ["workflow.publish"])
        stream_id = publish(sidecar, alert)
        frame = await recv_json(ws)
    assert frame == {"type": "alert", "id": stream_id, "alert": as_delivered(alert)}


async def test_alert_frame_does_not_say_who_else_may_see_the_object_nor_where_slack_posts_it(
    sidecar, make_token, make_alert, publish
):
    alert = make_alert(audience=["user:jane", "user:head-teachers", "Editor"],
                       routes={"websocket": True, "slack": [{"user": "U0HEAD"}]})
    async with open_ws(sidecar, make_token(principals=JANE)) as ws:
        await subscribed_client(ws, ["workflow.publish"])
        publish(sidecar, alert)
        raw = await ws.recv()
    assert json.loads(raw)["alert"]["title"] == alert["title"]
    assert "head-teachers" not in raw and "U0HEAD" not in raw


async def test_alert_frame_is_compact_json(sidecar, make_token, make_alert, publish):
    async with open_ws(sidecar, make_token()) as ws:
        await subscribed_client(ws, ["workflow.publish"])
        publish(sidecar, make_alert())
        raw = await ws.recv()
    assert raw.startswith('{"type":"alert","id":"')
    assert ", " not in raw.split('"alert":', 1)[0]


async def test_connection_outside_the_audience_receives_nothing(
    sidecar, make_token, make_alert, publish
):
    private = make_alert(title="Private draft", audience=["user:jane", "Manager"])
    public = make_alert(title="Public news", audience=["Anonymous"])
    async with open_ws(sidecar, make_token(sub="jane", principals=JANE)) as jane, \
            open_ws(sidecar, make_token(sub="bob", principals=BOB)) as bob:
        await subscribed_client(jane, ["workflow.*"])
        await subscribed_client(bob, ["workflow.*"])
        publish(sidecar, private)
        second_id = publish(sidecar, public)
        # Jane may see both, in stream order.
        assert (await recv_json(jane))["alert"]["id"] == private["id"]
        assert (await recv_json(jane))["alert"]["id"] == public["id"]
        # Bob's first frame is the alert XADDed *after* the private one: had
        # the private one leaked, it would have come first.
        first_for_bob = await recv_json(bob)
    assert first_for_bob["id"] == second_id
    assert first_for_bob["alert"]["id"] == public["id"]


async def test_connection_receives_nothing_until_it_subscribes(
    sidecar, make_token, make_alert, publish
):
    before = make_alert(title="before subscribing")
    after = make_alert(title="after subscribing")
    async with open_ws(sidecar, make_token()) as ws, open_ws(sidecar, make_token()) as witness:
        assert (await recv_json(ws))["type"] == "welcome"
        await subscribed_client(witness, ["workflow.publish"])
        publish(sidecar, before)
        # Broadcasts are synchronous over all connections: once the witness
        # has `before`, the reader is done with it.
        assert (await recv_json(witness))["alert"]["id"] == before["id"]
        await send_json(ws, {"type": "subscribe", "topics": ["workflow.publish"]})
        assert (await recv_json(ws))["type"] == "subscribed"
        publish(sidecar, after)
        frame = await recv_json(ws)
    assert frame["alert"]["id"] == after["id"]


async def test_wildcard_subscription_matches_one_segment(
    sidecar, make_token, make_alert, publish
):
    async with open_ws(sidecar, make_token()) as ws:
        await subscribed_client(ws, ["workflow.*", "app.*.finished"])
        publish(sidecar, make_alert(topic="content.modified"))  # no match
        publish(sidecar, make_alert(topic="workflow"))  # no match: * needs a segment
        publish(sidecar, make_alert(topic="workflow.publish.extra"))  # no match: too long
        publish(sidecar, make_alert(topic="app.schedule_import.started"))  # no match
        publish(sidecar, make_alert(topic="app.schedule_import.finished"))
        publish(sidecar, make_alert(topic="workflow.retract"))
        topics = [(await recv_json(ws))["alert"]["topic"] for _ in range(2)]
        # Nothing else is queued: a ping is answered next.
        await send_json(ws, {"type": "ping"})
        assert await recv_json(ws) == {"type": "pong"}
    assert topics == ["app.schedule_import.finished", "workflow.retract"]


async def test_subscribe_replies_with_all_current_topics(sidecar, make_token):
    async with open_ws(sidecar, make_token()) as ws:
        await recv_json(ws)
        await send_json(ws, {"type": "subscribe", "topics": ["workflow.*"]})
        assert await recv_json(ws) == {"type": "subscribed", "topics": ["workflow.*"]}
        await send_json(ws, {"type": "subscribe", "topics": ["manual", "workflow.*"]})
        assert await recv_json(ws) == {"type": "subscribed", "topics": ["workflow.*", "manual"]}


async def test_unsubscribe_stops_delivery_and_replies_with_remaining_topics(
    sidecar, make_token, make_alert, publish
):
    async with open_ws(sidecar, make_token()) as ws:
        await subscribed_client(ws, ["workflow.*", "manual"])
        await send_json(ws, {"type": "unsubscribe", "topics": ["workflow.*", "never.subscribed"]})
        assert await recv_json(ws) == {"type": "unsubscribed", "topics": ["manual"]}
        publish(sidecar, make_alert(topic="workflow.publish"))
        wanted = make_alert(topic="manual")
        publish(sidecar, wanted)
        frame = await recv_json(ws)
    assert frame["alert"]["id"] == wanted["id"]


async def test_every_subscribed_connection_gets_the_alert(
    sidecar, make_token, make_alert, publish
):
    alert = make_alert(audience=["Authenticated"])
    async with open_ws(sidecar, make_token(sub="jane", principals=JANE)) as one, \
            open_ws(sidecar, make_token(sub="bob", principals=BOB)) as two:
        await subscribed_client(one, ["workflow.publish"])
        await subscribed_client(two, ["workflow.publish"])
        stream_id = publish(sidecar, alert)
        frames = [await recv_json(one), await recv_json(two)]
    assert [f["id"] for f in frames] == [stream_id, stream_id]


async def test_malformed_json_gets_an_error_frame_and_the_connection_keeps_working(
    sidecar, make_token, make_alert, publish
):
    async with open_ws(sidecar, make_token()) as ws:
        await recv_json(ws)
        await ws.send("{not json")
        assert await recv_json(ws) == {
            "type": "error", "code": "bad_request", "message": "message is not valid JSON",
        }
        await subscribed_client_after_welcome(ws, ["workflow.publish"])
        alert = make_alert()
        publish(sidecar, alert)
        assert (await recv_json(ws))["alert"]["id"] == alert["id"]


async def subscribed_client_after_welcome(ws, topics):
    await send_json(ws, {"type": "subscribe", "topics": topics})
    assert (await recv_json(ws))["type"] == "subscribed"


async def test_unknown_message_type_gets_unknown_type_error(sidecar, make_token):
    async with open_ws(sidecar, make_token()) as ws:
        await recv_json(ws)
        await send_json(ws, {"type": "dance"})
        error = await recv_json(ws)
        await send_json(ws, {"type": "ping"})
        assert await recv_json(ws) == {"type": "pong"}
    assert error["type"] == "error"
    assert error["code"] == "unknown_type"
    assert "dance" in error["message"]


async def test_invalid_subscribe_gets_bad_request_naming_the_field(sidecar, make_token):
    async with open_ws(sidecar, make_token()) as ws:
        await recv_json(ws)
        await send_json(ws, {"type": "subscribe", "topics": ["ok.topic", "Not A Topic"]})
        error = await recv_json(ws)
        await send_json(ws, {"type": "subscribe", "topics": []})
        empty = await recv_json(ws)
    assert error["code"] == "bad_request"
    assert error["message"].startswith("topics.1: not a topic pattern")
    assert empty["code"] == "bad_request"
    assert empty["message"].startswith("topics:")


async def test_binary_frame_gets_an_error_frame(sidecar, make_token):
    async with open_ws(sidecar, make_token()) as ws:
        await recv_json(ws)
        await ws.send(b'{"type":"ping"}')
        error = await recv_json(ws)
    assert error["code"] == "bad_request"


async def test_oversized_message_closes_the_connection_with_1009(sidecar, make_token):
    async with open_ws(sidecar, make_token()) as ws:
        await recv_json(ws)
        await ws.send(json.dumps({"type": "ping", "pad": "x" * 70_000}))
        code, _ = await close_of(ws)
    assert code == 1009


async def test_message_just_under_the_limit_is_processed(sidecar, make_token):
    async with open_ws(sidecar, make_token()) as ws:
        await recv_json(ws)
        await ws.send(json.dumps({"type": "ping", "pad": "x" * 60_000}))
        error = await recv_json(ws)  # parsed and answered, not cut off
    assert error["code"] == "bad_request"
    assert error["message"].startswith("pad:")


async def test_invalid_stream_entries_are_skipped_counted_and_the_next_valid_one_delivered(
    sidecar, make_token, make_alert, publish
):
    good = make_alert()
    broken = make_alert()
    del broken["title"]
    async with open_ws(sidecar, make_token()) as ws:
        await subscribed_client(ws, ["workflow.publish"])
        publish(sidecar, fields={"alert": "{not json"})
        publish(sidecar, fields={"something": "else"})
        publish(sidecar, broken)
        publish(sidecar, fields={"alert": b"\xff\xfe not utf-8"})
        good_id = publish(sidecar, good)
        frame = await recv_json(ws)
    assert frame["id"] == good_id
    assert sidecar.metric("eduhub_alerts_failed_total", channel="websocket", reason="invalid") == 4
    assert sidecar.metric("eduhub_alerts_published_total") == 5


async def test_alert_not_routed_to_websocket_is_not_sent(sidecar, make_token, make_alert, publish):
    slack_only = make_alert(routes={"websocket": False, "slack": [{"channel": "C1"}]})
    wanted = make_alert(routes={"slack": [{"channel": "C1"}]})  # websocket defaults to true
    async with open_ws(sidecar, make_token()) as ws:
        await subscribed_client(ws, ["workflow.publish"])
        publish(sidecar, slack_only)
        publish(sidecar, wanted)
        frame = await recv_json(ws)
    assert frame["alert"]["id"] == wanted["id"]


async def test_metrics_show_counters_after_a_broadcast(sidecar, make_token, make_alert, publish):
    async with open_ws(sidecar, make_token()) as ws:
        await subscribed_client(ws, ["workflow.publish"])
        publish(sidecar, make_alert())
        await recv_json(ws)
        async with http_client(sidecar) as client:
            response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text
    assert "eduhub_alerts_published_total 1.0" in text
    assert 'eduhub_alerts_sent_total{channel="websocket"} 1.0' in text
    assert "eduhub_alerts_broadcast_latency_seconds_count 1.0" in text
    assert "eduhub_websocket_connections 1.0" in text
    assert "# TYPE eduhub_alerts_rate_limited_total counter" in text
    assert "# TYPE eduhub_background_task_failures_total counter" in text


async def test_connection_gauge_drops_when_client_leaves(sidecar, make_token):
    async with open_ws(sidecar, make_token()) as ws:
        await recv_json(ws)
        assert sidecar.metric("eduhub_websocket_connections") == 1
    # The server's handler finishes after the close handshake; a fresh
    # connection's welcome proves the server has moved on.
    async with open_ws(sidecar, make_token()) as ws:
        await recv_json(ws)
        assert sidecar.metric("eduhub_websocket_connections") == 1
