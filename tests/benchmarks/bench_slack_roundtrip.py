"""Benchmark (not a test): the round trip of ``SlackClient.send_alert`` to a
Slack Web API server and back, against the fake Slack server of the test
suite on 127.0.0.1. Prints p50/p95/p99/max; asserts nothing about time.

    .venv/bin/python -m tests.benchmarks.bench_slack_roundtrip [posts] [delay_ms]

``delay_ms`` adds a server-side delay per answer, to see the client's own
overhead on top of a given Slack latency (real Slack answers in roughly
100-300 ms from Europe). The original target was a round trip <= 300 ms; on
localhost the figure is what our side (message building, slack_sdk, aiohttp,
JSON) costs.
"""

from eduhub_alerts_sidecar.monitoring import Metrics
from eduhub_alerts_sidecar.slack_client import SlackClient

from tests.sidecar.fake_slack import FakeSlack, Reply

import asyncio
import json
import statistics
import sys
import time

from pathlib import Path


SAMPLE = Path(__file__).parents[1] / "fixtures" / "sample_alert.json"


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(fraction * (len(ordered) - 1))))]


async def bench(posts: int, delay_ms: float) -> dict:
    server = await FakeSlack().start()
    client = SlackClient("xoxb-bench", base_url=server.base_url, metrics=Metrics())
    alert = json.loads(SAMPLE.read_text())
    try:
        await client.send_alert({"channel": "CWARM"}, alert)  # connection pool warm-up
        if delay_ms:
            server.script("chat.postMessage", *[Reply(delay=delay_ms / 1000)] * posts)
        timings = []
        for n in range(posts):
            started = time.perf_counter()
            await client.send_alert({"channel": f"C{n % 10}"}, alert)
            timings.append((time.perf_counter() - started) * 1000)
    finally:
        await client.aclose()
        await server.stop()
    return {
        "posts": posts,
        "server_delay_ms": delay_ms,
        "p50_ms": round(statistics.median(timings), 2),
        "p95_ms": round(percentile(timings, 0.95), 2),
        "p99_ms": round(percentile(timings, 0.99), 2),
        "max_ms": round(max(timings), 2),
        "target_ms": 300,
    }


def main(argv: list[str]) -> None:
    posts = int(argv[0]) if argv else 200
    delay_ms = float(argv[1]) if len(argv) > 1 else 0.0
    result = asyncio.run(bench(posts, delay_ms))
    print(json.dumps(result))
    print(f"send_alert round trip over {posts} posts (server delay {delay_ms:g} ms): "
          f"p50 {result['p50_ms']} ms, p95 {result['p95_ms']} ms "
          f"(target <= {result['target_ms']} ms)")


if __name__ == "__main__":
    main(sys.argv[1:])
