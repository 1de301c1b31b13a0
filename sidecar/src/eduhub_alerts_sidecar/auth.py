"""Verification of the HS256 tokens Plone's ``@alerts-token`` issues.

Claims (docs/api/endpoints/alerts.md): ``sub``, ``principals`` (list of strings, the user's
``allowedRolesAndUsers`` values), ``scope`` (space-separated, OAuth 2.0 style),
``exp`` and ``aud`` (``eduhub-alerts``). The sidecar never calls Plone back:
the signature and these claims are all it trusts.
"""

from dataclasses import dataclass

import jwt


READ_SCOPE = "alerts:read"
WRITE_SCOPE = "alerts:write"
ALGORITHMS = ["HS256"]  # a fixed list: never let the token choose (no "none", no RS/HS confusion)


class AuthError(Exception):
    """A token that must not open a connection.

    ``reason`` is one of ``missing``, ``expired``, ``bad_signature``,
    ``wrong_audience``, ``missing_scope``, ``invalid`` — safe to show to the
    client (it reveals nothing about the secret) and to use as a metric label.
    """

    def __init__(self, reason: str, detail: str):
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True, slots=True)
class Identity:
    """Who a verified token speaks for."""

    sub: str
    principals: frozenset[str]
    scopes: frozenset[str]
    expires_at: float  # POSIX timestamp of ``exp``


def verify_token(
    token: str | None,
    *,
    secret: str,
    audience: str,
    required_scope: str = READ_SCOPE,
) -> Identity:
    """Return the ``Identity`` of a valid token; raise ``AuthError`` otherwise.

    ``exp``, ``aud`` and ``sub`` are required; ``required_scope`` must be one of
    the space-separated values of ``scope``; ``principals`` must be a list of
    strings.
    """
    if not token:
        raise AuthError("missing", "no token given")
    try:
        claims = jwt.decode(
            token,
            secret,
            algorithms=ALGORITHMS,
            audience=audience,
            options={"require": ["exp", "aud", "sub"]},
        )
    except jwt.ExpiredSignatureError:
        raise AuthError("expired", "token has expired") from None
    except jwt.InvalidSignatureError:
        raise AuthError("bad_signature", "token signature does not verify") from None
    except jwt.InvalidAudienceError:
        raise AuthError("wrong_audience", f"token audience is not {audience!r}") from None
    except jwt.InvalidTokenError as exc:
        raise AuthError("invalid", str(exc)) from None

    sub = claims["sub"]
    principals = claims.get("principals")
    scope = claims.get("scope", "")
    if not isinstance(sub, str) or not sub:
        raise AuthError("invalid", "sub must be a non-empty string")
    if not isinstance(principals, list) or not all(isinstance(p, str) for p in principals):
        raise AuthError("invalid", "principals must be a list of strings")
    if not isinstance(scope, str):
        raise AuthError("invalid", "scope must be a space-separated string")
    scopes = frozenset(scope.split())
    if required_scope not in scopes:
        raise AuthError("missing_scope", f"token lacks the {required_scope} scope")
    return Identity(
        sub=sub,
        principals=frozenset(principals),
        scopes=scopes,
        expires_at=float(claims["exp"]),
    )
