"""The ticketing health gauges: each driven above zero by breaking its invariant directly
in SQL, as the platform's incidents did, then read from `/metrics` after the health
job ran; zero on healthy books; every process shows the last recorded reading."""

from __future__ import annotations

from datetime import timedelta

import pytest
from databases import Database
from starlette.applications import Starlette

import db.jobs
import db.ops_views
from db.core import connection, transaction
from db.ops_views import TicketingHealth
from liventix import health_metrics, jobs
from liventix.clock import FrozenClock
from liventix.settings import load_settings
from tests.mail_support import notify_by_email
from tests.metrics_support import Scrape, scrape
from tests.orders_support import World, hold, paid_order, world
from tests.support import GraphQLClient, job_named, key_of

__all__ = ["world"]

GAUGES = {
    "paid_orders_without_tickets": "liventix_paid_orders_without_tickets",
    "tiers_negative_availability": "liventix_tiers_negative_availability",
    "ghost_reservations": "liventix_ghost_reservations",
    "expired_active_holds": "liventix_expired_active_holds",
    "oldest_expired_active_hold_seconds": "liventix_oldest_expired_active_hold_seconds",
    "unsettled_refunds": "liventix_unsettled_refunds",
    "reconciliation_mismatches": "liventix_reconciliation_mismatches",
    "dead_emails": "liventix_emails_dead",
}


def _gauges(scraped: Scrape) -> dict[str, float]:
    return {field: scraped.value(name) for field, name in GAUGES.items()}


async def _break_everything(
    client: GraphQLClient,
    app: Starlette,
    database: Database,
    world: World,
    clock: FrozenClock,
) -> None:
    """Every invariant the platform alerts on, broken the way its incidents broke it."""
    order = await paid_order(client, database, world, clock, 2)
    order_id = key_of(order["id"])
    # A reconciliation that had something to repair: a counter that drifted.
    async with transaction(database) as conn:
        await conn.execute(
            "UPDATE ticketing.ticket_tiers SET issued_quantity = 1 WHERE id = $1",
            world.free_tier_id,
        )
    report = await jobs.run_once(app.state.services, job_named("reconcile"))
    assert report is not None and len(report["corrected_tiers"]) == 1

    held = await hold(database, clock, world.buyer, world.tier_id, 1)
    _, _, outbox_id = await notify_by_email(database, clock.now())
    async with transaction(database) as conn:
        # A paid order whose tickets are gone.
        await conn.execute(
            """DELETE FROM ticketing.ticket_tokens WHERE ticket_id IN
                 (SELECT id FROM ticketing.tickets WHERE order_id = $1)""",
            order_id,
        )
        await conn.execute("DELETE FROM ticketing.tickets WHERE order_id = $1", order_id)
        # An oversold tier. The CHECK constraint forbids it now; the incident predates
        # it, so this test's database drops it.
        await conn.execute("ALTER TABLE ticketing.ticket_tiers DROP CONSTRAINT tier_never_oversold")
        await conn.execute(
            "UPDATE ticketing.ticket_tiers SET issued_quantity = quantity + 2 WHERE id = $1",
            world.free_tier_id,
        )
        # Seats reserved in the counter that no hold covers.
        await conn.execute(
            """UPDATE ticketing.ticket_tiers SET reserved_quantity = reserved_quantity + 7
                WHERE id = $1""",
            world.tier_id,
        )
        # A hold the sweeper never released, 90 seconds past its expiry (its seat is a
        # ghost too: no unexpired hold covers it).
        await conn.execute(
            "UPDATE ticketing.ticket_holds SET expires_at = $2 WHERE id = $1",
            held,
            clock.now() - timedelta(seconds=90),
        )
        # A refund whose gateway call was never confirmed.
        await conn.execute(
            """INSERT INTO ticketing.refunds (order_id, amount_cents, idempotency_key)
               VALUES ($1, 500, 'metrics-test-unconfirmed')""",
            order_id,
        )
        # An email that died.
        await conn.execute("UPDATE notify.outbox SET status = 'dead' WHERE id = $1", outbox_id)


