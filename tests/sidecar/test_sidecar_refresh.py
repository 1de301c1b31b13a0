"""``{"type":"refresh","token":...}``: a long-lived connection swaps in a
fresh token for the same user — new principals apply at once, the expiry
moves — and a token that does not verify changes nothing."""

from eduhub_alerts_sidecar.auth import AuthError
from eduhub_alerts_sidecar.monitoring import Metrics
from eduhub_alerts_sidecar.websocket_hub import Hub

from tests.sidecar.fakes import FakeTransport, connected, identity
from tests.sidecar.helpers import open_ws, recv_json, send_json, subscribed_client

from datetime import datetime, timezone

import asyncio
import json
import jwt
import pytest


JANE = ("Anonymous", "Authenticated", "user:jane")


async def refresh(ws, token) -> dict:
    await send_json(ws, {"type": "refresh", "token": token})
    return await recv_json(ws)


async def test_refresh_answers_refreshed_with_the_new_expiry(sidecar, make_token):
    fresh = make_token(expires_in=600)
    exp = jwt.decode(fresh, options={"verify_signature": False})["exp"]
    async with open_ws(sidecar, make_token(expires_in=60)) as ws:
        await recv_json(ws)
        reply = await refresh(ws, fresh)
    expected = datetime.fromtimestamp(exp, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert reply == {"type": "refreshed", "expires": expected}


async def test_principals_of_the_refreshed_token_decide_what_arrives_next(
    sidecar, make_token, make_alert, publish
):
    for_editors = make_alert(title="for editors", audience=["Editor"])
    for_teachers = make_alert(title="for teachers", audience=["user:teachers"])
    async with open_ws(sidecar, make_token(principals=JANE + ("Editor",))) as ws:
        await subscribed_client(ws, ["workflow.*"])
        # Jane lost the Editor role and joined the teachers group.
        reply = await refresh(ws, make_token(principals=JANE + ("user:teachers",)))
        publish(sidecar, for_editors)
        publish(sidecar, for_teachers)
        frame = await recv_json(ws)
    assert reply["type"] == "refreshed"
    assert frame["alert"]["title"] == "for teachers"  # the Editor alert did not come first


@pytest.mark.parametrize(
    "claims, reason",
    [
        ({"secret": "an-attacker-secret-that-is-long-enough-32"}, "bad_signature"),
        ({"expires_in": -10}, "expired"),
        ({"scope": "alerts:write"}, "missing_scope"),
        ({"audience": "someone-else"}, "wrong_audience"),
    ],
    ids=["forged", "expired", "write-scope-only", "wrong-audience"],
)
async def test_refresh_with_an_unacceptable_token_is_refused_and_the_connection_goes_on(
    sidecar, make_token, claims, reason
):
    async with open_ws(sidecar, make_token()) as ws:
        await recv_json(ws)
        error = await refresh(ws, make_token(**claims))
        await send_json(ws, {"type": "ping"})
        assert await recv_json(ws) == {"type": "pong"}
    assert error == {"type": "error", "code": "unauthorized", "message": f"token: {reason}"}


async def test_refresh_with_another_users_token_is_refused(sidecar, make_token):
    async with open_ws(sidecar, make_token(sub="jane")) as ws:
        await recv_json(ws)
        error = await refresh(ws, make_token(sub="bob"))
    assert error == {
        "type": "error", "code": "unauthorized", "message": "token: issued for another user",
    }


# --- the expiry timer, in the hub ------------------------------------------------


@pytest.fixture
async def hub():
    tokens = {"fresh": identity(expires_in=900), "bob": identity(sub="bob")}

    def verify(token):
        if token not in tokens:
            raise AuthError("bad_signature", "token signature does not verify")
        return tokens[token]

    hub = Hub(Metrics(), verify_token=verify)
    yield hub
    hub.close_all()


def seconds_left(conn) -> float:
    return conn.expiry.when() - asyncio.get_running_loop().time()


async def test_refresh_moves_the_expiry_to_the_new_tokens(hub):
    transport = FakeTransport()
    conn = await connected(hub, transport)  # expires in 300 s
    hub.handle_text(conn, json.dumps({"type": "refresh", "token": "fresh"}))
    assert (await transport.next_json())["type"] == "refreshed"
    assert 890 < seconds_left(conn) <= 900


@pytest.mark.parametrize("token", ["forged", "bob"])
async def test_refused_refresh_keeps_the_old_expiry(hub, token):
    transport = FakeTransport()
    conn = await connected(hub, transport)
    timer = conn.expiry
    hub.handle_text(conn, json.dumps({"type": "refresh", "token": token}))
    assert (await transport.next_json())["code"] == "unauthorized"
    assert conn.expiry is timer and not timer.cancelled()
    assert 290 < seconds_left(conn) <= 300


async def test_refresh_on_a_closed_connection_does_not_register_it_again(hub):
    transport = FakeTransport()
    conn = await connected(hub, transport)
    hub.disconnect(conn)
    hub.handle_text(conn, json.dumps({"type": "refresh", "token": "fresh"}))
    assert not hub.connections
    assert not hub._by_principal  # the principal index does not hold it again


async def test_hub_without_a_token_verifier_refuses_every_refresh():
    hub = Hub(Metrics())
    transport = FakeTransport()
    conn = await connected(hub, transport)
    hub.handle_text(conn, json.dumps({"type": "refresh", "token": "anything"}))
    error = await transport.next_json()
    hub.close_all()
    assert error == {"type": "error", "code": "unauthorized", "message": "token: invalid"}
