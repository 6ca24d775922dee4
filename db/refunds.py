"""Refunds: the rows that say what the buyer is owed, and the operations that write them.

`refund_order` is one transaction, opened here (retried on a deadlock or serialization
failure): the order row is locked first, then its tiers (in primary-key order), then its
tickets (by id), the lock order written in `db.holds`, so a refund never deadlocks
with a completion, a checkout or a release. `refund_tickets_locked` and `insert_refund`
run inside a transaction the caller already holds (`db.completion` and
`db.payment_events` use them). Seats of refunded tickets go back through `db.holds`.
The gateway call never happens here: a refund row is written under a UNIQUE
idempotency key and settled after commit (see `liventix.payments`).

Errors: `OrderError` with ORDER_NOT_FOUND, NOT_REFUNDABLE or TICKET_NOT_FOUND.
"""

from __future__ import annotations

import hashlib
import uuid
from collections import Counter
from dataclasses import dataclass
from datetime import datetime

import asyncpg
from databases import Database

import db.code_uses
import db.holds
from db import notification_triggers
from db.channels import ConsoleMessage, UserMessage
from db.core import connection, retry_transient, transaction
from db.errors import OrderCode, OrderError
from db.notify import publish
from db.order_records import (
    ALIASED_ORDER_COLUMNS,
    FINAL_STATUSES,
    ORDER_COLUMNS,
    OrderRecord,
)


@dataclass(frozen=True, slots=True)
class RefundRecord:
    """A refund owed to the buyer; `stripe_refund_id` is None until the gateway confirms."""

    id: uuid.UUID
    order_id: uuid.UUID
    amount_cents: int
    idempotency_key: str
    payment_intent_id: str | None
    stripe_refund_id: str | None
    reason: str


@dataclass(frozen=True, slots=True)
class RefundOutcome:
    order: OrderRecord
    refunded_ticket_ids: list[uuid.UUID]
    changed: bool
    refund: RefundRecord | None = None


@retry_transient
async def refund_order(
    database: Database,
    *,
    order_id: uuid.UUID,
    actor_id: uuid.UUID,
    actor_is_admin: bool,
    ticket_ids: list[uuid.UUID] | None,
    reason: str,
    now: datetime,
) -> RefundOutcome:
    """Refund a whole order (`ticket_ids` None) or some of its tickets.

    Only the event's organizer or an admin may; anyone else gets ORDER_NOT_FOUND (the
    order's existence is not theirs to learn). Tickets already refunded are skipped, so
    repeating a refund changes nothing and returns `changed=False`. The returned refund
    row must then be settled with the gateway under its idempotency key.
    """
    async with transaction(database) as conn:
        row = await conn.fetchrow(
            f"""SELECT {ALIASED_ORDER_COLUMNS}, e.organizer_id FROM ticketing.orders o
                  JOIN events.events e ON e.id = o.event_id
                 WHERE o.id = $1 FOR UPDATE OF o""",
            order_id,
        )
        if row is None or not (actor_is_admin or row["organizer_id"] == actor_id):
            raise OrderError("Order not found", code=OrderCode.ORDER_NOT_FOUND, field="order_id")
        order = OrderRecord.from_row(row)
        if order.status not in FINAL_STATUSES:
            raise OrderError(
                f"A {order.status} order cannot be refunded",
                code=OrderCode.NOT_REFUNDABLE,
                field="order_id",
            )
        return await refund_tickets_locked(
            conn,
            order,
            ticket_ids=ticket_ids,
            reason=reason,
            requested_by=actor_id,
            now=now,
        )


async def refund_tickets_locked(
    conn: asyncpg.Connection,
    order: OrderRecord,
    *,
    ticket_ids: list[uuid.UUID] | None,
    reason: str,
    requested_by: uuid.UUID | None,
    now: datetime,
    stripe_refund_id: str | None = None,
) -> RefundOutcome:
    """Refund the order's issued tickets (all, or `ticket_ids`) in the caller's transaction.

    The caller holds the order row's lock; the order's discount code is locked next, then
    its tiers (primary-key order), then its tickets by id, as the lock order in
    `db.holds` says. A discounted order refunds each ticket's share of what was paid
    (`refund_amount`). When no ticket is left issued, the code's use is given back.
    Raises `OrderError(TICKET_NOT_FOUND)` for an id not on the order; tickets not issued
    are skipped, and if none is left `changed` is False.
    """
    if order.discount_code_id is not None:
        await db.code_uses.lock_codes(conn, [order.discount_code_id])
    await conn.execute(
        """SELECT 1 FROM ticketing.ticket_tiers
            WHERE id IN (SELECT tier_id FROM ticketing.order_items WHERE order_id = $1)
            ORDER BY id FOR NO KEY UPDATE""",
        order.id,
    )
    tickets = await conn.fetch(
        """SELECT t.id, t.tier_id, t.status, i.unit_price_cents
             FROM ticketing.tickets t
             JOIN ticketing.order_items i ON i.order_id = t.order_id AND i.tier_id = t.tier_id
            WHERE t.order_id = $1 ORDER BY t.id FOR UPDATE OF t""",
        order.id,
    )
    chosen = tickets
    if ticket_ids is not None:
        known = {t["id"] for t in tickets}
        if not ticket_ids or any(tid not in known for tid in ticket_ids):
            raise OrderError(
                "Ticket not found", code=OrderCode.TICKET_NOT_FOUND, field="ticket_ids"
            )
        chosen = [t for t in tickets if t["id"] in set(ticket_ids)]
    targets = [t for t in chosen if t["status"] == "issued"]
    if not targets:
        return RefundOutcome(order=order, refunded_ticket_ids=[], changed=False)
    per_tier = Counter(ticket["tier_id"] for ticket in targets)
    await db.holds.return_seats(conn, per_tier, counter="issued_quantity", now=now)
    target_ids = [t["id"] for t in targets]
    await conn.execute(
        """UPDATE ticketing.tickets SET status = 'refunded', updated_at = $2
            WHERE id = ANY($1::uuid[])""",
        target_ids,
        now,
    )
    still_issued = sum(1 for t in tickets if t["status"] == "issued") - len(targets)
    amount = refund_amount(
        order, sum(t["unit_price_cents"] for t in targets), last=still_issued == 0
    )
    if still_issued == 0:
        await db.code_uses.release_uses(conn, [order.id], now)
    row = await conn.fetchrow(
        f"""UPDATE ticketing.orders
               SET refunded_cents = least(total_cents, refunded_cents + $2),
                   status = $3, refund_reason = $4, updated_at = $5
             WHERE id = $1 RETURNING {ORDER_COLUMNS}""",
        order.id,
        amount,
        "refunded" if still_issued == 0 else "partially_refunded",
        reason[:500],
        now,
    )
    assert row is not None
    updated = OrderRecord.from_row(row)
    refund = None
    if amount > 0:
        digest = hashlib.sha256(",".join(sorted(map(str, target_ids))).encode()).hexdigest()
        refund = await insert_refund(
            conn,
            updated,
            amount=amount,
            ticket_ids=target_ids,
            reason=reason[:500],
            key=f"order-{order.id}-refund-{digest[:32]}",
            requested_by=requested_by,
            now=now,
            stripe_refund_id=stripe_refund_id,
        )
    await publish(
        conn, UserMessage(order.user_id, "order_refunded", order.id, tickets=len(targets))
    )
    await publish(conn, ConsoleMessage(order.event_id, "refunded"))
    await notification_triggers.order_refunded(
        conn,
        user_id=order.user_id,
        order_id=order.id,
        event_id=order.event_id,
        amount_cents=amount,
        currency=order.currency,
        refund_key=",".join(sorted(map(str, target_ids))),
        now=now,
    )
    return RefundOutcome(order=updated, refunded_ticket_ids=target_ids, changed=True, refund=refund)