async def test_each_broken_invariant_drives_its_gauge_above_zero(
    client: GraphQLClient,
    app: Starlette,
    database: Database,
    world: World,
    clock: FrozenClock,
) -> None:
    await _break_everything(client, app, database, world, clock)
    report = await jobs.run_once(app.state.services, job_named("ticketing_health"))
    assert report is not None
    expected = {
        "paid_orders_without_tickets": 1,
        "tiers_negative_availability": 1,
        "ghost_reservations": 7 + 1,
        "expired_active_holds": 1,
        "oldest_expired_active_hold_seconds": 90.0,
        "unsettled_refunds": 1,
        "reconciliation_mismatches": 1,
        "dead_emails": 1,
    }
    assert report == expected
    assert _gauges(await scrape(client.http)) == expected


async def test_healthy_books_export_zero_for_every_gauge(
    client: GraphQLClient,
    app: Starlette,
    database: Database,
    world: World,
    clock: FrozenClock,
) -> None:
    """Orders paid, holds live and unexpired, refunds settled: nothing to alert on (a
    live hold is not a ghost, an unexpired one not a lapsed one)."""
    await paid_order(client, database, world, clock, 2)
    await hold(database, clock, world.buyer, world.tier_id, 3)
    assert await jobs.run_once(app.state.services, job_named("ticketing_health")) is not None
    assert set(_gauges(await scrape(client.http)).values()) == {0.0}
    clock.advance(900)  # the hold lapses: the sweeper has 30 s before anyone is told
    await jobs.run_once(app.state.services, job_named("ticketing_health"))
    lapsed = _gauges(await scrape(client.http))
    assert lapsed["expired_active_holds"] == 1 and lapsed["ghost_reservations"] == 3
    assert lapsed["oldest_expired_active_hold_seconds"] == 0.0  # lapsed this very instant
    await jobs.run_once(app.state.services, job_named("sweep_holds"))
    await jobs.run_once(app.state.services, job_named("ticketing_health"))
    assert set(_gauges(await scrape(client.http)).values()) == {0.0}


async def test_metrics_shows_the_last_recorded_reading_whichever_process_took_it(
    client: GraphQLClient,
    app: Starlette,
    database: Database,
    world: World,
    clock: FrozenClock,
) -> None:
    """A process that did not run the job (another held its lock) still shows the
    latest reading: `/metrics` sets the gauges from the last recorded report first."""
    await _break_everything(client, app, database, world, clock)
    await jobs.run_once(app.state.services, job_named("ticketing_health"))
    health_metrics.export(TicketingHealth(0, 0, 0, 0, 0.0, 0, 0, 0))  # an older reading
    assert _gauges(await scrape(client.http))["paid_orders_without_tickets"] == 1
    latest = await db.ops_views.latest_ticketing_health(database)
    assert latest is not None and latest.ghost_reservations == 8


async def test_the_health_job_runs_in_one_process_at_a_time(
    client: GraphQLClient, app: Starlette, database: Database
) -> None:
    job = job_named("ticketing_health")
    assert job.exclusive and job.interval(app.state.services) == 30.0
    before = await scrape(client.http)
    async with db.jobs.exclusive(database, job.name) as acquired:  # "another process"
        assert acquired
        assert await jobs.run_once(app.state.services, job) is None
    after = await scrape(client.http)
    runs = "liventix_job_runs_total"
    assert after.delta(before, runs, job="ticketing_health", outcome="ok") == 0
    assert await jobs.run_once(app.state.services, job) is not None
    async with connection(database) as conn:
        recorded = await conn.fetchval(
            "SELECT count(*) FROM ops.job_runs WHERE job = 'ticketing_health' AND status = 'ok'"
        )
    assert recorded == 1


def test_the_interval_is_a_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HEALTH_INTERVAL_SECONDS", "12.5")
    assert load_settings().health_interval_seconds == 12.5
