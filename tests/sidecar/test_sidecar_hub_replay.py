"""The seam between a ``since`` replay and live delivery, in the hub, with a
history whose pages the test serves: live alerts are injected at exact points
of the replay, so "no gap, no duplicate, stream order" is checked for every
interleaving that matters instead of whatever timing a socket happens to give."""

from eduhub_alerts_sidecar.monitoring import Metrics
from eduhub_alerts_sidecar.rate_limit import Rate
from eduhub_alerts_sidecar import websocket_hub
from eduhub_alerts_sidecar.stream_ids import format_stream_id
from eduhub_alerts_sidecar.websocket_hub import (
    MAX_REPLAY_MARKS,
    MAX_WAITING_CHARS,
    MAX_WAITING_MESSAGES,
    REPLAY_CATCH_UP_READS,
    Hub,
    HubLimits,
)

from tests.sidecar.fakes import FakeHistory, FakeTransport, alert, connected, identity
from tests.sidecar.helpers import wait_until

import asyncio
import json
import logging
import pytest
import time


@pytest.fixture
def metrics():
    return Metrics()


def make_hub(metrics, history, send_queue_size=16):
    return Hub(metrics, send_queue_size=send_queue_size, history=history)


def subscribe(topics=("workflow.*",), since="0-0") -> str:
    return json.dumps({"type": "subscribe", "topics": list(topics), "since": since})


def publish(hub, history, stream_id, live_alert):
    """An alert added to the stream and then read by the hub's live reader."""
    history.add(stream_id, live_alert)
    hub.broadcast(stream_id, live_alert)


async def frames_after_subscribe(hub, *messages, topics=(), live=(), **who) -> list[dict]:
    """Connect (subscribed to ``topics``), send ``messages``, broadcast the
    ``live`` (stream id, alert) pairs once the replays are done, and return
    every frame that follows, up to the pong of a final ping; then close the hub."""
    transport = FakeTransport()
    conn = await connected(hub, transport, topics, **who)
    for message in messages:
        hub.handle_text(conn, message)
    await replays_done(conn)
    for stream_id, live_alert in live:
        hub.broadcast(stream_id, live_alert)
    hub.handle_text(conn, '{"type":"ping"}')
    frames = []
    while (frame := await transport.next_json()) != {"type": "pong"}:
        frames.append(frame)
    hub.close_all()
    return frames


async def replays_done(conn) -> None:
    while conn.replay is not None:  # a queued subscribe may start the next one
        async with asyncio.timeout(2):
            await asyncio.wait([conn.replay])


def ids(frames) -> list[str]:
    return [f["id"] if f["type"] == "alert" else f["type"] for f in frames]


async def test_replayed_alerts_come_first_then_subscribed_with_recovered_then_live(metrics):
    hub = make_hub(metrics, FakeHistory([("1-0", alert()), ("2-0", alert())]))
    frames = await frames_after_subscribe(hub, subscribe(), live=[("3-0", alert())])
    assert ids(frames) == ["1-0", "2-0", "subscribed", "3-0"]
    assert frames[2] == {"type": "subscribed", "topics": ["workflow.*"], "recovered": True}
    assert metrics.registry.get_sample_value("eduhub_alerts_replayed_total") == 2


async def test_live_alerts_during_a_replay_on_its_topics_are_sent_once_by_it_in_order(metrics):
    hub = None
    history = FakeHistory([("1-0", alert()), ("2-0", alert()), ("3-0", alert())])

    def live_meanwhile():
        hub.broadcast("3-0", alert())  # a lagging reader: also on the replay's next page
        publish(hub, history, "4-0", alert())
        publish(hub, history, "4-1", alert())

    history.before[1] = live_meanwhile
    hub = make_hub(metrics, history)
    frames = await frames_after_subscribe(hub, subscribe(), live=[("5-0", alert())])
    assert ids(frames) == ["1-0", "2-0", "3-0", "4-0", "4-1", "subscribed", "5-0"]


