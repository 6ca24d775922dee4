"""The runbooks in docs/runbooks cannot drift from the schema, the CLI or the metrics.

- Every ```sql block runs against a migrated database holding demo data, live holds,
  a paid order and recorded job runs: a block that only reads runs in a READ ONLY
  transaction (so it cannot write), a repair block (`-- Repair` first) in a transaction
  that is rolled back.
- For each ticketing alert, the invariant is broken the way the platform's incidents
  broke it; the page's confirming query finds exactly that, agrees with the figure the
  alert's metric is computed from, and the page's repair (the `liventix` command it
  names, run for real, or its SQL, rolled back afterwards) makes the query come back
  empty.
- Every `liventix <command>` a page names exists (`liventix <command> --help` exits 0);
  every ```promql block parses (promtool) and reads only exported metrics; the job
  advisory-lock keys the pages list are the ones the jobs take.
"""

from __future__ import annotations

import asyncio
import re
import textwrap
import uuid
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import orjson
import pytest
from databases import Database

import db.checkout
import db.completion
import db.demo
import db.jobs
import db.ops_views
import db.outbox
import db.reservations
from liventix import jobs
from liventix.cli import main
from liventix.clock import Clock, SystemClock
from liventix.payments.gateways import LocalGateway, PaymentGateway
from liventix.settings import Settings
from tests.ops_support import (
    EXPORTED,
    RUNBOOKS_DIR,
    family_name,
    metric_names,
    run_promtool,
)

# --- the pages' code blocks --------------------------------------------------------------

_FENCE = re.compile(
    r"^(?P<indent>[ ]*)```(?P<lang>[a-z]+)[ ]*\n(?P<body>.*?)^(?P=indent)```[ ]*$",
    re.MULTILINE | re.DOTALL,
)
_WRITE = re.compile(r"^\s*(INSERT|UPDATE|DELETE|ALTER|CREATE|DROP|TRUNCATE)\b", re.I | re.M)


@dataclass(frozen=True)
class Block:
    page: str
    lang: str
    number: int  # among the page's blocks of this language, from 1
    text: str

    def __str__(self) -> str:
        return f"{self.page}:{self.lang}{self.number}"

    @property
    def repair(self) -> bool:
        return self.text.startswith("-- Repair")

    @property
    def statements(self) -> str:
        """The SQL to run: a repair's `BEGIN;` and `COMMIT;` are the test's to give."""
        lines = [line for line in self.text.splitlines() if line not in ("BEGIN;", "COMMIT;")]
        return "\n".join(lines)


def all_blocks() -> list[Block]:
    found: list[Block] = []
    for path in sorted(RUNBOOKS_DIR.glob("*.md")):
        counts: dict[str, int] = {}
        for match in _FENCE.finditer(path.read_text()):
            lang = match.group("lang")
            counts[lang] = counts.get(lang, 0) + 1
            body = textwrap.dedent(match.group("body")).strip()
            found.append(Block(path.stem, lang, counts[lang], body))
    return found


def blocks(lang: str) -> list[Block]:
    return [b for b in all_blocks() if b.lang == lang]


def sql(page: str, containing: str = "") -> Block:
    """The page's one SQL block containing `containing` (its first block if empty)."""
    page_blocks = [b for b in blocks("sql") if b.page == page]
    if not containing:
        return page_blocks[0]
    (found,) = [b for b in page_blocks if containing in b.text]
    return found


def page_text(page: str) -> str:
    return (RUNBOOKS_DIR / f"{page}.md").read_text()


# --- running them --------------------------------------------------------------------------


@asynccontextmanager
async def rolled_back(conn: asyncpg.Connection, *, readonly: bool) -> AsyncIterator[None]:
    transaction = conn.transaction(readonly=readonly)
    await transaction.start()
    try:
        yield
    finally:
        await transaction.rollback()


async def read(conn: asyncpg.Connection, block: Block) -> list[dict[str, Any]]:
    """Run a reading block in a read-only transaction; its rows."""
    assert not block.repair, f"{block} is a repair"
    async with rolled_back(conn, readonly=True):
        rows = await conn.fetch(block.text)
    return [dict(row) for row in rows]


