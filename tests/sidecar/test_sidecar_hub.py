"""The hub without a network: topic matching, audience index, fan-out, slow
consumers. Transports here are fakes that record frames; a client that
stopped reading is a paused connection, as its socket's transport reports it."""

from eduhub_alerts_sidecar.monitoring import Metrics
from eduhub_alerts_sidecar.rate_limit import Rate
from eduhub_alerts_sidecar.topics import (
    Subscriptions,
    TopicIndex,
    compile_topic_pattern,
    topic_matches,
)
from eduhub_alerts_sidecar.websocket_hub import Hub, HubLimits, stream_timestamp_ms

from tests.sidecar.fakes import FakeTransport, alert, connected, identity
from tests.sidecar.helpers import as_delivered

import json
import pytest
import time


@pytest.fixture
def metrics():
    return Metrics()


@pytest.fixture
async def hub(metrics):
    hub = Hub(metrics, send_queue_size=4)
    yield hub
    hub.close_all()


# --- topic patterns -----------------------------------------------------------


@pytest.mark.parametrize(
    "pattern, topic, expected",
    [
        ("workflow.publish", "workflow.publish", True),
        ("workflow.publish", "workflow.retract", False),
        ("workflow.*", "workflow.publish", True),
        ("workflow.*", "workflow", False),
        ("workflow.*", "workflow.publish.extra", False),
        ("*.publish", "workflow.publish", True),
        ("*", "manual", True),
        ("*", "workflow.publish", False),
        ("app.*.finished", "app.schedule_import.finished", True),
        ("app.*.finished", "app.schedule_import.started", False),
        ("*.*", "content.added", True),
        ("content.*", "contentx.added", False),
    ],
)
def test_topic_pattern_star_matches_exactly_one_segment(pattern, topic, expected):
    assert topic_matches(pattern, topic) is expected


def test_topic_pattern_is_compiled_to_segments_with_none_for_star():
    assert compile_topic_pattern("app.*.finished") == ("app", None, "finished")


def test_subscriptions_keep_first_subscription_order_and_ignore_duplicates():
    subs = Subscriptions()
    subs.add(["workflow.*", "manual", "workflow.*"])
    subs.add(["content.added"])
    assert subs.topics() == ["workflow.*", "manual", "content.added"]
    assert len(subs) == 3
    subs.remove(["manual", "not.there"])
    assert subs.topics() == ["workflow.*", "content.added"]


def test_subscriptions_match_exact_and_wildcard_patterns():
    subs = Subscriptions()
    assert not subs.matches("manual", ("manual",))
    subs.add(["manual", "workflow.*"])
    assert subs.matches("manual", ("manual",))
    assert subs.matches("workflow.publish", ("workflow", "publish"))
    assert not subs.matches("content.added", ("content", "added"))
    subs.remove(["workflow.*"])
    assert not subs.matches("workflow.publish", ("workflow", "publish"))


def test_topic_index_finds_members_of_every_matching_pattern_once():
    index = TopicIndex()
    index.add("workflow.publish", "jane")
    index.add("workflow.*", "jane")
    index.add("workflow.*", "bob")
    index.add("*.publish", "ida")
    index.add("content.added", "max")
    assert index.interested("workflow.publish", ("workflow", "publish")) == {"jane", "bob", "ida"}
    assert index.interested("workflow.retract", ("workflow", "retract")) == {"jane", "bob"}
    assert index.interested("content.added", ("content", "added")) == {"max"}
    assert not index.interested("manual", ("manual",))


def test_topic_index_forgets_a_pattern_when_its_last_member_leaves():
    index = TopicIndex()
    index.add("workflow.*", "jane")
    index.add("workflow.*", "bob")
    index.add("manual", "jane")
    index.discard("workflow.*", "jane")
    assert index.interested("workflow.publish", ("workflow", "publish")) == {"bob"}
    index.discard("workflow.*", "bob")
    index.discard("manual", "jane")
    index.discard("never.subscribed", "jane")  # ignored
    assert len(index) == 0
    assert not index.interested("workflow.publish", ("workflow", "publish"))


def test_stream_timestamp_is_the_millisecond_part_of_the_stream_id():
    assert stream_timestamp_ms("1700000000123-7") == 1700000000123
    assert stream_timestamp_ms("not-an-id") is None


# --- fan-out ------------------------------------------------------------------


