"""Flash-sale benchmark: buyers race for the seats of one tier over real HTTP, against
the same hold called directly and the raw hold transaction under pgbench.

    .venv/bin/python bench/flash_sale.py [--buyers 200] [--capacity 100]
        [--contended-buyers 1000] [--contended-concurrency 100] [--unseen-buyers]
        [--pgbench-clients 10] [--admin-url URL]

1. Creates a fresh database on the PostgreSQL server at `--admin-url` (default: the
   local server) or, when none is reachable, on the embedded server; seeds a published
   event with one tier per run below and one profile per buyer.
2. **Flash sale.** Starts `liventix serve` against it (one process, jobs and rate
   limits off) and sends one `reserveTickets(quantity: 1)` per buyer, all at once,
   each with its own token, signed in before the sale opens (a query with each token
   first, so the server's one-time profile write for a new user, `liventix.first_sight`,
   is not in the race; `--unseen-buyers` leaves it in). Prints successful holds/s
   (holds over the race's wall time, refusals included), p50/p99 latency, SOLD_OUT
   answers, errors and the oversold count (tickets held beyond capacity; must be 0).
   Each buyer has its own keep-alive connection speaking raw HTTP/1.1, so the client's
   CPU (same two cores as the server) stays out of the figures. Then every buyer who
   got a hold calls `checkout` at the same instant (local payment gateway) and the
   checkout p50/p95 are printed against the target (p95 < 500 ms).
3. **Direct.** Runs the same hold (`db.reservations.reserve_tickets`) through asyncpg,
   same concurrency, same pool size, on a second identical tier.
4. **pgbench.** Runs the raw hold transaction (`bench/flash_sale_hold.sql`: the
   conditional tier update, the hold insert, the notification) with PostgreSQL's own
   `pgbench` at the pool size as its client count (the database concurrency of the two
   runs above), on a tier large enough for every transaction: the ceiling of holds per
   second on one tier. Prints the API/direct and API/pgbench ratios (goal: API at least
   half of pgbench). Where the database has `ticketing.reserve_hold`, also runs the
   hold as the API makes it, that one statement (`bench/flash_sale_hold_function.sql`),
   the same way, on a third tier: what is left between the API and its own database
   work. Skipped, saying so, where no `pgbench` is installed.
5. **Contended.** Starts `liventix serve --workers 2`; `--contended-buyers` buyers
   wanting 1-3 seats each race for `--capacity` seats over `--contended-concurrency`
   keep-alive connections (buyer i's request goes over connection i mod the
   concurrency, after the previous one on it was answered). Prints
   p50/p99 (goal p99 < 500 ms), seats held (must be exactly the capacity) and the
   oversold count, beside the same race run directly through asyncpg with both
   processes' pools (the baseline).

Exit status 1 if anything oversold, a race did not end with every seat held, pgbench
failed, or any request failed (a 5xx or a GraphQL error).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import glob
import os
import random
import re
import shutil
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
from db.core import PooledDatabase, create_database, transaction  # noqa: E402
from liventix.auth import Role, mint_token  # noqa: E402
from liventix.settings import load_settings  # noqa: E402

RESERVE = """mutation Reserve($tier: ID!, $q: Int!) {
  reserveTickets(tierId: $tier, quantity: $q) {
  __typename ... on HoldPayload { hold { id quantity } } ... on TicketingError { code } } }"""
CHECKOUT = """mutation Checkout($hold: ID!) { checkout(holdIds: [$hold],
  contact: {email: "buyer@example.com", name: "Buyer"}) {
  __typename ... on CheckoutPayload { order { id } clientSecret } ... on OrderError { code } } }"""
POOL_MAX = 10
CHECKOUT_P95_TARGET_MS = 500.0
CONTENDED_P99_TARGET_MS = 500.0
PGBENCH_RATIO_GOAL = 0.5
PGBENCH_SCRIPT = Path(__file__).resolve().parent / "flash_sale_hold.sql"
PGBENCH_FUNCTION_SCRIPT = Path(__file__).resolve().parent / "flash_sale_hold_function.sql"
PGBENCH_TRANSACTIONS_PER_CLIENT = 400
CONTENDED_WORKERS = 2


@dataclass
class Outcome:
    """One race: each request's latency and answer, what it held, how long it took."""

    label: str
    latencies: list[float]
    wall: float
    held: int  # successful holds
    seats: int  # seats they hold
    sold_out: int
    failed: int
    oversold: int = 0

    def quantile(self, q: float) -> float:
        """The latency at quantile `q`, in milliseconds."""
        lat = sorted(self.latencies)
        return lat[min(len(lat) - 1, int(len(lat) * q))] * 1000

    @property
    def p50(self) -> float:
        return statistics.median(self.latencies) * 1000

    @property
    def holds_per_second(self) -> float:
        return self.held / self.wall

    def summary(self) -> str:
        return (
            f"{self.label:>16}: {self.holds_per_second:7.0f} holds/s  "
            f"{len(self.latencies) / self.wall:6.0f} req/s  "
            f"p50 {self.p50:7.1f} ms  p99 {self.quantile(0.99):7.1f} ms  "
            f"holds {self.held}  seats {self.seats}  sold-out {self.sold_out}  "
            f"failed {self.failed}  oversold {self.oversold}  (wall {self.wall * 1000:.0f} ms)"
        )