async def repair(conn: asyncpg.Connection, block: Block) -> None:
    """Run a repair block inside the caller's transaction."""
    assert block.repair, f"{block} is not a repair"
    await conn.execute(block.statements)


async def fetch(conn: asyncpg.Connection, block: Block) -> list[dict[str, Any]]:
    """Run a reading block inside the caller's (rolled-back) transaction."""
    return [dict(row) for row in await conn.fetch(block.text)]


# --- the database the blocks run against ---------------------------------------------------


@dataclass(frozen=True)
class Services:
    """What the job bodies use (`liventix.jobs.JobServices`)."""

    settings: Settings
    db: Database
    clock: Clock
    payments: PaymentGateway


@dataclass(frozen=True)
class Demo:
    general: uuid.UUID  # "General admission" of the first demo event (500 seats)
    vip: uuid.UUID  # "VIP" of the first demo event (40 seats)
    paid_order: uuid.UUID  # a paid order with its 2 VIP tickets, paid through Stripe
    services: Services


async def add_user(conn: asyncpg.Connection) -> uuid.UUID:
    user_id = uuid.uuid4()
    await conn.execute("INSERT INTO users.profiles (id) VALUES ($1)", user_id)
    return user_id


async def run_job(services: Services, name: str) -> dict[str, Any]:
    (job,) = [job for job in jobs.registry() if job.name == name]
    report = await jobs.run_once(services, job)
    assert report is not None and "error" not in report, report
    return report


@pytest.fixture
async def conn(database_url: str) -> AsyncIterator[asyncpg.Connection]:
    """A connection of its own, as an operator's psql session is."""
    connection = await asyncpg.connect(database_url)
    try:
        yield connection
    finally:
        await connection.close()


@pytest.fixture
async def healthy(database: Database, settings: Settings, conn: asyncpg.Connection) -> Demo:
    """Demo data in use: a buyer holding seats, a paid order with its tickets, and a
    run of the sweeper, the reconciliation and the health job, all with nothing wrong."""
    await db.demo.seed(database)
    now = datetime.now(UTC)
    tiers = {
        row["name"]: row["id"]
        for row in await conn.fetch(
            "SELECT name, id FROM ticketing.ticket_tiers WHERE event_id = $1",
            db.demo.EVENT_IDS[0],
        )
    }
    general, vip = tiers["General admission"], tiers["VIP"]
    await db.reservations.reserve_tickets(
        database, db.demo.FAN_ID, general, 2, now=now, ttl_seconds=900
    )
    buyer = await add_user(conn)
    hold = await db.reservations.reserve_tickets(database, buyer, vip, 2, now=now, ttl_seconds=900)
    pending = await db.checkout.create_pending_order(
        database,
        user_id=buyer,
        hold_ids=[hold.id],
        contact=db.checkout.Contact(email="buyer@example.com", name="Sam Buyer"),
        now=now,
    )
    paid = await db.completion.complete_order(
        database, pending.order.id, now=now, payment_intent_id="pi_runbook_paid"
    )
    assert len(paid.tickets) == 2
    services = Services(settings, database, SystemClock(), LocalGateway())
    for job in ("sweep_holds", "reconcile", "ticketing_health"):
        await run_job(services, job)
    return Demo(general, vip, pending.order.id, services)