def refund_amount(order: OrderRecord, list_price_cents: int, *, last: bool) -> int:
    """What refunding tickets worth `list_price_cents` (at their item prices) gives back.

    Without a discount, exactly that. With one, their share of what was paid (the
    discount spread over the order in proportion to price, rounded down), and the last
    tickets of the order get all that is left, so the refunds add up to the total paid
    and never exceed it.
    """
    left = order.total_cents - order.refunded_cents
    if last:
        return max(left, 0)
    if order.subtotal_cents == 0:
        return 0
    share = list_price_cents * order.total_cents // order.subtotal_cents
    return min(share, left)


async def insert_refund(
    conn: asyncpg.Connection,
    order: OrderRecord,
    *,
    amount: int,
    ticket_ids: list[uuid.UUID],
    reason: str,
    key: str,
    requested_by: uuid.UUID | None,
    now: datetime,
    stripe_refund_id: str | None = None,
) -> RefundRecord:
    """Write the refund owed for `order` in the caller's transaction.

    Idempotent by `key` (UNIQUE): writing the same key again returns the existing row.
    """
    row = await conn.fetchrow(
        """INSERT INTO ticketing.refunds
               (order_id, amount_cents, ticket_ids, reason, idempotency_key, requested_by,
                stripe_refund_id, created_at)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
           ON CONFLICT (idempotency_key) DO UPDATE SET reason = ticketing.refunds.reason
           RETURNING id, order_id, amount_cents, idempotency_key, stripe_refund_id, reason""",
        order.id,
        amount,
        ticket_ids,
        reason,
        key,
        requested_by,
        stripe_refund_id,
        now,
    )
    assert row is not None
    return RefundRecord(payment_intent_id=order.stripe_payment_intent_id, **dict(row))


@retry_transient
async def record_gateway_refund(database: Database, refund_id: uuid.UUID, gateway_id: str) -> None:
    """Remember the gateway's id for a settled refund (after the gateway call)."""
    async with transaction(database) as conn:
        await conn.execute(
            """UPDATE ticketing.refunds SET stripe_refund_id = $2
                WHERE id = $1 AND stripe_refund_id IS NULL""",
            refund_id,
            gateway_id,
        )


# A refund recorded here whose gateway call has not been confirmed, over `ticketing.refunds
# r JOIN ticketing.orders o ON o.id = r.order_id`: reconciliation retries these, the
# health metric counts them, settlement (`db.settlement`) lists them as not settled.
UNSETTLED = "r.stripe_refund_id IS NULL AND o.stripe_payment_intent_id IS NOT NULL"


async def unsettled_refunds(database: Database, limit: int = 100) -> list[RefundRecord]:
    """Refunds recorded here whose gateway call has not been confirmed (to retry)."""
    async with connection(database) as conn:
        rows = await conn.fetch(
            f"""SELECT r.id, r.order_id, r.amount_cents, r.idempotency_key, r.stripe_refund_id,
                       r.reason, o.stripe_payment_intent_id AS payment_intent_id
                  FROM ticketing.refunds r JOIN ticketing.orders o ON o.id = r.order_id
                 WHERE {UNSETTLED}
                 ORDER BY r.created_at LIMIT $1""",
            limit,
        )
    return [RefundRecord(**dict(r)) for r in rows]


async def count_unsettled(database: Database) -> int:
    """How many refunds `unsettled_refunds` would list, without a limit."""
    async with connection(database) as conn:
        count: int = await conn.fetchval(
            f"""SELECT count(*) FROM ticketing.refunds r
                  JOIN ticketing.orders o ON o.id = r.order_id
                 WHERE {UNSETTLED}"""
        )
    return count