@dataclass(frozen=True)
class Seeded:
    """The tiers of each run and the buyers of each race (every buyer has a profile)."""

    api_tier: uuid.UUID
    direct_tier: uuid.UUID
    pgbench_tier: uuid.UUID
    pgbench_function_tier: uuid.UUID
    contended_tier: uuid.UUID
    contended_direct_tier: uuid.UUID
    api_buyers: list[uuid.UUID]
    direct_buyers: list[uuid.UUID]
    contended_buyers: list[uuid.UUID]
    contended_direct_buyers: list[uuid.UUID]


async def seed(url: str, args: argparse.Namespace, pgbench_transactions: int) -> Seeded:
    """A published event with one tier per run, and the buyers' profiles."""
    database = create_database(url, min_size=1, max_size=2)
    await database.connect()
    try:
        now = datetime.now(UTC)
        organizer = uuid.uuid4()
        counts = (args.buyers, args.buyers, args.contended_buyers, args.contended_buyers)
        groups = [[uuid.uuid4() for _ in range(n)] for n in counts]
        async with transaction(database) as conn:
            await conn.executemany(
                "INSERT INTO users.profiles (id, role) VALUES ($1, $2)",
                [(organizer, "organizer"), *((u, "user") for g in groups for u in g)],
            )
        actor = db.events.Actor(user_id=organizer)
        event = await db.events.create_event(
            database, actor, title="Flash Sale", start_at=now + timedelta(days=7)
        )
        await db.events.set_event_status(database, actor, event.id, "published", now)
        tiers = []
        for name, quantity in (
            ("API", args.capacity),
            ("Direct", args.capacity),
            ("pgbench", max(pgbench_transactions, 1)),
            ("pgbench function", max(pgbench_transactions, 1)),
            ("Contended", args.capacity),
            ("Contended direct", args.capacity),
        ):
            tier = await db.tiers.create_tier(
                database, actor, event.id, name=name, price_cents=5000, quantity=quantity, now=now
            )
            tiers.append(tier.id)
        return Seeded(*tiers, *groups)
    finally:
        await database.disconnect()


async def tier_taken(url: str, tier_id: uuid.UUID) -> tuple[int, int]:
    """Seats of the tier reserved or issued, and seats its active holds hold."""
    _, taken, held = await _tier_seats(url, tier_id)
    return taken, held


async def oversold(url: str, tier_id: uuid.UUID) -> tuple[int, int]:
    """Seats taken beyond capacity, by the tier's counters and by its active holds."""
    quantity, taken, held = await _tier_seats(url, tier_id)
    return max(0, taken - quantity), max(0, held - quantity)


async def _tier_seats(url: str, tier_id: uuid.UUID) -> tuple[int, int, int]:
    """(capacity, seats reserved or issued, seats held by active holds) of a tier."""
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
    return row["quantity"], row["taken"], row["held"]


