"""The Slack Web API client: post an alert to a channel or a user, with back-off.

Built on slack_sdk's ``AsyncWebClient`` and its retry handlers
(``slack_sdk.http_retry``), extended where our behaviour differs:

- HTTP 429: wait ``Retry-After`` plus a jitter of at most
  ``retry_after_jitter`` seconds (slack_sdk adds up to a whole second and
  reads the header as an integer only);
- HTTP 5xx (every 5xx, not only 500 and 503), connection errors and
  timeouts: exponential back-off with *full* jitter, a random wait between 0
  and ``min(cap, base * 2**attempt)``;
- at most ``max_retries`` retries per API call in all (the handlers share
  one ``RetryState``), each counted in ``eduhub_slack_retries_total``; then
  ``SlackAPIError``.

Errors that another try cannot fix (``channel_not_found``, ``invalid_auth``...)
are never retried: they raise ``SlackPermanentError`` with Slack's reason.
The bot token is only ever handed to slack_sdk (which redacts it in its own
debug logs); nothing here logs it or puts it in an exception message.

Webhook routes (``{"webhook": "<name>"}``) post the same message through
slack_sdk's ``AsyncWebhookClient`` to the incoming webhook URL configured as
``EDUHUB_SLACK_WEBHOOK_<NAME>``, with the same retry handlers. An incoming
webhook posts to the one channel it was created for and answers no message
``ts``: threads and ``chat.update`` do not apply to webhook routes. Its URL
is a secret (whoever has it can post): errors and logs name the webhook,
never the URL, and slack_sdk's webhook logger (which would log the URL at
debug level) is kept at WARNING.
"""

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from aiohttp import ClientSession, ClientTimeout
from slack_sdk.errors import SlackApiError, SlackRequestError
from slack_sdk.http_retry.async_handler import AsyncRetryHandler
from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncConnectionErrorRetryHandler,
    AsyncRateLimitErrorRetryHandler,
    AsyncServerErrorRetryHandler,
)
from slack_sdk.http_retry.interval_calculator import RetryIntervalCalculator
from slack_sdk.http_retry.request import HttpRequest
from slack_sdk.http_retry.response import HttpResponse
from slack_sdk.http_retry.state import RetryState
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.webhook.async_client import AsyncWebhookClient

from .monitoring import Metrics
from .slack_messages import SlackMessage, build_message

import aiohttp
import asyncio
import logging
import random
import re
import time


log = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://slack.com/api/"

# Slack ``error`` codes that mean "this request will never succeed as it is":
# a wrong channel or user, a token without the right or any permission, a
# message Slack refuses. Retrying them only burns rate limit.
PERMANENT_ERRORS = frozenset({
    "account_inactive",
    "cannot_dm_bot",
    "cant_update_message",
    "channel_not_found",
    "edit_window_closed",
    "ekm_access_denied",
    "invalid_arguments",
    "invalid_auth",
    "invalid_blocks",
    "is_archived",
    "message_not_found",
    "missing_scope",
    "msg_too_long",
    "no_permission",
    "no_text",
    "not_allowed_token_type",
    "not_authed",
    "not_in_channel",
    "restricted_action",
    "team_access_not_granted",
    "token_expired",
    "token_revoked",
    "user_disabled",
    "user_not_found",
    "users_not_found",
})


# What an incoming webhook answers (HTTP status, plain-text body) when no
# retry can help: the webhook was removed, its channel archived or gone, the
# payload refused. Any other 4xx is permanent too; 429 and 5xx are retried.
PERMANENT_WEBHOOK_ERRORS = frozenset({
    "action_prohibited",
    "channel_is_archived",
    "channel_not_found",
    "invalid_payload",
    "invalid_token",
    "no_active_hooks",
    "no_service",
    "no_service_id",
    "no_team",
    "posting_to_general_channel_denied",
    "team_disabled",
    "too_many_attachments",
    "user_not_found",
})

