"""``subscribe`` with ``since`` over a real socket against real Redis: a
reconnecting client gets what it missed, in order, once, and is told whether
the stream still held all of it."""

from tests.sidecar.helpers import open_ws, recv_json, send_json

import asyncio
import json
import pytest
import threading
import uuid


JANE = ("Anonymous", "Authenticated", "user:jane")


async def subscribe_since(ws, topics, since) -> list[dict]:
    """Subscribe with ``since``; the frames up to and including ``subscribed``."""
    assert (await recv_json(ws))["type"] == "welcome"
    await send_json(ws, {"type": "subscribe", "topics": topics, "since": since})
    frames = [await recv_json(ws)]
    while frames[-1]["type"] != "subscribed":
        frames.append(await recv_json(ws))
    return frames


async def test_reconnecting_client_gets_the_alerts_it_missed_in_order_then_live_ones(
    sidecar, make_token, make_alert, publish
):
    seen = publish(sidecar, make_alert(title="seen before the disconnect"))
    missed = [make_alert(audience=["user:jane"]), make_alert(topic="workflow.retract")]
    publish(sidecar, missed[0])
    publish(sidecar, make_alert(audience=["user:bob"]))  # not Jane's to see
    publish(sidecar, make_alert(topic="content.added"))  # another topic
    publish(sidecar, make_alert(routes={"websocket": False}))  # not for browsers
    publish(sidecar, missed[1])
    live = make_alert(title="live")
    async with open_ws(sidecar, make_token(principals=JANE)) as ws:
        frames = await subscribe_since(ws, ["workflow.*"], seen)
        publish(sidecar, live)
        after = await recv_json(ws)
    assert [f["alert"]["id"] for f in frames[:-1]] == [a["id"] for a in missed]
    assert frames[-1] == {"type": "subscribed", "topics": ["workflow.*"], "recovered": True}
    assert after["alert"]["id"] == live["id"]
    assert sidecar.metric("eduhub_alerts_replayed_total") == 2


async def test_since_older_than_the_trimmed_stream_replays_what_is_left_and_says_not_recovered(
    sidecar, make_token, make_alert, publish, redis_client
):
    ids = [publish(sidecar, make_alert()) for _ in range(5)]
    redis_client.xtrim(sidecar.settings.stream_key, maxlen=2, approximate=False)
    async with open_ws(sidecar, make_token()) as ws:
        frames = await subscribe_since(ws, ["workflow.publish"], ids[0])
    assert [f["id"] for f in frames[:-1]] == ids[3:]
    assert frames[-1]["recovered"] is False


async def test_since_with_nothing_missed_replays_nothing_and_says_recovered(
    sidecar, make_token, make_alert, publish
):
    newest = publish(sidecar, make_alert())
    async with open_ws(sidecar, make_token()) as ws:
        frames = await subscribe_since(ws, ["workflow.publish"], newest)
    assert frames == [{"type": "subscribed", "topics": ["workflow.publish"], "recovered": True}]


@pytest.mark.parametrize(
    "since, message",
    [
        ("yesterday", "since: not a stream id such as '1700000000000-0'"),
        ("99999999999999999999-0", "since: stream id parts must fit in 64 bits"),
        (17, "since: Input should be a valid string"),
    ],
)
async def test_invalid_since_gets_an_error_naming_the_field(sidecar, make_token, since, message):
    async with open_ws(sidecar, make_token()) as ws:
        await recv_json(ws)
        await send_json(ws, {"type": "subscribe", "topics": ["manual"], "since": since})
        error = await recv_json(ws)
    assert error == {"type": "error", "code": "bad_request", "message": message}


async def test_alerts_published_while_a_replay_runs_arrive_once_and_in_stream_order(
    start_sidecar, make_token, make_alert, publish, redis_client
):
    # Small pages make the replay many round trips long while another thread
    # appends: each entry is read by the replay, or held as a live one during
    # it, or both — it must show up exactly once, in stream order, and so
    # must the live ones after the replay. (The hub tests pin down each
    # interleaving exactly; this one runs them over a real socket.)
    key = f"eduhub:alerts:test:{uuid.uuid4().hex}"
    history = [redis_client.xadd(key, {"alert": json.dumps(make_alert())}) for _ in range(150)]
    # Started after the history was written, its reader begins at the newest entry.
    sidecar = await start_sidecar(reader_batch_size=5, stream_key=key)
    during: list[str] = []
    go = threading.Event()

    def keep_publishing():
        go.wait(5)
        during.extend(publish(sidecar, make_alert()) for _ in range(150))

    writer = threading.Thread(target=keep_publishing)
    writer.start()
    received, subscribed_at = [], None
    try:
        async with open_ws(sidecar, make_token()) as ws:
            assert (await recv_json(ws))["type"] == "welcome"
            await send_json(ws, {"type": "subscribe", "topics": ["workflow.*"], "since": "0-0"})
            go.set()
            while subscribed_at is None:
                frame = await recv_json(ws)
                if frame["type"] == "subscribed":
                    subscribed_at = len(received)
                else:
                    received.append(frame["id"])
            await asyncio.to_thread(writer.join)
            after = [publish(sidecar, make_alert()) for _ in range(10)]
            while len(received) < len(history) + len(during) + len(after):
                received.append((await recv_json(ws))["id"])
    finally:
        go.set()
        await asyncio.to_thread(writer.join)
    assert received == history + during + after
    assert subscribed_at >= len(history)