async def test_live_alert_just_after_the_replay_read_its_last_page_is_not_missed(metrics):
    # Redis answered the last XRANGE before the XADD, but the live reader's
    # reply was handled first: the replay is told, and reads once more.
    hub = None
    history = FakeHistory([("1-0", alert())], page_size=5)
    history.after[0] = lambda: publish(hub, history, "2-0", alert())
    hub = make_hub(metrics, history)
    frames = await frames_after_subscribe(hub, subscribe(), live=[("3-0", alert())])
    assert ids(frames) == ["1-0", "2-0", "subscribed", "3-0"]
    assert frames[2]["recovered"] is True
    # The second read goes only as far as what the replay took over.
    assert history.asked_after == [(0, 0), ((1, 0), (2, 0))]


async def test_live_alert_while_a_replay_finds_nothing_new_is_not_lost(metrics):
    # The commonest reconnect: since is the last alert seen, and nothing is new
    # until an alert comes in while the one XRANGE's reply is on its way.
    hub = None
    history = FakeHistory([("1-0", alert())], page_size=5)
    history.after[0] = lambda: publish(hub, history, "2-0", alert())
    hub = make_hub(metrics, history)
    frames = await frames_after_subscribe(hub, subscribe(since="1-0"), live=[("3-0", alert())])
    assert ids(frames) == ["2-0", "subscribed", "3-0"]
    assert frames[1]["recovered"] is True


async def test_a_burst_of_live_alerts_during_a_replay_does_not_cut_the_client_off(metrics):
    hub = None
    history = FakeHistory([("1-0", alert()), ("2-0", alert())])

    def burst():
        for n in range(10, 30):
            publish(hub, history, f"{n}-0", alert())

    history.before[1] = burst
    hub = make_hub(metrics, history, send_queue_size=4)  # far fewer than the burst
    frames = await frames_after_subscribe(hub, subscribe())
    assert ids(frames) == ["1-0", "2-0", *(f"{n}-0" for n in range(10, 30)), "subscribed"]


async def test_a_burst_during_the_read_up_to_owed_alerts_is_taken_over_too(metrics):
    hub = None
    history = FakeHistory([("1-0", alert())], page_size=5)
    history.after[0] = lambda: publish(hub, history, "2-0", alert())  # owed: one more read

    def burst():  # more than the send queue, while that read is on its way
        for n in range(10, 16):
            publish(hub, history, f"{n}-0", alert())

    history.after[1] = burst
    hub = make_hub(metrics, history, send_queue_size=4)
    frames = await frames_after_subscribe(hub, subscribe())
    assert ids(frames) == ["1-0", "2-0", *(f"{n}-0" for n in range(10, 16)), "subscribed"]
    assert frames[-1]["recovered"] is True


async def test_a_replay_ends_though_alerts_keep_coming_during_each_read(metrics):
    hub = None
    history = FakeHistory([("1-0", alert())], page_size=50)
    reads = REPLAY_CATCH_UP_READS + 2  # the first, the catch-ups, and one after them
    for n in range(reads):
        history.after[n] = lambda n=n: publish(hub, history, f"{n + 2}-0", alert())
    hub = make_hub(metrics, history)
    frames = await frames_after_subscribe(hub, subscribe())
    replayed = [f"{n}-0" for n in range(1, reads + 1)]
    # The alert that came during the last read is held, and follows `subscribed`.
    assert ids(frames) == [*replayed, "subscribed", f"{reads + 1}-0"]
    assert frames[-2]["recovered"] is True


async def test_live_alerts_up_to_since_are_not_sent_again_by_a_lagging_replica(metrics):
    # The client saw 7-0 through another replica; this one's reader is still at 5-0.
    live = [(stream_id, alert()) for stream_id in ("6-0", "7-0", "8-0", "9-0")]
    hub = make_hub(metrics, FakeHistory(live))
    frames = await frames_after_subscribe(hub, subscribe(since="7-0"), live=live)
    assert ids(frames) == ["8-0", "9-0", "subscribed"]


async def test_replayed_alerts_arriving_late_from_a_lagging_reader_are_not_sent_again(metrics):
    hub = make_hub(metrics, FakeHistory([("1-0", alert()), ("2-0", alert())]))
    live = [("1-0", alert()), ("2-0", alert()), ("3-0", alert())]
    frames = await frames_after_subscribe(hub, subscribe(), live=live)
    assert ids(frames) == ["1-0", "2-0", "subscribed", "3-0"]