async def test_broadcast_reaches_only_subscribed_connections_in_the_audience(hub):
    jane, bob, idle = FakeTransport(), FakeTransport(), FakeTransport()
    await connected(hub, jane, ["workflow.*"], sub="jane", principals=("user:jane",))
    await connected(hub, bob, ["workflow.*"], sub="bob", principals=("user:bob",))
    await connected(hub, idle, [], sub="ida", principals=("user:jane",))  # not subscribed

    assert hub.broadcast("1-0", alert(audience=["user:jane"])) == 1
    assert hub.broadcast("2-0", alert(audience=["user:bob", "user:jane"])) == 2
    assert hub.broadcast("3-0", alert(audience=["Manager"])) == 0
    assert hub.broadcast("4-0", alert(topic="content.added", audience=["user:jane"])) == 0

    assert [(await jane.next_json())["id"] for _ in range(2)] == ["1-0", "2-0"]
    assert (await bob.next_json())["id"] == "2-0"
    assert jane.frames.empty() and bob.frames.empty() and idle.frames.empty()


async def test_alert_frame_is_encoded_once_and_shared_by_all_recipients(hub):
    one, two = FakeTransport(), FakeTransport()
    await connected(hub, one, ["workflow.publish"], principals=("Authenticated",))
    await connected(hub, two, ["workflow.publish"], principals=("Authenticated", "Manager"))
    hub.broadcast("1700000000000-0", alert(audience=["Authenticated", "Manager"]))
    assert one.written[-1] is two.written[-1]  # the very same frame bytes, not an equal copy
    assert json.loads(await one.next_frame()) == {
        "type": "alert",
        "id": "1700000000000-0",
        "alert": as_delivered(alert(audience=["Authenticated", "Manager"])),
    }


async def test_delivery_is_counted_and_latency_observed_once_per_broadcast(hub, metrics):
    transports = [FakeTransport() for _ in range(3)]
    for transport in transports:
        await connected(hub, transport, ["workflow.publish"])
    published_ms = int(time.time() * 1000) - 50
    assert hub.broadcast(f"{published_ms}-0", alert()) == 3
    registry = metrics.registry
    assert registry.get_sample_value("eduhub_alerts_sent_total", {"channel": "websocket"}) == 3
    assert registry.get_sample_value("eduhub_alerts_broadcast_latency_seconds_count") == 1
    assert registry.get_sample_value("eduhub_alerts_broadcast_latency_seconds_sum") >= 0.05


async def test_slow_consumer_is_closed_with_1013_and_others_keep_receiving(hub, metrics):
    slow, fast = FakeTransport(), FakeTransport()
    slow_conn = await connected(hub, slow, ["workflow.*"])
    await connected(hub, fast, ["workflow.*"])
    slow_conn.pause()  # its socket's buffer is full: it stopped reading
    # Backlog 4: four alerts are still written (the transport buffers them),
    # the fifth finds the client too far behind.
    for n in range(5):
        hub.broadcast(f"{n}-0", alert())
    assert await slow.wait_closed() == (1013, "try again later")
    assert slow_conn.id not in hub.connections
    assert [(await fast.next_json())["id"] for _ in range(5)] == [f"{n}-0" for n in range(5)]
    assert metrics.registry.get_sample_value(
        "eduhub_alerts_failed_total", {"channel": "websocket", "reason": "slow_consumer"}
    ) == 1
    assert metrics.registry.get_sample_value("eduhub_websocket_connections") == 1
    # Later broadcasts no longer consider the cut-off connection.
    assert hub.broadcast("9-0", alert()) == 1


async def test_a_client_that_catches_up_starts_a_new_backlog(hub):
    transport = FakeTransport()
    conn = await connected(hub, transport, ["workflow.*"])
    for round_ in range(3):  # each time it falls 4 behind, then reads them all
        conn.pause()
        for n in range(4):
            assert hub.broadcast(f"{round_}-{n}", alert()) == 1
        conn.resume()
    assert not conn.closed and transport.close_code is None


async def test_disconnected_connection_is_forgotten(hub, metrics):
    transport = FakeTransport()
    conn = await connected(hub, transport, ["workflow.*"])
    hub.disconnect(conn)  # what the protocol does when the socket is gone
    assert conn.id not in hub.connections
    assert metrics.registry.get_sample_value("eduhub_websocket_connections") == 0
    assert hub.broadcast("1-0", alert()) == 0
    assert len(hub._by_topic) == 0  # nothing left behind to grow memory or slow fan-out