@contextlib.asynccontextmanager
async def serve(url: str, *, workers: int = 1) -> AsyncIterator[str]:
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": url,
        "JOBS_ENABLED": "false",
        "RATE_LIMIT_ENABLED": "false",
        "LOG_LEVEL": "warning",
        "DB_POOL_MAX": str(POOL_MAX),
    }
    command = [
        *(sys.executable, "-m", "liventix.cli", "serve"),
        *("--port", str(port), "--workers", str(workers)),
    ]
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


@contextlib.asynccontextmanager
async def connections(
    base: str, lanes: list[list[str]], *, seen: bool
) -> AsyncIterator[list[RawHTTP]]:
    """One open keep-alive connection per lane, warmed up: each has sent one anonymous
    query, which also opens the server's pools (not timed, but printed: it is the floor
    the machine sets for any request at this concurrency), then, if `seen`, one
    signed-in query per token of the buyers it will send requests for.

    By default buyers are signed in and known to the server process they talk to before
    the sale opens, as after browsing the event page: the first request a process sees
    from a user also writes the user's profile (`liventix.first_sight`), a transaction
    of its own that is not part of a hold. `--unseen-buyers` leaves that write in the
    race.
    """
    parts = urlsplit(base)
    assert parts.hostname is not None and parts.port is not None
    clients = [RawHTTP(parts.hostname, parts.port) for _ in lanes]
    await asyncio.gather(*(c.open() for c in clients))
    try:
        viewer = orjson.dumps({"query": "{ viewer { id } }"})
        started = time.perf_counter()
        await asyncio.gather(*(c.post_json("/graphql", viewer) for c in clients))
        floor = time.perf_counter() - started
        print(f"  warm-up: {len(clients)} anonymous queries at once in {floor * 1000:.0f} ms")

        async def sign_in(client: RawHTTP, tokens: list[str]) -> None:
            for token in tokens:
                status, _ = await client.post_json("/graphql", viewer, token)
                if status != 200:
                    raise RuntimeError(f"signed-in warm-up answered {status}")

        if seen:
            await asyncio.gather(*(sign_in(c, t) for c, t in zip(clients, lanes, strict=True)))
        yield clients
    finally:
        await asyncio.gather(*(c.close() for c in clients))


def reserve_body(tier_id: uuid.UUID, quantity: int) -> bytes:
    return orjson.dumps({"query": RESERVE, "variables": {"tier": str(tier_id), "q": quantity}})


async def api_reserve(client: RawHTTP, body: bytes, token: str) -> tuple[str, str | None, int]:
    """One `reserveTickets` over HTTP: ("held", hold id, seats), or the error code."""
    status, raw = await client.post_json("/graphql", body, token)
    if status >= 500:
        return "5xx", None, 0
    payload = orjson.loads(raw)
    if payload.get("errors"):
        return "error", None, 0
    result = payload["data"]["reserveTickets"]
    if result["__typename"] != "HoldPayload":
        return str(result["code"]), None, 0
    return "held", result["hold"]["id"], int(result["hold"]["quantity"])


async def api_race(base: str, tier_id: uuid.UUID, users: list[uuid.UUID], *, seen: bool) -> Outcome:
    settings = load_settings()
    tokens = [mint_token(settings, u, Role.USER) for u in users]
    body = reserve_body(tier_id, 1)
    async with connections(base, [[t] for t in tokens], seen=seen) as clients:
        holds: dict[int, str] = {}

        def call(index: int) -> Callable[[], Awaitable[str]]:
            async def run() -> str:
                answer, hold_id, _ = await api_reserve(clients[index], body, tokens[index])
                if hold_id is not None:
                    holds[index] = hold_id
                return answer

            return run

        answers, latencies, wall = await timed([call(i) for i in range(len(clients))])
        await checkout_race(clients, tokens, holds)
    return tally("API", answers, [1] * len(answers), latencies, wall)


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


async def direct_reserve(
    database: PooledDatabase, user: uuid.UUID, tier_id: uuid.UUID, quantity: int
) -> str:
    try:
        await db.reservations.reserve_tickets(
            database, user, tier_id, quantity, now=datetime.now(UTC), ttl_seconds=900
        )
    except db.errors.TicketingError as error:
        return str(error.code)
    return "held"