async def test_each_replay_of_a_connection_is_remembered_until_live_delivery_passes_it(metrics):
    history = FakeHistory([("1-0", alert(topic="workflow.publish")),
                           ("2-0", alert(topic="manual"))])
    hub = make_hub(metrics, history)
    # The reader lags behind both replays: everything it offers was sent by one of them.
    live = [("1-0", alert(topic="workflow.publish")), ("2-0", alert(topic="manual")),
            ("3-0", alert(topic="manual")), ("3-1", alert(topic="workflow.retract"))]
    frames = await frames_after_subscribe(
        hub, subscribe(["workflow.*"]), subscribe(["manual"]), live=live)
    assert ids(frames) == ["1-0", "subscribed", "2-0", "subscribed", "3-0", "3-1"]


async def test_replay_covers_only_the_topics_of_its_own_subscribe(metrics):
    hub = None
    history = FakeHistory([("1-0", alert(topic="manual")), ("2-0", alert(topic="workflow.publish")),
                           ("3-0", alert(topic="workflow.retract"))])
    # For the older subscription, not replayed: held until the replay is done.
    history.before[1] = lambda: publish(hub, history, "4-0", alert(topic="manual"))
    hub = make_hub(metrics, history)
    frames = await frames_after_subscribe(hub, subscribe(["workflow.*"]), topics=["manual"])
    assert ids(frames) == ["2-0", "3-0", "subscribed", "4-0"]
    assert frames[2]["topics"] == ["manual", "workflow.*"]


async def test_replay_sends_only_alerts_the_connection_may_see_and_routed_to_websocket(metrics):
    history = FakeHistory([
        ("1699999999999-0", alert(audience=["user:jane"])),  # before since
        ("1700000000001-0", alert(audience=["user:bob"])),
        ("1700000000002-0", alert(routes={"websocket": False})),
        ("1700000000003-0", alert(topic="content.added")),
        ("1700000000004-0", alert(audience=["user:jane"])),
    ], page_size=10)
    hub = make_hub(metrics, history)
    frames = await frames_after_subscribe(
        hub, subscribe(since="1700000000000"), principals=("user:jane",)
    )
    assert ids(frames) == ["1700000000004-0", "subscribed"]
    assert history.asked_after == [(1700000000000, 0)]


async def test_trimmed_history_is_answered_with_recovered_false(metrics):
    hub = make_hub(metrics, FakeHistory([("9-0", alert())], incomplete={0}))
    frames = await frames_after_subscribe(hub, subscribe(since="3-0"))
    assert ids(frames) == ["9-0", "subscribed"]
    assert frames[1]["recovered"] is False


async def test_trimmed_history_is_not_recovered_even_when_a_later_read_is_retried(metrics):
    history = FakeHistory([("9-0", alert()), ("10-0", alert()), ("11-0", alert())],
                          incomplete={0}, fail=[1])
    hub = make_hub(metrics, history)
    frames = await frames_after_subscribe(hub, subscribe(since="3-0"))
    assert ids(frames) == ["9-0", "10-0", "11-0", "subscribed"]
    assert frames[-1]["recovered"] is False  # 4-0 to 8-0 were trimmed before the retry


async def test_replay_that_cannot_read_redis_tries_again_and_loses_nothing(metrics, caplog):
    caplog.set_level(logging.DEBUG, logger="eduhub_alerts_sidecar.websocket_hub")
    hub = None
    history = FakeHistory([("1-0", alert()), ("2-0", alert())], page_size=1, fail=[1, 2])
    history.before[1] = lambda: publish(hub, history, "5-0", alert())  # owed to the replay
    hub = make_hub(metrics, history)
    frames = await frames_after_subscribe(hub, subscribe())
    assert ids(frames) == ["1-0", "2-0", "5-0", "subscribed"]
    assert frames[-1]["recovered"] is True  # nothing was trimmed meanwhile
    assert history.asked_after == [(0, 0), (1, 0), (1, 0)]
    retries = [r for r in caplog.records if "trying again" in r.getMessage()]
    assert [r.levelname for r in retries] == ["WARNING", "DEBUG"]  # one warning per replay


async def test_redis_failing_once_late_in_a_long_replay_is_retried(metrics, monkeypatch):
    # The give-up time counts from the first failure in a row, not from the
    # start of the replay: with no time at all, one failure is still retried.
    monkeypatch.setattr(websocket_hub, "REPLAY_GIVE_UP_SECONDS", 0.0)
    monkeypatch.setattr(websocket_hub, "REPLAY_RETRY_SECONDS", 0.01)
    history = FakeHistory([("1-0", alert()), ("2-0", alert())], page_size=1, fail=[1])
    hub = make_hub(metrics, history)
    frames = await frames_after_subscribe(hub, subscribe())
    assert ids(frames) == ["1-0", "2-0", "subscribed"]
    assert frames[-1]["recovered"] is True


