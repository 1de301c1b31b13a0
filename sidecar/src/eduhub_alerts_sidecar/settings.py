"""Typed settings of the sidecar, read from ``EDUHUB_*`` environment variables.

Every field's description states its default; ``sidecar/README.md`` lists them
for operators. Secrets may also come from files (Docker / Kubernetes secrets):
``EDUHUB_<NAME>_FILE`` names a file whose content is the value, for every
secret field (``EDUHUB_ALERTS_SECRET_FILE``, ``EDUHUB_SLACK_BOT_TOKEN_FILE``); and ``EDUHUB_SECRETS_DIR``
names a directory where a file per setting (``eduhub_alerts_secret``) is read.

Slack incoming webhooks are secrets too, one variable per webhook name:
``EDUHUB_SLACK_WEBHOOK_<NAME>`` (the route's name upper-cased, ``-`` as
``_``) or ``EDUHUB_SLACK_WEBHOOK_<NAME>_FILE``; see ``SlackWebhookSource``.

Precedence, highest first: keyword arguments, ``EDUHUB_*`` variables,
``EDUHUB_*_FILE`` files, the secrets directory, defaults.
"""

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SecretsSettingsSource,
    SettingsConfigDict,
)

import os
import re
import socket


ENV_PREFIX = "EDUHUB_"
MIN_SECRET_LENGTH = 32
DEFAULT_ALLOWED_ORIGINS = (
    "http://localhost:8080",
    "http://127.0.0.1:8080",
    "http://localhost:3000",
    "http://localhost:8090",
    "http://127.0.0.1:8090",
)


class SecretFileSource(PydanticBaseSettingsSource):
    """Reads ``EDUHUB_<FIELD>_FILE`` for every ``SecretStr`` field.

    The direct variable (``EDUHUB_ALERTS_SECRET``) wins over the file, so a
    developer can override a mounted secret from the shell.
    """

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        if field.annotation not in (SecretStr, SecretStr | None):
            return None, field_name, False
        path = os.environ.get(f"{ENV_PREFIX}{field_name.upper()}_FILE")
        if not path:
            return None, field_name, False
        # Files written by `echo` or editors end with a newline that is not
        # part of the secret.
        return Path(path).read_text(encoding="utf-8").strip(), field_name, False

    def __call__(self) -> dict[str, Any]:
        values = {}
        for name, field in self.settings_cls.model_fields.items():
            value, key, _ = self.get_field_value(field, name)
            if value is not None:
                values[key] = value
        return values


WEBHOOK_ENV_PREFIX = f"{ENV_PREFIX}SLACK_WEBHOOK_"
WEBHOOK_NAME = re.compile(r"^[a-z0-9_-]{1,40}$")  # as routes.slack[].webhook in the schema
WEBHOOK_URL = re.compile(r"^https?://[^\s]+$")


def webhook_key(name: str) -> str:
    """A webhook name as its variable spells it: ``staff-room`` -> ``STAFF_ROOM``."""
    return name.upper().replace("-", "_")


def webhook_variable(name: str) -> str:
    """The variable holding the URL of the webhook ``name``."""
    return WEBHOOK_ENV_PREFIX + webhook_key(name)


class SlackWebhookSource(PydanticBaseSettingsSource):
    """Collects ``EDUHUB_SLACK_WEBHOOK_<NAME>`` (and ``..._FILE``) into ``slack_webhooks``.

    One variable per webhook keeps each URL (a secret: whoever has it can
    post) in its own Docker / Kubernetes secret. A variable ending in
    ``_FILE`` names a file holding the URL; the direct variable wins.
    """

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False  # everything happens in __call__

    def __call__(self) -> dict[str, Any]:
        from_files, direct = {}, {}
        for variable, value in os.environ.items():
            if not variable.startswith(WEBHOOK_ENV_PREFIX) or not value:
                continue
            key = variable[len(WEBHOOK_ENV_PREFIX):]
            if key.endswith("_FILE"):
                from_files[key[:-len("_FILE")]] = (
                    Path(value).read_text(encoding="utf-8").strip())
            else:
                direct[key] = value.strip()
        webhooks = {**from_files, **direct}
        return {"slack_webhooks": webhooks} if webhooks else {}