async def direct_race(url: str, tier_id: uuid.UUID, users: list[uuid.UUID]) -> Outcome:
    database = create_database(url, min_size=POOL_MAX, max_size=POOL_MAX)
    await database.connect()
    try:

        def call(user: uuid.UUID) -> Callable[[], Awaitable[str]]:
            return lambda: direct_reserve(database, user, tier_id, 1)

        answers, latencies, wall = await timed([call(u) for u in users])
    finally:
        await database.disconnect()
    return tally("direct", answers, [1] * len(answers), latencies, wall)


def lane_of(index: int, concurrency: int) -> int:
    """The lane that sends request `index`: buyer i goes through lane i mod lanes."""
    return index % concurrency


async def lanes(
    concurrency: int, count: int, request: Callable[[int, int], Awaitable[str]]
) -> tuple[list[str], list[float], float]:
    """`count` requests over `concurrency` lanes, each sending its next one as soon as
    its previous one is answered; `request(lane, index)` makes request `index`."""
    answers = [""] * count
    latencies = [0.0] * count

    async def lane(number: int) -> None:
        for index in range(number, count, concurrency):  # see `lane_of`
            started = time.perf_counter()
            answers[index] = await request(number, index)
            latencies[index] = time.perf_counter() - started

    started = time.perf_counter()
    await asyncio.gather(*(lane(n) for n in range(concurrency)))
    return answers, latencies, time.perf_counter() - started


async def contended_api_race(
    base: str,
    tier_id: uuid.UUID,
    users: list[uuid.UUID],
    quantities: list[int],
    concurrency: int,
    *,
    seen: bool,
) -> Outcome:
    settings = load_settings()
    tokens = [mint_token(settings, u, Role.USER) for u in users]
    bodies = {q: reserve_body(tier_id, q) for q in set(quantities)}
    per_lane: list[list[str]] = [[] for _ in range(concurrency)]
    for index, token in enumerate(tokens):
        per_lane[lane_of(index, concurrency)].append(token)
    async with connections(base, per_lane, seen=seen) as clients:

        async def request(lane: int, index: int) -> str:
            body = bodies[quantities[index]]
            answer, _, _ = await api_reserve(clients[lane], body, tokens[index])
            return answer

        answers, latencies, wall = await lanes(concurrency, len(users), request)
    return tally("contended API", answers, quantities, latencies, wall)


async def contended_direct_race(
    url: str,
    tier_id: uuid.UUID,
    users: list[uuid.UUID],
    quantities: list[int],
    concurrency: int,
) -> Outcome:
    pool = POOL_MAX * CONTENDED_WORKERS  # both server processes' pools
    database = create_database(url, min_size=pool, max_size=pool)
    await database.connect()
    try:

        async def request(lane: int, index: int) -> str:
            return await direct_reserve(database, users[index], tier_id, quantities[index])

        answers, latencies, wall = await lanes(concurrency, len(users), request)
    finally:
        await database.disconnect()
    return tally("contended direct", answers, quantities, latencies, wall)


def tally(
    label: str, answers: list[str], quantities: list[int], latencies: list[float], wall: float
) -> Outcome:
    return Outcome(
        label=label,
        latencies=latencies,
        wall=wall,
        held=answers.count("held"),
        seats=sum(q for a, q in zip(answers, quantities, strict=True) if a == "held"),
        sold_out=answers.count("SOLD_OUT"),
        failed=len(answers) - answers.count("held") - answers.count("SOLD_OUT"),
    )


# --- pgbench: the raw hold transaction -----------------------------------------------


def find_pgbench() -> str | None:
    """pgbench on the PATH, else the newest under /usr/lib/postgresql (Debian, Ubuntu)."""
    found = shutil.which("pgbench")
    if found:
        return found
    installed = glob.glob("/usr/lib/postgresql/*/bin/pgbench")
    major = re.compile(r"/postgresql/(\d+)/")

    def version(path: str) -> int:
        match = major.search(path)
        return int(match.group(1)) if match else 0

    return max(installed, key=version) if installed else None


@dataclass(frozen=True)
class PgbenchResult:
    clients: int
    transactions: int
    tps: float
    latency_ms: float
    failed: int


