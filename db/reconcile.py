"""Reconciliation: find where the books disagree with themselves, fix it, report it.

Four checks, each safe to run at any time beside live traffic:

* paid orders without tickets are completed (`db.orders.complete_order` repairs them,
  or refunds them if their capacity is gone);
* tier counters that drifted from the rows they count are corrected:
  ``reserved_quantity`` = sum of the tier's active holds, ``issued_quantity`` = count of
  its issued tickets. Candidates are found without locks, then locked (tiers in
  primary-key order, the first rows of `db.ticketing`'s lock order this check touches),
  recounted and fixed in one transaction, retried on a deadlock or serialization
  failure, so a purchase that committed in between is never "corrected" away;
* refunds whose gateway call never confirmed are listed for the caller to retry;
* signed Stripe events the webhook refused as malformed are counted, the latest few
  listed (`db.payment_events`): nothing to repair automatically, but a person must look.

The views `ticketing.event_health` and `ticketing.event_readiness` are read here too.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import asyncpg
from databases import Database

import db.jobs
import db.orders
import db.payment_events
import db.refunds
from db.core import connection, retry_transient, transaction
from db.notify import announce_tier

JOB_NAME = "reconcile"
REJECTED_EVENTS_SHOWN = 5

_COUNTS = """
    SELECT tt.id, tt.quantity, tt.reserved_quantity, tt.issued_quantity,
           coalesce((SELECT sum(h.quantity) FROM ticketing.ticket_holds h
                      WHERE h.tier_id = tt.id AND h.status = 'active'), 0)::int AS held,
           (SELECT count(*) FROM ticketing.tickets t
             WHERE t.tier_id = tt.id AND t.status = 'issued')::int AS issued
      FROM ticketing.ticket_tiers tt"""


async def orders_without_tickets(database: Database) -> list[uuid.UUID]:
    async with connection(database) as conn:
        rows = await conn.fetch(
            """SELECT id FROM ticketing.orders o
                WHERE o.status = 'paid'
                  AND NOT EXISTS (SELECT 1 FROM ticketing.tickets t WHERE t.order_id = o.id)
                ORDER BY created_at"""
        )
    return [row["id"] for row in rows]


async def drifted_tiers(database: Database) -> list[uuid.UUID]:
    async with connection(database) as conn:
        rows = await conn.fetch(
            f"""SELECT id FROM ({_COUNTS}) c
                 WHERE c.reserved_quantity <> c.held OR c.issued_quantity <> c.issued
                 ORDER BY id"""
        )
    return [row["id"] for row in rows]


@retry_transient
async def correct_tiers(
    database: Database, tier_ids: list[uuid.UUID], *, now: datetime
) -> list[dict[str, Any]]:
    """Recount and fix the given tiers under lock; returns what changed (or failed)."""
    changes: list[dict[str, Any]] = []
    async with transaction(database) as conn:
        await conn.execute(
            """SELECT 1 FROM ticketing.ticket_tiers WHERE id = ANY($1::uuid[])
                ORDER BY id FOR UPDATE""",
            tier_ids,
        )
        rows = await conn.fetch(f"{_COUNTS} WHERE tt.id = ANY($1::uuid[]) ORDER BY tt.id", tier_ids)
        for row in rows:
            if row["reserved_quantity"] == row["held"] and row["issued_quantity"] == row["issued"]:
                continue
            change = {
                "tier_id": str(row["id"]),
                "reserved": [row["reserved_quantity"], row["held"]],
                "issued": [row["issued_quantity"], row["issued"]],
            }
            try:
                await _set_counts(conn, row, now)
            except asyncpg.CheckViolationError:
                change["error"] = "true counts exceed capacity: needs a person"
            changes.append(change)
    return changes


async def _set_counts(conn: asyncpg.Connection, row: asyncpg.Record, now: datetime) -> None:
    async with conn.transaction():  # a savepoint: one bad tier doesn't undo the others
        tier = await conn.fetchrow(
            """UPDATE ticketing.ticket_tiers
                  SET reserved_quantity = $2, issued_quantity = $3, updated_at = $4
                WHERE id = $1
                RETURNING id, event_id, quantity, reserved_quantity, issued_quantity, version""",
            row["id"],
            row["held"],
            row["issued"],
            now,
        )
        await announce_tier(conn, tier)


async def reconcile(database: Database, *, now: datetime) -> dict[str, Any]:
    """Run every check once; the report lists each repair (and any refund to settle)."""
    completed: list[str] = []
    refunds: list[db.refunds.RefundRecord] = []
    for order_id in await orders_without_tickets(database):
        done = await db.orders.complete_order(database, order_id, now=now)
        if done.changed:
            completed.append(str(order_id))
        if done.refund is not None:
            refunds.append(done.refund)
    drifted = await drifted_tiers(database)
    corrected = await correct_tiers(database, drifted, now=now) if drifted else []
    unsettled = await db.refunds.unsettled_refunds(database)
    pending = {r.id: r for r in [*refunds, *unsettled]}
    rejected = await db.payment_events.rejected_summary(database, latest=REJECTED_EVENTS_SHOWN)
    return {
        "completed_orders": completed,
        "corrected_tiers": corrected,
        "refunds_to_settle": list(pending.values()),
        "rejected_events": rejected.to_report(),
    }


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


async def reports(database: Database, limit: int) -> list[dict[str, Any]]:
    return await db.jobs.recent_runs(database, JOB_NAME, limit)


async def alert_counts(database: Database) -> tuple[int, int]:
    """The platform's two alert queries (both 0 on a healthy database)."""
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
