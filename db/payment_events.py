"""Stripe events: each recorded once by its id, then applied to its order, or refused.

`process_payment_event` records a readable event in `ticketing.stripe_events` (whose
key makes each id appear once), with the order it concerns and what a payment
collected (settlement, `db.settlement`, compares that with the order), and applies it
in the same transaction: a success completes the order (`db.completion`), a failure
fails a pending order, a refund made at Stripe refunds the order (`db.refunds`). A
redelivery finds the id recorded and changes nothing; events out of order are harmless
because each handler locks the order first and only moves its status forward.

A correctly signed event whose body we cannot read (a field of the wrong type, a
negative amount) is answered 400, so Stripe retries it for days and then gives up;
nothing else would tell a person. `record_rejected` records it in the same table with
a result of ``rejected: <reason>`` and no effect on any order; reconciliation reads
them back (`rejected_summary`).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg
from databases import Database

import db.code_uses
import db.holds
from db.completion import complete_locked, lock_order_stock
from db.core import connection, retry_transient, transaction
from db.order_records import ORDER_COLUMNS, REOPENABLE_STATUSES, OrderRecord
from db.refund_rules import RefundReason
from db.refunds import RefundRecord, refund_tickets_locked

REJECTED_PREFIX = "rejected: "
SUCCEEDED = "payment_intent.succeeded"
"""The event type that records money collected for an order (`amount_cents`)."""


@dataclass(frozen=True, slots=True)
class RejectedEvent:
    """One refused event: its (possibly synthetic) id, type and why it was refused."""

    id: str
    type: str
    received_at: datetime
    reason: str

    def to_report(self) -> dict[str, Any]:
        """JSON-ready, for the reconciliation report."""
        return {
            "id": self.id,
            "type": self.type,
            "received_at": self.received_at.isoformat(),
            "reason": self.reason,
        }


@dataclass(frozen=True, slots=True)
class RejectedSummary:
    """How many events were ever refused, and the latest few (newest first)."""

    count: int
    latest: list[RejectedEvent]

    def to_report(self) -> dict[str, Any]:
        return {"count": self.count, "latest": [event.to_report() for event in self.latest]}


async def record_rejected(
    database: Database, event_id: str, event_type: str, reason: str, *, now: datetime
) -> bool:
    """Record a refused event under `event_id`; True if this is its first record.

    ON CONFLICT DO NOTHING: a redelivery of the same body is recorded once, and an id
    already processed normally keeps its record (the refusal changes nothing). One
    statement, so it is its own transaction.
    """
    async with connection(database) as conn:
        inserted = await conn.fetchval(
            """INSERT INTO ticketing.stripe_events (id, type, received_at, processed_at, result)
               VALUES ($1, $2, $3, $3, $4)
               ON CONFLICT (id) DO NOTHING RETURNING id""",
            event_id,
            event_type,
            now,
            REJECTED_PREFIX + reason,
        )
    return inserted is not None


async def rejected_summary(database: Database, *, latest: int) -> RejectedSummary:
    """The number of refused events and the `latest` most recent ones.

    A scan of the event log: it runs once per reconciliation, not on a request path.
    """
    pattern = REJECTED_PREFIX + "%"
    async with connection(database) as conn:
        total: int = await conn.fetchval(
            "SELECT count(*) FROM ticketing.stripe_events WHERE result LIKE $1", pattern
        )
        rows = await conn.fetch(
            """SELECT id, type, received_at, result FROM ticketing.stripe_events
                WHERE result LIKE $1 ORDER BY received_at DESC, id DESC LIMIT $2""",
            pattern,
            latest,
        )
    events = [
        RejectedEvent(
            id=row["id"],
            type=row["type"],
            received_at=row["received_at"],
            reason=row["result"].removeprefix(REJECTED_PREFIX),
        )
        for row in rows
    ]
    return RejectedSummary(count=total, latest=events)


# --- applied events -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PaymentEvent:
    """The parts of a Stripe event this service acts on."""

    id: str
    type: str
    payment_intent_id: str | None
    order_id: uuid.UUID | None
    amount_refunded: int | None = None
    amount_received: int | None = None
    """What a payment intent collected (`payment_intent.*`), recorded for settlement."""
    failure_message: str | None = None
    refund_id: str | None = None
    ours: bool = False  # a refund this service asked for (its metadata says so)


@dataclass(frozen=True, slots=True)
class EventOutcome:
    duplicate: bool
    result: str
    order: OrderRecord | None = None
    refund: RefundRecord | None = None


@retry_transient
async def process_payment_event(
    database: Database, event: PaymentEvent, *, now: datetime
) -> EventOutcome:
    """Record the Stripe event id once and apply it, in one transaction.

    The UNIQUE event id makes a redelivery a no-op (a concurrent duplicate waits on the
    first insert and then sees the conflict); if applying fails the record rolls back
    too, so Stripe's retry is processed. Out-of-order events are harmless because each
    handler locks the order and only moves its status forward.
    """
    async with transaction(database) as conn:
        fresh = await conn.fetchval(
            """INSERT INTO ticketing.stripe_events (id, type, received_at) VALUES ($1, $2, $3)
               ON CONFLICT (id) DO NOTHING RETURNING id""",
            event.id,
            event.type,
            now,
        )
        if fresh is None:
            return EventOutcome(duplicate=True, result="duplicate")
        order_id = await _find_order(conn, event)
        if order_id is None:
            outcome = EventOutcome(duplicate=False, result="unknown_order")
        elif event.type == SUCCEEDED:
            done = await complete_locked(conn, order_id, now, event.payment_intent_id)
            result = "refunded_late" if done.refund else ("paid" if done.changed else "unchanged")
            outcome = EventOutcome(False, result, done.order, done.refund)
        elif event.type == "payment_intent.payment_failed":
            outcome = await _fail_locked(conn, order_id, event.failure_message, now)
        elif event.type in ("charge.refunded", "refund.created", "refund.updated"):
            outcome = await _external_refund_locked(conn, order_id, event, now)
        else:
            outcome = EventOutcome(duplicate=False, result="ignored")
        await conn.execute(
            """UPDATE ticketing.stripe_events
                  SET processed_at = $2, result = $3, order_id = $4, amount_cents = $5
                WHERE id = $1""",
            event.id,
            now,
            outcome.result,
            order_id,
            event.amount_received,
        )
    return outcome


async def _find_order(conn: asyncpg.Connection, event: PaymentEvent) -> uuid.UUID | None:
    if event.order_id is not None:
        found: uuid.UUID | None = await conn.fetchval(
            """SELECT id FROM ticketing.orders WHERE id = $1
                 AND ($2::text IS NULL OR stripe_payment_intent_id IS NULL
                      OR stripe_payment_intent_id = $2)""",
            event.order_id,
            event.payment_intent_id,
        )
        return found
    if event.payment_intent_id is None:
        return None
    by_intent: uuid.UUID | None = await conn.fetchval(
        "SELECT id FROM ticketing.orders WHERE stripe_payment_intent_id = $1",
        event.payment_intent_id,
    )
    return by_intent


async def _fail_locked(
    conn: asyncpg.Connection, order_id: uuid.UUID, message: str | None, now: datetime
) -> EventOutcome:
    """A failed payment fails a pending order only; its holds stay until they expire, its
    discount code use is given back (a late success takes one again if it can)."""
    row = await conn.fetchrow(
        f"""UPDATE ticketing.orders SET status = 'failed', failure_reason = $2, updated_at = $3
             WHERE id = $1 AND status = 'pending' RETURNING {ORDER_COLUMNS}""",
        order_id,
        (message or "payment failed")[:500],
        now,
    )
    if row is None:
        return EventOutcome(duplicate=False, result="unchanged")
    await db.code_uses.release_uses(conn, [order_id], now)
    return EventOutcome(duplicate=False, result="failed", order=OrderRecord.from_row(row))


async def _external_refund_locked(
    conn: asyncpg.Connection, order_id: uuid.UUID, event: PaymentEvent, now: datetime
) -> EventOutcome:
    """A refund made at Stripe (dashboard, dispute tooling) or echoing ours.

    Ours, one our own refunds already explain (Stripe's total refunded is no more than
    what this order has recorded: the echo of partial refunds made through this API,
    however often it comes), or one that does not cover what is still unrefunded,
    changes nothing (partial refunds are made through this API). A full refund of a
    paid order voids its tickets; of an order whose success has not arrived yet, it
    ends the order as refunded and releases its holds, so the late success finds it
    final.
    """
    row = await conn.fetchrow(
        f"SELECT {ORDER_COLUMNS} FROM ticketing.orders WHERE id = $1 FOR UPDATE", order_id
    )
    assert row is not None
    order = OrderRecord.from_row(row)
    refunded = event.amount_refunded
    covered = refunded is not None and refunded >= order.total_cents
    explained = refunded is not None and refunded <= order.refunded_cents
    if event.ours or order.status == "refunded" or not covered or explained:
        return EventOutcome(duplicate=False, result="unchanged", order=order)
    if order.status in REOPENABLE_STATUSES:
        await db.code_uses.release_uses(conn, [order_id], now)
        _, _, holds = await lock_order_stock(conn, order_id)
        await db.holds.release_holds(conn, holds, now)
        updated = await conn.fetchrow(
            f"""UPDATE ticketing.orders
                   SET status = 'refunded', refunded_cents = total_cents,
                       refund_reason = 'refunded at the payment provider', updated_at = $2
                 WHERE id = $1 RETURNING {ORDER_COLUMNS}""",
            order_id,
            now,
        )
        assert updated is not None
        return EventOutcome(False, "refunded", OrderRecord.from_row(updated))
    outcome = await refund_tickets_locked(
        conn,
        order,
        reason=RefundReason.PAYMENT_PROVIDER,
        note="refunded at the payment provider",
        now=now,
        stripe_refund_id=event.refund_id or f"external:{event.id}",
    )
    return EventOutcome(False, "refunded", outcome.order, None)
