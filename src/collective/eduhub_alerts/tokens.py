"""The short-lived token a browser presents to the sidecar's WebSocket.

An HS256 JWT signed with the secret shared with the sidecar. The sidecar
never calls back into Plone: everything it needs to filter alerts for this
user (their catalog principals) travels in the token.
"""

from datetime import datetime
from datetime import timedelta
from datetime import timezone

import jwt

from .audience import user_principals
from .config import get_secret
from .config import get_settings
from .preferences import is_muted
from .settings import browser_topics
from .settings import websocket_url


TOKEN_AUDIENCE = "eduhub-alerts"
SCOPE_READ = "alerts:read"
SCOPE_WRITE = "alerts:write"
SEND_PERMISSION = "collective.eduhub_alerts: Send alerts"


def issue_token(user, context) -> dict:
    """Return ``{"token", "websocket_url", "expires", "topics", "muted"}`` for ``user``.

    ``alerts:write`` is added to the scope only when the user holds the
    *Send alerts* permission on ``context``.
    """
    settings = get_settings()
    secret = get_secret()
    now = datetime.now(timezone.utc).replace(microsecond=0)
    expires = now + timedelta(seconds=settings.token_ttl)
    scopes = [SCOPE_READ]
    if user.has_permission(SEND_PERMISSION, context):
        scopes.append(SCOPE_WRITE)
    claims = {
        "sub": user.getId(),
        "principals": user_principals(user),
        "scope": " ".join(scopes),
        "aud": TOKEN_AUDIENCE,
        "iat": now,
        "exp": expires,
    }
    return {
        "token": jwt.encode(claims, secret, algorithm="HS256"),
        "websocket_url": websocket_url(),
        "expires": expires.isoformat().replace("+00:00", "Z"),
        # The site's choice of topics for pages (control panel).
        "topics": browser_topics(),
        # The user's own choice (@alerts-preferences): pages show nothing.
        "muted": is_muted(user),
    }
