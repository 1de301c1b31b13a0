"""EduHub Alerts sidecar: fans alerts out from a Redis stream to WebSocket clients.

Entry points: ``app.create_app`` (the ASGI app factory) and the console script
``eduhub-alerts-sidecar`` (``cli.main``).
"""

from importlib.metadata import PackageNotFoundError, version


try:
    __version__ = version("eduhub-alerts-sidecar")
except PackageNotFoundError:  # pragma: no cover - running from a source tree without install
    __version__ = "0+unknown"
