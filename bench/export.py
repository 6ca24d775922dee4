"""Export benchmark: the registrations CSV streams in constant memory.

    .venv/bin/python bench/export.py [--admin-url URL] [--rows 50000] [--baseline 5000]

1. Creates a fresh database on the PostgreSQL server at `--admin-url` (default: the
   local server, else an embedded one) and seeds, with a few set-based SQL statements,
   two events of one organizer: one with `--baseline` registrations, one with `--rows`
   (each a paid order with its item, ticket and QR token).
2. Starts `liventix serve --workers 1` against it, asks `exportRegistrationsCsv` for
   each event's signed link as the organizer, and downloads the CSV over HTTP while
   sampling the server process's resident memory (RSS) every 5 ms.
3. Prints, per export: rows, bytes, time to the first byte, total time, rows/s, and the
   server's peak RSS growth over its RSS just before the download (after one warm-up
   export). Memory is flat when the large export grows RSS no more than the small one
   (within `--tolerance-mb`); otherwise the script exits non-zero.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import httpx
import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import (  # noqa: E402
    DEFAULT_ADMIN_URL,
    drop_database,
    fresh_database,
    postgres_server,
    wait_ready,
)
from bench.feed import start_server  # noqa: E402
from liventix.auth import Role, mint_token  # noqa: E402
from liventix.settings import load_settings  # noqa: E402

EXPORT = """mutation ($eventId: ID!) {
  exportRegistrationsCsv(eventId: $eventId) {
    __typename ... on ExportLink { url expiresAt } ... on OrderError { code message }
  }
}"""

# One paid order per row, with its item, ticket and token, for event $1 / tier $2 /
# buyer $3; `created_at` spread over the last days so the export's order is real work.
SEED = """
WITH orders AS (
    INSERT INTO ticketing.orders (event_id, user_id, status, contact_email, contact_name,
                                  contact_phone, total_cents, currency, created_at, paid_at)
    SELECT $1, $3, 'paid', 'fan' || n || '@example.com', 'Fan Number ' || n,
           '+1 555 0100', 4500, 'usd', now() - n * interval '1 second',
           now() - n * interval '1 second'
      FROM generate_series(1, $4) AS n
    RETURNING id, created_at),
items AS (
    INSERT INTO ticketing.order_items (order_id, tier_id, quantity, unit_price_cents)
    SELECT id, $2, 1, 4500 FROM orders)
INSERT INTO ticketing.tickets (order_id, event_id, tier_id, owner_user_id, sequence_number,
                               created_at)
