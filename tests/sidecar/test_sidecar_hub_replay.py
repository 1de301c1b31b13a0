"""The seam between a ``since`` replay and live delivery, in the hub, with a
history whose pages the test serves: live alerts are injected at exact points
of the replay, so "no gap, no duplicate, stream order" is checked for every
interleaving that matters instead of whatever timing a socket happens to give."""

from eduhub_alerts_sidecar.monitoring import Metrics
from eduhub_alerts_sidecar.websocket_hub import Hub

from tests.sidecar.fakes import FakeHistory, FakeTransport, alert, connected, identity
from tests.sidecar.helpers import wait_until

import asyncio
import json
import pytest


@pytest.fixture
def metrics():
    return Metrics()


def make_hub(metrics, history, send_queue_size=16):
    return Hub(metrics, send_queue_size=send_queue_size, history=history)


def subscribe(topics=("workflow.*",), since="0-0") -> str:
    return json.dumps({"type": "subscribe", "topics": list(topics), "since": since})


async def frames_after_subscribe(hub, message, *, topics=(), live=(), **who) -> list[dict]:
    """Connect (subscribed to ``topics``), send ``message``, broadcast the
    ``live`` (stream id, alert) pairs, and return every frame that follows,
    up to the pong of a final ping; then close the hub."""
    transport = FakeTransport()
    conn = await connected(hub, transport, topics, **who)
    hub.handle_text(conn, message)
    if conn.replay is not None:  # live alerts come after it, as the stream orders them
        async with asyncio.timeout(2):
            await asyncio.wait([conn.replay])
    for stream_id, live_alert in live:
        hub.broadcast(stream_id, live_alert)
    hub.handle_text(conn, '{"type":"ping"}')
    frames = []
    while (frame := await transport.next_json()) != {"type": "pong"}:
        frames.append(frame)
    hub.close_all()
    return frames


def ids(frames) -> list[str]:
    return [f["id"] if f["type"] == "alert" else f["type"] for f in frames]


async def test_replayed_alerts_come_first_then_subscribed_with_recovered_then_live(metrics):
    hub = make_hub(metrics, FakeHistory([("1-0", alert()), ("2-0", alert())]))
    frames = await frames_after_subscribe(hub, subscribe(), live=[("3-0", alert())])
    assert ids(frames) == ["1-0", "2-0", "subscribed", "3-0"]
    assert frames[2] == {"type": "subscribed", "topics": ["workflow.*"], "recovered": True}
    assert metrics.registry.get_sample_value("eduhub_alerts_replayed_total") == 2


async def test_live_alert_during_replay_is_held_and_sent_once_after_it(metrics):
    hub = None

    def live_meanwhile(page):
        hub.broadcast("3-0", alert())  # also on the replay's next page: a duplicate
        hub.broadcast("4-0", alert())  # after everything the replay reads
        hub.broadcast("4-1", alert())  # and another one

    history = FakeHistory([("1-0", alert()), ("2-0", alert())], [("3-0", alert())],
                          between=live_meanwhile)
    hub = make_hub(metrics, history)
    frames = await frames_after_subscribe(hub, subscribe(), live=[("5-0", alert())])
    assert ids(frames) == ["1-0", "2-0", "3-0", "subscribed", "4-0", "4-1", "5-0"]


async def test_live_alerts_up_to_since_are_not_sent_again_by_a_lagging_replica(metrics):
    # The client saw 7-0 through another replica; this one's reader is still at 5-0.
    hub = make_hub(metrics, FakeHistory([]))
    live = [(stream_id, alert()) for stream_id in ("6-0", "7-0", "8-0", "9-0")]
    frames = await frames_after_subscribe(hub, subscribe(since="7-0"), live=live)
    assert ids(frames) == ["subscribed", "8-0", "9-0"]


async def test_replay_covers_only_the_topics_of_its_own_subscribe(metrics):
    hub = None

    def live_meanwhile(page):
        hub.broadcast("3-0", alert(topic="manual"))  # for the older subscription: not replayed

    history = FakeHistory(
        [("1-0", alert(topic="manual")), ("2-0", alert(topic="workflow.publish"))],
        [("4-0", alert(topic="workflow.retract"))],
        between=live_meanwhile,
    )
    hub = make_hub(metrics, history)
    frames = await frames_after_subscribe(hub, subscribe(["workflow.*"]), topics=["manual"])
    assert ids(frames) == ["2-0", "4-0", "subscribed", "3-0"]
    assert frames[2]["topics"] == ["manual", "workflow.*"]


async def test_replay_sends_only_alerts_the_connection_may_see_and_routed_to_websocket(metrics):
    history = FakeHistory([
        ("1-0", alert(audience=["user:bob"])),
        ("2-0", alert(routes={"websocket": False})),
        ("3-0", alert(topic="content.added")),
        ("4-0", alert(audience=["user:jane"])),
    ])
    hub = make_hub(metrics, history)
    frames = await frames_after_subscribe(
        hub, subscribe(since="1700000000000"), principals=("user:jane",)
    )
    assert ids(frames) == ["4-0", "subscribed"]
    assert history.asked_after == [(1700000000000, 0)]


