"""What operations staff read: the health views, the alert counts, past reconciliations.

`ticketing.event_health` (per event: capacity, sold, reserved, available, ghost
reservations, paid orders without tickets, a health score) and
`ticketing.event_readiness` (per upcoming event: an overall status) are views defined
in the migrations under the names the platform's monitoring expects. Everything here
only reads.
"""

from __future__ import annotations

import uuid
from typing import Any

from databases import Database

import db.jobs
from db.core import connection
from db.reconcile import JOB_NAME


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
        orphans: int = await conn.fetchval(
            """SELECT COUNT(*) FROM ticketing.orders o
                WHERE o.status = 'paid' AND o.stripe_payment_intent_id IS NOT NULL
                  AND NOT EXISTS (SELECT 1 FROM ticketing.tickets t WHERE t.order_id = o.id)"""
        )
        negative: int = await conn.fetchval(
            """SELECT COUNT(*) FROM ticketing.ticket_tiers
                WHERE (quantity - reserved_quantity - issued_quantity) < 0"""
        )
    return orphans, negative
