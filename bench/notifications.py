"""Notifications benchmark: a post to 10,000 ticket holders, enqueued and delivered live.

    .venv/bin/python bench/notifications.py [--holders 10000] [--subscribers 1000]

1. Creates a fresh database on the PostgreSQL server at `--admin-url` (default: the
   local server, else an embedded one) and seeds, with set-based SQL, one published
   event with `--holders` ticket holders (a profile with an email each, one paid order
   and one issued ticket each; every tenth holder has preferences: email on for new
   posts, quiet hours and a daily cap) and a second event with a single holder (the
   baseline). Starts `liventix serve` against it.
2. Enqueue: `db.notification_triggers.post_created` called directly, in a
   `db.core.transaction`, for a fresh post id: the set-based insert alone, 1 holder
   against `--holders`; then the whole `createPost` mutation over HTTP for both events.
3. Live inbox: `--baseline-subscribers` and then `--subscribers` holders subscribe to
   `notificationEvents` over graphql-transport-ws, each with its own token; one
   `createPost` in the big event, and the time from the mutation's start until each
   subscriber holds its `NEW` message (p50/p95/p99/max). Every subscriber must
   receive exactly one `NEW` for the post: anything else fails the run.

Targets: enqueue for `--holders` under 1 s (every run); fan-out p99 under 1 s.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import os
import resource
import signal
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

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
from db.core import create_database, transaction
from db.notification_triggers import post_created
from liventix.auth import Role, mint_token
from liventix.settings import load_settings
from resolvers.ids import decode_global_id

ROOT = Path(__file__).resolve().parent.parent

ENQUEUE_TARGET_MS = 1000.0
FANOUT_P99_TARGET_MS = 1000.0
DELIVERY_TIMEOUT_S = 15.0
GRACE_S = 0.5  # after the last expected frame: time for a duplicate to show up
PRICE_CENTS = 2500

CREATE_POST = """mutation Create($eventId: ID!, $text: String!) {
  createPost(eventId: $eventId, text: $text) {
    __typename
    ... on CreatePostPayload { post { id } }
    ... on FeedError { code message }
  }
}"""

INBOX = """subscription Inbox {
  notificationEvents {
    reason
    notification { id category title data createdAt }
    counts { priority social system total }
  }
}"""


# -- seeding -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class World:
    organizer: uuid.UUID
    big_event: uuid.UUID
    small_event: uuid.UUID
    holders: list[uuid.UUID]  # of the big event, in order
    small_holder: uuid.UUID


async def seed_event(
    conn: asyncpg.Connection,
    *,
    event_id: uuid.UUID,
    organizer: uuid.UUID,
    title: str,
    holders: Sequence[uuid.UUID],
    label: str,
) -> None:
    """A published event whose one tier is sold out to `holders`: a profile (with an
    email), one paid order, one order item and one issued ticket (with its QR token)
    per holder. The tier's counters match: issued = holders, reserved = 0."""
    tier_id = uuid.uuid4()
    count = len(holders)
    await conn.execute(
        """INSERT INTO events.events (id, organizer_id, title, start_at, status)
           VALUES ($1, $2, $3, now() + interval '14 days', 'published')""",
        event_id,
        organizer,
        title,
    )
    await conn.execute(
        """INSERT INTO ticketing.ticket_tiers
               (id, event_id, name, price_cents, quantity, reserved_quantity, issued_quantity)
           VALUES ($1, $2, 'General admission', $3, $4, 0, $4)""",
        tier_id,
        event_id,
        PRICE_CENTS,
        count,
    )
    await conn.execute(
        """INSERT INTO users.profiles (id, display_name, email, handle)
           SELECT h.id, 'Holder ' || $2 || h.n, 'holder-' || $2 || h.n || '@bench.example',
                  'h_' || $2 || h.n
             FROM unnest($1::uuid[]) WITH ORDINALITY AS h (id, n)""",
        list(holders),
        label,
    )
    # Every tenth holder changed something: email for new posts on, quiet hours
    # overnight in New York, a daily cap (the enqueue's per-recipient rules).
    await conn.execute(
        """INSERT INTO notify.preferences
               (user_id, switches, quiet_start, quiet_end, time_zone, daily_cap)
           SELECT h.id, '{"email": {"new_post": true}}'::jsonb, '23:00', '07:00',
                  'America/New_York', 20
             FROM unnest($1::uuid[]) WITH ORDINALITY AS h (id, n)
            WHERE h.n % 10 = 0""",
        list(holders),
    )
    await conn.execute(
        """WITH h AS (
               SELECT id AS user_id, n FROM unnest($1::uuid[]) WITH ORDINALITY AS u (id, n)
           ), paid AS (
               INSERT INTO ticketing.orders
                      (event_id, user_id, status, contact_email, total_cents, currency,
                       paid_at, created_at, updated_at)
               SELECT $2, h.user_id, 'paid', 'holder-' || $5 || h.n || '@bench.example',
                      $4, 'usd', now() - interval '1 day', now() - interval '1 day',
                      now() - interval '1 day'
                 FROM h
               RETURNING id, user_id
           ), items AS (
               INSERT INTO ticketing.order_items (order_id, tier_id, quantity, unit_price_cents)
               SELECT id, $3, 1, $4 FROM paid
           ), issued AS (
               INSERT INTO ticketing.tickets
                      (order_id, event_id, tier_id, owner_user_id, status, sequence_number)
               SELECT id, $2, $3, user_id, 'issued', 1 FROM paid
               RETURNING id
           )
           INSERT INTO ticketing.ticket_tokens (token, ticket_id)
           SELECT md5(id::text || random()::text) || md5(random()::text), id FROM issued""",
        list(holders),
        event_id,
        tier_id,
        PRICE_CENTS,
        label,
    )


