"""The application factory: explicit wiring of settings, Redis, hub, reader.

Nothing lives at module level: every ``create_app()`` builds its own Redis
client, hub, metrics registry and reader, kept on ``app.state``, so tests can
run several apps side by side.
"""

from contextlib import asynccontextmanager
from functools import partial

from fastapi import FastAPI
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialWithJitterBackoff

from . import __version__
from .alerts_api import Unauthorized, unauthorized_handler
from .alerts_api import router as alerts_router
from .auth import verify_token
from .endpoints import router
from .status_page import router as status_page_router
from .history import StreamHistory
from .monitoring import Metrics
from .publisher import AlertPublisher
from .rate_limit import KeyedRateLimiter, Rate
from .services import StreamReader, supervise
from .settings import Settings
from .slack_client import SlackClient
from .slack_delivery import SlackDelivery
from .slack_endpoints import router as slack_router
from .websocket_hub import Hub, HubLimits
from .ws_protocol import ENDPOINT_STATE_KEY, WebSocketEndpoint

import asyncio
import logging


log = logging.getLogger(__name__)

REDIS_CLIENT_NAME = "eduhub-alerts-sidecar"
REDIS_CONNECT_TIMEOUT_SECONDS = 2.0
# The supervisor handles long outages; the client only rides out a blip
# (a dropped connection), so it gives up after a couple of quick retries.
REDIS_RETRIES = 2
STARTUP_REDIS_TIMEOUT_SECONDS = 3.0
READER_TASK = "stream_reader"
SLACK_TASK = "slack_delivery"


def create_redis(settings: Settings) -> Redis:
    """The asyncio Redis client of one app, with a socket timeout above the XREAD block."""
    return Redis.from_url(
        settings.redis_url,
        socket_timeout=settings.redis_socket_timeout,
        socket_connect_timeout=REDIS_CONNECT_TIMEOUT_SECONDS,
        retry=Retry(ExponentialWithJitterBackoff(base=0.05, cap=0.5), retries=REDIS_RETRIES),
        client_name=REDIS_CLIENT_NAME,
    )


@asynccontextmanager
async def lifespan(app: FastAPI):
    """Start the Redis client and the supervised stream reader; stop them cleanly."""
    state = app.state
    settings: Settings = state.settings
    state.redis = create_redis(settings)
    state.history = state.hub.history = StreamHistory(
        state.redis, settings.stream_key, page_size=settings.reader_batch_size
    )
    state.publisher = AlertPublisher(
        state.redis, settings.stream_key, maxlen=settings.stream_maxlen
    )
    state.reader = StreamReader(
        state.redis,
        state.hub,
        state.metrics,
        stream_key=settings.stream_key,
        block_ms=settings.reader_block_ms,
        batch_size=settings.reader_batch_size,
    )
    # Fix the start position before serving, so an alert added right after
    # start-up is delivered. If Redis is down now, the reader retries later.
    try:
        async with asyncio.timeout(STARTUP_REDIS_TIMEOUT_SECONDS):
            await state.reader.resolve_start()
    except Exception as exc:
        log.warning("Redis not reachable at start-up (%s); the stream reader will retry", exc)
    def start_supervised(name, run):
        return asyncio.create_task(
            supervise(name, run, metrics=state.metrics,
                      max_delay=settings.task_restart_max_delay_seconds),
            name=name,
        )

    state.reader_task = start_supervised(READER_TASK, state.reader.run)
    state.slack_delivery = state.slack_task = None
    if settings.slack_enabled:
        state.slack_delivery = SlackDelivery(
            state.redis, SlackClient.from_settings(settings, state.metrics), state.metrics,
            settings,
        )
        state.slack_task = start_supervised(SLACK_TASK, state.slack_delivery.run)
    else:
        log.info("no EDUHUB_SLACK_BOT_TOKEN nor EDUHUB_SLACK_WEBHOOK_*: Slack delivery is off")
    try:
        # uvicorn hands this lifespan state to the /ws protocol (ws_protocol.py).
        yield {ENDPOINT_STATE_KEY: WebSocketEndpoint(state.hub, settings)}
    finally:
        if state.slack_task is not None:
            state.slack_task.cancel()
            await asyncio.wait([state.slack_task], timeout=settings.redis_socket_timeout)
            await state.slack_delivery.client.aclose()
        state.reader_task.cancel()
        # The reader notices a cancellation within one XREAD block at worst
        # (see services.raise_if_cancel_requested); never hang shutdown on it.
        _, pending = await asyncio.wait([state.reader_task], timeout=settings.redis_socket_timeout)
        if pending:
            log.error("stream reader did not stop within %.0fs", settings.redis_socket_timeout)
        state.hub.close_all()  # uvicorn closed them already (1012); this is for other servers
        await state.redis.aclose()


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the sidecar's ASGI app; ``settings`` default to the environment."""
    settings = settings if settings is not None else Settings()
    app = FastAPI(
        title="EduHub Alerts sidecar",
        summary="Fans alerts out from the Redis stream to WebSocket clients.",
        version=__version__,
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.metrics = Metrics()
    # The one place the secret is read: everything else verifies through this.
    app.state.verify_token = partial(
        verify_token,
        secret=settings.alerts_secret.get_secret_value(),
        audience=settings.token_audience,
    )
    app.state.hub = Hub(
        app.state.metrics,
        verify_token=app.state.verify_token,
        limits=HubLimits(
            max_subscriptions=settings.ws_max_subscriptions,
            max_connections_per_user=settings.ws_max_connections_per_user,
            message_rate=Rate(settings.ws_message_rate, settings.ws_message_burst),
            rate_limit_strikes=settings.ws_rate_limit_strikes,
        ),
        send_queue_size=settings.send_queue_size,
        heartbeat_seconds=settings.heartbeat_seconds,
    )
    app.state.post_limiter = KeyedRateLimiter(Rate.per_minute(settings.http_post_rate_per_minute))
    app.include_router(router)
    app.include_router(alerts_router)
    app.include_router(status_page_router)
    app.include_router(slack_router)
    app.add_exception_handler(Unauthorized, unauthorized_handler)
    return app
