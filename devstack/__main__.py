"""``python -m devstack run``: the whole stack in the foreground (``make run``).

Settings come from the environment and from ``.env`` in the current
directory (see ``.env.example``); the shared token secret is generated once
into ``var/alerts-secret`` when none is configured.
"""

from pathlib import Path

import argparse
import os
import secrets
import signal
import time

from dotenv import dotenv_values

from .stack import Stack
from .stack import StackConfig


def _secret(var_dir: Path) -> str:
    if os.environ.get("EDUHUB_ALERTS_SECRET"):
        return os.environ["EDUHUB_ALERTS_SECRET"]
    path = var_dir / "alerts-secret"
    if not path.exists():
        var_dir.mkdir(parents=True, exist_ok=True)
        path.touch(mode=0o600)
        path.write_text(secrets.token_hex(32))
    return path.read_text().strip()


def run(var_dir: Path):
    for name, value in dotenv_values(".env").items():
        os.environ.setdefault(name, value or "")
    config = StackConfig(
        var_dir=var_dir,
        secret=_secret(var_dir),
        redis_url=os.environ.get("EDUHUB_REDIS_URL") or "redis://127.0.0.1:6379/0",
        plone_port=int(os.environ.get("PLONE_PORT") or 8080),
        sidecar_port=int(os.environ.get("EDUHUB_PORT") or 8090),
        site_id=os.environ.get("PLONE_SITE_ID") or "Plone",
        admin_user=os.environ.get("PLONE_ADMIN_USER") or "admin",
        admin_password=os.environ.get("PLONE_ADMIN_PASSWORD") or "admin",
        # What the operator set wins over the defaults derived from the ports.
        extra_env={
            name: os.environ[name]
            for name in ("EDUHUB_WS_PUBLIC_URL", "EDUHUB_WS_ALLOWED_ORIGINS")
            if os.environ.get(name)
        },
    )
    stack = Stack(config)
    stopping = False

    def request_stop(signum, frame):
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    try:
        stack.start()
        print(
            "\nEduHub Alerts is running:\n"
            f"  Plone        {config.plone_url}  (admin: {config.admin_user} / {config.admin_password})\n"
            f"  Sidecar      {config.sidecar_url}  (WebSocket {config.websocket_url}, "
            f"health {config.sidecar_url}/healthz)\n"
            f"  Redis        {config.redis_url}\n"
            f"  Logs         {var_dir / 'log'}\n"
            "Press Ctrl-C to stop.\n",
            flush=True,
        )
        while not stopping:
            dead = stack.dead()
            if dead:
                for proc in dead:
                    print(f"{proc.name} exited; last lines of {proc.log_path}:\n{proc.tail()}")
                break
            time.sleep(0.5)
    finally:
        stack.stop()
        print("stopped.")


def main():
    parser = argparse.ArgumentParser(prog="python -m devstack")
    parser.add_argument("command", choices=["run"])
    parser.add_argument("--var", default="var", help="where data and logs live (default: var)")
    args = parser.parse_args()
    run(Path(args.var).resolve())


if __name__ == "__main__":
    main()
