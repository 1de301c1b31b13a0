"""Benchmark (make bench-sidecar): memory per idle WebSocket connection and
broadcast latency from XADD to the clients, against a real sidecar process
and a real Redis. Prints figures; asserts nothing about time.

    .venv/bin/python -m tests.benchmarks.bench_sidecar_ws [connections] [alerts]

The clients run in this process (compression off, like browsers are told);
the sidecar's memory is read from /proc. Latency is measured on this
machine's one clock: from just before the XADD to the moment each client has
the frame.
"""

from pathlib import Path

import asyncio
import json
import os
import resource
import secrets
import statistics
import sys
import tempfile
import time

import jwt
import redis
import websockets

from devstack.processes import ManagedProcess
from devstack.processes import free_port
from devstack.redis_server import start_redis


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def token(secret: str, n: int) -> str:
    now = int(time.time())
    claims = {"sub": f"user{n}", "principals": ["Member", f"user:user{n}"],
              "scope": "alerts:read", "aud": "eduhub-alerts", "iat": now, "exp": now + 3600}
    return jwt.encode(claims, secret, algorithm="HS256")


async def connect(url: str, secret: str, n: int):
    ws = await websockets.connect(
        url, subprotocols=["eduhub-alerts.v1", f"bearer.{token(secret, n)}"],
        compression=None, max_queue=None, open_timeout=60,
    )
    await ws.recv()  # welcome
    await ws.send(json.dumps({"type": "subscribe", "topics": ["bench.*"]}))
    await ws.recv()  # subscribed
    return ws


def server_side_quantiles(metrics_url: str) -> str:
    """p50 and p95 of eduhub_alerts_broadcast_latency_seconds, as the upper
    bounds of the buckets they fall in."""
    import urllib.request

    text = urllib.request.urlopen(metrics_url, timeout=10).read().decode()
    buckets = []
    for line in text.splitlines():
        if line.startswith("eduhub_alerts_broadcast_latency_seconds_bucket"):
            bound = line.split('le="')[1].split('"')[0]
            buckets.append((float(bound), float(line.rsplit(" ", 1)[1])))
    total = buckets[-1][1]
    found = {}
    for q in (0.5, 0.95):
        found[q] = next(b for b, count in buckets if count >= q * total)
    return f"p50 <= {found[0.5] * 1000:g} ms, p95 <= {found[0.95] * 1000:g} ms"


async def main(connections: int, alerts: int):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # children inherit it
    secret = secrets.token_hex(32)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        redis_port, port = free_port(), free_port()
        redis_proc = start_redis(redis_port, tmp / "redis", tmp / "redis.log")
        env = {
            "EDUHUB_REDIS_URL": f"redis://127.0.0.1:{redis_port}/0",
            "EDUHUB_ALERTS_SECRET": secret,
            "EDUHUB_WS_MAX_CONNECTIONS_PER_USER": "10",
            "EDUHUB_LOG_LEVEL": "warning",
        }
        sidecar = ManagedProcess(
            "sidecar", [sys.executable, "-m", "eduhub_alerts_sidecar", "--port", str(port)],
            tmp / "sidecar.log", env=env,
        )
        try:
            sidecar.wait_for_port(port, timeout=60)
            url = f"ws://127.0.0.1:{port}/ws"
            warm = await connect(url, secret, -1)
            await warm.close()
            base = rss_kib(sidecar.process.pid)
            clients = []
            for start in range(0, connections, 200):
                clients += await asyncio.gather(
                    *(connect(url, secret, n) for n in range(start, min(connections, start + 200)))
                )
            loaded = rss_kib(sidecar.process.pid)
            per_connection = (loaded - base) / connections
            print(f"{connections} idle connections: sidecar RSS {base / 1024:.1f} MiB -> "
                  f"{loaded / 1024:.1f} MiB, {per_connection:.1f} KiB per connection")

            r = redis.Redis(port=redis_port)
            latencies = []
            for i in range(alerts):
                alert = {
                    "id": secrets.token_hex(16), "version": 1, "topic": "bench.tick",
                    "severity": "info", "title": f"tick {i}", "audience": ["Member"],
                    "routes": {"websocket": True}, "created_at": "2026-12-03T09:00:00Z",
                }
                receivers = [asyncio.ensure_future(ws.recv()) for ws in clients]
                sent = time.perf_counter()
                r.xadd("eduhub:alerts", {"alert": json.dumps(alert)})
                for done in asyncio.as_completed(receivers):
                    await done
                    latencies.append(time.perf_counter() - sent)
            ms = sorted(x * 1000 for x in latencies)
            print(f"{alerts} alerts to {connections} subscribers: latency XADD -> client "
                  f"p50 {statistics.median(ms):.1f} ms, p95 {ms[int(len(ms) * 0.95)]:.1f} ms, "
                  f"max {ms[-1]:.1f} ms")
            print("sidecar's own histogram (XADD time -> frame written), bucket bounds: "
                  + server_side_quantiles(f"http://127.0.0.1:{port}/metrics"))
            await asyncio.gather(*(ws.close() for ws in clients))
        finally:
            sidecar.stop()
            redis_proc.stop()


if __name__ == "__main__":
    args = [int(a) for a in sys.argv[1:]]
    asyncio.run(main(*(args + [1000, 20][len(args):])))
