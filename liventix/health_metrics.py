"""The ticketing health gauges: what the platform alerts on, read from PostgreSQL.

The `ticketing_health` job (one process at a time, every HEALTH_INTERVAL_SECONDS)
reads the figures (`db.ops_views.ticketing_health`), records them as its run's report
and sets these gauges (`export`). A process that did not run the job would show what it
read last, however old, so `/metrics` first sets them from the last recorded report
(`refresh`): every process shows the latest reading, whichever process took it.

They are the database's figures, the same for every process, so with several workers
they must not be summed: `mostrecent` shows the value written last, by whichever
process (a process that stops exporting leaves an older value, which loses).
`liventix_emails_dead` is one of them; the email sender refreshes it on its ticks too.
"""

from __future__ import annotations

import asyncio
import logging

from databases import Database
from prometheus_client import Gauge

import db.ops_views
from db.ops_views import TicketingHealth

log = logging.getLogger("liventix.health")

REFRESH_TIMEOUT_SECONDS = 1.0  # a scrape must not wait on a slow database


def _gauge(name: str, documentation: str) -> Gauge:
    return Gauge(name, documentation, multiprocess_mode="mostrecent")


PAID_ORDERS_WITHOUT_TICKETS = _gauge(
    "liventix_paid_orders_without_tickets", "Paid orders that have no tickets."
)
TIERS_NEGATIVE_AVAILABILITY = _gauge(
    "liventix_tiers_negative_availability",
    "Ticket tiers whose quantity is below reserved plus issued (oversold).",
)
GHOST_RESERVATIONS = _gauge(
    "liventix_ghost_reservations",
    "Seats reserved in tier counters beyond the tiers' active, unexpired holds (summed).",
)
EXPIRED_ACTIVE_HOLDS = _gauge(
    "liventix_expired_active_holds", "Holds still active after their expiry time."
)
OLDEST_EXPIRED_ACTIVE_HOLD = _gauge(
    "liventix_oldest_expired_active_hold_seconds",
    "How long past its expiry the oldest still-active hold is (0 if none): the hold "
    "cleanup's latency.",
)
UNSETTLED_REFUNDS = _gauge(
    "liventix_unsettled_refunds", "Refunds whose payment gateway call is not confirmed."
)
RECONCILIATION_MISMATCHES = _gauge(
    "liventix_reconciliation_mismatches",
    "What the last successful reconciliation found to repair (0 if the books agreed).",
)
EMAILS_DEAD = _gauge(
    "liventix_emails_dead",
    "Emails dead-lettered after their last attempt (all processes; from PostgreSQL).",
)


def export(health: TicketingHealth) -> None:
    """Set every gauge from one reading."""
    PAID_ORDERS_WITHOUT_TICKETS.set(health.paid_orders_without_tickets)
    TIERS_NEGATIVE_AVAILABILITY.set(health.tiers_negative_availability)
    GHOST_RESERVATIONS.set(health.ghost_reservations)
    EXPIRED_ACTIVE_HOLDS.set(health.expired_active_holds)
    OLDEST_EXPIRED_ACTIVE_HOLD.set(health.oldest_expired_active_hold_seconds)
    UNSETTLED_REFUNDS.set(health.unsettled_refunds)
    RECONCILIATION_MISMATCHES.set(health.reconciliation_mismatches)
    EMAILS_DEAD.set(health.dead_emails)


async def refresh(database: Database) -> None:
    """Set the gauges from the last recorded reading, if any. Bounded by
    `REFRESH_TIMEOUT_SECONDS`; a failure keeps the values there are (the scrape goes
    on: an unreachable database is what the other metrics must still report)."""
    try:
        async with asyncio.timeout(REFRESH_TIMEOUT_SECONDS):
            health = await db.ops_views.latest_ticketing_health(database)
    except Exception as exc:
        log.warning("could not read the last ticketing health report: %r", exc)
        return
    if health is not None:
        export(health)