@pytest.fixture
def cli(
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> Callable[..., Awaitable[tuple[int, str]]]:
    """`await cli("reconcile")`: the `liventix` command against this test's database,
    with nothing else configured (like an operator's shell with only DATABASE_URL); its
    exit status and what it printed."""
    monkeypatch.chdir(tmp_path)
    for name in Settings.model_fields:
        monkeypatch.delenv(name.upper(), raising=False)
    monkeypatch.setenv("DATABASE_URL", database_url)

    async def run(*argv: str) -> tuple[int, str]:
        capsys.readouterr()
        code = await asyncio.to_thread(main, list(argv))  # it runs its own event loop
        return code, capsys.readouterr().out

    return run


async def reconcile(cli: Callable[..., Awaitable[tuple[int, str]]]) -> dict[str, Any]:
    code, out = await cli("reconcile")
    assert code == 0, out
    report: dict[str, Any] = orjson.loads(out)
    return report


async def health(demo: Demo) -> db.ops_views.TicketingHealth:
    """The figures the ticketing alerts' metrics are set from, read now."""
    return await db.ops_views.ticketing_health(demo.services.db, datetime.now(UTC))


# --- every block ---------------------------------------------------------------------------


@pytest.mark.parametrize("block", blocks("sql"), ids=str)
async def test_sql_block_runs_against_the_schema(
    block: Block, healthy: Demo, conn: asyncpg.Connection
) -> None:
    if block.repair:
        async with rolled_back(conn, readonly=False):
            await repair(conn, block)
    else:
        await read(conn, block)


@pytest.mark.static
@pytest.mark.parametrize("block", [b for b in blocks("sql") if b.repair], ids=str)
def test_repair_blocks_that_write_are_one_transaction(block: Block) -> None:
    if _WRITE.search(block.text):
        lines = block.text.splitlines()
        assert lines[1] == "BEGIN;" and lines[-1] == "COMMIT;", block


@pytest.mark.static
def test_every_page_confirms_with_sql() -> None:
    pages = {path.stem for path in RUNBOOKS_DIR.glob("*.md")} - {"README"}
    assert pages
    for page in pages:
        text = page_text(page)
        assert [b for b in blocks("sql") if b.page == page], f"{page} has no SQL"
        for heading in ("## What it means", "## Confirm", "## Repair", "## Verify"):
            assert heading in text, f"{page} lacks {heading!r}"


# --- commands ------------------------------------------------------------------------------

# The command at the start of a line, or run in a compose service (`exec api liventix`).
_COMMAND = re.compile(r"(?:^|\bexec [a-z0-9-]+ )liventix((?: [a-z][a-z0-9-]*)+)", re.MULTILINE)
_CODE_SPAN = re.compile(r"`([^`\n]+)`")


def named_commands() -> list[tuple[str, ...]]:
    """Each `liventix <command>` in code (blocks and spans) of any page."""
    found: set[tuple[str, ...]] = set()
    for path in RUNBOOKS_DIR.glob("*.md"):
        text = path.read_text()
        code = [b.text for b in all_blocks() if b.page == path.stem and b.lang == "sh"]
        code += _CODE_SPAN.findall(text)
        for snippet in code:
            for match in _COMMAND.finditer(snippet):
                found.add(tuple(match.group(1).split()))
    return sorted(found)


@pytest.mark.static
def test_the_pages_name_the_repair_commands() -> None:
    assert ("reconcile",) in named_commands()
    assert ("migrate",) in named_commands()


@pytest.mark.static
@pytest.mark.parametrize("command", named_commands(), ids=" ".join)
def test_named_command_exists(command: tuple[str, ...], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main([*command, "--help"])
    assert exit_.value.code == 0, capsys.readouterr().err
    assert f"usage: liventix {' '.join(command)}" in capsys.readouterr().out


# --- PromQL and job locks ------------------------------------------------------------------


@pytest.mark.static
def test_promql_blocks_parse_and_read_exported_metrics(tmp_path: Path) -> None:
    queries = blocks("promql")
    assert queries
    for block in queries:
        for series in metric_names(block.text):
            assert family_name(series, EXPORTED) in EXPORTED, f"{block}: {series}"
    rules = {
        "groups": [
            {
                "name": "runbooks",
                "rules": [
                    {"record": f"runbook:{b.page}:{b.number}", "expr": b.text} for b in queries
                ],
            }
        ]
    }
    path = tmp_path / "runbook_queries.yml"
    path.write_text(orjson.dumps(rules).decode())  # JSON is YAML
    result = run_promtool("check", "rules", str(path))
    assert result.returncode == 0, result.stdout + result.stderr


_LOCK_PAIR = re.compile(r"\('([a-z_]+)', (\d+)\)")
_SWEEPER_LOCK = re.compile(r"l\.objid = (\d+)")


@pytest.mark.static
def test_job_lock_keys_are_the_ones_the_jobs_take() -> None:
    """`db.jobs.exclusive` locks crc32("liventix.job.<name>"); the pages hard-code it."""
    registered = {job.name for job in jobs.registry()}
    pairs: set[tuple[str, int]] = set()
    for block in blocks("sql"):
        pairs |= {(name, int(key)) for name, key in _LOCK_PAIR.findall(block.text)}
        if "sweeper" in block.page.lower() or block.page == "HoldCleanupLatencyHigh":
            pairs |= {("sweep_holds", int(key)) for key in _SWEEPER_LOCK.findall(block.text)}
    assert {name for name, _ in pairs} == {j.name for j in jobs.registry() if j.exclusive}
    for name, key in pairs:
        assert name in registered
        assert key == zlib.crc32(f"liventix.job.{name}".encode()), name


async def test_lock_queries_find_the_process_running_a_job(
    healthy: Demo, conn: asyncpg.Connection
) -> None:
    async with db.jobs.exclusive(healthy.services.db, "sweep_holds") as acquired:
        assert acquired
        for page in ("HoldSweeperStalled", "HoldCleanupLatencyHigh"):
            (row,) = await read(conn, sql(page, "AS held_for"))
            assert row["pid"] != conn.get_server_pid()
        rows = await read(conn, sql("JobStalled", "VALUES"))
        assert [row["job"] for row in rows] == ["sweep_holds"]
        # The repair ends only a session that has held the lock for over a minute.
        async with rolled_back(conn, readonly=False):
            await repair(conn, sql("HoldSweeperStalled", "-- Repair"))
        assert len(await read(conn, sql("HoldSweeperStalled", "AS held_for"))) == 1


# --- the ticketing incidents, confirmed and repaired ---------------------------------------


CONFIRMING_PAGES = (
    "PaidOrdersWithoutTickets",
    "NegativeAvailability",
    "GhostReservations",
    "HoldCleanupLatencyHigh",
    "HoldSweeperFailing",
    "ReconciliationMismatch",
    "UnsettledRefunds",
    "EmailsDeadLettered",
)


@pytest.mark.parametrize("page", CONFIRMING_PAGES)
async def test_confirming_query_is_empty_on_a_healthy_database(
    page: str, healthy: Demo, conn: asyncpg.Connection
) -> None:
    assert await read(conn, sql(page)) == []


async def test_paid_orders_without_tickets(
    healthy: Demo, conn: asyncpg.Connection, cli: Callable[..., Awaitable[tuple[int, str]]]
) -> None:
    page = "PaidOrdersWithoutTickets"
    buyer = await add_user(conn)
    order_id = await conn.fetchval(
        """INSERT INTO ticketing.orders (event_id, user_id, status, stripe_payment_intent_id,
                                         total_cents, paid_at)
           VALUES ($1, $2, 'paid', 'pi_runbook_orphan', 9000, now()) RETURNING id""",
        db.demo.EVENT_IDS[0],
        buyer,
    )
    await conn.execute(
        """INSERT INTO ticketing.order_items (order_id, tier_id, quantity, unit_price_cents)
           VALUES ($1, $2, 2, 4500)""",
        order_id,
        healthy.general,
    )

    found = await read(conn, sql(page))
    assert [row["order_id"] for row in found] == [order_id]
    assert (await health(healthy)).paid_orders_without_tickets == len(found)
    (event,) = await read(conn, sql(page, "ticketing.event_health"))
    assert event["paid_orders_without_tickets"] == 1
    (item,) = await read(conn, sql(page, "still_held"))
    assert (item["bought"], item["still_held"]) == (2, 0) and item["free_now"] >= 2

    report = await reconcile(cli)
    assert report["completed_orders"] == [str(order_id)]
    assert await read(conn, sql(page)) == []
    assert await read(conn, sql(page, "AS issued")) == []
    assert (await reconcile(cli))["completed_orders"] == []


async def test_negative_availability(
    healthy: Demo, conn: asyncpg.Connection, cli: Callable[..., Awaitable[tuple[int, str]]]
) -> None:
    page = "NegativeAvailability"
    # The platform's incident: no constraint, and a counter above the tier's quantity.
    await conn.execute("ALTER TABLE ticketing.ticket_tiers DROP CONSTRAINT tier_never_oversold")
    await conn.execute(
        "UPDATE ticketing.ticket_tiers SET reserved_quantity = quantity + 3 WHERE id = $1",
        healthy.vip,
    )

    (tier,) = await read(conn, sql(page))
    assert (tier["tier_id"], tier["available"]) == (healthy.vip, -5)  # 40 - 43 - 2 sold
    assert (await health(healthy)).tiers_negative_availability == 1
    constraints = await read(conn, sql(page, "pg_get_constraintdef"))
    assert {c["conname"] for c in constraints} == {
        "tier_issued_nonnegative",
        "tier_reserved_nonnegative",
    }
    (counts,) = await read(conn, sql(page, "issued_tickets"))
    assert (counts["held"], counts["issued_tickets"]) == (0, 2)  # drift, not an oversell

    restore = sql(page, "-- Repair")
    with pytest.raises(asyncpg.CheckViolationError):  # refused while a tier is negative
        async with rolled_back(conn, readonly=False):
            await repair(conn, restore)

    report = await reconcile(cli)
    assert [c["tier_id"] for c in report["corrected_tiers"]] == [str(healthy.vip)]
    assert await read(conn, sql(page)) == []
    async with rolled_back(conn, readonly=False):
        await repair(conn, restore)
        restored = await fetch(conn, sql(page, "pg_get_constraintdef"))
        assert len(restored) == 3 and all(c["convalidated"] for c in restored)


async def test_ghost_reservations_and_hold_cleanup_latency(
    healthy: Demo, conn: asyncpg.Connection, cli: Callable[..., Awaitable[tuple[int, str]]]
) -> None:
    # The platform's incident: holds that expired 45 minutes ago, never swept; and a
    # counter above the tier's holds (a manual edit).
    an_hour_ago = datetime.now(UTC) - timedelta(hours=1)
    for _ in range(3):
        await db.reservations.reserve_tickets(
            healthy.services.db,
            await add_user(conn),
            healthy.general,
            4,
            now=an_hour_ago,
            ttl_seconds=900,
        )
    await conn.execute(
        "UPDATE ticketing.ticket_tiers SET reserved_quantity = reserved_quantity + 5 WHERE id = $1",
        healthy.vip,
    )

    ghosts = {row["tier_id"]: row for row in await read(conn, sql("GhostReservations"))}
    assert set(ghosts) == {healthy.general, healthy.vip}
    general, vip = ghosts[healthy.general], ghosts[healthy.vip]
    assert (general["ghost_seats"], general["held_expired"], general["held_unexpired"]) == (
        12,
        12,
        2,
    )
    assert (vip["ghost_seats"], vip["held_expired"]) == (5, 0)
    figures = await health(healthy)
    assert figures.ghost_reservations == sum(row["ghost_seats"] for row in ghosts.values())
    (event,) = await read(conn, sql("GhostReservations", "ticketing.event_health"))
    assert event["ghost_reservations"] == 12

    (late,) = await read(conn, sql("HoldCleanupLatencyHigh"))
    assert (late["expired_active_holds"], late["seats"]) == (3, 12)
    assert late["expired_active_holds"] == figures.expired_active_holds
    assert late["oldest_seconds_past_expiry"] >= 45 * 60
    assert abs(late["oldest_seconds_past_expiry"] - figures.oldest_expired_active_hold_seconds) < 60

    for page in ("GhostReservations", "HoldCleanupLatencyHigh"):
        async with rolled_back(conn, readonly=False):
            await repair(conn, sql(page, "-- Repair"))
            left = await fetch(conn, sql("GhostReservations"))
            assert [row["tier_id"] for row in left] == [healthy.vip]  # drift is reconcile's
            assert await fetch(conn, sql("HoldCleanupLatencyHigh")) == []

    report = await reconcile(cli)
    assert [c["tier_id"] for c in report["corrected_tiers"]] == [str(healthy.vip)]
    left = await read(conn, sql("GhostReservations"))
    assert [row["tier_id"] for row in left] == [healthy.general]  # the sweeper's share


async def test_reconciliation_mismatch(
    healthy: Demo, conn: asyncpg.Connection, cli: Callable[..., Awaitable[tuple[int, str]]]
) -> None:
    page = "ReconciliationMismatch"
    await conn.execute(
        "UPDATE ticketing.ticket_tiers SET reserved_quantity = reserved_quantity + 5 WHERE id = $1",
        healthy.vip,
    )
    await reconcile(cli)

    (run,) = await read(conn, sql(page))
    assert run["items"] == 1 == (await health(healthy)).reconciliation_mismatches
    (tier,) = await read(conn, sql(page, "jsonb_to_recordset"))
    assert (tier["tier_id"], tier["reserved"], tier["error"]) == (healthy.vip, "[5, 0]", None)
    assert await read(conn, sql(page, "jsonb_array_elements_text")) == []
    runs = await read(conn, sql(page, "jsonb_array_length"))
    assert runs[0]["corrected_tiers"] == 1

    await reconcile(cli)
    assert await read(conn, sql(page)) == []


async def test_unsettled_refunds(
    healthy: Demo, conn: asyncpg.Connection, cli: Callable[..., Awaitable[tuple[int, str]]]
) -> None:
    page = "UnsettledRefunds"
    refund_id = await conn.fetchval(
        """INSERT INTO ticketing.refunds (order_id, amount_cents, idempotency_key, reason, note)
           VALUES ($1, 15000, 'refund-runbook-1', 'other', 'the gateway timed out')
           RETURNING id""",
        healthy.paid_order,
    )

    found = await read(conn, sql(page))
    assert [row["refund_id"] for row in found] == [refund_id]
    assert (await health(healthy)).unsettled_refunds == 1

    report = await reconcile(cli)
    assert report["refunds_settled"] == [str(refund_id)]
    assert await read(conn, sql(page)) == []
    (latest, *_) = await read(conn, sql(page, "refunds_unsettled"))
    assert latest["refunds_unsettled"] == "[]"


async def test_emails_dead_lettered(healthy: Demo, conn: asyncpg.Connection) -> None:
    page = "EmailsDeadLettered"
    await conn.executemany(
        """INSERT INTO notify.outbox (user_id, channel, digest_period, status, reason,
                                      local_day, due_at, attempts, last_error, created_at)
           VALUES ($1, 'email', 'daily:2026-11-29', 'dead', $2, current_date, now(), $3,
                   $4, now())""",
        [
            (db.demo.FAN_ID, "failed 8 times", 8, "421 try again later"),
            (db.demo.ORGANIZER_ID, "refused by the mail server", 1, "550 no such user"),
        ],
    )

    assert len(await read(conn, sql(page))) == 2 == await db.outbox.count_dead(healthy.services.db)
    causes = {row["reason"]: row["emails"] for row in await read(conn, sql(page, "first_died"))}
    assert causes == {"failed 8 times": 1, "refused by the mail server": 1}

    verify = sql(page, "7 days")
    before = {row["status"]: row["emails"] for row in await read(conn, verify)}
    async with rolled_back(conn, readonly=False):
        await repair(conn, sql(page, "-- Repair: requeue"))
        (left,) = await fetch(conn, sql(page))
        assert left["reason"] == "refused by the mail server"
        await repair(conn, sql(page, "-- Repair: close"))
        assert await fetch(conn, sql(page)) == []
        after = {row["status"]: row["emails"] for row in await fetch(conn, verify)}
        assert before["dead"] == 2 and "dead" not in after
        assert after["pending"] == before.get("pending", 0) + 1
        assert after["skipped"] == before.get("skipped", 0) + 1


async def test_hold_sweeper_failures(healthy: Demo, conn: asyncpg.Connection) -> None:
    page = "HoldSweeperFailing"
    await db.jobs.record_run(
        healthy.services.db,
        "sweep_holds",
        10.0,
        error="QueryCanceledError('canceling statement due to statement timeout')",
    )
    (failed,) = await read(conn, sql(page))
    assert "statement timeout" in failed["error"]
    outcomes = {row["status"]: row["runs"] for row in await read(conn, sql(page, "15 minutes"))}
    assert outcomes == {"failed": 1, "ok": 1}


async def test_job_overview_lists_every_job_that_ran(
    healthy: Demo, conn: asyncpg.Connection
) -> None:
    rows = await read(conn, sql("JobStalled"))
    assert {row["job"] for row in rows} == {"sweep_holds", "reconcile", "ticketing_health"}
    assert all(row["last_success"] is not None for row in rows)
    (reading,) = await read(conn, sql("README", "ticketing_health"))
    assert orjson.loads(reading["report"])["paid_orders_without_tickets"] == 0
