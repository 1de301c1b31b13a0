"""Benchmark (make bench-sidecar): memory per idle WebSocket connection and
broadcast latency from XADD to the clients, against a real sidecar process
and a real Redis. Prints figures; asserts nothing about time.

    .venv/bin/python -m tests.benchmarks.bench_sidecar_ws [connections] [alerts]

The clients run in a process of their own (``ws_load``: raw sockets and
epoll, so the client's own work hardly shows in the figures); the sidecar's
memory is read from /proc. Latency is measured by the load generator: from
just before its XADD to the moment each client has the whole frame.
"""

from pathlib import Path

import json
import os
import resource
import secrets
import statistics
import subprocess
import sys
import tempfile
import time

from devstack.processes import ManagedProcess
from devstack.processes import free_port
from devstack.redis_server import start_redis


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


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


def main(connections: int, alerts: int) -> None:
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
            "EDUHUB_LOG_LEVEL": "warning",
        }
        sidecar = ManagedProcess(
            "sidecar", [sys.executable, "-m", "eduhub_alerts_sidecar", "--port", str(port)],
            tmp / "sidecar.log", env=env,
        )
        loader = None
        try:
            sidecar.wait_for_port(port, timeout=60)
            pid = sidecar.process.pid
            # One connection first, so the RSS baseline includes what the
            # first connection loads once (modules, buffers).
            warm_up = load_generator(port, redis_port, secret, 1, 0)
            warm_up.stdin.close()
            warm_up.wait(timeout=60)
            base = rss_kib(pid)
            loader = load_generator(port, redis_port, secret, connections, alerts)
            ready = json.loads(loader.stdout.readline())
            loaded = rss_kib(pid)
            per_connection = (loaded - base) / ready["connected"]
            print(f"{ready['connected']} idle connections: sidecar RSS {base / 1024:.1f} MiB -> "
                  f"{loaded / 1024:.1f} MiB, {per_connection:.1f} KiB per connection")
            loader.stdin.write("go\n")
            loader.stdin.flush()
            result = json.loads(loader.stdout.readline())
            ms = sorted(result["latencies_ms"])
            print(f"{alerts} alerts to {connections} subscribers: latency XADD -> client "
                  f"p50 {statistics.median(ms):.1f} ms, p95 {ms[int(len(ms) * 0.95)]:.1f} ms, "
                  f"max {ms[-1]:.1f} ms; {result['missing']} frames missing")
            print("sidecar's own histogram (XADD time -> fan-out written), bucket bounds: "
                  + server_side_quantiles(f"http://127.0.0.1:{port}/metrics"))
            loader.wait(timeout=60)
        finally:
            if loader is not None and loader.poll() is None:
                loader.kill()
            sidecar.stop()
            redis_proc.stop()


def load_generator(port: int, redis_port: int, secret: str, connections: int,
                   alerts: int) -> subprocess.Popen:
    """The clients, in a process of their own (see ws_load)."""
    return subprocess.Popen(
        [sys.executable, "-m", "tests.benchmarks.ws_load", "--port", str(port),
         "--redis-port", str(redis_port), "--secret", secret,
         "--connections", str(connections), "--alerts", str(alerts)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )


if __name__ == "__main__":
    args = [int(a) for a in sys.argv[1:]]
    main(*(args + [1000, 20][len(args):]))
