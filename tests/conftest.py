"""Fixtures shared by every suite: a real Redis server on a free port and the
shared secret, set in the environment before anything reads them."""

from pathlib import Path

import json
import os
import pytest
import redis
import secrets

from devstack.processes import free_port
from devstack.redis_server import start_redis


FIXTURES = Path(__file__).parent / "fixtures"

# Both packages read these at call time; set them before any test runs.
os.environ.setdefault("EDUHUB_ALERTS_SECRET", secrets.token_hex(32))


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory):
    """URL of a real Redis server started for this test session."""
    port = free_port()
    base = tmp_path_factory.mktemp("redis")
    proc = start_redis(port, base / "data", base / "redis.log")
    url = f"redis://127.0.0.1:{port}/0"
    previous = os.environ.get("EDUHUB_REDIS_URL")
    os.environ["EDUHUB_REDIS_URL"] = url
    yield url
    if previous is None:
        os.environ.pop("EDUHUB_REDIS_URL", None)
    else:
        os.environ["EDUHUB_REDIS_URL"] = previous
    proc.stop()


@pytest.fixture
def redis_client(redis_url):
    """A synchronous client on a flushed database."""
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    client.flushdb()
    yield client
    client.close()


@pytest.fixture
def sample_alert():
    return json.loads((FIXTURES / "sample_alert.json").read_text())


@pytest.fixture
def alerts_secret():
    return os.environ["EDUHUB_ALERTS_SECRET"]
