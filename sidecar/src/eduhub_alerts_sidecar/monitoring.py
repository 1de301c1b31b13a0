"""Prometheus metrics of one app (names of the public contract, base units).

Each ``Metrics`` owns its ``CollectorRegistry`` instead of using the global
default one, so several apps (tests, or replicas in one process) never collide
on metric names. Labels are low-cardinality by design: never user ids.
"""

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

import time


WEBSOCKET = "websocket"

# Publish -> socket write. The target is p95 <= 25 ms for 1,000 clients, so
# the buckets are fine-grained below 100 ms and coarse beyond.
LATENCY_BUCKETS = (
    0.001, 0.0025, 0.005, 0.01, 0.015, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
)

# A Slack call takes ~100 ms to ~1 s; with retries and Retry-After, seconds.
SLACK_BUCKETS = (0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
SLACK = "slack"


class Metrics:
    """The sidecar's metrics, registered in a private registry."""

    def __init__(self, registry: CollectorRegistry | None = None):
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.published = Counter(
            "eduhub_alerts_published_total",
            "Entries read from the alert stream (valid or not).",
            registry=r,
        )
        self.sent = Counter(
            "eduhub_alerts_sent_total",
            "Alerts written to a client, one per recipient (slack: one per posted route).",
            ["channel"],
            registry=r,
        )
        self.failed = Counter(
            "eduhub_alerts_failed_total",
            "Alerts not delivered, by channel and reason "
            "(invalid = stream entry rejected, slow_consumer = connection cut off; for "
            "slack, one per failed route attempt: Slack's error code, http_<status>, "
            "ratelimited, connection, timeout, in_flight).",
            ["channel", "reason"],
            registry=r,
        )
        self.replayed = Counter(
            "eduhub_alerts_replayed_total",
            "Alerts sent from the stream's history (subscribe with since), one per recipient.",
            registry=r,
        )
        self.broadcast_latency = Histogram(
            "eduhub_alerts_broadcast_latency_seconds",
            "Time from XADD (the stream id's timestamp) to the last WebSocket write of its broadcast.",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.websocket_connections = Gauge(
            "eduhub_websocket_connections",
            "Open, authenticated WebSocket connections.",
            registry=r,
        )
        self.rate_limited = Counter(
            "eduhub_alerts_rate_limited_total",
            "Requests or client messages refused by a rate limit, by scope.",
            ["scope"],
            registry=r,
        )
        self.reader_lag = Gauge(
            "eduhub_alerts_reader_lag_seconds",
            "How far the stream reader is behind the newest entry of the stream (XADD time of "
            "the newest entry minus that of the last entry handled); 0 when caught up.",
            registry=r,
        )
        self.dead_peers = Counter(
            "eduhub_websocket_dead_peers_total",
            "Connections that ended without a closing handshake from the client: it missed "
            "a heartbeat pong, or its TCP connection broke.",
            registry=r,
        )
        self.task_failures = Counter(
            "eduhub_background_task_failures_total",
            "Crashes of supervised background tasks (each is restarted).",
            ["task"],
            registry=r,
        )
        self.slack_retries = Counter(
            "eduhub_slack_retries_total",
            "Slack API calls retried (after 429, 5xx, connection errors or timeouts).",
            registry=r,
        )
        self.slack_dead_lettered = Counter(
            "eduhub_slack_dead_lettered_total",
            "Stream entries moved to the dead-letter stream by Slack delivery, by reason.",
            ["reason"],
            registry=r,
        )
        self.slack_request_duration = Histogram(
            "eduhub_slack_request_duration_seconds",
            "Duration of one Slack Web API call, retries and their waits included, by method.",
            ["method"],
            buckets=SLACK_BUCKETS,
            registry=r,
        )
        # Bound once: the hot path then skips the label lookup per frame.
        self.websocket_sent = self.sent.labels(channel=WEBSOCKET)

    def observe_broadcast(self, published_ms: int | None, sent: int,
                          now: float | None = None) -> None:
        """Count ``sent`` WebSocket writes of one alert, published at ``published_ms``.

        One latency observation per broadcast, taken when the last frame has
        been written: the time the slowest recipient waited on the sidecar.
        ``published_ms`` is the millisecond part of the stream id, i.e. when
        Redis accepted the XADD; clocks of Redis and sidecar may differ slightly,
        so a negative difference counts as zero.
        """
        if not sent:
            return
        self.websocket_sent.inc(sent)
        if published_ms is not None:
            now = time.time() if now is None else now
            self.broadcast_latency.observe(max(0.0, now - published_ms / 1000))

    def failure(self, channel: str, reason: str) -> None:
        """Count one alert not delivered on ``channel`` for ``reason``."""
        self.failed.labels(channel=channel, reason=reason).inc()

    def render(self) -> tuple[bytes, str]:
        """The exposition text and its content type, for ``GET /metrics``."""
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
