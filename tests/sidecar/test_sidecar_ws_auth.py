"""Who may open /ws: tokens (4401) and origins (4403), over a real socket so
the close codes are the ones a browser would see."""

from tests.sidecar.helpers import close_of, open_ws, recv_json

import pytest
import time


async def test_valid_token_in_query_gets_welcome(sidecar, make_token):
    async with open_ws(sidecar, make_token(sub="jane")) as ws:
        welcome = await recv_json(ws)
    assert welcome["type"] == "welcome"
    assert welcome["user"] == "jane"
    assert welcome["heartbeat"] == 25
    assert isinstance(welcome["connection_id"], str) and welcome["connection_id"]


async def test_valid_token_in_bearer_subprotocol_is_accepted_with_an_offered_subprotocol(
    sidecar, make_token
):
    token = make_token(sub="jane")
    async with open_ws(sidecar, subprotocols=[f"bearer.{token}"]) as ws:
        welcome = await recv_json(ws)
        # Browsers fail the handshake unless the server picks one they offered.
        assert ws.subprotocol == f"bearer.{token}"
    assert welcome["user"] == "jane"


async def test_non_token_subprotocol_is_preferred_for_the_handshake(sidecar, make_token):
    token = make_token()
    async with open_ws(sidecar, subprotocols=[f"bearer.{token}", "eduhub-alerts"]) as ws:
        assert (await recv_json(ws))["type"] == "welcome"
        assert ws.subprotocol == "eduhub-alerts"


@pytest.mark.parametrize(
    "claims, reason",
    [
        ({"expires_in": -10}, "expired"),
        ({"audience": "someone-else"}, "wrong_audience"),
        ({"scope": "alerts:write"}, "missing_scope"),
        ({"scope": ""}, "missing_scope"),
        ({"drop": ("exp",)}, "invalid"),
        ({"drop": ("sub",)}, "invalid"),
        ({"principals": "Anonymous"}, "invalid"),
    ],
    ids=["expired", "wrong-audience", "write-scope-only", "no-scope", "no-exp", "no-sub",
         "principals-not-a-list"],
)
async def test_unacceptable_token_is_closed_with_4401(sidecar, make_token, claims, reason):
    async with open_ws(sidecar, make_token(**claims)) as ws:
        code, why = await close_of(ws)
    assert code == 4401
    assert why == f"unauthorized: {reason}"


async def test_missing_token_is_closed_with_4401(sidecar):
    async with open_ws(sidecar) as ws:
        assert await close_of(ws) == (4401, "unauthorized: missing")


async def test_subprotocol_without_a_token_is_closed_with_4401(sidecar):
    async with open_ws(sidecar, subprotocols=["eduhub-alerts"]) as ws:
        assert ws.subprotocol == "eduhub-alerts"
        assert await close_of(ws) == (4401, "unauthorized: missing")


async def test_forged_token_is_closed_with_4401(sidecar, make_token):
    forged = make_token(secret="an-attacker-secret-that-is-long-enough-32")
    async with open_ws(sidecar, forged) as ws:
        assert await close_of(ws) == (4401, "unauthorized: bad_signature")


async def test_garbage_token_is_closed_with_4401(sidecar):
    async with open_ws(sidecar, "not-a-jwt") as ws:
        code, _ = await close_of(ws)
    assert code == 4401


async def test_unauthorised_client_with_subprotocol_still_sees_4401(sidecar, make_token):
    # The reject path accepts with the offered subprotocol too, or a browser
    # would fail the handshake and never see the code.
    forged = make_token(secret="an-attacker-secret-that-is-long-enough-32")
    async with open_ws(sidecar, subprotocols=[f"bearer.{forged}"]) as ws:
        code, _ = await close_of(ws)
    assert code == 4401


async def test_expired_token_is_closed_with_4401_when_exp_passes(sidecar, alerts_secret):
    import jwt

    # exp has one-second resolution: expire in (1, 2] seconds from now.
    exp = int(time.time()) + 2
    token = jwt.encode(
        {"sub": "jane", "principals": ["Anonymous"], "scope": "alerts:read", "exp": exp,
         "aud": "eduhub-alerts"},
        alerts_secret,
        algorithm="HS256",
    )
    async with open_ws(sidecar, token) as ws:
        assert (await recv_json(ws))["type"] == "welcome"
        code, reason = await close_of(ws, timeout=5)
        closed_at = time.time()
    assert (code, reason) == (4401, "token expired")
    assert closed_at >= exp - 0.05


async def test_origin_not_in_allow_list_is_closed_with_4403(sidecar, make_token):
    async with open_ws(sidecar, make_token(), origin="http://evil.example") as ws:
        assert await close_of(ws) == (4403, "origin not allowed")


async def test_origin_is_checked_before_the_token(sidecar):
    async with open_ws(sidecar, None, origin="http://evil.example") as ws:
        code, _ = await close_of(ws)
    assert code == 4403


async def test_allowed_origin_is_accepted(sidecar, make_token):
    async with open_ws(sidecar, make_token(), origin="http://localhost:8080") as ws:
        assert (await recv_json(ws))["type"] == "welcome"


async def test_client_without_origin_header_is_accepted(sidecar, make_token):
    # Non-browser clients send no Origin; the token is what authenticates.
    async with open_ws(sidecar, make_token(), origin=None) as ws:
        assert (await recv_json(ws))["type"] == "welcome"


async def test_configured_origin_list_replaces_the_default(start_sidecar, make_token):
    sidecar = await start_sidecar(ws_allowed_origins=["https://school.example"])
    async with open_ws(sidecar, make_token(), origin="https://school.example") as ws:
        assert (await recv_json(ws))["type"] == "welcome"
    async with open_ws(sidecar, make_token(), origin="http://localhost:8080") as ws:
        code, _ = await close_of(ws)
    assert code == 4403
