"""Limits over a real socket: subscriptions per connection, connections per
user (4429) and the client message rate (error rate_limited, then 4429)."""

from tests.sidecar.helpers import close_of, open_ws, recv_json, send_json, wait_until

from contextlib import AsyncExitStack


async def subscribe(ws, topics) -> dict:
    await send_json(ws, {"type": "subscribe", "topics": topics})
    return await recv_json(ws)


async def test_subscribe_beyond_the_subscription_limit_is_refused_and_changes_nothing(
    start_sidecar, make_token
):
    sidecar = await start_sidecar(ws_max_subscriptions=3)
    async with open_ws(sidecar, make_token()) as ws:
        await recv_json(ws)
        await subscribe(ws, ["a", "b"])
        refused = await subscribe(ws, ["c", "d"])
        # Patterns already held do not count again; one more fits.
        accepted = await subscribe(ws, ["a", "b", "c"])
    assert refused == {
        "type": "error",
        "code": "too_many_subscriptions",
        "message": "topics: at most 3 subscriptions per connection "
                   "(subscribed to 2, asked for 2 more)",
    }
    assert accepted == {"type": "subscribed", "topics": ["a", "b", "c"]}


async def test_connection_beyond_the_per_user_limit_is_closed_with_4429(
    start_sidecar, make_token
):
    sidecar = await start_sidecar(ws_max_connections_per_user=2)
    hub = sidecar.app.state.hub
    async with AsyncExitStack() as stack:
        first = await stack.enter_async_context(open_ws(sidecar, make_token(sub="jane")))
        await recv_json(first)
        second = await stack.enter_async_context(open_ws(sidecar, make_token(sub="jane")))
        await recv_json(second)
        async with open_ws(sidecar, make_token(sub="jane")) as third:
            assert await close_of(third) == (4429, "too many connections")
        async with open_ws(sidecar, make_token(sub="bob")) as bob:  # other users are not affected
            assert (await recv_json(bob))["type"] == "welcome"
        await first.close()
        await wait_until(lambda: len(hub.connections) == 1)
        async with open_ws(sidecar, make_token(sub="jane")) as again:  # room again
            assert (await recv_json(again))["type"] == "welcome"
    assert sidecar.metric("eduhub_alerts_rate_limited_total", scope="connections") == 1


async def test_messages_beyond_the_rate_get_rate_limited_errors_then_4429(
    start_sidecar, make_token
):
    # A rate so low nothing refills during the test: exactly the burst passes.
    sidecar = await start_sidecar(ws_message_rate=0.001, ws_message_burst=3,
                                  ws_rate_limit_strikes=2)
    async with open_ws(sidecar, make_token()) as ws:
        await recv_json(ws)
        for _ in range(6):
            await send_json(ws, {"type": "ping"})
        replies = [await recv_json(ws) for _ in range(5)]
        code, reason = await close_of(ws)
    assert replies[:3] == [{"type": "pong"}] * 3
    assert replies[3:] == [{
        "type": "error",
        "code": "rate_limited",
        "message": "at most 0.001 messages per second (bursts of 3)",
    }] * 2
    assert (code, reason) == (4429, "rate limited")
    assert sidecar.metric("eduhub_alerts_rate_limited_total", scope="websocket") == 3


async def test_binary_frames_count_against_the_message_rate(start_sidecar, make_token):
    sidecar = await start_sidecar(ws_message_rate=0.001, ws_message_burst=1)
    async with open_ws(sidecar, make_token()) as ws:
        await recv_json(ws)
        await ws.send(b"\x00")
        await send_json(ws, {"type": "ping"})
        replies = [(await recv_json(ws))["code"] for _ in range(2)]
    assert replies == ["bad_request", "rate_limited"]
