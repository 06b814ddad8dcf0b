"""A small closed-loop HTTP/1.1 load generator (keep-alive, one request in flight per connection).

Run as its own process so that it can be pinned to a core apart from the API:

    python -m bench.loadgen --port P --mode submit|poll --connections 32 --duration 10 \
        [--ids FILE] [--prefix ID] [--cpu 0] [--warmup 1] --out result.json

Written on asyncio protocols (and uvloop when installed) rather than httpx, so that one core of
generator drives several cores of API: httpx spends more CPU per request than the API does.
Bounded in time and count; loopback only. Prints nothing; writes a JSON summary to --out.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time
from collections import Counter
from pathlib import Path
from typing import Any

HOST = "127.0.0.1"
MAX_REQUESTS = 2_000_000  # a hard stop whatever the duration


class Connection(asyncio.Protocol):
    def __init__(self) -> None:
        self.buffer = bytearray()
        self.waiter: asyncio.Future[tuple[int, bytes]] | None = None
        self.transport: Any = None
        self.lost = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # uvloop's transports do not subclass asyncio.Transport

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(ConnectionError("connection closed"))

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        self._try_complete()

    def _try_complete(self) -> None:
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0 or self.waiter is None:
            return
        head = bytes(self.buffer[:end]).decode("latin-1")
        lines = head.split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        length = 0
        for line in lines[1:]:
            name, _, value = line.partition(":")
            if name.strip().lower() == "content-length":
                length = int(value.strip())
        total = end + 4 + length
        if len(self.buffer) < total:
            return
        body = bytes(self.buffer[end + 4 : total])
        del self.buffer[:total]
        waiter, self.waiter = self.waiter, None
        if not waiter.done():
            waiter.set_result((status, body))

    async def request(self, raw: bytes) -> tuple[int, bytes]:
        assert self.transport is not None
        self.waiter = asyncio.get_running_loop().create_future()
        self.transport.write(raw)
        return await self.waiter


def submit_request(api_key: str, request_id: str) -> bytes:
    body = (
        f'{{"request_id":"{request_id}","media_url":"http://127.0.0.1:9/bench.wav",'
        '"language":"en"}'
    ).encode()
    head = (
        "POST /api/v1/transcribe HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"X-API-Key: {api_key}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode()
    return head + body


def poll_request(api_key: str, request_id: str) -> bytes:
    return (
        f"GET /api/v1/transcribe/{request_id} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"X-API-Key: {api_key}\r\n\r\n"
    ).encode()


async def run(args: argparse.Namespace) -> dict[str, object]:
    loop = asyncio.get_running_loop()
    ids = Path(args.ids).read_text().split() if args.ids else []
    api_key = os.environ["STT_BENCH_API_KEY"]
    latencies: list[float] = []
    statuses: Counter[int] = Counter()
    accepted: list[str] = []
    errors: Counter[str] = Counter()
    started = time.perf_counter()
    measure_from = started + args.warmup
    stop_at = measure_from + args.duration
    sent = 0

    async def client(index: int) -> None:
        nonlocal sent
        _, conn = await loop.create_connection(Connection, HOST, args.port)
        n = 0
        try:
            while time.perf_counter() < stop_at and sent < MAX_REQUESTS:
                if args.mode == "submit":
                    rid = f"{args.prefix}-{index}-{n}"
                    raw = submit_request(api_key, rid)
                else:
                    rid = ids[(index * 7919 + n) % len(ids)]
                    raw = poll_request(api_key, rid)
                n += 1
                sent += 1
                t0 = time.perf_counter()
                try:
                    status, _body = await conn.request(raw)
                except ConnectionError as exc:
                    errors[type(exc).__name__] += 1
                    return
                t1 = time.perf_counter()
                if t0 >= measure_from and t1 <= stop_at:
                    latencies.append(t1 - t0)
                    statuses[status] += 1
                    if args.mode == "submit" and status == 202:
                        accepted.append(rid)
        finally:
            if conn.transport is not None:
                conn.transport.close()

    cpu0 = os.times()
    await asyncio.gather(*(client(i) for i in range(args.connections)))
    cpu1 = os.times()
    if args.accepted_out:
        Path(args.accepted_out).write_text("\n".join(accepted))
    latencies.sort()

    def pct(p: float) -> float:
        if not latencies:
            return float("nan")
        index = min(len(latencies) - 1, max(0, round(p / 100 * len(latencies) + 0.5) - 1))
        return round(latencies[index] * 1000, 2)

    ok = sum(c for s, c in statuses.items() if 200 <= s < 300)
    busy = (cpu1.user + cpu1.system) - (cpu0.user + cpu0.system)
    return {
        "mode": args.mode,
        "connections": args.connections,
        "duration_s": args.duration,
        "requests": len(latencies),
        "sent": sent,
        "ok": ok,
        "statuses": {str(k): v for k, v in sorted(statuses.items())},
        "errors": dict(errors),
        "rps": round(len(latencies) / args.duration, 1),
        "ok_rps": round(ok / args.duration, 1),
        "latency_ms": {"p50": pct(50), "p95": pct(95), "p99": pct(99), "max": pct(100)},
        "generator_cpu": round(busy / (time.perf_counter() - started), 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.loadgen")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--mode", choices=("submit", "poll"), required=True)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--ids", help="file of request ids to poll, one per line")
    parser.add_argument("--prefix", default="load")
    parser.add_argument("--cpu", type=int, action="append", help="pin to this CPU (repeatable)")
    parser.add_argument("--accepted-out", help="write the accepted request ids here")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    if args.duration > 120 or args.connections > 512:
        parser.error("bounded: --duration at most 120 s, --connections at most 512")
    if args.cpu:
        os.sched_setaffinity(0, set(args.cpu))
    try:
        import uvloop

        result = uvloop.run(run(args))
    except ImportError:
        result = asyncio.run(run(args))
    Path(args.out).write_text(json.dumps(result))


if __name__ == "__main__":
    main()