SELECT id, $1, $2, $3, 1, created_at FROM orders"""
TOKENS = """
INSERT INTO ticketing.ticket_tokens (token, ticket_id)
SELECT md5(random()::text) || md5(t.id::text), t.id FROM ticketing.tickets t
 WHERE t.event_id = $1"""


@dataclass(frozen=True)
class Seeded:
    organizer: uuid.UUID
    events: dict[int, uuid.UUID]  # rows -> event


async def seed(url: str, sizes: list[int]) -> Seeded:
    organizer, buyer = uuid.uuid4(), uuid.uuid4()
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(
            "INSERT INTO users.profiles (id, role, display_name) VALUES ($1, 'organizer', 'Org'),"
            " ($2, 'user', 'Fan')",
            organizer,
            buyer,
        )
        events = {}
        for rows in sizes:
            event = await conn.fetchval(
                """INSERT INTO events.events (organizer_id, title, start_at, status)
                   VALUES ($1, $2, now() + interval '7 days', 'published') RETURNING id""",
                organizer,
                f"Export {rows}",
            )
            tier = await conn.fetchval(
                """INSERT INTO ticketing.ticket_tiers (event_id, name, price_cents, quantity,
                                                       issued_quantity)
                   VALUES ($1, 'General', 4500, $2, $2) RETURNING id""",
                event,
                rows,
            )
            await conn.execute(SEED, event, tier, buyer, rows)
            await conn.execute(TOKENS, event)
            events[rows] = event
        await conn.execute("ANALYZE")
    finally:
        await conn.close()
    return Seeded(organizer, events)


def server_processes(pid: int) -> list[psutil.Process]:
    root = psutil.Process(pid)
    return [root, *root.children(recursive=True)]


def rss(processes: list[psutil.Process]) -> int:
    total = 0
    for process in processes:
        with contextlib.suppress(psutil.NoSuchProcess):
            total += process.memory_info().rss
    return total


@dataclass
class Download:
    rows: int
    bytes: int
    first_byte_s: float
    total_s: float
    rss_before: int
    rss_peak: int

    @property
    def growth_mb(self) -> float:
        return (self.rss_peak - self.rss_before) / 2**20


async def download(
    base: str, token: str, event: uuid.UUID, processes: list[psutil.Process]
) -> Download:
    async with httpx.AsyncClient(base_url=base, timeout=120) as http:
        response = await http.post(
            "/graphql",
            json={"query": EXPORT, "variables": {"eventId": str(event)}},
            headers={"Authorization": f"Bearer {token}"},
        )
        link = response.json()["data"]["exportRegistrationsCsv"]
        assert link["__typename"] == "ExportLink", link
        path = link["url"][link["url"].index("/exports/") :]
        before = rss(processes)
        peak = before
        done = asyncio.Event()

        async def sample() -> None:
            nonlocal peak
            while not done.is_set():
                peak = max(peak, rss(processes))
                await asyncio.sleep(0.005)

        sampler = asyncio.create_task(sample())
        started = time.perf_counter()
        first_byte = 0.0
        size = lines = 0
        async with http.stream("GET", path) as stream:
            assert stream.status_code == 200, await stream.aread()
            async for chunk in stream.aiter_bytes():
                if not size:
                    first_byte = time.perf_counter() - started
                size += len(chunk)
                lines += chunk.count(b"\n")
        total = time.perf_counter() - started
        done.set()
        await sampler
    return Download(lines - 1, size, first_byte, total, before, max(peak, rss(processes)))


def report(label: str, d: Download) -> None:
    print(
        f"{label}: {d.rows} rows, {d.bytes / 2**20:.1f} MiB in {d.total_s:.2f} s "
        f"({d.rows / d.total_s:,.0f} rows/s), first byte after {d.first_byte_s * 1000:.0f} ms; "
        f"server RSS {d.rss_before / 2**20:.1f} MiB before, peak {d.rss_peak / 2**20:.1f} MiB "
        f"(+{d.growth_mb:.1f} MiB)",
        flush=True,
    )


async def main(args: argparse.Namespace, admin_url: str) -> int:
    name = f"liventix_bench_export_{os.getpid()}"
    url = await fresh_database(admin_url, name)
    port = args.port
    base = f"http://127.0.0.1:{port}"
    server = start_server(url, port, 1)
    try:
        await wait_ready(base, attempts=600)  # the server migrates the new database
        started = time.perf_counter()
        seeded = await seed(url, [args.baseline, args.rows])
        print(
            f"seeded {args.baseline:,} + {args.rows:,} registrations "
            f"in {time.perf_counter() - started:.1f} s",
            flush=True,
        )
        token = mint_token(load_settings(), seeded.organizer, Role.ORGANIZER)
        processes = server_processes(server.pid)
        print(f"server idle RSS: {rss(processes) / 2**20:.1f} MiB", flush=True)
        await download(base, token, seeded.events[args.baseline], processes)  # warm-up
        small = await download(base, token, seeded.events[args.baseline], processes)
        large = await download(base, token, seeded.events[args.rows], processes)
        report("baseline export", small)
        report("large export", large)
        assert small.rows == args.baseline and large.rows == args.rows, (small, large)
        extra = large.growth_mb - small.growth_mb
        flat = extra <= args.tolerance_mb
        print(
            f"{args.rows / args.baseline:.0f}x the rows grew the server's peak RSS by "
            f"{extra:+.1f} MiB more than the baseline: "
            + ("flat" if flat else f"NOT flat (tolerance {args.tolerance_mb} MiB)"),
            flush=True,
        )
        return 0 if flat else 1
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
        await drop_database(admin_url, name)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--admin-url", default=DEFAULT_ADMIN_URL)
    parser.add_argument("--rows", type=int, default=50_000)
    parser.add_argument("--baseline", type=int, default=5_000)
    parser.add_argument("--tolerance-mb", type=float, default=8.0)
    parser.add_argument("--port", type=int, default=8741)
    return parser.parse_args()


if __name__ == "__main__":
    arguments = parse_args()
    with postgres_server(arguments.admin_url) as admin:
        raise SystemExit(asyncio.run(main(arguments, admin)))