async def seed(url: str, holders: int) -> World:
    organizer = uuid.uuid4()
    world = World(
        organizer=organizer,
        big_event=uuid.uuid4(),
        small_event=uuid.uuid4(),
        holders=[uuid.uuid4() for _ in range(holders)],
        small_holder=uuid.uuid4(),
    )
    conn = await asyncpg.connect(url)
    try:
        async with conn.transaction():
            await conn.execute(
                """INSERT INTO users.profiles (id, role, display_name, email)
                   VALUES ($1, 'organizer', 'Organizer', 'organizer@bench.example')""",
                organizer,
            )
            await seed_event(
                conn,
                event_id=world.big_event,
                organizer=organizer,
                title="Benchmark Arena",
                holders=world.holders,
                label="a",
            )
            await seed_event(
                conn,
                event_id=world.small_event,
                organizer=organizer,
                title="Benchmark Club",
                holders=[world.small_holder],
                label="c",
            )
        await conn.execute("ANALYZE")  # as autovacuum would have by now
        rows = await conn.fetch(
            """SELECT t.event_id, t.quantity, t.reserved_quantity, t.issued_quantity,
                      (SELECT count(*) FROM ticketing.tickets k
                        WHERE k.tier_id = t.id AND k.status = 'issued') AS tickets,
                      h.paid_orders_without_tickets, h.health_score
                 FROM ticketing.ticket_tiers t
                 JOIN ticketing.event_health h ON h.event_id = t.event_id"""
        )
    finally:
        await conn.close()
    for row in rows:
        expected = holders if row["event_id"] == world.big_event else 1
        consistent = (
            row["issued_quantity"] == row["tickets"] == expected
            and row["reserved_quantity"] == 0
            and row["reserved_quantity"] + row["issued_quantity"] <= row["quantity"]
            and row["paid_orders_without_tickets"] == 0
            and row["health_score"] == 100
        )
        if not consistent:
            raise RuntimeError(f"seeded tier is inconsistent: {dict(row)}")
    return world


# -- the server ------------------------------------------------------------------------


def start_server(url: str, port: int, workers: int) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "DATABASE_URL": url,
        "JOBS_ENABLED": "false",
        "RATE_LIMIT_ENABLED": "false",
        "LOG_LEVEL": "warning",
        "WS_INIT_TIMEOUT": "120",
    }
    command = [
        sys.executable,
        "-m",
        "liventix.cli",
        "serve",
        "--workers",
        str(workers),
        "--port",
        str(port),
    ]
    return subprocess.Popen(
        command, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, start_new_session=True
    )


def stop_server(server: subprocess.Popen[bytes]) -> None:
    os.killpg(server.pid, signal.SIGTERM)
    try:
        server.wait(15)
    except subprocess.TimeoutExpired:
        os.killpg(server.pid, signal.SIGKILL)
        server.wait(5)


