"""Fan-out benchmark: N WebSocket subscribers of one event's tier availability.

Starts one API process (`liventix serve`, one worker) on a fresh database, connects N
`graphql-transport-ws` subscribers to `tierAvailability` of one event (spread over
client processes), then commits 20 tier changes, each in its own transaction with
`announce_tier`, the way any API process does. For each change it records when every
subscriber received it and prints the latency to the last subscriber (p50/p99 over
the changes) and over all deliveries, the server's CPU time per change and its RSS
growth per subscriber.

    .venv/bin/python bench/fanout.py                 # 1, 100, 1,000 and 10,000
    .venv/bin/python bench/fanout.py -n 2000 --unshared  # one execution per subscriber

`--unshared` gives every subscriber its own operation name, so no two share an
execution: the "before" figure for shared executions.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import multiprocessing as mp
import os
import resource
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import asyncpg
import orjson
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import db.demo
import db.migrate
from bench.common import (
    DEFAULT_ADMIN_URL,
    drop_database,
    free_port,
    fresh_database,
    postgres_server,
    read_frames,
    wait_ready,
)
from db.core import create_database
from db.holds import COUNTERS
from db.notify import announce_tier
from resolvers.ids import global_id

CHANGES = 20
PER_PROCESS = 2500
QUERY = (
    "subscription {name}($e: ID!) {{ tierAvailability(eventId: $e) "
    "{{ reason changedTierId tiers {{ tierId reserved available }} }} }}"
)


def raise_fd_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


# -- client processes -----------------------------------------------------------


def client_main(
    url: str,
    count: int,
    first_index: int,
    unshared: bool,
    tier_id: str,
    ready: Any,
    received: Any,
    results: Any,
    stop: Any,
) -> None:
    raise_fd_limit()
    asyncio.run(_client(url, count, first_index, unshared, tier_id, ready, received, results, stop))


class LeanSubscriber(asyncio.Protocol):
    """A minimal graphql-transport-ws client on a raw asyncio Protocol.

    The benchmark measures the server; a full WebSocket client costs as much CPU per
    message as the server does, on the same two cores. Server frames are unmasked text
    frames; this parses their headers inline and records arrival times.
    """

    def __init__(self, on_next: Any, on_ready: Any) -> None:
        self.on_next = on_next
        self.on_ready = on_ready
        self.buffer = b""
        self.handshaken = False
        self.transport: asyncio.Transport | None = None
        self.closed = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def send_text(self, text: bytes) -> None:
        mask = os.urandom(4)
        length = len(text)
        if length < 126:
            header = bytes([0x81, 0x80 | length])
        else:
            header = bytes([0x81, 0x80 | 126]) + length.to_bytes(2, "big")
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(text))
        assert self.transport is not None
        self.transport.write(header + mask + masked)

    def data_received(self, data: bytes) -> None:
        now = time.time()
        self.buffer += data
        if not self.handshaken:
            head, sep, rest = self.buffer.partition(b"\r\n\r\n")
            if not sep:
                return
            assert b" 101 " in head.split(b"\r\n", 1)[0], head
            self.handshaken = True
            self.buffer = rest
            self.on_ready(self)
        frames, self.buffer = read_frames(self.buffer)
        for opcode, payload in frames:
            if opcode == 1:
                self.on_next(self, payload, now)
            elif opcode == 8 and self.transport is not None:
                self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed.done():
            self.closed.set_result(None)


async def _client(
    url: str,
    count: int,
    first_index: int,
    unshared: bool,
    tier_id: str,
    ready: Any,
    received: Any,
    results: Any,
    stop: Any,
) -> None:
    arrivals: list[list[float]] = [[] for _ in range(CHANGES + 1)]
    loop = asyncio.get_running_loop()
    host, port = url.split("//", 1)[1].split("/", 1)[0].split(":")
    complete = loop.create_future()
    finished = 0
    gate = asyncio.Semaphore(64)  # don't overrun the server's accept backlog
    marker = b'"tierId":"' + tier_id.encode() + b'","reserved":'

    def on_next(sub: LeanSubscriber, payload: bytes, now: float) -> None:
        nonlocal finished
        state = sub.state  # type: ignore[attr-defined]
        if state == "init":
            sub.state = "snapshot"  # type: ignore[attr-defined]
            name = f"Sub{sub.index}" if unshared else "Availability"  # type: ignore[attr-defined]
            body = {"query": QUERY.format(name=name), "variables": {"e": EVENT}}
            sub.send_text(orjson.dumps({"id": "1", "type": "subscribe", "payload": body}))
            return
        if state == "snapshot":
            sub.state = "live"  # type: ignore[attr-defined]
            sub.subscribed.set_result(None)  # type: ignore[attr-defined]
            with ready.get_lock():
                ready.value += 1
            return
        at = payload.find(marker)
        if at < 0:
            return
        value = payload[at + len(marker) : payload.index(b",", at + len(marker))]
        reserved = int(value)
        if 0 < reserved <= CHANGES:
            arrivals[reserved].append(now)
            with received.get_lock():
                received[reserved] += 1
            if reserved == CHANGES:
                finished += 1
                if finished == count and not complete.done():
                    complete.set_result(None)

    def on_ready(sub: LeanSubscriber) -> None:
        sub.send_text(b'{"type":"connection_init","payload":{}}')

    async def subscriber(index: int) -> LeanSubscriber:
        async with gate:
            _transport, sub = await loop.create_connection(
                lambda: LeanSubscriber(on_next, on_ready), host, int(port)
            )
            sub.state = "init"  # type: ignore[attr-defined]
            sub.index = index  # type: ignore[attr-defined]
            sub.subscribed = loop.create_future()  # type: ignore[attr-defined]
            key = base64.b64encode(os.urandom(16)).decode()
            assert sub.transport is not None
            sub.transport.write(
                (
                    f"GET /graphql HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
                    f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                    "Sec-WebSocket-Version: 13\r\n"
                    "Sec-WebSocket-Protocol: graphql-transport-ws\r\n\r\n"
                ).encode()
            )
            await sub.subscribed  # type: ignore[attr-defined]
            return sub

    subs = await asyncio.gather(*(subscriber(first_index + i) for i in range(count)))
    while not complete.done() and not stop.is_set():  # noqa: ASYNC110 (a process-shared flag)
        await asyncio.sleep(0.05)
    for sub in subs:
        if sub.transport is not None:
            sub.transport.close()
    results.put(arrivals)


EVENT = str(db.demo.EVENT_IDS[0])


# -- orchestration --------------------------------------------------------------


async def prepare_database(admin_url: str) -> tuple[str, str]:
    name = f"liventix_fanout_{uuid.uuid4().hex[:8]}"
    url = await fresh_database(admin_url, name)
    await db.migrate.migrate(url)
    database = create_database(url, min_size=1, max_size=2)
    await database.connect()
    try:
        await db.demo.seed(database)
    finally:
        await database.disconnect()
    return url, name


def start_server(url: str, port: int) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "DATABASE_URL": url,
        "JOBS_ENABLED": "false",
        "RATE_LIMIT_ENABLED": "false",
        "LOG_LEVEL": "warning",
        "PORT": str(port),
        "WS_INIT_TIMEOUT": "120",
    }
    gc = os.environ.get("FANOUT_GC")  # e.g. "100000": experiment with GC thresholds
    if gc:
        code = f"import gc, sys; gc.set_threshold({int(gc)}, 50, 100); "
        code += "from liventix.cli import main; sys.exit(main(['serve']))"
        command = [sys.executable, "-c", code]
    else:
        command = [sys.executable, "-m", "liventix.cli", "serve"]
    return subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def run(admin_url: str, subscribers: int, unshared: bool) -> dict[str, float]:
    url, name = await prepare_database(admin_url)
    port = free_port()
    server = start_server(url, port)
    processes: list[Any] = []
    try:
        await wait_ready(f"http://127.0.0.1:{port}")
        conn = await asyncpg.connect(url)
        tier = await conn.fetchrow(
            "SELECT id FROM ticketing.ticket_tiers WHERE event_id = $1 ORDER BY sort_order LIMIT 1",
            uuid.UUID(EVENT),
        )
        assert tier is not None
        tier_id = global_id("TicketTier", tier["id"])  # as the API spells it in messages
        proc = psutil.Process(server.pid)
        rss_before = proc.memory_info().rss
        ctx = mp.get_context("spawn")
        ready = ctx.Value("i", 0)
        received = ctx.Array("i", CHANGES + 1)
        results = ctx.Queue()
        stop = ctx.Event()
        ws_url = f"ws://127.0.0.1:{port}/graphql"
        started = time.perf_counter()
        for first in range(0, subscribers, PER_PROCESS):
            count = min(PER_PROCESS, subscribers - first)
            p = ctx.Process(
                target=client_main,
                args=(ws_url, count, first, unshared, tier_id, ready, received, results, stop),
            )
            p.start()
            processes.append(p)
        while ready.value < subscribers:
            if time.perf_counter() - started > 300:
                raise RuntimeError(f"only {ready.value} of {subscribers} subscribers connected")
            await asyncio.sleep(0.1)
        connect_seconds = time.perf_counter() - started
        await asyncio.sleep(0.5)
        rss_after = proc.memory_info().rss
        cpu_before = sum(proc.cpu_times()[:2])
        commits: list[float] = [0.0]
        for change in range(1, CHANGES + 1):
            async with conn.transaction():
                row = await conn.fetchrow(
                    f"""UPDATE ticketing.ticket_tiers SET reserved_quantity = $2 WHERE id = $1
                        RETURNING {COUNTERS}""",
                    tier["id"],
                    change,
                )
                await announce_tier(conn, row)
                commits.append(time.time())  # just before COMMIT: a conservative start
            deadline = time.perf_counter() + 30
            while received[change] < subscribers and time.perf_counter() < deadline:  # noqa: ASYNC110 (counters live in other processes)
                await asyncio.sleep(0.002)
        cpu_seconds = sum(proc.cpu_times()[:2]) - cpu_before
        stop.set()
        await conn.close()
        arrivals: list[list[float]] = [[] for _ in range(CHANGES + 1)]
        for _ in processes:
            for change, times in enumerate(results.get(timeout=60)):
                arrivals[change].extend(times)
        to_last = [max(arrivals[c]) - commits[c] for c in range(1, CHANGES + 1) if arrivals[c]]
        every = [t - commits[c] for c in range(1, CHANGES + 1) for t in arrivals[c]]
        lost = sum(subscribers - len(arrivals[c]) for c in range(1, CHANGES + 1))
        if os.environ.get("FANOUT_VERBOSE"):
            print("to last subscriber per change (ms):", [round(t * 1000) for t in to_last])
        return {
            "subscribers": subscribers,
            "connect_s": connect_seconds,
            "last_p50_ms": statistics.median(to_last) * 1000,
            "last_p99_ms": percentile(to_last, 0.99) * 1000,
            "all_p50_ms": statistics.median(every) * 1000,
            "all_p99_ms": percentile(every, 0.99) * 1000,
            "cpu_ms_per_change": cpu_seconds / CHANGES * 1000,
            "cpu_us_per_delivery": cpu_seconds / (CHANGES * subscribers) * 1e6,
            "rss_kib_per_subscriber": (rss_after - rss_before) / 1024 / subscribers,
            "lost": lost,
        }
    finally:
        for p in processes:
            p.join(5)
            if p.is_alive():
                p.kill()
        server.terminate()
        try:
            server.wait(15)
        except subprocess.TimeoutExpired:
            server.kill()
        await drop_database(admin_url, name)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, action="append", help="subscribers (repeatable)")
    parser.add_argument("--unshared", action="store_true", help="one execution per subscriber")
    parser.add_argument(
        "--baseline",
        type=int,
        default=2000,
        help="also run N subscribers unshared and compare (0: skip; default 2000)",
    )
    parser.add_argument(
        "--admin-url",
        default=DEFAULT_ADMIN_URL,
        help="PostgreSQL admin URL (default: the local server, else an embedded one)",
    )
    args = parser.parse_args()
    raise_fd_limit()
    sizes = args.n or [1, 100, 1000, 10000]
    with postgres_server(args.admin_url) as admin_url:
        header = (
            f"{'subscribers':>11} {'to last p50':>12} {'to last p99':>12} {'all p50':>9} "
            f"{'all p99':>9} {'CPU/change':>11} {'CPU/deliv.':>11} {'RSS/sub':>9} {'lost':>5}"
        )
        print(f"fan-out, {'unshared' if args.unshared else 'shared'} executions, {CHANGES} changes")
        print(header)
        results: dict[int, dict[str, float]] = {}
        for size in sizes:
            results[size] = r = asyncio.run(run(admin_url, size, args.unshared))
            print(_row(size, r), flush=True)
        if args.baseline and not args.unshared:
            size = args.baseline
            shared = results.get(size) or asyncio.run(run(admin_url, size, False))
            unshared = asyncio.run(run(admin_url, size, True))
            print(f"baseline: {size} subscribers, one execution per subscriber")
            print(header)
            print(_row(size, unshared), flush=True)
            print(
                f"shared vs baseline at {size}: p99 to last "
                f"{shared['last_p99_ms']:.0f} ms vs {unshared['last_p99_ms']:.0f} ms "
                f"({unshared['last_p99_ms'] / shared['last_p99_ms']:.1f}x faster), CPU per "
                f"delivery {shared['cpu_us_per_delivery']:.0f} us vs "
                f"{unshared['cpu_us_per_delivery']:.0f} us"
            )


def _row(size: int, r: dict[str, float]) -> str:
    return (
        f"{size:>11} {r['last_p50_ms']:>10.1f}ms {r['last_p99_ms']:>10.1f}ms "
        f"{r['all_p50_ms']:>7.1f}ms {r['all_p99_ms']:>7.1f}ms "
        f"{r['cpu_ms_per_change']:>9.1f}ms {r['cpu_us_per_delivery']:>9.1f}us "
        f"{r['rss_kib_per_subscriber']:>6.1f}KiB {r['lost']:>5}"
    )


if __name__ == "__main__":
    main()
