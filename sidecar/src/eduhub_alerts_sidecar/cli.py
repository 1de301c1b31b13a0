"""The ``eduhub-alerts-sidecar`` console script: run the app with uvicorn, or
list and re-drive Slack dead letters (``eduhub-alerts-sidecar dead-letters``)."""

from fastapi import FastAPI
from pydantic import ValidationError

from .settings import Settings
from .ws_protocol import WS_PROTOCOL

from datetime import datetime
from datetime import timezone

import argparse
import asyncio
import json
import logging
import re
import sys
import uvicorn


APP_FACTORY = "eduhub_alerts_sidecar.app:create_app"


class RedactTokens(logging.Filter):
    """Blank out ``token=...`` in log records.

    uvicorn's access log shows query strings (a plain GET of ``/ws?token=…``
    reaches it), and the ``token`` query parameter is a bearer credential
    (valid for minutes, but logs live longer).
    """

    PATTERN = re.compile(r"(token=)[^&\s\"']+")

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = self.PATTERN.sub(r"\1[redacted]", message)
        if redacted != message:
            record.msg, record.args = redacted, ()
        return True


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options; each overrides its ``EDUHUB_*`` variable."""
    parser = argparse.ArgumentParser(
        prog="eduhub-alerts-sidecar",
        description="Serve EduHub alerts from Redis to WebSocket clients. "
        "Configuration comes from EDUHUB_* environment variables (see README).",
    )
    parser.add_argument("--host", help="interface to bind (EDUHUB_HOST, default 127.0.0.1)")
    parser.add_argument("--port", type=int, help="TCP port (EDUHUB_PORT, default 8090)")
    commands = parser.add_subparsers(dest="command", metavar="{dead-letters}")
    dead = commands.add_parser(
        "dead-letters", help="list or re-drive alerts Slack delivery gave up on")
    dead.add_argument("action", choices=["list", "redrive"])
    dead.add_argument("ids", nargs="*", metavar="ID",
                      help="dead-letter ids to re-drive (default: all, oldest first)")
    dead.add_argument("--count", type=int, default=100,
                      help="list or re-drive at most this many (default 100)")
    return parser.parse_args(argv)


async def dead_letters_command(settings: Settings, action: str, ids: list[str],
                               count: int = 100, out=None) -> int:
    """``dead-letters list|redrive``: one JSON object per line on ``out``; the exit status.

    Re-driving posts from this process (with its own per-channel pacing) and
    deletes each dead letter whose routes all succeeded; the status is 1 when
    one is left.
    """
    from .app import create_redis
    from .monitoring import Metrics
    from .slack_client import SlackClient
    from .slack_delivery import SlackDelivery

    out = out if out is not None else sys.stdout
    if action == "redrive" and not settings.slack_enabled:
        print("eduhub-alerts-sidecar: EDUHUB_SLACK_BOT_TOKEN is not set (nor any "
              "EDUHUB_SLACK_WEBHOOK_<NAME>)", file=sys.stderr)
        return 2
    redis = create_redis(settings)
    client = SlackClient.from_settings(settings) if settings.slack_enabled else None
    delivery = SlackDelivery(redis, client, Metrics(), settings)  # type: ignore[arg-type]
    status = 0
    try:
        letters = await delivery.dead_letters(count)
        if action == "list":
            for letter in letters:
                print(json.dumps(letter), file=out)
            return 0
        for dead_id in ids or [letter["id"] for letter in letters]:
            outcomes = await delivery.redrive(dead_id)
            done = outcomes is not None and all(o.status in ("sent", "skipped") for o in outcomes)
            status = status or (0 if done else 1)
            print(json.dumps({"id": dead_id, "redriven": done, "routes": None if outcomes is None
                              else [o.as_dict() for o in outcomes]}), file=out)
        return status
    finally:
        if client is not None:
            await client.aclose()
        await redis.aclose()


def uvicorn_config(settings: Settings, app: FastAPI | str = APP_FACTORY) -> uvicorn.Config:
    """The uvicorn configuration for ``settings``; tests run the app with the same one.

    ``app`` is the factory's import string (the server builds the app from the
    environment) or an app object.
    """
    config = uvicorn.Config(
        app,
        factory=isinstance(app, str),
        host=settings.host,
        port=settings.port,
        lifespan="on",  # a failing start-up must stop the process, not be ignored
        # Message size limit, heartbeat and (no) compression come from the
        # settings there: per-message deflate would cost ~30 KB of zlib state
        # per connection, for small alerts on mostly idle connections.
        ws=WS_PROTOCOL,  # /ws without ASGI in between (see ws_protocol.py for why)
        log_level=settings.log_level,
        # In JSON mode uvicorn keeps its loggers but not its text handlers.
        **({"log_config": None} if settings.log_format == "json" else {}),
        # X-Forwarded-* are only trustworthy behind a proxy the operator controls.
        proxy_headers=settings.proxy_headers,
    )
    # After Config(): creating it (re)configures uvicorn's loggers.
    for name in ("uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, RedactTokens) for f in logger.filters):
            logger.addFilter(RedactTokens())
    return config


class JsonLogFormatter(logging.Formatter):
    """One JSON object per line, for log collectors: time (UTC), level, logger,
    message and, when there is one, the exception."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, timezone.utc).isoformat(
                timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def configure_logging(level: str, log_format: str = "text") -> None:
    """Send the sidecar's own log records to stderr; with ``json`` uvicorn's
    too (its loggers then propagate here instead of using its own handlers)."""
    numeric = logging.DEBUG if level == "trace" else getattr(logging, level.upper())
    if log_format == "json":
        handler = logging.StreamHandler()
        handler.setFormatter(JsonLogFormatter())
        logging.basicConfig(level=numeric, handlers=[handler], force=True)
    else:
        logging.basicConfig(level=numeric, format="%(levelname)s:     %(name)s: %(message)s")


def main(argv: list[str] | None = None) -> None:
    """Entry point of ``eduhub-alerts-sidecar`` and ``python -m eduhub_alerts_sidecar``."""
    args = parse_args(argv)
    overrides = {
        key: value for key in ("host", "port") if (value := getattr(args, key)) is not None
    }
    try:
        # Validate the configuration here, so a mistake is one clear message
        # rather than a traceback from inside the server.
        settings = Settings(**overrides)
    except ValidationError as exc:
        sys.exit(
            f"eduhub-alerts-sidecar: invalid configuration (field x is the environment "
            f"variable EDUHUB_X):\n{exc}"
        )
    configure_logging(settings.log_level, settings.log_format)
    if args.command == "dead-letters":
        sys.exit(asyncio.run(dead_letters_command(settings, args.action, args.ids, args.count)))
    # The app itself reads the environment again in the factory; host and
    # port matter only to uvicorn, which gets them here.
    uvicorn.Server(uvicorn_config(settings)).run()