# -- enqueue -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class EnqueueRun:
    enqueue_ms: float  # post_created inside the transaction
    commit_ms: float  # the COMMIT after it (and the batch's NOTIFY)
    notified: int


async def direct_enqueue(
    url: str, event_id: uuid.UUID, author: uuid.UUID, repeat: int
) -> list[EnqueueRun]:
    """`post_created` for a fresh post id, in its own transaction, `repeat` times."""
    database = create_database(url, min_size=1, max_size=1)
    await database.connect()
    runs: list[EnqueueRun] = []
    try:
        for n in range(repeat):
            post_id = uuid.uuid4()
            async with transaction(database) as conn:
                started = time.perf_counter()
                await post_created(
                    conn,
                    post_id=post_id,
                    event_id=event_id,
                    author_id=author,
                    text=f"Doors open at 19:00, run {n}",
                    now=datetime.now(UTC),
                )
                enqueued = time.perf_counter()
            committed = time.perf_counter()
            async with transaction(database) as conn:
                notified: int = await conn.fetchval(
                    "SELECT count(*) FROM notify.notifications WHERE dedupe_key = $1",
                    f"post:{post_id}",
                )
            runs.append(
                EnqueueRun((enqueued - started) * 1000, (committed - enqueued) * 1000, notified)
            )
    finally:
        await database.disconnect()
    return runs


def post_uuid(payload: dict[str, Any]) -> uuid.UUID:
    """The post's key from a createPost response (fails loudly on anything else)."""
    result = (payload.get("data") or {}).get("createPost") or {}
    if result.get("__typename") != "CreatePostPayload":
        raise RuntimeError(f"createPost failed: {payload}")
    decoded = decode_global_id(result["post"]["id"])
    assert decoded is not None and decoded[0] == "Post", result
    return uuid.UUID(decoded[1])


async def create_post(
    http: httpx.AsyncClient, token: str, event_id: uuid.UUID, text: str
) -> tuple[uuid.UUID, float]:
    """One createPost over HTTP: the post's id and the mutation's time in ms."""
    started = time.perf_counter()
    response = await http.post(
        "/graphql",
        json={"query": CREATE_POST, "variables": {"eventId": str(event_id), "text": text}},
        headers={"Authorization": f"Bearer {token}"},
    )
    elapsed = (time.perf_counter() - started) * 1000
    response.raise_for_status()
    return post_uuid(response.json()), elapsed


# -- live inbox subscribers ------------------------------------------------------------------


@dataclass(slots=True)
class Tally:
    """Subscribers that hold at least one NEW message, and a wake-up when all do."""

    target: int
    reached: int = 0
    done: asyncio.Event = field(default_factory=asyncio.Event)

    def first_new(self) -> None:
        self.reached += 1
        if self.reached >= self.target:
            self.done.set()