# slack_sdk's webhook client logs the URL (a secret) at debug level.
webhook_sdk_log = logging.getLogger(f"{__name__}.webhook_sdk")
webhook_sdk_log.setLevel(logging.WARNING)


class SlackAPIError(Exception):
    """A Slack call failed after its retries (or with an error worth retrying later).

    ``reason`` is a short, low-cardinality label for metrics and dead
    letters: Slack's ``error`` code (``ratelimited``, ``internal_error``),
    ``http_<status>``, ``connection`` or ``timeout``.
    """

    def __init__(self, reason: str, detail: str = ""):
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


class SlackPermanentError(SlackAPIError):
    """Slack refused the call for a reason no retry can fix (``channel_not_found``...)."""


# --- retry handlers ---------------------------------------------------------------


class FullJitterBackoff(RetryIntervalCalculator):
    """Exponential back-off with full jitter: ``uniform(0, min(cap, base * 2**attempt))``.

    slack_sdk's ``BackoffRetryIntervalCalculator`` adds a jitter on top of the
    full interval, so clients that failed together retry together; full
    jitter spreads them out (see the AWS architecture blog on back-off).
    """

    def __init__(self, base: float = 1.0, cap: float = 30.0,
                 rng: Callable[[float, float], float] = random.uniform):
        self.base = base
        self.cap = cap
        self.rng = rng

    def calculate_sleep_duration(self, current_attempt: int) -> float:
        return self.rng(0.0, min(self.cap, self.base * 2 ** current_attempt))


class _CountingRetries:
    """Mixin: call ``on_retry(reason)`` before each retry a handler decides on."""

    on_retry: Callable[[str], None]
    retry_reason = "retry"

    async def prepare_for_next_attempt_async(self, *, state: RetryState, request: HttpRequest,
                                             response: HttpResponse | None = None,
                                             error: Exception | None = None) -> None:
        self.on_retry(self.retry_reason)
        await super().prepare_for_next_attempt_async(  # type: ignore[misc]
            state=state, request=request, response=response, error=error)


class RateLimitRetryHandler(_CountingRetries, AsyncRateLimitErrorRetryHandler):
    """HTTP 429: wait ``Retry-After`` (seconds, fractions allowed) plus a small jitter."""

    retry_reason = "ratelimited"

    def __init__(self, max_retry_count: int, *, jitter: float, on_retry: Callable[[str], None],
                 default_wait: float = 1.0, sleep=asyncio.sleep):
        super().__init__(max_retry_count=max_retry_count)
        self.jitter = jitter
        self.on_retry = on_retry
        self.default_wait = default_wait
        self.sleep = sleep

    def retry_after(self, response: HttpResponse) -> float:
        """Seconds Slack asked us to wait; ``default_wait`` when the header is missing or bad."""
        for name, values in response.headers.items():
            if name.lower() == "retry-after":
                value = values[0] if isinstance(values, list) else values
                try:
                    return max(0.0, float(value))
                except (TypeError, ValueError):
                    break
        return self.default_wait

    async def prepare_for_next_attempt_async(self, *, state: RetryState, request: HttpRequest,
                                             response: HttpResponse | None = None,
                                             error: Exception | None = None) -> None:
        # Replaces slack_sdk's (an integer Retry-After plus up to one second).
        self.on_retry(self.retry_reason)
        state.next_attempt_requested = True
        await self.sleep(self.retry_after(response) + random.uniform(0.0, self.jitter))
        state.increment_current_attempt()


class ServerErrorRetryHandler(_CountingRetries, AsyncServerErrorRetryHandler):
    """Any HTTP 5xx (slack_sdk's handler retries 500 and 503 only)."""

    retry_reason = "server_error"

    def __init__(self, max_retry_count: int, *, interval_calculator: RetryIntervalCalculator,
                 on_retry: Callable[[str], None]):
        super().__init__(max_retry_count=max_retry_count, interval_calculator=interval_calculator)
        self.on_retry = on_retry

    async def _can_retry_async(self, *, state: RetryState, request: HttpRequest,
                               response: HttpResponse | None = None,
                               error: Exception | None = None) -> bool:
        return response is not None and 500 <= response.status_code <= 599


