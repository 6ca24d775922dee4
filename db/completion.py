"""Order completion: a paid order gets all its tickets, in one transaction, exactly once.

`complete_order` (free orders, reconciliation) and `complete_locked` (the payment
webhook, inside its transaction in `db.payment_events`) lock the order row first; a
paid order with its tickets is returned unchanged, so a webhook delivered twice,
concurrently or out of order yields one set of tickets. The order's holds become
issued seats through `db.holds`, which writes the lock order this follows (order,
tiers, holds, tickets, tokens). A payment that arrives after its holds expired still
gets tickets if capacity allows; otherwise the order is refunded instead
(`LATE_REFUND_REASON`), and the refund row is returned to be settled after commit.
The order's discount code use (if any) becomes a paid use here (`db.code_uses`), right
after the order's lock; one released meanwhile that the code's limit no longer allows
refunds the order the same way (`CODE_REFUND_REASON`).

Errors: `OrderError(ORDER_NOT_FOUND)`.
"""

from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime

import asyncpg
from databases import Database

import db.code_uses
import db.holds
from db import notification_triggers
from db.channels import ConsoleMessage, UserMessage
from db.core import retry_transient, transaction
from db.errors import OrderCode, OrderError
from db.notify import publish
from db.order_records import (
    FINAL_STATUSES,
    ORDER_COLUMNS,
    OrderRecord,
    TicketRecord,
    tickets_of,
)
from db.refund_rules import RefundReason
from db.refunds import RefundRecord, insert_refund

LATE_REFUND_REASON = "sold_out_after_hold_expired"
CODE_REFUND_REASON = "discount_code_used_up_after_order_expired"


@dataclass(frozen=True, slots=True)
class Completion:
    """What completing an order did: `changed` is False for a repeat.

    `refund` is set when the payment arrived too late and capacity was gone: the order
    is refunded in the database and the gateway refund must follow after commit.
    """

    order: OrderRecord
    tickets: list[TicketRecord]
    changed: bool
    refund: RefundRecord | None = None


@retry_transient
async def complete_order(
    database: Database,
    order_id: uuid.UUID,
    *,
    now: datetime,
    payment_intent_id: str | None = None,
) -> Completion:
    """Mark the order paid and issue its tickets, all or nothing, idempotently.

    See `complete_locked` for the rules; this is the one-transaction entry point used
    by free checkouts, reconciliation and tests.
    """
    async with transaction(database) as conn:
        return await complete_locked(conn, order_id, now, payment_intent_id)


async def complete_locked(
    conn: asyncpg.Connection,
    order_id: uuid.UUID,
    now: datetime,
    payment_intent_id: str | None,
) -> Completion:
    """Complete inside the caller's transaction.

    The order row is locked first; a paid order with tickets (or a refunded one) is
    returned unchanged. Otherwise the order's still-active holds are converted
    (reserved → issued) and any quantity no longer held is taken from free capacity
    with a conditional update (late payment). If capacity is gone the order is refunded
    instead: its holds are released, a refund row is written and returned for the
    gateway, and the buyer is told on `user:<id>`. A paid order that somehow lost its
    tickets is repaired by the same path.
    """
    row = await conn.fetchrow(
        f"SELECT {ORDER_COLUMNS} FROM ticketing.orders WHERE id = $1 FOR UPDATE", order_id
    )
    if row is None:
        raise OrderError("Order not found", code=OrderCode.ORDER_NOT_FOUND)
    order = OrderRecord.from_row(row)
    existing = await tickets_of(conn, order_id)
    if order.status in FINAL_STATUSES and (existing or order.status != "paid"):
        return Completion(order=order, tickets=existing, changed=False)
    code_kept = await db.code_uses.pay_use(conn, order_id, now)
    items, tiers, holds = await lock_order_stock(conn, order_id)
    if not code_kept:
        return await _refund_unfulfillable(
            conn, order, holds, now, payment_intent_id, CODE_REFUND_REASON
        )
    if not await db.holds.issue_from_holds(conn, items, tiers, holds, now):
        return await _refund_unfulfillable(
            conn, order, holds, now, payment_intent_id, LATE_REFUND_REASON
        )
    tickets = await _issue_tickets(conn, order, items, now)
    paid = await conn.fetchrow(
        f"""UPDATE ticketing.orders
               SET status = 'paid', paid_at = coalesce(paid_at, $2), failure_reason = NULL,
                   stripe_payment_intent_id = coalesce(stripe_payment_intent_id, $3),
                   updated_at = $2
             WHERE id = $1 RETURNING {ORDER_COLUMNS}""",
        order_id,
        now,
        payment_intent_id,
    )
    assert paid is not None
    await publish(conn, UserMessage(order.user_id, "order_paid", order_id, tickets=len(tickets)))
    await publish(conn, ConsoleMessage(order.event_id, "paid"))
    await notification_triggers.order_paid(
        conn,
        user_id=order.user_id,
        order_id=order_id,
        event_id=order.event_id,
        tickets=len(tickets),
        now=now,
    )
    return Completion(order=OrderRecord.from_row(paid), tickets=tickets, changed=True)