class InboxSubscriber(asyncio.Protocol):
    """A minimal graphql-transport-ws client of `notificationEvents` on a raw asyncio
    Protocol: on two cores, a full WebSocket client spends as much CPU per frame as the
    server does. Server frames are unmasked; it parses them inline, timestamps each on
    arrival and keeps every NEW message's post id and arrival time."""

    def __init__(self, token: str, tally: Tally) -> None:
        loop = asyncio.get_running_loop()
        self.token = token
        self.tally = tally
        self.transport: asyncio.Transport | None = None
        self.buffer = b""
        self.handshaken = False
        self.subscribed: asyncio.Future[None] = loop.create_future()
        self.new: list[tuple[str | None, float]] = []  # (data.postId, perf_counter)
        self.problems: list[str] = []

    # -- frames out

    def send_text(self, text: bytes) -> None:
        self._send(0x81, text)

    def _send(self, first: int, payload: bytes) -> None:
        mask = os.urandom(4)
        length = len(payload)
        if length < 126:
            header = bytes([first, 0x80 | length])
        elif length < 65536:
            header = bytes([first, 0x80 | 126]) + length.to_bytes(2, "big")
        else:
            header = bytes([first, 0x80 | 127]) + length.to_bytes(8, "big")
        key = int.from_bytes((mask * (length // 4 + 1))[:length], "big")
        masked = (int.from_bytes(payload, "big") ^ key).to_bytes(length, "big")
        assert self.transport is not None
        self.transport.write(header + mask + masked)

    def close(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self._send(0x88, (1000).to_bytes(2, "big"))
            self.transport.close()

    # -- asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        now = time.perf_counter()
        self.buffer += data
        if not self.handshaken:
            head, sep, rest = self.buffer.partition(b"\r\n\r\n")
            if not sep:
                return
            if b" 101 " not in head.split(b"\r\n", 1)[0]:
                self._fail(f"handshake refused: {head[:200]!r}")
                return
            self.handshaken = True
            self.buffer = rest
            init = {"Authorization": f"Bearer {self.token}"}
            self.send_text(orjson.dumps({"type": "connection_init", "payload": init}))
        frames, self.buffer = read_frames(self.buffer)
        for opcode, payload in frames:
            if opcode == 1:
                self._on_message(orjson.loads(payload), now)
            elif opcode == 8:
                code = int.from_bytes(payload[:2], "big") if len(payload) >= 2 else None
                self._fail(f"closed by the server: {code} {payload[2:].decode(errors='replace')}")
                if self.transport is not None:
                    self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.subscribed.done():
            self.subscribed.set_exception(ConnectionError(f"connection lost: {exc}"))

    # -- graphql-transport-ws

    def _on_message(self, message: dict[str, Any], now: float) -> None:
        kind = message.get("type")
        if kind == "connection_ack":
            body = {"query": INBOX, "operationName": "Inbox"}
            self.send_text(orjson.dumps({"id": "1", "type": "subscribe", "payload": body}))
        elif kind == "ping":
            self.send_text(b'{"type":"pong"}')
        elif kind == "next":
            payload = message.get("payload") or {}
            event = (payload.get("data") or {}).get("notificationEvents")
            if not event or payload.get("errors"):
                self._fail(f"error in a next message: {payload}")
            elif event["reason"] == "SNAPSHOT":
                if not self.subscribed.done():
                    self.subscribed.set_result(None)
            elif event["reason"] == "NEW":
                notification = event.get("notification") or {}
                post_id = (notification.get("data") or {}).get("postId")
                self.new.append((post_id, now))
                if len(self.new) == 1:
                    self.tally.first_new()
        elif kind in ("error", "complete"):
            self._fail(f"{kind}: {message.get('payload')}")

    def _fail(self, problem: str) -> None:
        self.problems.append(problem)
        if not self.subscribed.done():
            self.subscribed.set_exception(RuntimeError(problem))


async def connect_subscribers(
    host: str, port: int, tokens: Sequence[str], tally: Tally
) -> list[InboxSubscriber]:
    loop = asyncio.get_running_loop()
    gate = asyncio.Semaphore(64)  # don't overrun the server's accept backlog

    async def one(token: str) -> InboxSubscriber:
        async with gate:
            _transport, sub = await loop.create_connection(
                lambda: InboxSubscriber(token, tally), host, port
            )
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
            async with asyncio.timeout(60):
                await sub.subscribed
            return sub

    return await asyncio.gather(*(one(token) for token in tokens))


@dataclass(frozen=True, slots=True)
class FanoutRun:
    subscribers: int
    connect_s: float
    mutation_ms: float
    latencies_ms: list[float]  # one per subscriber that got exactly one NEW for the post
    exactly_one: int
    missing: int
    duplicated: int
    strays: int  # NEW messages for anything but the post
    problems: list[str]

    @property
    def ok(self) -> bool:
        return self.exactly_one == self.subscribers and not self.strays and not self.problems


async def fanout(
    base: str,
    port: int,
    world: World,
    organizer_token: str,
    tokens: Sequence[str],
) -> FanoutRun:
    count = len(tokens)
    tally = Tally(count)
    started = time.perf_counter()
    subs = await connect_subscribers("127.0.0.1", port, tokens, tally)
    connect_s = time.perf_counter() - started
    try:
        await asyncio.sleep(0.5 + count / 2000)  # every subscription reaches its hub
        async with httpx.AsyncClient(base_url=base, timeout=30) as http:
            sent = time.perf_counter()
            post_id, mutation_ms = await create_post(
                http, organizer_token, world.big_event, f"Live to {count} inboxes"
            )
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(DELIVERY_TIMEOUT_S):
                await tally.done.wait()
        await asyncio.sleep(GRACE_S)
    finally:
        for sub in subs:
            sub.close()
    expected = str(post_id)
    latencies: list[float] = []
    exactly_one = missing = duplicated = strays = 0
    problems: list[str] = []
    for sub in subs:
        mine = [at for pid, at in sub.new if pid == expected]
        strays += len(sub.new) - len(mine)
        problems += sub.problems
        if len(mine) == 1:
            exactly_one += 1
            latencies.append((mine[0] - sent) * 1000)
        elif not mine:
            missing += 1
        else:
            duplicated += 1
    return FanoutRun(
        count,
        connect_s,
        mutation_ms,
        sorted(latencies),
        exactly_one,
        missing,
        duplicated,
        strays,
        problems,
    )


# -- report ------------------------------------------------------------------------------


def percentile(ordered: Sequence[float], q: float) -> float:
    """Nearest-rank percentile of an ascending sequence."""
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def enqueue_line(label: str, runs: Sequence[EnqueueRun]) -> str:
    enqueue = [r.enqueue_ms for r in runs]
    commit = [r.commit_ms for r in runs]
    return (
        f"  {label:<26} enqueue median {statistics.median(enqueue):7.1f} ms "
        f"(min {min(enqueue):.1f}, max {max(enqueue):.1f}), "
        f"commit median {statistics.median(commit):5.1f} ms, notified {runs[-1].notified:,}"
    )


def fanout_line(run: FanoutRun) -> str:
    lat = run.latencies_ms
    if lat:
        # The response leaves after COMMIT: what follows it is the fan-out alone.
        after = [t - run.mutation_ms for t in lat]
        figures = (
            f"p50 {percentile(lat, 0.5):6.1f} ms, p95 {percentile(lat, 0.95):6.1f} ms, "
            f"p99 {percentile(lat, 0.99):6.1f} ms, max {lat[-1]:6.1f} ms\n"
            f"{'':>22}(createPost took {run.mutation_ms:.0f} ms; after its response: "
            f"p50 {percentile(after, 0.5):.1f} ms, p99 {percentile(after, 0.99):.1f} ms, "
            f"max {after[-1]:.1f} ms)"
        )
    else:
        figures = f"no deliveries (createPost took {run.mutation_ms:.0f} ms)"
    return (
        f"  {run.subscribers:>6,} subscribers: {figures}\n"
        f"{'':>22}received {run.exactly_one:,}/{run.subscribers:,} exactly once "
        f"(missing {run.missing}, duplicated {run.duplicated}, other NEW {run.strays}); "
        f"connected in {run.connect_s:.1f} s"
    )


# -- main ----------------------------------------------------------------------------------


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--admin-url",
        default=DEFAULT_ADMIN_URL,
        help="PostgreSQL admin URL (default: the local server, else an embedded one)",
    )
    parser.add_argument("--holders", type=int, default=10000, help="ticket holders (10000)")
    parser.add_argument(
        "--subscribers", type=int, default=1000, help="live inbox subscribers (1000)"
    )
    parser.add_argument(
        "--baseline-subscribers",
        type=int,
        default=10,
        help="live inbox subscribers of the baseline fan-out (10; 0: skip)",
    )
    parser.add_argument("--repeat", type=int, default=3, help="runs of each enqueue (3)")
    parser.add_argument("--workers", type=int, default=1, help="API processes (1)")
    args = parser.parse_args()
    if not 1 <= args.subscribers <= args.holders:
        parser.error("--subscribers must be between 1 and --holders")
    if not 0 <= args.baseline_subscribers <= args.holders:
        parser.error("--baseline-subscribers must be between 0 and --holders")
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    return args


async def main(args: argparse.Namespace, admin_url: str) -> bool:
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 65536), hard))
    name = f"liventix_bench_notify_{os.getpid()}"
    url = await fresh_database(admin_url, name)
    server: subprocess.Popen[bytes] | None = None
    try:
        await db.migrate.migrate(url)
        started = time.perf_counter()
        world = await seed(url, args.holders)
        seeded = time.perf_counter() - started
        conn = await asyncpg.connect(url)
        try:  # the planner's JIT weighs on large statements: say whether it is on
            jit = await conn.fetchval("SHOW jit")
        finally:
            await conn.close()
        print(
            f"seeded {args.holders:,} ticket holders (profiles, paid orders, issued tickets) "
            f"in {seeded:.1f} s; PostgreSQL jit = {jit}",
            flush=True,
        )
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        server = start_server(url, port, args.workers)
        await wait_ready(base)

        # 1. Enqueue: the set-based insert alone, then the whole mutation over HTTP.
        print("enqueue (post_created in a db.core.transaction, fresh post id):", flush=True)
        small = await direct_enqueue(url, world.small_event, world.organizer, args.repeat)
        print(enqueue_line("1 holder (baseline)", small), flush=True)
        big = await direct_enqueue(url, world.big_event, world.organizer, args.repeat)
        print(enqueue_line(f"{args.holders:,} holders", big), flush=True)
        for label, done, expected in (("1 holder", small, 1), ("big", big, args.holders)):
            if any(r.notified != expected for r in done):
                raise RuntimeError(f"enqueue ({label}) notified {done} instead of {expected}")

        settings = load_settings()
        organizer_token = mint_token(settings, world.organizer, Role.ORGANIZER)
        print("createPost over HTTP (whole mutation, enqueue included):", flush=True)
        http_ms: dict[uuid.UUID, list[float]] = {}
        async with httpx.AsyncClient(base_url=base, timeout=30) as http:
            await create_post(http, organizer_token, world.small_event, "warm-up")
            for event_id in (world.small_event, world.big_event):
                for n in range(args.repeat):
                    _post, elapsed = await create_post(
                        http, organizer_token, event_id, f"Set times are up, run {n}"
                    )
                    http_ms.setdefault(event_id, []).append(elapsed)
        for label, event_id in (
            ("1 holder (baseline)", world.small_event),
            (f"{args.holders:,} holders", world.big_event),
        ):
            times = http_ms[event_id]
            print(
                f"  {label:<26} createPost median {statistics.median(times):7.1f} ms "
                f"(min {min(times):.1f}, max {max(times):.1f})",
                flush=True,
            )

        # 2. Live inbox fan-out.
        print(
            "live inbox fan-out (createPost start -> each subscriber holds its NEW):",
            flush=True,
        )
        runs: list[FanoutRun] = []
        for size in (args.baseline_subscribers, args.subscribers):
            if size == 0:
                continue
            tokens = [mint_token(settings, user, Role.USER) for user in world.holders[:size]]
            run = await fanout(base, port, world, organizer_token, tokens)
            runs.append(run)
            print(fanout_line(run), flush=True)
            for problem in sorted(set(run.problems))[:5]:
                print(f"    problem: {problem}", flush=True)
    finally:
        if server is not None:
            stop_server(server)
        await drop_database(admin_url, name)

    worst_enqueue = max(r.enqueue_ms for r in big)
    baseline_enqueue = statistics.median(r.enqueue_ms for r in small)
    main_run = runs[-1]
    p99 = percentile(main_run.latencies_ms, 0.99) if main_run.latencies_ms else float("inf")
    print("targets:")
    print(
        f"  enqueue for {args.holders:,} holders < {ENQUEUE_TARGET_MS:.0f} ms (every run): "
        f"worst {worst_enqueue:.1f} ms, "
        f"{statistics.median(r.enqueue_ms for r in big) / baseline_enqueue:.0f}x the 1-holder "
        f"median -> {verdict(worst_enqueue < ENQUEUE_TARGET_MS)}"
    )
    print(
        f"  fan-out p99 to {main_run.subscribers:,} subscribers < "
        f"{FANOUT_P99_TARGET_MS:.0f} ms: {p99:.1f} ms -> {verdict(p99 < FANOUT_P99_TARGET_MS)}"
    )
    delivered = all(run.ok for run in runs)
    print(
        "  every subscriber exactly one NEW for the post: "
        + ("yes" if delivered else "NO (see the counts above)")
    )
    if not delivered:
        print("FAILED: the live inbox lost, duplicated or misrouted notifications", flush=True)
    return delivered


if __name__ == "__main__":
    arguments = parse_args()
    with postgres_server(arguments.admin_url) as admin:
        ok = asyncio.run(main(arguments, admin))
    raise SystemExit(0 if ok else 1)