async def test_trimmed_history_is_answered_with_recovered_false(metrics):
    hub = make_hub(metrics, FakeHistory([("9-0", alert())], complete=False))
    frames = await frames_after_subscribe(hub, subscribe(since="3-0"))
    assert ids(frames) == ["9-0", "subscribed"]
    assert frames[1]["recovered"] is False


async def test_failing_history_ends_the_replay_as_not_recovered_and_live_delivery_goes_on(
    metrics,
):
    hub = None

    def live_meanwhile(page):
        hub.broadcast("5-0", alert())

    history = FakeHistory([("1-0", alert())], [("2-0", alert())], between=live_meanwhile,
                          fail_at=1)
    hub = make_hub(metrics, history)
    frames = await frames_after_subscribe(hub, subscribe())
    assert ids(frames) == ["1-0", "subscribed", "5-0"]
    assert frames[1]["recovered"] is False


async def test_replay_waits_for_a_client_that_reads_late_instead_of_cutting_it_off(metrics):
    history = FakeHistory([(f"{n}-0", alert()) for n in range(1, 11)])
    hub = make_hub(metrics, history, send_queue_size=4)
    transport = FakeTransport()
    conn = hub.connect(transport, identity())
    conn.pause()  # its socket's buffer is full
    hub.handle_text(conn, subscribe())
    await wait_until(lambda: conn._drained is not None)  # the replay waits for the client
    assert transport.frames.qsize() == 1  # the welcome only
    conn.resume()
    frames = [await transport.next_json() for _ in range(12)]  # welcome, 10 alerts, subscribed
    hub.close_all()
    assert ids(frames[1:]) == [f"{n}-0" for n in range(1, 11)] + ["subscribed"]
    assert transport.close_code == (1012, "service restart")  # not 1013


async def test_messages_sent_during_a_replay_are_answered_after_it_in_order(metrics):
    hub = make_hub(metrics, FakeHistory([("1-0", alert())]))
    transport = FakeTransport()
    conn = await connected(hub, transport)
    conn.pause()
    hub.handle_text(conn, subscribe())
    hub.handle_text(conn, json.dumps({"type": "unsubscribe", "topics": ["workflow.*"]}))
    hub.handle_text(conn, '{"type":"ping"}')
    await wait_until(lambda: conn._drained is not None)
    conn.resume()
    frames = [await transport.next_json() for _ in range(4)]
    hub.close_all()
    assert [f["type"] for f in frames] == ["alert", "subscribed", "unsubscribed", "pong"]


async def test_closing_a_connection_ends_its_replay(metrics):
    hub = make_hub(metrics, FakeHistory([(f"{n}-0", alert()) for n in range(1, 11)]),
                   send_queue_size=4)
    transport = FakeTransport()
    conn = hub.connect(transport, identity())
    conn.pause()
    hub.handle_text(conn, subscribe())
    replay = conn.replay
    await wait_until(lambda: conn._drained is not None)
    hub.drop(conn, 4401, "token expired")
    async with asyncio.timeout(2):
        await asyncio.wait([replay])
    assert replay.cancelled()
    assert conn.held is None and conn.replay is None
    assert transport.frames.qsize() == 1  # nothing after the welcome


async def test_live_alerts_overflowing_the_hold_cut_the_client_off_with_1013(metrics):
    hub = None

    def flood(page):
        for n in range(10, 15):
            hub.broadcast(f"{n}-0", alert())

    hub = make_hub(metrics, FakeHistory([("1-0", alert())], [("2-0", alert())], between=flood),
                   send_queue_size=4)
    transport = FakeTransport()
    conn = await connected(hub, transport)
    hub.handle_text(conn, subscribe())
    assert await transport.wait_closed() == (1013, "try again later")
    assert metrics.registry.get_sample_value(
        "eduhub_alerts_failed_total", {"channel": "websocket", "reason": "slow_consumer"}
    ) == 1
    hub.close_all()


async def test_closing_a_connection_while_held_alerts_are_released_stops_the_release(metrics):
    hub = None

    def live_meanwhile(page):
        for n in range(3):
            hub.broadcast(f"{n + 5}-0", alert())

    hub = make_hub(metrics, FakeHistory([], [], between=live_meanwhile), send_queue_size=4)
    conn = None

    def stop_reading_after_subscribed(text):
        if '"subscribed"' in text:
            conn.pause()

    transport = FakeTransport(on_write=stop_reading_after_subscribed)
    conn = hub.connect(transport, identity())
    hub.handle_text(conn, subscribe())
    replay = conn.replay
    # The release waits for the client with the first of the three held
    # alerts in hand and two still held.
    await wait_until(lambda: conn._drained is not None)
    assert len(conn.held) == 2
    hub.drop(conn, 4401, "token expired")
    async with asyncio.timeout(2):
        await asyncio.wait([replay])
    assert conn.held is None
    assert transport.frames.qsize() == 2  # welcome, subscribed