async def test_a_read_that_works_between_redis_failures_starts_their_count_again(
    metrics, monkeypatch
):
    # With no time to give up in, two failures in a row end the replay; two
    # with a successful page between them do not.
    monkeypatch.setattr(websocket_hub, "REPLAY_GIVE_UP_SECONDS", 0.0)
    monkeypatch.setattr(websocket_hub, "REPLAY_RETRY_SECONDS", 0.01)
    entries = [(f"{n}-0", alert()) for n in range(1, 5)]
    hub = make_hub(metrics, FakeHistory(entries, page_size=1, fail=[1, 3]))
    frames = await frames_after_subscribe(hub, subscribe())
    assert ids(frames) == ["1-0", "2-0", "3-0", "4-0", "subscribed"]
    assert frames[-1]["recovered"] is True


async def test_since_beyond_the_stream_does_not_swallow_live_alerts(metrics):
    # A client resuming from a guess on a clock two minutes fast.
    now_ms = int(time.time() * 1000)
    history = FakeHistory([(f"{now_ms - 5000}-0", alert())])
    hub = make_hub(metrics, history)
    live = (f"{now_ms}-0", alert())
    frames = await frames_after_subscribe(hub, subscribe(since=f"{now_ms + 90_000}"),
                                          live=[live])
    assert ids(frames) == ["subscribed", live[0]]
    assert frames[0]["recovered"] is False  # the stream knows nothing of that position


async def test_replay_gives_up_on_redis_after_a_while_and_goes_live(metrics, caplog, monkeypatch):
    monkeypatch.setattr(websocket_hub, "REPLAY_GIVE_UP_SECONDS", 0.2)
    monkeypatch.setattr(websocket_hub, "REPLAY_RETRY_SECONDS", 0.02)
    hub = make_hub(metrics, FakeHistory([("1-0", alert())], fail=range(1000)))
    frames = await frames_after_subscribe(hub, subscribe(), live=[("2-0", alert())])
    assert ids(frames) == ["subscribed", "2-0"]
    assert frames[0]["recovered"] is False
    assert any("gave up" in r.getMessage() and r.levelname == "WARNING"
               for r in caplog.records)


async def test_live_alert_the_stream_no_longer_holds_ends_the_replay_as_not_recovered(metrics):
    hub = None
    history = FakeHistory([("1-0", alert())], page_size=5)
    # Offered live but trimmed away before the replay could read it.
    history.after[0] = lambda: hub.broadcast("2-0", alert())
    hub = make_hub(metrics, history)
    frames = await frames_after_subscribe(hub, subscribe(), live=[("3-0", alert())])
    assert ids(frames) == ["1-0", "subscribed", "3-0"]
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


async def test_messages_queued_behind_a_second_replay_wait_for_that_one_too(metrics):
    history = FakeHistory([("1-0", alert(topic="workflow.publish")),
                           ("2-0", alert(topic="manual"))])
    hub = make_hub(metrics, history)
    transport = FakeTransport()
    conn = await connected(hub, transport)
    for message in (subscribe(["workflow.*"]), subscribe(["manual"]), '{"type":"ping"}'):
        hub.handle_text(conn, message)
    frames = [await transport.next_json() for _ in range(5)]
    hub.close_all()
    assert ids(frames) == ["1-0", "subscribed", "2-0", "subscribed", "pong"]