class ConnectionErrorRetryHandler(_CountingRetries, AsyncConnectionErrorRetryHandler):
    """Connection errors, as slack_sdk's handler, plus timeouts (any ``TimeoutError``)."""

    retry_reason = "connection"

    def __init__(self, max_retry_count: int, *, interval_calculator: RetryIntervalCalculator,
                 on_retry: Callable[[str], None]):
        super().__init__(
            max_retry_count=max_retry_count,
            interval_calculator=interval_calculator,
            error_types=[aiohttp.ClientConnectionError, aiohttp.ClientPayloadError,
                         asyncio.TimeoutError],
        )
        self.on_retry = on_retry


def retry_handlers(*, max_retries: int, backoff: RetryIntervalCalculator,
                   retry_after_jitter: float,
                   on_retry: Callable[[str], None]) -> list[AsyncRetryHandler]:
    """The handlers of one client; they share each call's retry budget."""
    return [
        RateLimitRetryHandler(max_retries, jitter=retry_after_jitter, on_retry=on_retry),
        ServerErrorRetryHandler(max_retries, interval_calculator=backoff, on_retry=on_retry),
        ConnectionErrorRetryHandler(max_retries, interval_calculator=backoff, on_retry=on_retry),
    ]


# --- the client -------------------------------------------------------------------


def route_key(route: Mapping[str, str]) -> str:
    """``channel:C123``, ``user:U123`` or ``webhook:<name>``: a route's stable name.

    Used in Redis keys (idempotency records), pacing and logs; a webhook
    route's name is never its URL.
    """
    if route.get("channel"):
        return f"channel:{route['channel']}"
    if route.get("user"):
        return f"user:{route['user']}"
    if route.get("webhook"):
        return f"webhook:{route['webhook']}"
    raise SlackPermanentError("invalid_route",
                              "a Slack route names a channel, a user or a webhook")


@dataclass(frozen=True)
class PostedMessage:
    """Where a message landed: the conversation id and the message ``ts``."""

    channel: str
    ts: str


