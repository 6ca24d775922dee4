"""Feed benchmark: the feed page under HTTP load, and post-to-subscriber latency.

    .venv/bin/python bench/feed.py [--admin-url URL] [--duration 10] [--connections 32]

1. Creates a fresh database on the PostgreSQL server at `--admin-url` (default: the
   local server, else an embedded one), seeds one published event with 200 posts by
   20 authors, and starts
   `liventix serve --workers 2` against it.
2. Page load: `eventFeed(first: 20)` with author and event over HTTP with
   `--connections` connections, using `wrk` when installed (a C load generator; a Python
   client on a small machine measures itself) and an httpx client otherwise: first
   anonymous (served by the commit-invalidated response cache), signed in as a fan (who
   shares that response), then signed in with a root `__typename` added, a document the
   cache does not take (full execution: the baseline). Prints requests/s, p50/p99
   latency and the ratios.
3. Live latency: 1, 100 and 1,000 WebSocket subscribers of the event's feed; posts are
   created over HTTP and the time from the mutation's send until each subscriber holds
   the `PostCreated` frame is measured. Prints p50/p99/max over subscribers and posts.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import asyncpg
import httpx
from websockets.asyncio.client import ClientConnection, connect

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import db.migrate  # noqa: E402
from bench.common import (  # noqa: E402
    DEFAULT_ADMIN_URL,
    drop_database,
    fresh_database,
    postgres_server,
    wait_ready,
)
from liventix.auth import Role, mint_token  # noqa: E402
from liventix.settings import load_settings  # noqa: E402

PAGE_QUERY = """query Page($eventId: ID!) {
  eventFeed(eventId: $eventId, first: 20) {
    edges { cursor node { id text createdAt
      media { url kind width height durationSeconds }
      author { id displayName }
      event { id title startAt } } }
    pageInfo { hasNextPage endCursor }
  }
}"""
# The same page with a root `__typename`: a document the response cache does not take
# (only `eventFeed` and `eventTiers` at the root), so every request is executed in full.
UNCACHED_PAGE_QUERY = PAGE_QUERY.replace(
    "query Page($eventId: ID!) {", "query Page($eventId: ID!) {\n  __typename", 1
)

SUBSCRIPTION = """subscription Live($eventId: ID!) {
  eventFeed(eventId: $eventId) {
    __typename
    ... on PostCreated { cursor post { id text author { id displayName } } }
  }
}"""

CREATE = """mutation($eventId: ID!, $text: String!) {
  createPost(eventId: $eventId, text: $text) { __typename ... on FeedError { code } }
}"""


async def prepare(admin_url: str, name: str) -> tuple[str, uuid.UUID, uuid.UUID]:
    """A fresh migrated database with one event and 200 posts; returns (url, event, fan)."""
    url = await fresh_database(admin_url, name)
    await db.migrate.migrate(url)
    organizer, fan, event = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(
            "INSERT INTO users.profiles (id, role, display_name) VALUES ($1, 'organizer', 'Org'),"
            " ($2, 'user', 'Fan')",
            organizer,
            fan,
        )
        authors = [uuid.uuid4() for _ in range(20)]
        await conn.executemany(
            "INSERT INTO users.profiles (id, display_name) VALUES ($1, $2)",
            [(a, f"Author {n}") for n, a in enumerate(authors)],
        )
        await conn.execute(
            """INSERT INTO events.events (id, organizer_id, title, start_at, status)
               VALUES ($1, $2, 'Benchmark Night', now() + interval '7 days', 'published')""",
            event,
            organizer,
        )
        await conn.executemany(
            """INSERT INTO feed.posts (event_id, author_id, text, media)
               VALUES ($1, $2, $3, $4::jsonb)""",
            [
                (
                    event,
                    authors[n % 20],
                    f"Post number {n}: see you at the front row!",
                    json.dumps(
                        [
                            {
                                "url": f"https://cdn.example.com/{n}.jpg",
                                "kind": "image",
                                "width": 1200,
                                "height": 800,
                                "durationSeconds": None,
                            }
                        ]
                        if n % 3 == 0
                        else []
                    ),
                )
                for n in range(200)
            ],
        )
    finally:
        await conn.close()
    return url, event, fan


def start_server(url: str, port: int, workers: int) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "DATABASE_URL": url,
        "RATE_LIMIT_ENABLED": "false",
        "JOBS_ENABLED": "false",
        "LOG_LEVEL": "warning",
        "DB_POOL_MAX": "20",
    }
    command = [
        str(ROOT / ".venv/bin/liventix"),
        "serve",
        "--workers",
        str(workers),
        "--port",
        str(port),
    ]
    return subprocess.Popen(
        command, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, start_new_session=True
    )


def run_wrk(
    base: str, body: str, connections: int, duration: int, token: str | None
) -> dict[str, float]:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(
            'wrk.method = "POST"\n'
            'wrk.headers["Content-Type"] = "application/json"\n'
            f"wrk.body = {json.dumps(body)}\n"
            + (f'wrk.headers["Authorization"] = "Bearer {token}"\n' if token else "")
            + "function response(status, headers, body)\n"
            "  if status ~= 200 then wrk.thread:stop() end\n"
            "end\n"
        )
    output = subprocess.run(
        [
            "wrk",
            "-t2",
            f"-c{connections}",
            f"-d{duration}s",
            "--latency",
            "-s",
            script.name,
            f"{base}/graphql",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    os.unlink(script.name)
    result: dict[str, float] = {}
    for line in output.splitlines():
        parts = line.split()
        if line.startswith("Requests/sec:"):
            result["rps"] = float(parts[1])
        elif len(parts) == 2 and parts[0] in ("50%", "99%"):
            result[f"p{parts[0][:-1]}"] = _ms(parts[1])
        elif "Non-2xx" in line:
            result["non_2xx"] = float(parts[-1])
    return result


def _ms(value: str) -> float:
    for unit, factor in (("us", 0.001), ("ms", 1.0), ("s", 1000.0)):
        if value.endswith(unit):
            return float(value[: -len(unit)]) * factor
    return float(value)


async def run_httpx(
    base: str, body: str, connections: int, duration: int, token: str | None
) -> dict[str, float]:
    latencies: list[float] = []
    deadline = time.perf_counter() + duration
    limits = httpx.Limits(max_connections=connections)
    async with httpx.AsyncClient(base_url=base, limits=limits) as client:

        async def worker() -> None:
            headers = {"Content-Type": "application/json"}
            if token:
                headers["Authorization"] = f"Bearer {token}"
            while time.perf_counter() < deadline:
                start = time.perf_counter()
                response = await client.post("/graphql", content=body, headers=headers)
                response.raise_for_status()
                latencies.append(time.perf_counter() - start)

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(connections)))
        elapsed = time.perf_counter() - started
    latencies.sort()
    return {
        "rps": len(latencies) / elapsed,
        "p50": latencies[len(latencies) // 2] * 1000,
        "p99": latencies[int(len(latencies) * 0.99)] * 1000,
    }


async def subscriber(
    url: str, event_id: uuid.UUID, ready: asyncio.Event, arrivals: list[float], n: int
) -> ClientConnection:
    conn = await connect(url, subprotocols=["graphql-transport-ws"], max_queue=None)  # type: ignore[list-item]
    await conn.send(json.dumps({"type": "connection_init", "payload": {}}))
    assert json.loads(await conn.recv())["type"] == "connection_ack"
    payload = {"query": SUBSCRIPTION, "variables": {"eventId": str(event_id)}}
    await conn.send(json.dumps({"id": "1", "type": "subscribe", "payload": payload}))

    async def listen() -> None:
        async for raw in conn:
            message = json.loads(raw)
            if message.get("type") == "next":
                arrivals.append(time.perf_counter())
            elif message.get("type") == "ping":
                await conn.send(json.dumps({"type": "pong"}))

    asyncio.get_running_loop().create_task(listen())
    return conn


async def live_latency(
    base: str, ws_url: str, event_id: uuid.UUID, token: str, count: int, posts: int = 5
) -> dict[str, float]:
    arrivals: list[float] = []
    ready = asyncio.Event()
    conns: list[ClientConnection] = []
    for start in range(0, count, 100):
        batch = range(start, min(count, start + 100))
        conns += await asyncio.gather(
            *(subscriber(ws_url, event_id, ready, arrivals, n) for n in batch)
        )
    await asyncio.sleep(1.0 + count / 500)  # let every subscription reach its hub
    latencies: list[float] = []
    async with httpx.AsyncClient(base_url=base) as client:
        for n in range(posts):
            arrivals.clear()
            sent = time.perf_counter()
            response = await client.post(
                "/graphql",
                json={"query": CREATE, "variables": {"eventId": str(event_id), "text": f"#{n}"}},
                headers={"Authorization": f"Bearer {token}"},
            )
            assert response.json()["data"]["createPost"]["__typename"] == "CreatePostPayload"
            deadline = time.perf_counter() + 10
            # Poll the list the listener tasks fill: 1 ms granularity is enough here.
            while len(arrivals) < count and time.perf_counter() < deadline:  # noqa: ASYNC110
                await asyncio.sleep(0.001)
            latencies += [(t - sent) * 1000 for t in arrivals]
            missing = count - len(arrivals)
            if missing:
                print(f"    post {n}: {missing} subscriber(s) did not receive it in 10 s")
            await asyncio.sleep(0.2)
    await asyncio.gather(*(c.close() for c in conns), return_exceptions=True)
    latencies.sort()
    return {
        "p50": statistics.median(latencies),
        "p99": latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))],
        "max": latencies[-1],
    }


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--admin-url",
        default=DEFAULT_ADMIN_URL,
        help="PostgreSQL admin URL (default: the local server, else an embedded one)",
    )
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--port", type=int, default=8731)
    parser.add_argument("--subscribers", default="1,100,1000")
    parser.add_argument("--client", choices=["auto", "wrk", "httpx"], default="auto")
    return parser.parse_args()


async def main(args: argparse.Namespace, admin_url: str) -> None:

    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 65536), hard))
    name = f"liventix_bench_feed_{os.getpid()}"
    url, event_id, fan = await prepare(admin_url, name)
    base = f"http://127.0.0.1:{args.port}"
    server = start_server(url, args.port, args.workers)
    try:
        await wait_ready(base, attempts=300)
        body = json.dumps({"query": PAGE_QUERY, "variables": {"eventId": str(event_id)}})
        async with httpx.AsyncClient() as client:  # warm up and check the answer
            for _ in range(50):
                response = await client.post(
                    f"{base}/graphql", content=body, headers={"Content-Type": "application/json"}
                )
                assert response.status_code == 200, response.text[:500]
                data = response.json()
            assert len(data["data"]["eventFeed"]["edges"]) == 20, data
        token = mint_token(load_settings(), fan, Role.USER)
        use_wrk = args.client == "wrk" or (args.client == "auto" and shutil.which("wrk"))
        tool = "wrk" if use_wrk else "httpx (Python)"
        rates: dict[str, float] = {}
        # A fan shares the response anonymous viewers get; the baseline is the same page
        # in a document the cache does not take, executed and serialized every time.
        uncached = json.dumps(
            {"query": UNCACHED_PAGE_QUERY, "variables": {"eventId": str(event_id)}}
        )
        for label, page_body, page_token in (
            ("anonymous (cacheable)", body, None),
            ("signed in, a fan (shared response)", body, token),
            ("signed in, full execution (baseline)", uncached, token),
        ):
            if use_wrk:
                page = run_wrk(base, page_body, args.connections, args.duration, page_token)
            else:
                page = await run_httpx(base, page_body, args.connections, args.duration, page_token)
            rates[label] = page["rps"]
            print(
                f"feed page (20 posts + author + event), {args.workers} workers, "
                f"{args.connections} connections, {tool}, {label}: "
                f"{page['rps']:.0f} req/s, "
                f"p50 {page['p50']:.1f} ms, p99 {page['p99']:.1f} ms"
                + (f", non-2xx {page['non_2xx']:.0f}" if page.get("non_2xx") else "")
            )
        cached, shared, full = rates.values()
        print(
            f"vs full execution: anonymous {cached / full:.1f}x, "
            f"signed-in fan {shared / full:.1f}x the requests/s"
        )
        ws_url = f"ws://127.0.0.1:{args.port}/graphql"
        for count in (int(c) for c in args.subscribers.split(",")):
            lat = await live_latency(base, ws_url, event_id, token, count)
            print(
                f"post -> subscriber, {count} subscriber(s): p50 {lat['p50']:.1f} ms, "
                f"p99 {lat['p99']:.1f} ms, max {lat['max']:.1f} ms"
            )
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
        await drop_database(admin_url, name)


if __name__ == "__main__":
    arguments = parse_args()
    with postgres_server(arguments.admin_url) as admin:
        asyncio.run(main(arguments, admin))
