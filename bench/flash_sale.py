"""Flash-sale benchmark: N buyers race for K tickets over real HTTP, then directly.

    .venv/bin/python bench/flash_sale.py [--buyers 200] [--capacity 100] [--admin-url URL]

1. Creates a fresh database on the PostgreSQL server at `--admin-url` (default: the
   local server) or, when none is reachable, on the embedded server; seeds a published
   event with a tier of `--capacity` seats and one profile per buyer.
2. Starts `liventix serve` against it (subprocess, jobs and rate limits off) and sends
   one `reserveTickets(quantity: 1)` per buyer, all at once, each with its own token.
   Prints successful holds/s, p50/p99 latency, SOLD_OUT answers, errors and the
   oversold count (tickets held beyond capacity; must be 0). Each buyer has its own
   keep-alive connection speaking raw HTTP/1.1, so the client's CPU (same two cores
   as the server) stays out of the figures. Then every buyer who got a hold calls
   `checkout` at the same instant (local payment gateway) and the checkout p50/p95 are
   printed against the target (p95 < 500 ms).
3. Runs the same hold transaction (`db.reservations.reserve_tickets`) directly through
   asyncpg, same concurrency, same pool size, on a second identical tier, and prints
   the API/direct ratios: the cost of HTTP, auth and GraphQL on top of the database.

Exit status 1 if anything oversold or any request failed with a 5xx.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit

import asyncpg
import httpx
import orjson

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import db.errors  # noqa: E402
import db.events  # noqa: E402
import db.migrate  # noqa: E402
import db.reservations  # noqa: E402
import db.tiers  # noqa: E402
from bench.common import (  # noqa: E402
    DEFAULT_ADMIN_URL,
    drop_database,
    free_port,
    fresh_database,
    postgres_server,
)
from db.core import create_database, transaction  # noqa: E402
from liventix.auth import Role, mint_token  # noqa: E402
from liventix.settings import load_settings  # noqa: E402

RESERVE = """mutation Reserve($tier: ID!) { reserveTickets(tierId: $tier, quantity: 1) {
  __typename ... on HoldPayload { hold { id } } ... on TicketingError { code } } }"""
CHECKOUT = """mutation Checkout($hold: ID!) { checkout(holdIds: [$hold],
  contact: {email: "buyer@example.com", name: "Buyer"}) {
  __typename ... on CheckoutPayload { order { id } clientSecret } ... on OrderError { code } } }"""
POOL_MAX = 10
CHECKOUT_P95_TARGET_MS = 500.0


@dataclass
class Outcome:
    label: str
    latencies: list[float]
    wall: float
    held: int
    sold_out: int
    failed: int
    oversold: int

    def summary(self) -> str:
        lat = sorted(self.latencies)
        p50 = statistics.median(lat) * 1000
        p99 = lat[min(len(lat) - 1, int(len(lat) * 0.99))] * 1000
        return (
            f"{self.label:>7}: {self.held / self.wall:8.0f} holds/s  "
            f"p50 {p50:7.1f} ms  p99 {p99:7.1f} ms  held {self.held}  "
            f"sold-out {self.sold_out}  failed {self.failed}  oversold {self.oversold}  "
            f"(wall {self.wall * 1000:.0f} ms)"
        )

    @property
    def p50(self) -> float:
        return statistics.median(self.latencies)


async def seed(url: str, capacity: int, buyers: int) -> tuple[list[uuid.UUID], list[uuid.UUID]]:
    """Two identical tiers (API run, direct run) and the buyers' profiles."""
    database = create_database(url, min_size=1, max_size=2)
    await database.connect()
    try:
        now = datetime.now(UTC)
        organizer = uuid.uuid4()
        users = [uuid.uuid4() for _ in range(buyers * 2)]
        async with transaction(database) as conn:
            await conn.executemany(
                "INSERT INTO users.profiles (id, role) VALUES ($1, $2)",
                [(organizer, "organizer"), *((u, "user") for u in users)],
            )
        actor = db.events.Actor(user_id=organizer)
        event = await db.events.create_event(
            database, actor, title="Flash Sale", start_at=now + timedelta(days=7)
        )
        await db.events.set_event_status(database, actor, event.id, "published", now)
        tiers = []
        for name in ("API", "Direct"):
            tier = await db.tiers.create_tier(
                database, actor, event.id, name=name, price_cents=5000, quantity=capacity, now=now
            )
            tiers.append(tier.id)
        return tiers, users
    finally:
        await database.disconnect()