class SlackClient:
    """Posts alerts to Slack; one instance per sidecar, shared by all deliveries.

    ``send_alert`` may be called concurrently. Callers may rely on: success
    returns a ``PostedMessage``; a refusal no retry can fix raises
    ``SlackPermanentError``; anything else that still failed after the
    retries raises ``SlackAPIError``.
    """

    def __init__(self, token: str | None, *, base_url: str = DEFAULT_BASE_URL,
                 timeout: float = 10.0, max_retries: int = 3,
                 backoff: RetryIntervalCalculator | None = None,
                 retry_after_jitter: float = 1.0, metrics: Metrics | None = None,
                 webhook_url: Callable[[str], str | None] | None = None):
        self._token = token
        # name -> URL (``Settings.slack_webhook_url``); None: no webhooks.
        self._webhook_url = webhook_url
        self.base_url = base_url if base_url.endswith("/") else base_url + "/"
        self.timeout = timeout
        self.metrics = metrics
        self.handlers = retry_handlers(
            max_retries=max_retries,
            backoff=backoff if backoff is not None else FullJitterBackoff(),
            retry_after_jitter=retry_after_jitter,
            on_retry=self._count_retry,
        )
        self._session: ClientSession | None = None
        self._web: AsyncWebClient | None = None
        self._dm_channels: dict[str, str] = {}
        self._webhooks: dict[str, AsyncWebhookClient] = {}

    def __repr__(self) -> str:
        return f"SlackClient(base_url={self.base_url!r})"  # never the token

    @classmethod
    def from_settings(cls, settings, metrics: Metrics | None = None) -> "SlackClient":
        """The client configured by ``EDUHUB_SLACK_*`` settings (token and/or webhooks)."""
        token = settings.slack_bot_token
        return cls(
            token.get_secret_value() if token is not None else None,
            base_url=settings.slack_base_url,
            timeout=settings.slack_request_timeout_seconds,
            max_retries=settings.slack_max_retries,
            backoff=FullJitterBackoff(settings.slack_backoff_base_seconds,
                                      settings.slack_backoff_max_seconds),
            retry_after_jitter=settings.slack_retry_after_jitter_seconds,
            metrics=metrics,
            webhook_url=settings.slack_webhook_url,
        )

    def _count_retry(self, reason: str) -> None:
        log.info("retrying a Slack call (%s)", reason)
        if self.metrics is not None:
            self.metrics.slack_retries.inc()

    @property
    def session(self) -> ClientSession:
        """One connection pool for all calls, Web API and webhooks, kept for the client's life."""
        if self._session is None:
            # A new TLS connection per message would cost more than the message.
            self._session = ClientSession(timeout=ClientTimeout(total=self.timeout))
        return self._session

    @property
    def web(self) -> AsyncWebClient:
        """The slack_sdk client of the Web API (bot token)."""
        if self._token is None:
            raise SlackPermanentError("bot_token_not_configured",
                                      "EDUHUB_SLACK_BOT_TOKEN is not set")
        if self._web is None:
            self._web = AsyncWebClient(
                token=self._token, base_url=self.base_url, timeout=self.timeout,  # type: ignore[arg-type]
                session=self.session, retry_handlers=self.handlers,
            )
        return self._web

    def webhook(self, name: str) -> AsyncWebhookClient:
        """The slack_sdk client of the incoming webhook ``name``.

        Raises ``SlackPermanentError("webhook_not_configured")`` when no
        ``EDUHUB_SLACK_WEBHOOK_<NAME>`` is set: another try will not find it.
        """
        client = self._webhooks.get(name)
        if client is None:
            url = self._webhook_url(name) if self._webhook_url is not None else None
            if not url:
                raise SlackPermanentError(
                    "webhook_not_configured",
                    f"no URL for the Slack webhook {name!r} (routes.slack[].webhook)")
            client = self._webhooks[name] = AsyncWebhookClient(
                url, timeout=int(max(1, self.timeout)), session=self.session,
                retry_handlers=self.handlers, logger=webhook_sdk_log)
        return client

    async def aclose(self) -> None:
        """Close the connection pool; the client may be used again afterwards."""
        if self._session is not None:
            await self._session.close()
        self._session = self._web = None
        self._webhooks.clear()

    async def call(self, method: str, **params: Any) -> dict:
        """Call a Web API ``method`` with JSON ``params``; the response body on success."""
        started = time.perf_counter()
        try:
            response = await self.web.api_call(method, json=params)
            return dict(response.data)
        except SlackApiError as exc:
            raise self._classify(exc) from None
        except (aiohttp.ClientError, SlackRequestError) as exc:
            raise SlackAPIError("connection", type(exc).__name__) from None
        except asyncio.TimeoutError:
            raise SlackAPIError("timeout", f"no answer within {self.timeout:g}s") from None
        finally:
            if self.metrics is not None:
                self.metrics.slack_request_duration.labels(method=method).observe(
                    time.perf_counter() - started)

    @staticmethod
    def _classify(exc: SlackApiError) -> SlackAPIError:
        data = exc.response.data if isinstance(exc.response.data, dict) else {}
        status = exc.response.status_code
        error = str(data.get("error") or "")
        if status == 429:
            return SlackAPIError("ratelimited", "HTTP 429 after all retries")
        if error in PERMANENT_ERRORS:
            return SlackPermanentError(error, f"Slack answered {error}")
        if error:
            return SlackAPIError(error, f"Slack answered {error} (HTTP {status})")
        return SlackAPIError(f"http_{status}", f"HTTP {status}")

    async def post_webhook(self, name: str, message: SlackMessage) -> PostedMessage:
        """Post ``message`` through the incoming webhook ``name``.

        A webhook answers ``ok`` and no ``ts``: the ``PostedMessage`` has
        ``channel="webhook:<name>"`` and an empty ``ts``.
        """
        started = time.perf_counter()
        try:
            response = await self.webhook(name).send_dict(message.as_params())
        except (aiohttp.ClientError, SlackRequestError) as exc:
            raise SlackAPIError("connection", type(exc).__name__) from None
        except asyncio.TimeoutError:
            raise SlackAPIError("timeout", f"no answer within {self.timeout:g}s") from None
        finally:
            if self.metrics is not None:
                self.metrics.slack_request_duration.labels(method="webhook").observe(
                    time.perf_counter() - started)
        if response.status_code == 200:
            return PostedMessage(channel=f"webhook:{name}", ts="")
        raise self._classify_webhook(name, response.status_code, response.body)

    @staticmethod
    def _classify_webhook(name: str, status: int, body: str | None) -> SlackAPIError:
        # Webhooks answer errors as a plain-text code ("no_service"), not JSON.
        error = (body or "").strip()
        if not re.fullmatch(r"[a-z_]{1,60}", error):
            error = ""
        where = f"the Slack webhook {name!r}"
        if status == 429:
            return SlackAPIError("ratelimited", f"HTTP 429 from {where} after all retries")
        if error in PERMANENT_WEBHOOK_ERRORS or 400 <= status <= 499:
            reason = error or f"http_{status}"
            return SlackPermanentError(reason, f"{where} answered {reason} (HTTP {status})")
        return SlackAPIError(error or f"http_{status}", f"{where} answered HTTP {status}")

    async def open_dm(self, user: str) -> str:
        """The DM channel id with ``user`` (``conversations.open``), cached per client."""
        channel = self._dm_channels.get(user)
        if channel is None:
            data = await self.call("conversations.open", users=user)
            channel = self._dm_channels[user] = data["channel"]["id"]
        return channel

    async def conversation(self, route: Mapping[str, str]) -> str:
        """The channel id a route posts to (a DM is opened for a user route)."""
        route_key(route)  # validates
        if route.get("webhook"):
            raise SlackPermanentError("invalid_route", "a webhook route has no conversation")
        return route["channel"] if route.get("channel") else await self.open_dm(route["user"])

    async def post_message(self, channel: str, message: SlackMessage, *,
                           thread_ts: str | None = None) -> PostedMessage:
        """``chat.postMessage``; in the thread of ``thread_ts`` when given."""
        params: dict[str, Any] = {"channel": channel, **message.as_params()}
        if thread_ts:
            params["thread_ts"] = thread_ts
        data = await self.call("chat.postMessage", **params)
        return PostedMessage(channel=data.get("channel", channel), ts=data["ts"])

    async def update_message(self, channel: str, ts: str, message: SlackMessage) -> None:
        """``chat.update`` of the message ``ts`` in ``channel``."""
        await self.call("chat.update", channel=channel, ts=ts, **message.as_params())

    async def send_alert(self, route: Mapping[str, str], alert: Mapping[str, Any], *,
                         thread_ts: str | None = None) -> PostedMessage:
        """Post ``alert`` to ``route`` (``{"channel": ...}``, ``{"user": ...}`` or
        ``{"webhook": ...}``; ``thread_ts`` does not apply to a webhook)."""
        route_key(route)  # validates
        if route.get("webhook"):
            return await self.post_webhook(route["webhook"], build_message(alert))
        channel = await self.conversation(route)
        return await self.post_message(channel, build_message(alert), thread_ts=thread_ts)