async def test_messages_beyond_those_that_may_wait_for_a_replay_are_refused(metrics):
    limits = HubLimits(message_rate=Rate(1000.0, 1000))  # only the waiting room limits here
    hub = Hub(metrics, history=FakeHistory([("1-0", alert())]), limits=limits)
    transport = FakeTransport()
    conn = await connected(hub, transport)
    conn.pause()
    hub.handle_text(conn, subscribe())
    for _ in range(MAX_WAITING_MESSAGES + 1):
        hub.handle_text(conn, '{"type":"ping"}')
    refused = await transport.next_json()  # at once: it is not waiting
    assert refused["type"] == "error" and refused["code"] == "rate_limited"
    assert refused["message"] == (f"at most {MAX_WAITING_MESSAGES} messages "
                                  f"({MAX_WAITING_CHARS} characters) may wait while history "
                                  "is replayed")
    conn.resume()
    frames = [await transport.next_json() for _ in range(2 + MAX_WAITING_MESSAGES)]
    hub.close_all()
    assert [f["type"] for f in frames] == ["alert", "subscribed"] + ["pong"] * MAX_WAITING_MESSAGES
    assert metrics.registry.get_sample_value(
        "eduhub_alerts_rate_limited_total", {"scope": "websocket"}) == 1


async def test_a_connection_remembers_only_its_last_few_replays(metrics):
    limits = HubLimits(message_rate=Rate(1e6, 1_000_000))
    hub = Hub(metrics, history=FakeHistory([("5-0", alert(topic="quiet.topic"))]),
              limits=limits)
    conn = await connected(hub, FakeTransport())
    for _ in range(200):  # a quiet topic: no live alert passes them
        hub.handle_text(conn, subscribe(["quiet.topic"], since="5-0"))
        await replays_done(conn)
    assert len(conn.marks) == MAX_REPLAY_MARKS
    hub.close_all()


async def test_replays_beyond_the_limit_are_merged_so_a_lagging_reader_sends_nothing_twice(
    metrics,
):
    count = MAX_REPLAY_MARKS + 1  # and a ping: within the message rate
    entries = [(f"{n + 1}-0", alert(topic=f"t{n}.x")) for n in range(count)]
    hub = make_hub(metrics, FakeHistory(entries, page_size=20))
    # The reader lags behind every replay; then it offers what they sent, and one more.
    live = [*entries, (f"{count + 1}-0", alert(topic="t0.x"))]
    frames = await frames_after_subscribe(
        hub, *(subscribe([f"t{n}.x"]) for n in range(count)), live=live)
    alerts = [f for f in ids(frames) if f != "subscribed"]
    assert alerts == [*(stream_id for stream_id, _ in entries), f"{count + 1}-0"]


async def test_merged_replays_never_hide_an_alert_that_none_of_them_sent(metrics):
    count = MAX_REPLAY_MARKS + 1
    history = FakeHistory(page_size=20)
    # Each replay finds one more entry than the one before, so they end at
    # different points; 2-1 comes just after the first replay, on its topic.
    for n in range(count):
        history.before[n] = lambda n=n: history.add(f"{n + 1}-0", alert(topic=f"t{n}.x"))
    first_after = history.before[1]
    history.before[1] = lambda: (first_after(), history.add("2-1", alert(topic="t0.x")))
    hub = make_hub(metrics, history)
    # Once the replays are done, the lagging reader offers all the stream holds.
    frames = await frames_after_subscribe(
        hub, *(subscribe([f"t{n}.x"]) for n in range(count)), live=history.entries)
    assert ids(frames).count("2-1") == 1  # sent live: no replay had it


async def test_replays_live_delivery_has_passed_are_forgotten(metrics):
    history = FakeHistory([("5-0", alert(topic="elsewhere"))])
    hub = make_hub(metrics, history)
    conn = await connected(hub, FakeTransport())
    hub.handle_text(conn, subscribe(["quiet.topic"], since="5-0"))
    await replays_done(conn)
    publish(hub, history, "6-0", alert(topic="elsewhere"))  # for nobody, but past 5-0
    hub.handle_text(conn, subscribe(["other.topic"], since="6-0"))
    await replays_done(conn)
    assert [format_stream_id(mark.upto) for mark in conn.marks] == ["6-0"]
    hub.close_all()


async def test_refusals_from_the_waiting_room_in_a_row_close_with_4429(metrics):
    limits = HubLimits(message_rate=Rate(1000.0, 1000), rate_limit_strikes=2)
    hub = Hub(metrics, history=FakeHistory([("1-0", alert())]), limits=limits)
    transport = FakeTransport()
    conn = await connected(hub, transport)
    conn.pause()  # the replay waits for the client
    hub.handle_text(conn, subscribe())
    for _ in range(MAX_WAITING_MESSAGES + 3):  # the last three are refused
        hub.handle_text(conn, '{"type":"ping"}')
    assert await transport.wait_closed() == (4429, "rate limited")