async def oversold(url: str, tier_id: uuid.UUID) -> tuple[int, int]:
    conn = await asyncpg.connect(url)
    try:
        row = await conn.fetchrow(
            """SELECT quantity, reserved_quantity + issued_quantity AS taken,
                      (SELECT coalesce(sum(quantity), 0) FROM ticketing.ticket_holds
                        WHERE tier_id = $1 AND status = 'active') AS held
                 FROM ticketing.ticket_tiers WHERE id = $1""",
            tier_id,
        )
    finally:
        await conn.close()
    assert row is not None
    return max(0, row["taken"] - row["quantity"]), max(0, row["held"] - row["quantity"])


@contextlib.asynccontextmanager
async def serve(url: str) -> AsyncIterator[str]:
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": url,
        "JOBS_ENABLED": "false",
        "RATE_LIMIT_ENABLED": "false",
        "LOG_LEVEL": "warning",
        "DB_POOL_MAX": str(POOL_MAX),
    }
    command = [sys.executable, "-m", "liventix.cli", "serve", "--port", str(port)]
    process = await asyncio.create_subprocess_exec(
        *command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL
    )
    base = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient() as http:
            for _ in range(300):
                if process.returncode is not None:
                    raise RuntimeError("liventix serve exited early")
                with contextlib.suppress(httpx.HTTPError):
                    if (await http.get(f"{base}/readyz")).status_code == 200:
                        break
                await asyncio.sleep(0.1)
            else:
                raise RuntimeError("server did not become ready")
        yield base
    finally:
        process.send_signal(signal.SIGINT)
        try:
            await asyncio.wait_for(process.wait(), 15)
        except TimeoutError:
            process.kill()
            await process.wait()


async def timed(calls: list[Callable[[], Awaitable[str]]]) -> tuple[list[str], list[float], float]:
    """Start every call at once; per-call latency and the wall time of the whole race."""

    async def one(call: Callable[[], Awaitable[str]]) -> tuple[str, float]:
        started = time.perf_counter()
        answer = await call()
        return answer, time.perf_counter() - started

    started = time.perf_counter()
    results = await asyncio.gather(*(one(c) for c in calls))
    wall = time.perf_counter() - started
    return [r[0] for r in results], [r[1] for r in results], wall


