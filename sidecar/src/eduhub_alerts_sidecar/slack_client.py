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

from .monitoring import Metrics
from .slack_messages import SlackMessage, build_message

import aiohttp
import asyncio
import logging
import random
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
    """``channel:C123`` or ``user:U123``: a route's stable name (Redis keys, logs)."""
    if route.get("channel"):
        return f"channel:{route['channel']}"
    if route.get("user"):
        return f"user:{route['user']}"
    raise SlackPermanentError("invalid_route", "a Slack route names a channel or a user")


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

    def __init__(self, token: str, *, base_url: str = DEFAULT_BASE_URL, timeout: float = 10.0,
                 max_retries: int = 3, backoff: RetryIntervalCalculator | None = None,
                 retry_after_jitter: float = 1.0, metrics: Metrics | None = None):
        self._token = token
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

    def __repr__(self) -> str:
        return f"SlackClient(base_url={self.base_url!r})"  # never the token

    @classmethod
    def from_settings(cls, settings, metrics: Metrics | None = None) -> "SlackClient":
        """The client configured by ``EDUHUB_SLACK_*`` settings (a token is required)."""
        return cls(
            settings.slack_bot_token.get_secret_value(),
            base_url=settings.slack_base_url,
            timeout=settings.slack_request_timeout_seconds,
            max_retries=settings.slack_max_retries,
            backoff=FullJitterBackoff(settings.slack_backoff_base_seconds,
                                      settings.slack_backoff_max_seconds),
            retry_after_jitter=settings.slack_retry_after_jitter_seconds,
            metrics=metrics,
        )

    def _count_retry(self, reason: str) -> None:
        log.info("retrying a Slack call (%s)", reason)
        if self.metrics is not None:
            self.metrics.slack_retries.inc()

    @property
    def web(self) -> AsyncWebClient:
        """The slack_sdk client, with one connection pool kept for the client's life."""
        if self._web is None:
            # One session for all calls: a new TLS connection per message
            # would cost more than the message.
            self._session = ClientSession(timeout=ClientTimeout(total=self.timeout))
            self._web = AsyncWebClient(
                token=self._token, base_url=self.base_url, timeout=self.timeout,  # type: ignore[arg-type]
                session=self._session, retry_handlers=self.handlers,
            )
        return self._web

    async def aclose(self) -> None:
        """Close the connection pool; the client may be used again afterwards."""
        if self._session is not None:
            await self._session.close()
        self._session = self._web = None

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
        """Post ``alert`` to ``route`` (``{"channel": ...}`` or ``{"user": ...}``)."""
        channel = await self.conversation(route)
        return await self.post_message(channel, build_message(alert), thread_ts=thread_ts)
