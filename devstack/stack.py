"""The whole stack on one machine: Redis, Plone and the sidecar.

``make run`` starts it in the foreground; the end-to-end tests start one on
free ports in a temporary directory.
"""

from dataclasses import dataclass
from dataclasses import field
from pathlib import Path
from urllib.parse import urlparse

import redis
import sys

from .plone_instance import ensure_instance
from .plone_instance import ensure_site
from .plone_instance import start_plone
from .processes import ManagedProcess
from .redis_server import start_redis


@dataclass
class StackConfig:
    var_dir: Path
    secret: str
    redis_url: str = "redis://127.0.0.1:6379/0"
    plone_port: int = 8080
    sidecar_port: int = 8090
    site_id: str = "Plone"
    admin_user: str = "admin"
    admin_password: str = "admin"
    extra_env: dict = field(default_factory=dict)

    @property
    def plone_url(self) -> str:
        return f"http://localhost:{self.plone_port}/{self.site_id}"

    @property
    def sidecar_url(self) -> str:
        return f"http://localhost:{self.sidecar_port}"

    @property
    def websocket_url(self) -> str:
        return f"ws://localhost:{self.sidecar_port}/ws"

    def environment(self) -> dict:
        """What Plone and the sidecar read (the EDUHUB_* variables of .env.example)."""
        plone_origins = {f"http://localhost:{self.plone_port}", f"http://127.0.0.1:{self.plone_port}"}
        sidecar_origins = {self.sidecar_url, f"http://127.0.0.1:{self.sidecar_port}"}
        return {
            "EDUHUB_REDIS_URL": self.redis_url,
            "EDUHUB_ALERTS_SECRET": self.secret,
            "EDUHUB_WS_PUBLIC_URL": self.websocket_url,
            "EDUHUB_WS_ALLOWED_ORIGINS": ",".join(sorted(plone_origins | sidecar_origins)),
            **self.extra_env,
        }


def redis_answers(url: str) -> bool:
    client = redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=1)
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False
    finally:
        client.close()


class Stack:
    """Start and stop the three processes, in order."""

    def __init__(self, config: StackConfig, log=print):
        self.config = config
        self.log = log
        self.processes: list[ManagedProcess] = []

    def start(self):
        cfg = self.config
        var = Path(cfg.var_dir)
        logs = var / "log"
        env = cfg.environment()
        if redis_answers(cfg.redis_url):
            self.log(f"Redis: using the server already at {cfg.redis_url}")
        else:
            parsed = urlparse(cfg.redis_url)
            if parsed.hostname not in ("localhost", "127.0.0.1"):
                raise RuntimeError(f"Redis at {cfg.redis_url} does not answer")
            self.log(f"Redis: starting the embedded server on port {parsed.port or 6379}")
            self.processes.append(start_redis(parsed.port or 6379, var / "redis", logs / "redis.log"))
        self.log("Plone: preparing the instance and the site (first run takes a minute)")
        instance = var / "instance"
        ensure_instance(instance, cfg.plone_port, cfg.admin_user, cfg.admin_password)
        self.log("Plone: " + ensure_site(
            instance, cfg.site_id, cfg.admin_user, cfg.admin_password, env=env
        ))
        self.log(f"Plone: starting on port {cfg.plone_port}")
        self.processes.append(start_plone(instance, cfg.plone_port, logs / "plone.log", env=env))
        self.start_sidecar()

    def start_sidecar(self):
        cfg = self.config
        self.log(f"Sidecar: starting on port {cfg.sidecar_port}")
        sidecar = ManagedProcess(
            "sidecar",
            [sys.executable, "-m", "eduhub_alerts_sidecar", "--port", str(cfg.sidecar_port)],
            Path(cfg.var_dir) / "log" / "sidecar.log",
            env=cfg.environment(),
        )
        self.processes.append(sidecar)
        sidecar.wait_for_port(cfg.sidecar_port, timeout=60)

    def stop_sidecar(self):
        """Stop the sidecar alone (tests of reconnects); start_sidecar() brings it back."""
        for proc in [p for p in self.processes if p.name == "sidecar"]:
            proc.stop()
            self.processes.remove(proc)

    def dead(self) -> list[ManagedProcess]:
        return [proc for proc in self.processes if not proc.running()]

    def stop(self):
        for proc in reversed(self.processes):
            self.log(f"stopping {proc.name}")
            proc.stop()
        self.processes.clear()