async def test_long_messages_waiting_for_a_replay_are_bounded_by_their_length(metrics):
    limits = HubLimits(message_rate=Rate(1000.0, 1000))
    hub = Hub(metrics, history=FakeHistory([("1-0", alert())]), limits=limits)
    transport = FakeTransport()
    conn = await connected(hub, transport)
    conn.pause()
    hub.handle_text(conn, subscribe())
    half = "x" * (MAX_WAITING_CHARS // 2 + 1)  # not JSON either: answered after the replay
    for _ in range(2):
        hub.handle_text(conn, half)
    refused = await transport.next_json()  # the second would pass the bound
    assert refused["code"] == "rate_limited"
    conn.resume()
    frames = [await transport.next_json() for _ in range(3)]
    hub.close_all()
    assert [f.get("code", f["type"]) for f in frames] == ["alert", "subscribed", "bad_request"]


async def test_cut_off_while_answering_waiting_messages_ends_the_replay_task_cleanly(metrics):
    hub = make_hub(metrics, FakeHistory([("1-0", alert())]), send_queue_size=2)
    conn = None

    def stop_reading_after_the_replay_answer(text):
        if '"recovered"' in text:
            conn.pause()

    transport = FakeTransport(on_write=stop_reading_after_the_replay_answer)
    conn = hub.connect(transport, identity())
    hub.handle_text(conn, subscribe())
    for _ in range(5):  # their answers overflow the send queue: 1013 halfway
        hub.handle_text(conn, '{"type":"ping"}')
    replay = conn.replay
    async with asyncio.timeout(2):
        await asyncio.wait([replay])
    assert await transport.wait_closed() == (1013, "try again later")
    assert replay.exception() is None


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
    history = FakeHistory([("1-0", alert()), ("2-0", alert())], page_size=1)

    def flood():  # on the older subscription's topic, which the replay does not send
        for n in range(10, 15):
            publish(hub, history, f"{n}-0", alert(topic="manual"))

    history.before[1] = flood
    hub = make_hub(metrics, history, send_queue_size=4)
    transport = FakeTransport()
    conn = await connected(hub, transport, ["manual"])
    hub.handle_text(conn, subscribe())
    assert await transport.wait_closed() == (1013, "try again later")
    assert metrics.registry.get_sample_value(
        "eduhub_alerts_failed_total", {"channel": "websocket", "reason": "slow_consumer"}
    ) == 1
    hub.close_all()


async def test_live_alerts_while_the_replay_answer_waits_for_the_client_follow_it_once(metrics):
    hub = None
    history = FakeHistory([("1-0", alert())])
    conn = None

    def stop_reading_after_the_replayed_alert(text):
        if '"1-0"' in text:
            conn.pause()

    transport = FakeTransport(on_write=stop_reading_after_the_replayed_alert)
    hub = make_hub(metrics, history)
    conn = hub.connect(transport, identity())
    # A lagging reader offers 1-0 again while the replay reads it.
    history.after[0] = lambda: hub.broadcast("1-0", alert())
    hub.handle_text(conn, subscribe())
    await wait_until(lambda: conn._drained is not None)  # `subscribed` waits for the client
    publish(hub, history, "2-0", alert())  # after what the replay read: held
    publish(hub, history, "3-0", alert())
    conn.resume()
    frames = [await transport.next_json() for _ in range(5)]
    hub.handle_text(conn, '{"type":"ping"}')
    assert await transport.next_json() == {"type": "pong"}  # and nothing else came
    hub.close_all()
    assert ids(frames[1:]) == ["1-0", "subscribed", "2-0", "3-0"]


async def test_closing_a_connection_while_held_alerts_are_released_stops_the_release(metrics):
    hub = None
    history = FakeHistory([])

    def live_meanwhile():
        for n in range(3):
            publish(hub, history, f"{n + 5}-0", alert(topic="manual"))

    history.before[0] = live_meanwhile
    hub = make_hub(metrics, history, send_queue_size=4)
    conn = None

    def stop_reading_after_the_replay_answer(text):
        if '"recovered"' in text:
            conn.pause()

    transport = FakeTransport(on_write=stop_reading_after_the_replay_answer)
    conn = await connected(hub, transport, ["manual"])
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
    assert transport.frames.qsize() == 1  # subscribed (the replay's answer)