async def test_unsubscribe_stops_delivery_of_that_pattern_only(hub):
    transport = FakeTransport()
    conn = await connected(hub, transport, ["workflow.*", "content.*"])
    hub.handle_text(conn, json.dumps({"type": "unsubscribe", "topics": ["workflow.*"]}))
    assert (await transport.next_json()) == {"type": "unsubscribed", "topics": ["content.*"]}
    assert hub.broadcast("1-0", alert(topic="workflow.publish")) == 0
    assert hub.broadcast("2-0", alert(topic="content.added")) == 1


async def test_a_closed_connection_cannot_subscribe_again(hub):
    transport = FakeTransport()
    conn = await connected(hub, transport)
    hub.disconnect(conn)
    hub.handle_text(conn, json.dumps({"type": "subscribe", "topics": ["workflow.*"]}))
    assert len(hub._by_topic) == 0


async def test_expired_identity_is_closed_with_4401(hub):
    transport = FakeTransport()
    hub.connect(transport, identity(expires_in=-1))
    assert await transport.wait_closed() == (4401, "token expired")
    assert not hub.connections


async def test_close_all_closes_every_connection_with_1012(metrics):
    hub = Hub(metrics)
    transports = [FakeTransport() for _ in range(3)]
    for transport in transports:
        hub.connect(transport, identity())
    hub.close_all()
    assert [t.close_code for t in transports] == [(1012, "service restart")] * 3
    assert not hub.connections
    assert metrics.registry.get_sample_value("eduhub_websocket_connections") == 0


async def test_drop_is_idempotent(hub):
    transport = FakeTransport()
    conn = hub.connect(transport, identity())
    hub.drop(conn, 1000, "bye")
    hub.drop(conn, 4000, "again")
    assert transport.close_code == (1000, "bye")
    assert conn.closed


async def test_ping_gets_pong_and_binary_gets_error(hub):
    transport = FakeTransport()
    conn = await connected(hub, transport)
    hub.handle_text(conn, '{"type":"ping"}')
    assert await transport.next_json() == {"type": "pong"}
    hub.handle_binary(conn)
    assert (await transport.next_json())["code"] == "bad_request"


async def test_welcome_names_the_user_and_the_heartbeat(metrics):
    hub = Hub(metrics, heartbeat_seconds=30)
    transport = FakeTransport()
    conn = hub.connect(transport, identity(sub="jane"))
    welcome = await transport.next_json()
    hub.close_all()
    assert welcome == {"type": "welcome", "connection_id": conn.id, "user": "jane", "heartbeat": 30}


async def test_client_that_floods_requests_without_reading_is_cut_off(hub, metrics):
    transport = FakeTransport()
    conn = hub.connect(transport, identity())
    conn.pause()
    for _ in range(5):  # 4 pongs fit in the backlog, the fifth does not
        hub.handle_text(conn, '{"type":"ping"}')
    assert await transport.wait_closed() == (1013, "try again later")
    assert metrics.registry.get_sample_value(
        "eduhub_alerts_failed_total", {"channel": "websocket", "reason": "slow_consumer"}
    ) == 1


async def test_messages_after_close_are_dropped_quietly(hub):
    transport = FakeTransport()
    conn = await connected(hub, transport)
    hub.disconnect(conn)
    hub.handle_text(conn, '{"type":"ping"}')
    assert transport.frames.empty()


async def test_an_accepted_message_forgives_earlier_rate_limit_strikes(metrics):
    hub = Hub(metrics, limits=HubLimits(message_rate=Rate(0.001, 1), rate_limit_strikes=2))
    transport = FakeTransport()
    conn = await connected(hub, transport)  # the burst of 1 is still there
    for _ in range(2):  # two strikes: the limit, not beyond it
        hub.handle_text(conn, '{"type":"ping"}')
    hub.handle_text(conn, '{"type":"ping"}')
    conn.bucket.tokens = 1.0  # as if a token had come back
    hub.handle_text(conn, '{"type":"ping"}')
    for _ in range(2):
        hub.handle_text(conn, '{"type":"ping"}')
    frames = [(await transport.next_json()).get("code", "pong") for _ in range(6)]
    hub.close_all()
    assert frames == ["pong"] + ["rate_limited"] * 2 + ["pong"] + ["rate_limited"] * 2
    assert transport.close_code == (1012, "service restart")  # never 4429


async def test_dropping_a_connection_twice_closes_it_once(hub):
    transport = FakeTransport()
    conn = hub.connect(transport, identity())
    hub.drop(conn, 4429, "rate limited")
    hub.drop(conn, 4401, "token expired")
    assert await transport.wait_closed() == (4429, "rate limited")
