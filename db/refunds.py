"""Refunds: the rows that say what the buyer is owed, and the operations that write them.

`refund_order` is one transaction, opened here (retried on a deadlock or serialization
failure): the order row is locked first, then its discount code, its tiers (in
primary-key order), then its tickets (by id), the lock order written in `db.holds`, so
a refund never deadlocks with a completion, a checkout or a release. What it may do is
decided by `db.refund_rules.plan_refund`, which `preview_refund` applies to the same
rows without locking or writing anything.

The database arbitrates what is refunded, twice over: the order row's lock serializes
refunds of one order, and the order's `refunded_cents` only grows by a conditional
update (`_add_refunded`: never beyond `total_cents`, which a CHECK backs up), so two
concurrent refunds can never give back more than was paid.

`refund_tickets_locked` and `insert_refund` run inside a transaction the caller
already holds (`db.completion` and `db.payment_events` use them). Seats of voided
tickets go back through `db.holds.give_back_voided_seats`; a full refund gives the
discount code's use back through `db.code_uses`. The gateway call never happens here:
every refund is a row written first, whose id names its gateway idempotency key, and
is settled after commit (see `liventix.payments`); a client's own idempotency key
(`client_key`) finds a refund again, so a retried request refunds nothing twice.

Errors: `OrderError` with ORDER_NOT_FOUND, NOTE_REQUIRED, IDEMPOTENCY_KEY_REUSED, or a
refusal of `plan_refund` (ORDER_NOT_PAID, INVALID_AMOUNT, REFUND_EXCEEDS_PAID,
TICKET_NOT_IN_ORDER, TICKET_ALREADY_VOIDED, TICKET_CHECKED_IN).
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from dataclasses import dataclass, field
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
from db.order_records import ALIASED_ORDER_COLUMNS, ORDER_COLUMNS, OrderRecord
from db.refund_rules import (
    RefundPlan,
    RefundReason,
    RefundRequest,
    TicketState,
    check_reason,
    plan_refund,
)

_REFUND_FIELDS = (
    "id",
    "order_id",
    "amount_cents",
    "idempotency_key",
    "stripe_refund_id",
    "reason",
    "note",
    "ticket_ids",
    "client_key",
    "created_at",
)
REFUND_COLUMNS = ", ".join(_REFUND_FIELDS)
_R_COLUMNS = ", ".join(f"r.{name}" for name in _REFUND_FIELDS)


@dataclass(frozen=True, slots=True)
class RefundRecord:
    """A refund owed to the buyer; `stripe_refund_id` is None until the gateway confirms
    (a refund of nothing, `amount_cents` 0, has nothing to confirm)."""

    id: uuid.UUID
    order_id: uuid.UUID
    amount_cents: int
    idempotency_key: str
    payment_intent_id: str | None
    stripe_refund_id: str | None
    reason: str
    note: str | None = None
    ticket_ids: list[uuid.UUID] = field(default_factory=list)
    client_key: str | None = None
    created_at: datetime | None = None

    @property
    def settled(self) -> bool:
        return self.stripe_refund_id is not None or self.amount_cents == 0


@dataclass(frozen=True, slots=True)
class RefundOutcome:
    """What a refund did; `changed` False for a no-op or a replay of a client's key
    (`replayed`: the refund made the first time is returned)."""

    order: OrderRecord
    refunded_ticket_ids: list[uuid.UUID]
    changed: bool
    refund: RefundRecord | None = None
    replayed: bool = False


@dataclass(frozen=True, slots=True)
class RefundAsked:
    """A refund as the organizer (or an admin) asks for it."""

    request: RefundRequest
    reason: RefundReason
    note: str | None = None
    client_key: str | None = None


@retry_transient
async def refund_order(
    database: Database,
    *,
    order_id: uuid.UUID,
    actor_id: uuid.UUID,
    actor_is_admin: bool,
    asked: RefundAsked,
    now: datetime,
) -> RefundOutcome:
    """Refund money, tickets or the whole order (see `db.refund_rules` for the rules).

    Only the event's organizer or an admin may; anyone else gets ORDER_NOT_FOUND (the
    order's existence is not theirs to learn). A request under a client key already
    used for this order returns that refund unchanged (IDEMPOTENCY_KEY_REUSED if it
    asked for something else). The returned refund row must then be settled with the
    gateway under its idempotency key.
    """
    check_reason(asked.reason, asked.note)
    async with transaction(database) as conn:
        order = await _lock_order(conn, order_id, actor_id, actor_is_admin)
        if asked.client_key is not None:
            earlier = await _by_client_key(conn, order, asked.client_key)
            if earlier is not None:
                return _replay(order, earlier, asked.request)
        tickets = [] if asked.request.amount_cents is not None else await _lock_stock(conn, order)
        plan = plan_refund(order, tickets, asked.request)
        if plan.refusal is not None:
            raise plan.refusal
        if plan.noop:
            return RefundOutcome(order=order, refunded_ticket_ids=[], changed=False)
        return await _apply(conn, order, plan, asked, requested_by=actor_id, now=now)


async def preview_refund(
    database: Database,
    *,
    order_id: uuid.UUID,
    actor_id: uuid.UUID,
    actor_is_admin: bool,
    request: RefundRequest,
) -> RefundPlan:
    """What `refund_order` would do now with `request`, refusal included; writes nothing
    and takes no lock (the same rule, `plan_refund`, over the rows as they are)."""
    async with connection(database) as conn:
        row = await _order_row(conn, order_id, lock=False)
        order = _visible(row, actor_id, actor_is_admin)
        tickets = await _tickets(conn, order.id, lock=False)
    return plan_refund(order, tickets, request)


async def refund_tickets_locked(
    conn: asyncpg.Connection,
    order: OrderRecord,
    *,
    reason: RefundReason,
    note: str | None,
    now: datetime,
    stripe_refund_id: str | None = None,
) -> RefundOutcome:
    """Refund every ticket still issued, in the caller's transaction (a full refund made
    at the payment provider: checked-in tickets are voided too, the money is gone).

    The caller holds the order row's lock; the rest is locked as `refund_order` does.
    """
    tickets = await _lock_stock(conn, order)
    plan = plan_refund(order, tickets, RefundRequest(), voids_checked_in=True)
    if plan.refusal is not None or plan.noop:
        return RefundOutcome(order=order, refunded_ticket_ids=[], changed=False)
    asked = RefundAsked(RefundRequest(), reason, note)
    return await _apply(
        conn, order, plan, asked, requested_by=None, now=now, stripe_refund_id=stripe_refund_id
    )


# --- the steps ------------------------------------------------------------------------


async def _order_row(
    conn: asyncpg.Connection, order_id: uuid.UUID, *, lock: bool
) -> asyncpg.Record | None:
    row: asyncpg.Record | None = await conn.fetchrow(
        f"""SELECT {ALIASED_ORDER_COLUMNS}, e.organizer_id FROM ticketing.orders o
              JOIN events.events e ON e.id = o.event_id
             WHERE o.id = $1 {"FOR UPDATE OF o" if lock else ""}""",
        order_id,
    )
    return row


def _visible(row: asyncpg.Record | None, actor_id: uuid.UUID, actor_is_admin: bool) -> OrderRecord:
    """The order, if the actor manages its event; else ORDER_NOT_FOUND."""
    if row is None or not (actor_is_admin or row["organizer_id"] == actor_id):
        raise OrderError("Order not found", code=OrderCode.ORDER_NOT_FOUND, field="order_id")
    return OrderRecord.from_row(row)


async def _lock_order(
    conn: asyncpg.Connection, order_id: uuid.UUID, actor_id: uuid.UUID, actor_is_admin: bool
) -> OrderRecord:
    """The order row, locked: first in the lock order, and what serializes the refunds
    of one order."""
    return _visible(await _order_row(conn, order_id, lock=True), actor_id, actor_is_admin)


async def _lock_stock(conn: asyncpg.Connection, order: OrderRecord) -> list[TicketState]:
    """After the order: its discount code, its tiers (primary-key order), its tickets."""
    if order.discount_code_id is not None:
        await db.code_uses.lock_codes(conn, [order.discount_code_id])
    await conn.execute(
        """SELECT 1 FROM ticketing.ticket_tiers
            WHERE id IN (SELECT tier_id FROM ticketing.order_items WHERE order_id = $1)
            ORDER BY id FOR NO KEY UPDATE""",
        order.id,
    )
    return await _tickets(conn, order.id, lock=True)


async def _tickets(
    conn: asyncpg.Connection, order_id: uuid.UUID, *, lock: bool
) -> list[TicketState]:
    rows = await conn.fetch(
        f"""SELECT t.id, t.tier_id, t.status, t.checked_in_at, i.unit_price_cents
              FROM ticketing.tickets t
              JOIN ticketing.order_items i ON i.order_id = t.order_id AND i.tier_id = t.tier_id
             WHERE t.order_id = $1 ORDER BY t.id {"FOR UPDATE OF t" if lock else ""}""",
        order_id,
    )
    return [TicketState(**dict(row)) for row in rows]


async def _by_client_key(
    conn: asyncpg.Connection, order: OrderRecord, client_key: str
) -> RefundRecord | None:
    row = await conn.fetchrow(
        f"SELECT {REFUND_COLUMNS} FROM ticketing.refunds WHERE order_id = $1 AND client_key = $2",
        order.id,
        client_key,
    )
    return _record(row, order.stripe_payment_intent_id) if row else None


def _replay(order: OrderRecord, earlier: RefundRecord, request: RefundRequest) -> RefundOutcome:
    """The refund made under this client key; refused if the request asks otherwise."""
    if not _same_request(earlier, request):
        raise OrderError(
            "This idempotency key was used for another refund of the order",
            code=OrderCode.IDEMPOTENCY_KEY_REUSED,
            field="idempotency_key",
        )
    return RefundOutcome(order, list(earlier.ticket_ids), changed=False, refund=earlier,
                         replayed=True)  # fmt: skip


def _same_request(earlier: RefundRecord, request: RefundRequest) -> bool:
    if request.whole_order:
        return True
    if request.amount_cents is not None:
        return not earlier.ticket_ids and earlier.amount_cents == request.amount_cents
    return set(earlier.ticket_ids) == set(request.ticket_ids or ())


async def _apply(
    conn: asyncpg.Connection,
    order: OrderRecord,
    plan: RefundPlan,
    asked: RefundAsked,
    *,
    requested_by: uuid.UUID | None,
    now: datetime,
    stripe_refund_id: str | None = None,
) -> RefundOutcome:
    """Write a decided refund: void its tickets and give their seats back, move the
    money, write the refund row, tell the buyer (all in the caller's transaction)."""
    if plan.tickets:
        await db.holds.give_back_voided_seats(conn, plan.seats, now=now)
        await conn.execute(
            """UPDATE ticketing.tickets SET status = 'refunded', updated_at = $2
                WHERE id = ANY($1::uuid[])""",
            plan.ticket_ids,
            now,
        )
    if plan.order_status == "refunded":
        await db.code_uses.release_uses(conn, [order.id], now)
    updated = await _add_refunded(conn, order, plan, asked.reason, now)
    refund_id = uuid.uuid4()
    refund = await insert_refund(
        conn,
        updated,
        refund_id=refund_id,
        amount=plan.amount_cents,
        ticket_ids=plan.ticket_ids,
        reason=asked.reason,
        note=asked.note,
        key=f"order-{order.id}-refund-{refund_id}",
        client_key=asked.client_key,
        requested_by=requested_by,
        now=now,
        stripe_refund_id=stripe_refund_id,
    )
    await _tell_buyer(conn, updated, refund, now)
    return RefundOutcome(order=updated, refunded_ticket_ids=plan.ticket_ids, changed=True,
                         refund=refund)  # fmt: skip


async def _add_refunded(
    conn: asyncpg.Connection,
    order: OrderRecord,
    plan: RefundPlan,
    reason: RefundReason,
    now: datetime,
) -> OrderRecord:
    """Add the refund to the order with a conditional update: never beyond what was
    paid, whatever else runs (REFUND_EXCEEDS_PAID rolls the whole refund back)."""
    row = await conn.fetchrow(
        f"""UPDATE ticketing.orders
               SET refunded_cents = refunded_cents + $2, status = $3, refund_reason = $4,
                   updated_at = $5
             WHERE id = $1 AND refunded_cents + $2 <= total_cents
         RETURNING {ORDER_COLUMNS}""",
        order.id,
        plan.amount_cents,
        plan.order_status,
        reason.value,
        now,
    )
    if row is None:
        raise OrderError(
            "That is more than can still be refunded",
            code=OrderCode.REFUND_EXCEEDS_PAID,
            field="amount_cents",
            refundable_cents=plan.remaining_cents,
        )
    return OrderRecord.from_row(row)


async def _tell_buyer(
    conn: asyncpg.Connection, order: OrderRecord, refund: RefundRecord, now: datetime
) -> None:
    """The buyer's live order screens and inbox, and the organizer's console (all
    delivered on commit); once per refund."""
    tickets = len(refund.ticket_ids)
    await publish(conn, UserMessage(order.user_id, "order_refunded", order.id, tickets=tickets))
    await publish(conn, ConsoleMessage(order.event_id, "refunded"))
    await notification_triggers.order_refunded(
        conn,
        user_id=order.user_id,
        order_id=order.id,
        event_id=order.event_id,
        amount_cents=refund.amount_cents,
        currency=order.currency,
        refund_key=str(refund.id),
        now=now,
    )


# --- refund rows ----------------------------------------------------------------------


def _record(row: asyncpg.Record, payment_intent_id: str | None) -> RefundRecord:
    return RefundRecord(payment_intent_id=payment_intent_id, **{k: row[k] for k in _REFUND_FIELDS})


async def insert_refund(
    conn: asyncpg.Connection,
    order: OrderRecord,
    *,
    amount: int,
    ticket_ids: list[uuid.UUID],
    reason: RefundReason,
    key: str,
    requested_by: uuid.UUID | None,
    now: datetime,
    note: str | None = None,
    refund_id: uuid.UUID | None = None,
    client_key: str | None = None,
    stripe_refund_id: str | None = None,
) -> RefundRecord:
    """Write the refund owed for `order` in the caller's transaction.

    Idempotent by `key` (UNIQUE): writing the same key again returns the existing row.
    """
    row = await conn.fetchrow(
        f"""INSERT INTO ticketing.refunds
               (id, order_id, amount_cents, ticket_ids, reason, note, idempotency_key,
                client_key, requested_by, stripe_refund_id, created_at)
           VALUES (coalesce($1, gen_random_uuid()), $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
           ON CONFLICT (idempotency_key) DO UPDATE SET reason = ticketing.refunds.reason
           RETURNING {REFUND_COLUMNS}""",
        refund_id,
        order.id,
        amount,
        ticket_ids,
        reason.value,
        note,
        key,
        client_key,
        requested_by,
        stripe_refund_id,
        now,
    )
    assert row is not None
    return _record(row, order.stripe_payment_intent_id)


async def refunds_of_orders(
    database: Database, order_ids: list[uuid.UUID]
) -> list[list[RefundRecord]]:
    """Each order's refunds, oldest first (a DataLoader batch); visibility is the caller's."""
    async with connection(database) as conn:
        rows = await conn.fetch(
            f"""SELECT {_R_COLUMNS}, o.stripe_payment_intent_id
                  FROM ticketing.refunds r JOIN ticketing.orders o ON o.id = r.order_id
                 WHERE r.order_id = ANY($1::uuid[]) ORDER BY r.created_at, r.id""",
            order_ids,
        )
    grouped: dict[uuid.UUID, list[RefundRecord]] = defaultdict(list)
    for row in rows:
        grouped[row["order_id"]].append(_record(row, row["stripe_payment_intent_id"]))
    return [grouped.get(i, []) for i in order_ids]


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
UNSETTLED = """r.stripe_refund_id IS NULL AND r.amount_cents > 0
               AND o.stripe_payment_intent_id IS NOT NULL"""


async def unsettled_refunds(database: Database, limit: int = 100) -> list[RefundRecord]:
    """Refunds recorded here whose gateway call has not been confirmed (to retry)."""
    async with connection(database) as conn:
        rows = await conn.fetch(
            f"""SELECT {_R_COLUMNS}, o.stripe_payment_intent_id
                  FROM ticketing.refunds r JOIN ticketing.orders o ON o.id = r.order_id
                 WHERE {UNSETTLED}
                 ORDER BY r.created_at LIMIT $1""",
            limit,
        )
    return [_record(row, row["stripe_payment_intent_id"]) for row in rows]


async def count_unsettled(database: Database) -> int:
    """How many refunds `unsettled_refunds` would list, without a limit."""
    async with connection(database) as conn:
        count: int = await conn.fetchval(
            f"""SELECT count(*) FROM ticketing.refunds r
                  JOIN ticketing.orders o ON o.id = r.order_id
                 WHERE {UNSETTLED}"""
        )
    return count
