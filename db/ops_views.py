"""What operations staff read: the health views, the alert counts, past reconciliations.

`ticketing.event_health` (per event: capacity, sold, reserved, available, ghost
reservations, paid orders without tickets, a health score) and
`ticketing.event_readiness` (per upcoming event: an overall status) are views defined
in the migrations under the names the platform's monitoring expects. Everything here
only reads.

`ticketing_health` gathers, for the `ticketing_health` job, every figure the platform
alerts on (each 0 on a healthy database); the job records them as its report, so any
process can export the latest reading (`latest_ticketing_health`).
"""

from __future__ import annotations

import uuid
from dataclasses import asdict, dataclass, fields
from datetime import datetime
from typing import Any

from databases import Database

import db.jobs
import db.outbox
import db.refunds
from db.core import connection
from db.reconcile import JOB_NAME

HEALTH_JOB_NAME = "ticketing_health"

# The platform's alert queries, shared by `alert_counts` and `ticketing_health`.
_PAID_WITHOUT_TICKETS = """
    SELECT count(*) FROM ticketing.orders o
     WHERE o.status = 'paid' AND o.stripe_payment_intent_id IS NOT NULL
       AND NOT EXISTS (SELECT 1 FROM ticketing.tickets t WHERE t.order_id = o.id)"""
_NEGATIVE_AVAILABILITY = """
    SELECT count(*) FROM ticketing.ticket_tiers
     WHERE (quantity - reserved_quantity - issued_quantity) < 0"""


async def event_health(
    database: Database, event_ids: list[uuid.UUID] | None
) -> list[dict[str, Any]]:
    async with connection(database) as conn:
        rows = await conn.fetch(
            """SELECT * FROM ticketing.event_health
                WHERE $1::uuid[] IS NULL OR event_id = ANY($1::uuid[])
                ORDER BY start_at, event_id""",
            event_ids,
        )
    return [dict(row) for row in rows]


async def event_readiness(database: Database) -> list[dict[str, Any]]:
    async with connection(database) as conn:
        rows = await conn.fetch(
            "SELECT * FROM ticketing.event_readiness ORDER BY start_at, event_id"
        )
    return [dict(row) for row in rows]


async def reconciliation_reports(database: Database, limit: int) -> list[dict[str, Any]]:
    """The latest reconciliation runs, newest first."""
    return await db.jobs.recent_runs(database, JOB_NAME, limit)


async def reconciliation_report(database: Database, run_id: int) -> dict[str, Any] | None:
    """One reconciliation run, or None."""
    return await db.jobs.get_run(database, JOB_NAME, run_id)


async def alert_counts(database: Database) -> tuple[int, int]:
    """The platform's two alert queries (both 0 on a healthy database): paid orders
    without tickets, and tiers with negative availability."""
    async with connection(database) as conn:
        orphans: int = await conn.fetchval(_PAID_WITHOUT_TICKETS)
        negative: int = await conn.fetchval(_NEGATIVE_AVAILABILITY)
    return orphans, negative


@dataclass(frozen=True, slots=True)
class TicketingHealth:
    """What the platform alerts on; every figure is 0 on a healthy database."""

    paid_orders_without_tickets: int
    tiers_negative_availability: int
    ghost_reservations: int
    """Seats reserved in tier counters beyond their active, unexpired holds (summed)."""
    expired_active_holds: int
    """Holds still active after their expiry: the sweeper has not released them."""
    oldest_expired_active_hold_seconds: float
    """How long past its expiry the oldest of those is: the cleanup's latency."""
    unsettled_refunds: int
    reconciliation_mismatches: int
    """What the last successful reconciliation found to repair (its items)."""
    dead_emails: int

    @property
    def failing_checks(self) -> int:
        """How many of the figures are not 0."""
        return sum(1 for value in asdict(self).values() if value)

    def as_report(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_report(cls, report: dict[str, Any]) -> TicketingHealth:
        """A reading back from a job report (a figure the report lacks is 0)."""
        values = {f.name: report.get(f.name, 0) for f in fields(cls)}
        return cls(**values)


# Over tiers with reserved seats: the seats their active holds still cover (a hold
# expires at `expires_at`, as `db.holds` has it) against what the counter says.
_TICKETING_HEALTH = f"""
SELECT ({_PAID_WITHOUT_TICKETS}) AS paid_orders_without_tickets,
       ({_NEGATIVE_AVAILABILITY}) AS tiers_negative_availability,
       (SELECT coalesce(sum(greatest(tt.reserved_quantity - coalesce(h.held, 0), 0)), 0)
          FROM ticketing.ticket_tiers tt
          LEFT JOIN (SELECT tier_id, sum(quantity) AS held FROM ticketing.ticket_holds
                      WHERE status = 'active' AND expires_at > $1
                      GROUP BY tier_id) h ON h.tier_id = tt.id
         WHERE tt.reserved_quantity > 0) AS ghost_reservations,
       expired.count AS expired_active_holds,
       coalesce(extract(epoch FROM $1 - expired.oldest), 0) AS oldest_expired_active_hold_seconds
  FROM (SELECT count(*) AS count, min(expires_at) AS oldest FROM ticketing.ticket_holds
         WHERE status = 'active' AND expires_at <= $1) expired"""


async def ticketing_health(database: Database, now: datetime) -> TicketingHealth:
    """Read every health figure as of `now` (the injected clock: hold expiry is judged
    by it). A few reads, no locks: safe beside live traffic every few seconds."""
    async with connection(database) as conn:
        row = await conn.fetchrow(_TICKETING_HEALTH, now)
        unsettled = await db.refunds.count_unsettled(database)
        dead = await db.outbox.count_dead(database)
        reconciled = await db.jobs.last_ok_run(database, JOB_NAME)
    assert row is not None
    return TicketingHealth(
        paid_orders_without_tickets=int(row["paid_orders_without_tickets"]),
        tiers_negative_availability=int(row["tiers_negative_availability"]),
        ghost_reservations=int(row["ghost_reservations"]),
        expired_active_holds=int(row["expired_active_holds"]),
        oldest_expired_active_hold_seconds=float(row["oldest_expired_active_hold_seconds"]),
        unsettled_refunds=unsettled,
        reconciliation_mismatches=int(reconciled["items"]) if reconciled else 0,
        dead_emails=dead,
    )


async def latest_ticketing_health(database: Database) -> TicketingHealth | None:
    """The figures of the last successful `ticketing_health` run, or None."""
    run = await db.jobs.last_ok_run(database, HEALTH_JOB_NAME)
    return TicketingHealth.from_report(run["report"]) if run else None
