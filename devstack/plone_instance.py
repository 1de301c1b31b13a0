"""A Zope WSGI instance with a Plone site, served by ``runwsgi``."""

from pathlib import Path

import os
import re
import subprocess
import sys

from .processes import ManagedProcess


BIN = Path(sys.executable).parent


def ensure_instance(instance_dir: Path, port: int, admin_user: str, admin_password: str):
    """Create the instance once (Zope admin from the arguments) and point
    its WSGI server at ``port`` on every call."""
    instance_dir = Path(instance_dir)
    ini = instance_dir / "etc" / "zope.ini"
    if not ini.exists():
        subprocess.run(
            [BIN / "mkwsgiinstance", "-d", str(instance_dir), "-u", f"{admin_user}:{admin_password}"],
            check=True,
            stdout=subprocess.DEVNULL,
        )
    text = ini.read_text()
    text = re.sub(r"(?m)^port = \d+$", f"port = {port}", text)
    text = re.sub(r"(?m)^host = .*$", "host = 127.0.0.1", text)
    ini.write_text(text)


def ensure_site(
    instance_dir: Path, site_id: str, admin_user: str, admin_password: str, env=None
) -> str:
    """Create the Plone site unless it exists; returns what the script said."""
    instance_dir = Path(instance_dir)
    result = subprocess.run(
        [
            BIN / "zconsole",
            "run",
            str(instance_dir / "etc" / "zope.conf"),
            str(Path(__file__).with_name("create_site.py")),
            site_id,
            admin_user,
        ],
        check=False,
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {}), "DEVSTACK_ADMIN_PASSWORD": admin_password},
    )
    if result.returncode != 0:
        raise RuntimeError(f"creating the Plone site failed:\n{result.stdout}\n{result.stderr}")
    return result.stdout.strip().splitlines()[-1]


def start_plone(instance_dir: Path, port: int, log_path: Path, env=None) -> ManagedProcess:
    instance_dir = Path(instance_dir)
    proc = ManagedProcess(
        "plone",
        [str(BIN / "runwsgi"), str(instance_dir / "etc" / "zope.ini")],
        log_path,
        env=env,
    )
    proc.wait_for_port(port, timeout=120)
    return proc