class RawHTTP:
    """One keep-alive HTTP/1.1 connection with pre-encoded requests.

    A general-purpose Python client costs milliseconds of CPU per request, on the same
    two cores as the server, and would measure itself; this costs tens of microseconds.
    """

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def open(self) -> None:
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port)

    async def post_json(
        self, path: str, body: bytes, token: str | None = None
    ) -> tuple[int, bytes]:
        assert self.reader is not None and self.writer is not None
        auth = f"Authorization: Bearer {token}\r\n" if token else ""
        head = (
            f"POST {path} HTTP/1.1\r\nHost: {self.host}\r\nContent-Type: application/json\r\n"
            f"{auth}Content-Length: {len(body)}\r\n\r\n"
        )
        self.writer.write(head.encode() + body)
        status_line = await self.reader.readline()
        length = 0
        while (line := await self.reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.decode().partition(":")
            if name.lower() == "content-length":
                length = int(value)
        return int(status_line.split()[1]), await self.reader.readexactly(length)

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            with contextlib.suppress(OSError):
                await self.writer.wait_closed()


async def api_race(base: str, tier_id: uuid.UUID, users: list[uuid.UUID]) -> Outcome:
    settings = load_settings()
    tokens = [mint_token(settings, u, Role.USER) for u in users]
    parts = urlsplit(base)
    assert parts.hostname is not None and parts.port is not None
    clients = [RawHTTP(parts.hostname, parts.port) for _ in tokens]
    await asyncio.gather(*(c.open() for c in clients))
    try:
        # Warm up: open the server's pool (not timed, but printed: it is the floor the
        # machine sets for any request at this concurrency).
        viewer = orjson.dumps({"query": "{ viewer { id } }"})
        started = time.perf_counter()
        await asyncio.gather(*(c.post_json("/graphql", viewer) for c in clients))
        floor = time.perf_counter() - started
        print(f"  warm-up: {len(tokens)} anonymous queries at once in {floor * 1000:.0f} ms")
        body = orjson.dumps({"query": RESERVE, "variables": {"tier": str(tier_id)}})

        holds: dict[int, str] = {}

        def call(index: int) -> Callable[[], Awaitable[str]]:
            async def run() -> str:
                status, raw = await clients[index].post_json("/graphql", body, tokens[index])
                if status >= 500:
                    return "5xx"
                payload = orjson.loads(raw)
                if payload.get("errors"):
                    return "error"
                result = payload["data"]["reserveTickets"]
                if result["__typename"] != "HoldPayload":
                    return str(result["code"])
                holds[index] = result["hold"]["id"]
                return "held"

            return run

        answers, latencies, wall = await timed([call(i) for i in range(len(clients))])
        await checkout_race(clients, tokens, holds)
    finally:
        await asyncio.gather(*(c.close() for c in clients))
    return tally("API", answers, latencies, wall)


async def checkout_race(clients: list[RawHTTP], tokens: list[str], holds: dict[int, str]) -> None:
    """Every buyer who got a hold checks out at the same instant (local payment gateway)."""

    def call(index: int) -> Callable[[], Awaitable[str]]:
        body = orjson.dumps({"query": CHECKOUT, "variables": {"hold": holds[index]}})

        async def run() -> str:
            status, raw = await clients[index].post_json("/graphql", body, tokens[index])
            if status >= 500:
                return "5xx"
            payload = orjson.loads(raw)
            if payload.get("errors"):
                return "error"
            return str(payload["data"]["checkout"]["__typename"])

        return run

    answers, latencies, wall = await timed([call(i) for i in sorted(holds)])
    lat = sorted(latencies)
    p95 = lat[min(len(lat) - 1, int(len(lat) * 0.95))] * 1000
    print(
        f"  checkout: {len(answers)} buyers at once, {answers.count('CheckoutPayload')} orders, "
        f"p50 {statistics.median(lat) * 1000:.1f} ms  p95 {p95:.1f} ms  "
        f"(target p95 < {CHECKOUT_P95_TARGET_MS:.0f} ms: "
        f"{'met' if p95 < CHECKOUT_P95_TARGET_MS else 'missed'})  wall {wall * 1000:.0f} ms"
    )


async def direct_race(url: str, tier_id: uuid.UUID, users: list[uuid.UUID]) -> Outcome:
    database = create_database(url, min_size=POOL_MAX, max_size=POOL_MAX)
    await database.connect()
    try:

        def call(user: uuid.UUID) -> Callable[[], Awaitable[str]]:
            async def run() -> str:
                try:
                    await db.reservations.reserve_tickets(
                        database, user, tier_id, 1, now=datetime.now(UTC), ttl_seconds=900
                    )
                except db.errors.TicketingError as error:
                    return error.code
                return "held"

            return run

        answers, latencies, wall = await timed([call(u) for u in users])
    finally:
        await database.disconnect()
    return tally("direct", answers, latencies, wall)


def tally(label: str, answers: list[str], latencies: list[float], wall: float) -> Outcome:
    return Outcome(
        label=label,
        latencies=latencies,
        wall=wall,
        held=answers.count("held"),
        sold_out=answers.count("SOLD_OUT"),
        failed=len(answers) - answers.count("held") - answers.count("SOLD_OUT"),
        oversold=0,
    )


async def main(args: argparse.Namespace, admin: str) -> int:
    name = f"lvx_bench_flash_{os.getpid()}"
    url = await fresh_database(admin, name)
    try:
        await db.migrate.migrate(url)
        (api_tier, direct_tier), users = await seed(url, args.capacity, args.buyers)
        print(f"{args.buyers} buyers, capacity {args.capacity}, pool {POOL_MAX}")
        async with serve(url) as base:
            api = await api_race(base, api_tier, users[: args.buyers])
        direct = await direct_race(url, direct_tier, users[args.buyers :])
        api.oversold = max(await oversold(url, api_tier))
        direct.oversold = max(await oversold(url, direct_tier))
        print(api.summary())
        print(direct.summary())
        print(
            f"  ratio API/direct: throughput "
            f"{(api.held / api.wall) / (direct.held / direct.wall):.2f}"
            f"  p50 latency {api.p50 / direct.p50:.2f}x"
        )
        expected = min(args.capacity, args.buyers)
        ok = (
            api.oversold == direct.oversold == 0
            and api.held == direct.held == expected
            and api.failed == direct.failed == 0
        )
        print("OK: never oversold, exactly K held" if ok else "FAILED")
        return 0 if ok else 1
    finally:
        await drop_database(admin, name)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--buyers", type=int, default=200)
    parser.add_argument("--capacity", type=int, default=100)
    parser.add_argument(
        "--admin-url",
        default=DEFAULT_ADMIN_URL,
        help="PostgreSQL admin URL (default: the local server, else an embedded one)",
    )
    args = parser.parse_args()
    with postgres_server(args.admin_url) as admin:
        raise SystemExit(asyncio.run(main(args, admin)))
