"""Deployment settings read from the environment.

Secrets (the token secret shared with the sidecar) never live in the registry:
they come from the process environment, and are read when needed so a test or
a restarted process picks up a new value without a code change.
"""

from dataclasses import dataclass

import os


ALERTS_STREAM = "eduhub:alerts"
"""The Redis stream every alert is appended to (the sidecar reads it)."""

DEFAULT_REDIS_URL = "redis://localhost:6379/0"
DEFAULT_WEBSOCKET_URL = "ws://localhost:8090/ws"
DEFAULT_STREAM_MAXLEN = 100_000
DEFAULT_OUTBOX_MAX_SIZE = 50_000
DEFAULT_OUTBOX_FLUSH_INTERVAL = 30
DEDUPE_TTL = 7 * 24 * 3600
DEFAULT_TOKEN_TTL = 600
MAX_TOKEN_TTL = 900
MIN_SECRET_LENGTH = 32


class ConfigurationError(RuntimeError):
    """A required setting is missing or unusable; the message names it."""


@dataclass(frozen=True)
class Settings:
    redis_url: str
    websocket_url: str
    stream_maxlen: int
    token_ttl: int
    outbox_max_size: int
    outbox_flush_interval: int


def _int_env(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError:
        raise ConfigurationError(f"{name} must be a whole number, got {raw!r}") from None


def get_settings() -> Settings:
    ttl = _int_env("EDUHUB_TOKEN_TTL", DEFAULT_TOKEN_TTL)
    if not 1 <= ttl <= MAX_TOKEN_TTL:
        raise ConfigurationError(
            f"EDUHUB_TOKEN_TTL must be between 1 and {MAX_TOKEN_TTL} seconds, got {ttl}"
        )
    return Settings(
        redis_url=os.environ.get("EDUHUB_REDIS_URL") or DEFAULT_REDIS_URL,
        websocket_url=os.environ.get("EDUHUB_WS_PUBLIC_URL") or DEFAULT_WEBSOCKET_URL,
        stream_maxlen=_int_env("EDUHUB_STREAM_MAXLEN", DEFAULT_STREAM_MAXLEN),
        token_ttl=ttl,
        outbox_max_size=_int_env("EDUHUB_OUTBOX_MAX_SIZE", DEFAULT_OUTBOX_MAX_SIZE),
        outbox_flush_interval=_int_env(
            "EDUHUB_OUTBOX_FLUSH_INTERVAL", DEFAULT_OUTBOX_FLUSH_INTERVAL
        ),
    )


def get_secret() -> str:
    """The HS256 secret shared with the sidecar, from ``EDUHUB_ALERTS_SECRET``
    (or the file named by ``EDUHUB_ALERTS_SECRET_FILE``, for docker secrets)."""
    secret = os.environ.get("EDUHUB_ALERTS_SECRET", "")
    path = os.environ.get("EDUHUB_ALERTS_SECRET_FILE", "")
    if not secret and path:
        try:
            with open(path, encoding="utf-8") as fh:
                secret = fh.read().strip()
        except OSError as exc:
            raise ConfigurationError(
                f"EDUHUB_ALERTS_SECRET_FILE cannot be read: {exc.strerror}"
            ) from None
    if len(secret) < MIN_SECRET_LENGTH:
        raise ConfigurationError(
            "EDUHUB_ALERTS_SECRET must be set to a random string of at least "
            f"{MIN_SECRET_LENGTH} characters (the sidecar must use the same value)"
        )
    return secret
