"""A load generator for the WebSocket benchmark: many subscribed clients in
one process of their own, on raw sockets and epoll.

Why not a WebSocket library: the benchmark measures the sidecar, and a
client library parsing 1,000 frames in Python would add its own milliseconds
to every figure. Here a client is a socket, a receive buffer and a frame
header parser; each frame is timestamped as soon as it is complete.

Run by ``bench_sidecar_ws`` as a subprocess; it speaks JSON lines:
it prints ``{"connected": N}`` once every client is subscribed, then waits
for one line on stdin, publishes the alerts itself (XADD with redis-py,
timing from just before each XADD), prints ``{"latencies_ms": [...],
"missing": M}`` and exits.
"""

import argparse
import base64
import json
import os
import resource
import secrets
import select
import socket
import sys
import time

import jwt
import redis


BATCH = 250  # handshakes in flight at once while connecting
OP_TEXT, OP_CLOSE, OP_PING, OP_PONG = 0x1, 0x8, 0x9, 0xA


def token(secret: str, n: int) -> str:
    now = int(time.time())
    claims = {"sub": f"user{n}", "principals": ["Member", f"user:user{n}"],
              "scope": "alerts:read", "aud": "eduhub-alerts", "iat": now, "exp": now + 7200}
    return jwt.encode(claims, secret, algorithm="HS256")


def client_frame(opcode: int, payload: bytes) -> bytes:
    """A masked client frame (RFC 6455 5.3: clients must mask)."""
    mask = os.urandom(4)
    n = len(payload)
    if n < 126:
        header = bytes([0x80 | opcode, 0x80 | n])
    else:
        header = bytes([0x80 | opcode, 0x80 | 126]) + n.to_bytes(2, "big")
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return header + mask + masked


class Client:
    """One connection: its socket and the bytes not yet parsed into frames."""

    __slots__ = ("sock", "buffer")

    def __init__(self, sock: socket.socket):
        self.sock = sock
        self.buffer = bytearray()

    def frames(self):
        """Complete server frames (unmasked) in the buffer, as (opcode, payload)."""
        buf = self.buffer
        while len(buf) >= 2:
            length, start = buf[1] & 0x7F, 2
            if length == 126:
                if len(buf) < 4:
                    return
                length, start = int.from_bytes(buf[2:4], "big"), 4
            elif length == 127:
                if len(buf) < 10:
                    return
                length, start = int.from_bytes(buf[2:10], "big"), 10
            if len(buf) < start + length:
                return
            opcode, payload = buf[0] & 0x0F, bytes(buf[start:start + length])
            del buf[:start + length]
            yield opcode, payload

    def read_frame(self) -> tuple[int, bytes]:
        """Block until one frame is complete (set-up only)."""
        while True:
            for frame in self.frames():
                return frame
            data = self.sock.recv(65536)
            if not data:
                raise ConnectionError("closed by the server")
            self.buffer += data


def open_clients(host: str, port: int, secret: str, count: int, topic: str) -> list[Client]:
    clients = []
    for start in range(0, count, BATCH):
        batch = []
        for n in range(start, min(count, start + BATCH)):
            sock = socket.create_connection((host, port), timeout=60)
            key = base64.b64encode(os.urandom(16)).decode()
            sock.sendall(
                f"GET /ws HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                f"Sec-WebSocket-Version: 13\r\n"
                f"Sec-WebSocket-Protocol: eduhub-alerts.v1, bearer.{token(secret, n)}\r\n\r\n"
                .encode())
            batch.append(Client(sock))
        for client in batch:
            while b"\r\n\r\n" not in client.buffer:
                client.buffer += client.sock.recv(65536)
            head, _, rest = bytes(client.buffer).partition(b"\r\n\r\n")
            if not head.startswith(b"HTTP/1.1 101"):
                raise ConnectionError(head.decode(errors="replace"))
            client.buffer = bytearray(rest)
            opcode, payload = client.read_frame()
            assert b'"welcome"' in payload, payload
            client.sock.sendall(client_frame(
                OP_TEXT, json.dumps({"type": "subscribe", "topics": [topic]}).encode()))
        for client in batch:
            opcode, payload = client.read_frame()
            assert b'"subscribed"' in payload, payload
            client.sock.setblocking(False)
        clients += batch
    return clients


def measure(clients: list[Client], r: redis.Redis, stream: str, alerts: int,
            timeout: float = 30.0) -> tuple[list[float], int]:
    """Publish ``alerts`` one after the other; per client, the time from just
    before the XADD to having the whole alert frame."""
    poller = select.epoll()
    by_fd = {}
    for client in clients:
        poller.register(client.sock.fileno(), select.EPOLLIN)
        by_fd[client.sock.fileno()] = client
    latencies, missing = [], 0
    for i in range(alerts):
        alert_id = secrets.token_hex(16)
        marker = alert_id.encode()
        alert = {
            "id": alert_id, "version": 1, "topic": "bench.tick", "severity": "info",
            "title": f"tick {i}", "audience": ["Member"], "routes": {"websocket": True},
            "created_at": "2026-12-03T09:00:00Z",
        }
        waiting = set(by_fd)
        sent = time.perf_counter()
        r.xadd(stream, {"alert": json.dumps(alert)})
        deadline = sent + timeout
        while waiting and time.perf_counter() < deadline:
            for fd, _ in poller.poll(1.0):
                client = by_fd[fd]
                try:
                    data = client.sock.recv(65536)
                except BlockingIOError:
                    continue
                if not data:
                    raise ConnectionError("a client was closed by the server")
                client.buffer += data
                for opcode, payload in client.frames():
                    if opcode == OP_PING:
                        client.sock.send(client_frame(OP_PONG, payload))
                    elif opcode == OP_TEXT and marker in payload and fd in waiting:
                        latencies.append((time.perf_counter() - sent) * 1000)
                        waiting.discard(fd)
        missing += len(waiting)
    poller.close()
    return latencies, missing


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--redis-port", type=int, required=True)
    parser.add_argument("--secret", required=True)
    parser.add_argument("--connections", type=int, default=1000)
    parser.add_argument("--alerts", type=int, default=20)
    parser.add_argument("--stream", default="eduhub:alerts")
    args = parser.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))

    clients = open_clients(args.host, args.port, args.secret, args.connections, "bench.*")
    print(json.dumps({"connected": len(clients)}), flush=True)
    sys.stdin.readline()
    r = redis.Redis(port=args.redis_port)
    latencies, missing = measure(clients, r, args.stream, args.alerts)
    print(json.dumps({"latencies_ms": latencies, "missing": missing}), flush=True)
    for client in clients:
        client.sock.close()


if __name__ == "__main__":
    main()