class Settings(BaseSettings):
    """All configuration of one sidecar process.

    Construct with keyword arguments to override the environment (tests do);
    ``Settings()`` alone reads ``EDUHUB_*`` variables and raises a
    ``pydantic.ValidationError`` naming the bad variable.
    """

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        extra="ignore",
        frozen=True,
        # Validation errors must never echo a (too short, but real) secret.
        hide_input_in_errors=True,
    )

    redis_url: str = Field(
        "redis://localhost:6379/0",
        description="EDUHUB_REDIS_URL: the Redis holding the alert stream. "
        "Default redis://localhost:6379/0.",
    )
    alerts_secret: SecretStr = Field(
        description="EDUHUB_ALERTS_SECRET (or a file named by EDUHUB_ALERTS_SECRET_FILE): the "
        "HS256 key shared with Plone's @alerts-token, at least 32 characters. No default.",
    )
    ws_allowed_origins: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: list(DEFAULT_ALLOWED_ORIGINS),
        description="EDUHUB_WS_ALLOWED_ORIGINS: comma-separated Origins a browser may open /ws "
        "from; '*' allows any. Default " + ",".join(DEFAULT_ALLOWED_ORIGINS) + ".",
    )
    host: str = Field("127.0.0.1", description="EDUHUB_HOST: interface to bind. Default 127.0.0.1.")
    port: int = Field(8090, ge=1, le=65535, description="EDUHUB_PORT: TCP port. Default 8090.")
    stream_key: str = Field(
        "eduhub:alerts",
        min_length=1,
        description="EDUHUB_STREAM_KEY: the Redis stream Plone appends alerts to. "
        "Default eduhub:alerts.",
    )
    stream_maxlen: int = Field(
        100_000,
        ge=1,
        description="EDUHUB_STREAM_MAXLEN: approximate cap of the stream (XADD MAXLEN ~) for "
        "alerts posted to the sidecar; the same variable as Plone's. Default 100000.",
    )
    http_post_rate_per_minute: int = Field(
        20,
        ge=1,
        description="EDUHUB_HTTP_POST_RATE_PER_MINUTE: POST /alerts requests per minute per "
        "client address (all at once allowed); more are answered 429 with Retry-After. "
        "Default 20.",
    )
    reader_block_ms: int = Field(
        1000,
        ge=1,
        le=60_000,
        description="EDUHUB_READER_BLOCK_MS: how long one XREAD waits for new entries. The Redis "
        "socket timeout is derived from it (block + 5 s) so a quiet stream never looks like a "
        "dead connection. Default 1000.",
    )
    reader_batch_size: int = Field(
        100,
        ge=1,
        le=10_000,
        description="EDUHUB_READER_BATCH_SIZE: entries fetched per XREAD (COUNT); at most "
        "EDUHUB_SEND_QUEUE_SIZE. Default 100.",
    )
    heartbeat_seconds: int = Field(
        25,
        ge=1,
        description="EDUHUB_HEARTBEAT_SECONDS: interval of WebSocket protocol pings; also "
        "announced in the welcome frame. Default 25.",
    )
    heartbeat_timeout_seconds: float = Field(
        20,
        gt=0,
        description="EDUHUB_HEARTBEAT_TIMEOUT_SECONDS: a peer that does not answer a ping "
        "within this time is dropped. Default 20.",
    )
    max_message_bytes: int = Field(
        65_536,
        ge=1024,
        description="EDUHUB_MAX_MESSAGE_BYTES: largest client message accepted; a larger one "
        "closes the connection with 1009. Default 65536 (64 KiB).",
    )
    send_queue_size: int = Field(
        256,
        ge=1,
        description="EDUHUB_SEND_QUEUE_SIZE: frames a client may fall behind by once its "
        "socket's write buffer is full (64 KiB); one more and the connection is closed with "
        "1013. A slow client costs at most this many frames of memory. Default 256.",
    )
    ws_max_subscriptions: int = Field(
        100,
        ge=1,
        description="EDUHUB_WS_MAX_SUBSCRIPTIONS: topic patterns one connection may hold; a "
        "subscribe beyond it is refused with error too_many_subscriptions. Default 100.",
    )
    ws_max_connections_per_user: int = Field(
        10,
        ge=1,
        description="EDUHUB_WS_MAX_CONNECTIONS_PER_USER: open /ws connections per token sub, "
        "per sidecar process; one more is closed with 4429. Default 10.",
    )
    ws_message_rate: float = Field(
        10.0,
        gt=0,
        description="EDUHUB_WS_MESSAGE_RATE: client messages per second a connection may send "
        "(sustained); more are answered with error rate_limited. Default 10.",
    )
    ws_message_burst: int = Field(
        10,
        ge=1,
        description="EDUHUB_WS_MESSAGE_BURST: client messages a connection may send at once "
        "before EDUHUB_WS_MESSAGE_RATE applies. Default 10.",
    )
    ws_rate_limit_strikes: int = Field(
        10,
        ge=1,
        description="EDUHUB_WS_RATE_LIMIT_STRIKES: refused messages in a row after which the "
        "connection is closed with 4429. Default 10.",
    )
    token_audience: str = Field(
        "eduhub-alerts",
        description="EDUHUB_TOKEN_AUDIENCE: required 'aud' claim of tokens. "
        "Default eduhub-alerts.",
    )
    task_restart_max_delay_seconds: float = Field(
        10.0,
        gt=0,
        description="EDUHUB_TASK_RESTART_MAX_DELAY_SECONDS: cap of the exponential back-off "
        "before a crashed background task (the stream reader) is restarted. Default 10.",
    )
    log_level: str = Field(
        "info",
        description="EDUHUB_LOG_LEVEL: critical, error, warning, info, debug or trace. "
        "Default info.",
    )
    log_format: Literal["text", "json"] = Field(
        "text",
        description="EDUHUB_LOG_FORMAT: text, or json for one JSON object per line (time, "
        "level, logger, message, exception) for log collectors. Default text.",
    )
    proxy_headers: bool = Field(
        False,
        description="EDUHUB_PROXY_HEADERS: trust X-Forwarded-* headers (only behind a proxy "
        "you control). Default false.",
    )

    slack_bot_token: SecretStr | None = Field(
        None,
        description="EDUHUB_SLACK_BOT_TOKEN (or a file named by EDUHUB_SLACK_BOT_TOKEN_FILE): the "
        "Slack bot token (xoxb-...), scopes chat:write and im:write. Without it (and without "
        "webhooks) Slack delivery does not run. No default.",
    )
    slack_webhooks: dict[str, SecretStr] = Field(
        default_factory=dict,
        description="EDUHUB_SLACK_WEBHOOK_<NAME> (or a file named by "
        "EDUHUB_SLACK_WEBHOOK_<NAME>_FILE): the URL of the Slack incoming webhook a route "
        "{\"webhook\": \"<name>\"} posts to; NAME is the route's name upper-cased with '-' "
        "as '_' (webhook:staff-room -> EDUHUB_SLACK_WEBHOOK_STAFF_ROOM). One variable per "
        "webhook; each URL is a secret. (EDUHUB_SLACK_WEBHOOKS, a JSON object of name -> URL, "
        "is merged in too, but puts every URL in one variable.) Default none.",
    )
    slack_base_url: str = Field(
        "https://slack.com/api/",
        description="EDUHUB_SLACK_BASE_URL: the Slack Web API base URL (tests point it at a fake "
        "Slack server). Default https://slack.com/api/.",
    )
    slack_consumer_name: str = Field(
        default_factory=lambda: f"{socket.gethostname()}-{os.getpid()}",
        min_length=1,
        description="EDUHUB_SLACK_CONSUMER_NAME: this replica's consumer name in the consumer "
        "group slack; unique per replica. Default <hostname>-<pid>.",
    )
    slack_request_timeout_seconds: float = Field(
        10.0, gt=0,
        description="EDUHUB_SLACK_REQUEST_TIMEOUT_SECONDS: timeout of one Slack HTTP request "
        "(a timeout is retried like a connection error). Default 10.",
    )
    slack_max_retries: int = Field(
        3, ge=0, le=10,
        description="EDUHUB_SLACK_MAX_RETRIES: retries of one Slack call after 429, 5xx, "
        "connection errors and timeouts; then the delivery attempt fails. Default 3.",
    )
    slack_backoff_base_seconds: float = Field(
        1.0, ge=0,
        description="EDUHUB_SLACK_BACKOFF_BASE_SECONDS: exponential back-off base for 5xx and "
        "connection errors; retry n waits uniform(0, min(max, base * 2**n)). Default 1.",
    )
    slack_backoff_max_seconds: float = Field(
        30.0, ge=0,
        description="EDUHUB_SLACK_BACKOFF_MAX_SECONDS: cap of one back-off wait. Default 30.",
    )
    slack_retry_after_jitter_seconds: float = Field(
        1.0, ge=0,
        description="EDUHUB_SLACK_RETRY_AFTER_JITTER_SECONDS: at most this much is added at "
        "random to Slack's Retry-After before retrying a 429. Default 1.",
    )
    slack_max_attempts: int = Field(
        5, ge=1,
        description="EDUHUB_SLACK_MAX_ATTEMPTS: deliveries of one stream entry (each with its "
        "retries) before it moves to the dead-letter stream. Default 5.",
    )
    slack_claim_idle_ms: int = Field(
        60_000, ge=1,
        description="EDUHUB_SLACK_CLAIM_IDLE_MS: a pending entry idle this long (its consumer "
        "died, or its delivery failed) is claimed with XAUTOCLAIM and tried again. Default "
        "60000.",
    )
    slack_max_in_flight: int = Field(
        100, ge=1,
        description="EDUHUB_SLACK_MAX_IN_FLIGHT: stream entries one replica delivers at once "
        "(they wait for their channels' pace). Default 100.",
    )
    slack_pace_seconds: float = Field(
        1.0, ge=0,
        description="EDUHUB_SLACK_PACE_SECONDS: minimum interval between two messages to the "
        "same Slack channel (Slack allows about one per second); other channels do not wait. "
        "Default 1.",
    )
    slack_start_lookback_seconds: int = Field(
        300, ge=0,
        description="EDUHUB_SLACK_START_LOOKBACK_SECONDS: when the consumer group slack is first "
        "created, it starts this far back in the stream, so alerts published just before the "
        "first start are posted but older history is not. Default 300.",
    )
    slack_idempotency_ttl_seconds: int = Field(
        7 * 24 * 3600, ge=1,
        description="EDUHUB_SLACK_IDEMPOTENCY_TTL_SECONDS: how long the record that an alert "
        "was posted to a route is kept (no second post within it). Default 604800 (7 days).",
    )
    slack_threads: bool = Field(
        True,
        description="EDUHUB_SLACK_THREADS: alerts about the same object (source.uid) go into "
        "one thread per channel, and the parent shows the latest state. Default true.",
    )
    slack_thread_ttl_seconds: int = Field(
        30 * 24 * 3600, ge=1,
        description="EDUHUB_SLACK_THREAD_TTL_SECONDS: how long a thread stays open for new "
        "alerts about its object after the last one. Default 2592000 (30 days).",
    )
    slack_dead_letter_key: str = Field(
        "",
        description="EDUHUB_SLACK_DEAD_LETTER_KEY: the dead-letter stream. Default: the alert "
        "stream's key + ':dead' (eduhub:alerts:dead).",
    )

    @field_validator("alerts_secret")
    @classmethod
    def _secret_long_enough(cls, value: SecretStr) -> SecretStr:
        # The message names the variable but never echoes the value.
        if len(value.get_secret_value()) < MIN_SECRET_LENGTH:
            raise ValueError(
                f"EDUHUB_ALERTS_SECRET must be at least {MIN_SECRET_LENGTH} characters long"
            )
        return value

    @field_validator("slack_webhooks")
    @classmethod
    def _valid_webhooks(cls, value: dict[str, SecretStr]) -> dict[str, SecretStr]:
        # Keys as the variables spell them; messages name the variable, never the URL.
        webhooks = {}
        for name, url in value.items():
            if not WEBHOOK_NAME.match(name.lower()):
                raise ValueError(
                    f"{webhook_variable(name)}: a webhook name is 1 to 40 of a-z, 0-9, _ and -")
            if not WEBHOOK_URL.match(url.get_secret_value()):
                raise ValueError(
                    f"{webhook_variable(name)} must be an http(s) URL (Slack's incoming "
                    "webhook URL)")
            webhooks[webhook_key(name)] = url
        return webhooks

    @field_validator("ws_allowed_origins", mode="before")
    @classmethod
    def _split_origins(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [origin.strip() for origin in value.split(",") if origin.strip()]
        return value

    @field_validator("ws_allowed_origins")
    @classmethod
    def _normalise_origins(cls, value: list[str]) -> list[str]:
        # Browsers send the Origin without a trailing slash; tolerate one in config.
        return [origin.rstrip("/") for origin in value]

    @field_validator("log_level")
    @classmethod
    def _known_log_level(cls, value: str) -> str:
        value = value.lower()
        if value not in {"critical", "error", "warning", "info", "debug", "trace"}:
            raise ValueError(
                "EDUHUB_LOG_LEVEL must be critical, error, warning, info, debug or trace"
            )
        return value

    @model_validator(mode="after")
    def _batch_fits_in_send_queue(self) -> "Settings":
        # The reader hands a whole XREAD batch to the hub without pausing, so
        # a batch larger than a send queue would cut off clients that are not
        # slow at all.
        if self.reader_batch_size > self.send_queue_size:
            raise ValueError(
                "EDUHUB_READER_BATCH_SIZE must not exceed EDUHUB_SEND_QUEUE_SIZE "
                f"({self.reader_batch_size} > {self.send_queue_size})"
            )
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources = [init_settings, env_settings, SecretFileSource(settings_cls),
                   SlackWebhookSource(settings_cls), dotenv_settings]
        secrets_dir = os.environ.get(f"{ENV_PREFIX}SECRETS_DIR")
        if secrets_dir:
            # Only when asked for: pydantic-settings warns about a missing directory.
            sources.append(SecretsSettingsSource(settings_cls, secrets_dir=secrets_dir))
        return tuple(sources)

    def slack_webhook_url(self, name: str) -> str | None:
        """The URL of the incoming webhook ``name`` (a route's ``webhook``), or None.

        The URL is a secret: hand it to the HTTP client only, never log it.
        """
        url = self.slack_webhooks.get(webhook_key(name))
        return url.get_secret_value() if url is not None else None

    @property
    def slack_enabled(self) -> bool:
        """Whether Slack delivery runs: a bot token or at least one webhook is configured."""
        return self.slack_bot_token is not None or bool(self.slack_webhooks)

    @property
    def dead_letter_key(self) -> str:
        """The dead-letter stream of Slack delivery (``eduhub:alerts:dead`` by default)."""
        return self.slack_dead_letter_key or f"{self.stream_key}:dead"

    @property
    def redis_socket_timeout(self) -> float:
        """Socket timeout for the Redis client: always longer than one XREAD BLOCK.

        redis-py 8 defaults to 5 s; a blocking read longer than the socket
        timeout would fail with a timeout on every quiet stream.
        """
        return self.reader_block_ms / 1000 + 5.0

    def origin_allowed(self, origin: str | None) -> bool:
        """Whether a WebSocket handshake with this ``Origin`` header may proceed.

        A missing Origin is allowed: only browsers send one, and the token (not a
        cookie) is what authenticates, so a non-browser client gains nothing by
        omitting it.
        """
        if origin is None:
            return True
        allowed = self.ws_allowed_origins
        return "*" in allowed or origin.rstrip("/") in allowed
