"""Reconciliation: find where the books disagree with themselves, fix it, report it.

Four checks, each safe to run at any time beside live traffic:

* paid orders without tickets are completed (`db.completion.complete_order` repairs
  them, or refunds them if their capacity is gone);
* tier counters that drifted from the rows they count are corrected by
  `db.holds.repair_drift` (the one drift repair, which the hold sweeper uses too):
  ``reserved_quantity`` = sum of the tier's active holds, ``issued_quantity`` = count of
  its issued tickets. Candidates are found without locks, then locked, recounted and
  fixed in one transaction, retried on a deadlock or serialization failure, so a
  purchase that committed in between is never "corrected" away;
* refunds whose gateway call never confirmed are listed for the caller to retry;
* signed Stripe events the webhook refused as malformed are counted, the latest few
  listed (`db.payment_events`): nothing to repair automatically, but a person must look.

The operations views and the report history are read by `db.ops_views`.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from databases import Database

import db.completion
import db.holds
import db.payment_events
import db.refunds
from db.core import connection, retry_transient, transaction

JOB_NAME = "reconcile"
REJECTED_EVENTS_SHOWN = 5


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
    """Tiers whose reserved or issued counter disagrees with its rows (unlocked read)."""
    async with connection(database) as conn:
        return await db.holds.drifted_tiers(conn, issued=True)


@retry_transient
async def correct_tiers(
    database: Database, tier_ids: list[uuid.UUID], *, now: datetime
) -> list[dict[str, Any]]:
    """Recount and fix the given tiers under lock; returns what changed (or failed)."""
    async with transaction(database) as conn:
        repairs = await db.holds.repair_drift(conn, tier_ids, now)
    changes: list[dict[str, Any]] = []
    for repair in repairs:
        change: dict[str, Any] = {
            "tier_id": str(repair.tier_id),
            "reserved": list(repair.reserved),
            "issued": list(repair.issued),
        }
        if repair.error is not None:
            change["error"] = "true counts exceed capacity: needs a person"
        changes.append(change)
    return changes


async def reconcile(database: Database, *, now: datetime) -> dict[str, Any]:
    """Run every check once; the report lists each repair (and any refund to settle)."""
    completed: list[str] = []
    refunds: list[db.refunds.RefundRecord] = []
    for order_id in await orders_without_tickets(database):
        done = await db.completion.complete_order(database, order_id, now=now)
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