async def prepare_pgbench(url: str, transactions: int) -> bool:
    """One fresh profile per pgbench transaction (of both runs), profile n with the id
    md5('bench-buyer-' || n), and the sequence that hands out n (a scratch object of
    this benchmark's own database); whether the database has `ticketing.reserve_hold`
    for the second run."""
    conn = await asyncpg.connect(url)
    try:
        await conn.execute("CREATE SEQUENCE bench_buyer_seq")
        await conn.execute(
            """INSERT INTO users.profiles (id, role)
               SELECT CAST(md5('bench-buyer-' || n) AS uuid), 'user'
                 FROM generate_series(1, $1) n""",
            2 * transactions,
        )
        function: bool = await conn.fetchval(
            "SELECT to_regproc('ticketing.reserve_hold') IS NOT NULL"
        )
        return function
    finally:
        await conn.close()


async def run_pgbench(
    pgbench: str, url: str, script: Path, tier_id: uuid.UUID, clients: int, per_client: int
) -> PgbenchResult | str:
    """Run `script` `per_client` times on each of `clients` connections; the result,
    or pgbench's complaint."""
    command = [
        *(pgbench, "--no-vacuum", "--protocol=prepared"),
        *("--client", str(clients), "--jobs", str(min(clients, os.cpu_count() or 1))),
        *("--transactions", str(per_client), "--define", f"tier={tier_id}"),
        *("--file", str(script), url),
    ]
    process = await asyncio.create_subprocess_exec(
        *command, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    out, err = await process.communicate()
    text = out.decode()
    tps = re.search(r"^tps = ([\d.]+)", text, re.MULTILINE)
    latency = re.search(r"^latency average = ([\d.]+) ms", text, re.MULTILINE)
    failed = re.search(r"^number of failed transactions: (\d+)", text, re.MULTILINE)
    done = re.search(r"^number of transactions actually processed: (\d+)", text, re.MULTILINE)
    if process.returncode != 0 or tps is None or latency is None or done is None:
        return f"pgbench exited {process.returncode}: {(err.decode() or text).strip()[-500:]}"
    return PgbenchResult(
        clients=clients,
        transactions=int(done.group(1)),
        tps=float(tps.group(1)),
        latency_ms=float(latency.group(1)),
        failed=int(failed.group(1)) if failed else 0,
    )


# --- the run -------------------------------------------------------------------------


async def main(args: argparse.Namespace, admin: str) -> int:
    name = f"lvx_bench_flash_{os.getpid()}"
    url = await fresh_database(admin, name)
    pgbench = find_pgbench()
    pgbench_clients = args.pgbench_clients
    pgbench_transactions = pgbench_clients * PGBENCH_TRANSACTIONS_PER_CLIENT if pgbench else 0
    failures: list[str] = []
    try:
        await db.migrate.migrate(url)
        seeded = await seed(url, args, pgbench_transactions)
        seen = "unseen by the server" if args.unseen_buyers else "signed in before the sale"
        print(f"{args.buyers} buyers ({seen}), capacity {args.capacity}, pool {POOL_MAX}")
        async with serve(url) as base:
            api = await api_race(
                base, seeded.api_tier, seeded.api_buyers, seen=not args.unseen_buyers
            )
        direct = await direct_race(url, seeded.direct_tier, seeded.direct_buyers)
        api.oversold = max(await oversold(url, seeded.api_tier))
        direct.oversold = max(await oversold(url, seeded.direct_tier))
        print(api.summary())
        print(direct.summary())
        print(
            f"  ratio API/direct: throughput {api.holds_per_second / direct.holds_per_second:.2f}"
            f"  p50 latency {api.p50 / direct.p50:.2f}x"
        )
        expected = min(args.capacity, args.buyers)
        for race in (api, direct):
            if race.oversold or race.held != expected or race.failed:
                failures.append(f"{race.label}: held {race.held} of {expected}")

        if pgbench is None:
            print("  pgbench: not installed (not on PATH, not in /usr/lib/postgresql); skipped")
        else:
            function = await prepare_pgbench(url, pgbench_transactions)
            runs = [("pgbench", PGBENCH_SCRIPT, seeded.pgbench_tier)]
            if function:
                runs.append(
                    ("pgbench function", PGBENCH_FUNCTION_SCRIPT, seeded.pgbench_function_tier)
                )
            for label, script, tier_id in runs:
                ran = await run_pgbench(
                    pgbench, url, script, tier_id, pgbench_clients, PGBENCH_TRANSACTIONS_PER_CLIENT
                )
                if isinstance(ran, str):
                    print(f"  {label}: {ran}")
                    failures.append(label)
                    continue
                what = "raw hold transactions" if script == PGBENCH_SCRIPT else "reserve_hold calls"
                print(
                    f"{label:>16}: {ran.tps:7.0f} holds/s  ({ran.clients} clients, "
                    f"{ran.transactions} {what}, latency average {ran.latency_ms:.2f} ms, "
                    f"failed {ran.failed})"
                )
                ratio = api.holds_per_second / ran.tps
                goal = (
                    f" (goal >= {PGBENCH_RATIO_GOAL}: "
                    f"{'met' if ratio >= PGBENCH_RATIO_GOAL else 'missed'})"
                    if script == PGBENCH_SCRIPT
                    else ""
                )
                print(
                    f"  ratio API/{label}: {ratio:.2f}{goal}  "
                    f"direct/{label}: {direct.holds_per_second / ran.tps:.2f}"
                )
                taken, held = await tier_taken(url, tier_id)
                if ran.failed or taken != ran.transactions or held != ran.transactions:
                    failures.append(
                        f"{label}: {taken} reserved, {held} held, not {ran.transactions}"
                    )
            if not function:
                print("  pgbench function: no ticketing.reserve_hold in this database; skipped")

        rng = random.Random(14)
        quantities = [rng.randint(1, 3) for _ in range(args.contended_buyers)]
        print(
            f"contended: {args.contended_buyers} buyers (1-3 seats, {sum(quantities)} wanted) "
            f"for {args.capacity} seats, {args.contended_concurrency} concurrent requests, "
            f"{CONTENDED_WORKERS} API processes"
        )
        async with serve(url, workers=CONTENDED_WORKERS) as base:
            contended = await contended_api_race(
                base,
                seeded.contended_tier,
                seeded.contended_buyers,
                quantities,
                args.contended_concurrency,
                seen=not args.unseen_buyers,
            )
        contended_direct = await contended_direct_race(
            url,
            seeded.contended_direct_tier,
            seeded.contended_direct_buyers,
            quantities,
            args.contended_concurrency,
        )
        contended.oversold = max(await oversold(url, seeded.contended_tier))
        contended_direct.oversold = max(await oversold(url, seeded.contended_direct_tier))
        print(contended.summary())
        print(contended_direct.summary())
        p99 = contended.quantile(0.99)
        print(
            f"  contended API p99 {p99:.0f} ms (target < {CONTENDED_P99_TARGET_MS:.0f} ms: "
            f"{'met' if p99 < CONTENDED_P99_TARGET_MS else 'missed'})  "
            f"ratio API/direct: p50 {contended.p50 / contended_direct.p50:.2f}x  "
            f"p99 {p99 / contended_direct.quantile(0.99):.2f}x"
        )
        for race in (contended, contended_direct):
            if race.oversold or race.seats != args.capacity or race.failed:
                failures.append(f"{race.label}: {race.seats} seats of {args.capacity}")

        print("OK: never oversold, exactly K held" if not failures else f"FAILED: {failures}")
        return 0 if not failures else 1
    finally:
        await drop_database(admin, name)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--buyers", type=int, default=200)
    parser.add_argument("--capacity", type=int, default=100)
    parser.add_argument("--contended-buyers", type=int, default=1000)
    parser.add_argument("--contended-concurrency", type=int, default=100)
    parser.add_argument(
        "--unseen-buyers",
        action="store_true",
        help="no signed-in warm-up: each buyer's first request also writes their profile",
    )
    parser.add_argument(
        "--pgbench-clients",
        type=int,
        default=POOL_MAX,
        help="pgbench clients (default: the API's pool size, the database concurrency)",
    )
    parser.add_argument(
        "--admin-url",
        default=DEFAULT_ADMIN_URL,
        help="PostgreSQL admin URL (default: the local server, else an embedded one)",
    )
    args = parser.parse_args()
    with postgres_server(args.admin_url) as admin:
        raise SystemExit(asyncio.run(main(args, admin)))