async def lock_order_stock(
    conn: asyncpg.Connection, order_id: uuid.UUID
) -> tuple[list[asyncpg.Record], dict[uuid.UUID, asyncpg.Record], list[asyncpg.Record]]:
    """The order's items, its tiers (locked in primary-key order), then its active holds.

    The caller holds the order row: order, tiers, holds is the lock order written in
    `db.holds`, which every writer of holds follows (the sweeper too).
    """
    items = await conn.fetch(
        """SELECT tier_id, quantity, unit_price_cents FROM ticketing.order_items
            WHERE order_id = $1 ORDER BY tier_id""",
        order_id,
    )
    tiers = await conn.fetch(
        """SELECT id, quantity, reserved_quantity, issued_quantity
             FROM ticketing.ticket_tiers WHERE id = ANY($1::uuid[])
            ORDER BY id FOR UPDATE""",
        [item["tier_id"] for item in items],
    )
    holds = await conn.fetch(
        """SELECT id, tier_id, quantity FROM ticketing.ticket_holds
            WHERE order_id = $1 AND status = 'active' ORDER BY id FOR UPDATE""",
        order_id,
    )
    return items, {t["id"]: t for t in tiers}, holds


async def _issue_tickets(
    conn: asyncpg.Connection, order: OrderRecord, items: list[asyncpg.Record], now: datetime
) -> list[TicketRecord]:
    ids: list[uuid.UUID] = []
    tier_ids: list[uuid.UUID] = []
    sequences: list[int] = []
    for item in items:
        for sequence in range(1, item["quantity"] + 1):
            ids.append(uuid.uuid4())
            tier_ids.append(item["tier_id"])
            sequences.append(sequence)
    await conn.execute(
        """INSERT INTO ticketing.tickets
               (id, order_id, event_id, tier_id, owner_user_id, sequence_number,
                created_at, updated_at)
           SELECT t.id, $4, $5, t.tier_id, $6, t.seq, $7, $7
             FROM unnest($1::uuid[], $2::uuid[], $3::int[]) AS t(id, tier_id, seq)""",
        ids,
        tier_ids,
        sequences,
        order.id,
        order.event_id,
        order.user_id,
        now,
    )
    # The QR code carries a random token, never the ticket id.
    await conn.execute(
        """INSERT INTO ticketing.ticket_tokens (token, ticket_id, created_at)
           SELECT t.token, t.ticket_id, $3
             FROM unnest($1::text[], $2::uuid[]) AS t(token, ticket_id)""",
        [secrets.token_urlsafe(24) for _ in ids],
        ids,
        now,
    )
    return await tickets_of(conn, order.id)


async def _refund_unfulfillable(
    conn: asyncpg.Connection,
    order: OrderRecord,
    holds: list[asyncpg.Record],
    now: datetime,
    payment_intent_id: str | None,
    reason: str,
) -> Completion:
    """The payment came too late and the tickets (or the code's uses) are gone: refund
    instead of overselling. A use of the order's code is given back."""
    await db.code_uses.release_uses(conn, [order.id], now)
    await db.holds.release_holds(conn, holds, now)
    row = await conn.fetchrow(
        f"""UPDATE ticketing.orders
               SET status = 'refunded', refunded_cents = total_cents, refund_reason = $2,
                   stripe_payment_intent_id = coalesce(stripe_payment_intent_id, $3),
                   updated_at = $4
             WHERE id = $1 RETURNING {ORDER_COLUMNS}""",
        order.id,
        reason,
        payment_intent_id,
        now,
    )
    assert row is not None
    refunded = OrderRecord.from_row(row)
    refund = None
    if refunded.total_cents > 0:
        refund = await insert_refund(
            conn,
            refunded,
            amount=refunded.total_cents,
            ticket_ids=[],
            reason=RefundReason.LATE_PAYMENT,
            note=reason,
            key=f"order-{order.id}-late",
            requested_by=None,
            now=now,
        )
    await publish(conn, UserMessage(order.user_id, "order_refunded", order.id, reason=reason))
    await publish(conn, ConsoleMessage(order.event_id, "refunded"))
    await notification_triggers.late_payment_refunded(
        conn,
        user_id=order.user_id,
        order_id=order.id,
        event_id=order.event_id,
        reason=reason,
        now=now,
    )
    return Completion(order=refunded, tickets=[], changed=True, refund=refund)
