"""Token verification as a unit (the WebSocket tests prove the 4401 codes)."""

from eduhub_alerts_sidecar.auth import AuthError, Identity, verify_token

import jwt
import pytest
import time


AUDIENCE = "eduhub-alerts"


def verify(token, secret):
    return verify_token(token, secret=secret, audience=AUDIENCE)


def test_valid_token_yields_identity(make_token, alerts_secret):
    token = make_token(sub="jane", principals=["user:jane", "Authenticated"],
                       scope="alerts:read alerts:write", expires_in=600)
    identity = verify(token, alerts_secret)
    assert identity.sub == "jane"
    assert identity.principals == frozenset({"user:jane", "Authenticated"})
    assert identity.scopes == frozenset({"alerts:read", "alerts:write"})
    assert identity.expires_at == pytest.approx(time.time() + 600, abs=2)


def test_identity_is_immutable(make_token, alerts_secret):
    identity = verify(make_token(), alerts_secret)
    with pytest.raises(AttributeError):
        identity.sub = "mallory"
    assert isinstance(identity, Identity)


@pytest.mark.parametrize(
    "claims, reason",
    [
        ({"expires_in": -1}, "expired"),
        ({"secret": "another-secret-of-at-least-thirty-two-chars"}, "bad_signature"),
        ({"audience": "other"}, "wrong_audience"),
        ({"scope": "alerts:write"}, "missing_scope"),
        ({"drop": ("scope",)}, "missing_scope"),
        ({"drop": ("exp",)}, "invalid"),
        ({"drop": ("aud",)}, "invalid"),
        ({"drop": ("sub",)}, "invalid"),
        ({"drop": ("principals",)}, "invalid"),
        ({"principals": ["ok", 1]}, "invalid"),
        ({"scope": ["alerts:read"]}, "invalid"),
        ({"sub": ""}, "invalid"),
    ],
)
def test_unacceptable_token_raises_auth_error_with_reason(
    make_token, alerts_secret, claims, reason
):
    with pytest.raises(AuthError) as info:
        verify(make_token(**claims), alerts_secret)
    assert info.value.reason == reason


@pytest.mark.parametrize("token", [None, ""])
def test_missing_token_raises_missing(token, alerts_secret):
    with pytest.raises(AuthError) as info:
        verify(token, alerts_secret)
    assert info.value.reason == "missing"


def test_token_with_another_algorithm_is_refused(alerts_secret):
    # "none" must never pass, whatever the header says.
    token = jwt.encode(
        {"sub": "x", "principals": [], "scope": "alerts:read", "aud": AUDIENCE,
         "exp": int(time.time()) + 60},
        None,
        algorithm="none",
    )
    with pytest.raises(AuthError) as info:
        verify(token, alerts_secret)
    assert info.value.reason == "invalid"


def test_required_scope_can_be_write(make_token, alerts_secret):
    token = make_token(scope="alerts:read")
    with pytest.raises(AuthError, match="alerts:write"):
        verify_token(token, secret=alerts_secret, audience=AUDIENCE, required_scope="alerts:write")
