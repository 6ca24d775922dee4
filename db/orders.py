"""Checkout, order completion and payment events: the money side of the revenue path.

Every public function is one business operation in one transaction, opened here (and
retried from the start on a serialization failure or deadlock, `db.core.retry_transient`);
the order row is locked before its status is read and statuses only move forward (see
`db.order_records`). Row locks follow the one order written in `db.ticketing`: orders,
then tiers, then holds, then tickets. Calls to the payment gateway never happen here:
functions return what must be settled after commit (see `liventix.payments`). Refund
rows are written by `db.refunds`, inside the transaction of the completion or payment
event that owes them.

Error codes raised (as `OrderError`): CONFLICT, HOLD_NOT_FOUND, HOLD_EXPIRED, MIXED_EVENTS,
MIXED_CURRENCIES, CONTACT_INVALID, ORDER_NOT_FOUND.
"""

from __future__ import annotations

import re
import secrets
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import asyncpg
from databases import Database

from db.core import retry_transient, transaction
from db.notify import announce_tier, publish
from db.order_records import (
    FINAL_STATUSES,
    ORDER_COLUMNS,
    REOPENABLE_STATUSES,
    TICKET_SELECT,
    OrderError,
    OrderRecord,
    TicketRecord,
)
from db.refunds import RefundRecord, insert_refund, refund_tickets_locked
from db.ticketing import return_seats

LATE_REFUND_REASON = "sold_out_after_hold_expired"
# Restarts of a checkout whose holds a concurrent checkout attached to its own order.
CHECKOUT_ATTEMPTS = 4


@dataclass(frozen=True, slots=True)
class Contact:
    email: str
    name: str
    phone: str | None = None


_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]{2,}$")
_PHONE = re.compile(r"^\+?[0-9 ()\-.]{5,32}$")


def validate_contact(contact: Contact) -> Contact:
    """A normalized copy of `contact`, or `OrderError(CONTACT_INVALID)` naming the field."""
    email = contact.email.strip()
    name = " ".join(contact.name.split())
    phone = (contact.phone or "").strip() or None
    if len(email) > 320 or not _EMAIL.match(email):
        raise OrderError("Enter a valid email address", code="CONTACT_INVALID", field="email")
    if not 1 <= len(name) <= 200:
        raise OrderError("Name must be 1 to 200 characters", code="CONTACT_INVALID", field="name")
    if phone is not None and not _PHONE.match(phone):
        raise OrderError("Enter a valid phone number", code="CONTACT_INVALID", field="phone")
    return Contact(email=email.lower(), name=name, phone=phone)


@dataclass(frozen=True, slots=True)
class Checkout:
    """A checked-out order; `reused` when the same holds were already checked out.

    `receipt_email` is the one the payment intent is created with: the first
    checkout's, so a repeat sends the gateway exactly the same request.
    """

    order: OrderRecord
    reused: bool
    tickets: list[TicketRecord] = field(default_factory=list)
    receipt_email: str | None = None


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


# ---------------------------------------------------------------------------- checkout


async def create_pending_order(
    database: Database,
    *,
    user_id: uuid.UUID,
    hold_ids: list[uuid.UUID],
    contact: Contact,
    now: datetime,
) -> Checkout:
    """Turn the user's active holds (one event) into a `pending` order, priced here.

    Holds stay active and reserved; they point at the order until it is paid (they are
    converted) or fails (they stay reusable until they expire). Checking out the same
    holds again, even concurrently, returns the same order (`reused`): a pending one
    takes the new contact details, a completed one is returned as it is. Checking out
    an overlapping set cancels the earlier pending order. A free order (total 0) is
    then completed by `complete_order` in its own transaction. Locks follow the order
    in `db.ticketing`: the orders the holds point at, their tiers (FOR KEY SHARE, so
    checkout never waits for buyers of the same tier), then the holds. Raises
    `OrderError` (HOLD_NOT_FOUND, HOLD_EXPIRED, MIXED_EVENTS, MIXED_CURRENCIES,
    CONTACT_INVALID, CONFLICT) before writing anything.
    """
    contact = validate_contact(contact)
    wanted = sorted(set(hold_ids))
    if not wanted:
        raise OrderError("Choose at least one hold", code="HOLD_NOT_FOUND", field="holdIds")
    for _ in range(CHECKOUT_ATTEMPTS):
        try:
            return await _checkout_once(database, user_id, wanted, contact, now)
        except _HoldsMoved:
            continue
    raise OrderError("Your checkout changed concurrently; try again", code="CONFLICT")


class _HoldsMoved(Exception):
    """A concurrent checkout attached the holds to an order we had not locked: restart."""


@retry_transient
async def _checkout_once(
    database: Database,
    user_id: uuid.UUID,
    wanted: list[uuid.UUID],
    contact: Contact,
    now: datetime,
) -> Checkout:
    """One attempt of `create_pending_order`, in one transaction (see there)."""
    async with transaction(database) as conn:
        holds = await _lock_holds(conn, user_id, wanted)
        if len(holds) != len(wanted):
            raise OrderError("Hold not found", code="HOLD_NOT_FOUND", field="holdIds")
        done = await _completed_checkout(conn, holds, wanted)
        if done is not None:
            return done
        if any(h["status"] == "converted" for h in holds):
            raise OrderError("Hold not found", code="HOLD_NOT_FOUND", field="holdIds")
        if any(h["status"] != "active" or h["expires_at"] <= now for h in holds):
            raise OrderError(
                "Your reservation expired; reserve the tickets again",
                code="HOLD_EXPIRED",
                field="holdIds",
            )
        if len({h["event_id"] for h in holds}) != 1:
            raise OrderError(
                "Check out tickets of one event at a time", code="MIXED_EVENTS", field="holdIds"
            )
        pending = {h["order_id"] for h in holds if h["order_status"] == "pending"}
        if len(pending) == 1 and all(h["order_id"] in pending for h in holds):
            order_id = next(iter(pending))
            if await _order_holds(conn, order_id) == wanted:
                return await _repeat_pending(conn, order_id, contact, now)
        if pending:
            await _cancel_orders(conn, list(pending), "superseded by a new checkout", now)
        order = await _insert_order(conn, user_id, holds, contact, now)
    return Checkout(order=order, reused=False, receipt_email=contact.email)


async def _lock_holds(
    conn: asyncpg.Connection, user_id: uuid.UUID, wanted: list[uuid.UUID]
) -> list[asyncpg.Record]:
    """Lock, in the documented order, the orders the holds point at, their tiers, the holds.

    Which orders and tiers is read without a lock first; a hold's tier never changes,
    but its order may have been set meanwhile by a concurrent checkout of the same
    holds, which raises `_HoldsMoved` so the caller starts again and finds that order.
    """
    seen = await conn.fetch(
        """SELECT tier_id, order_id FROM ticketing.ticket_holds
            WHERE id = ANY($1::uuid[]) AND user_id = $2""",
        wanted,
        user_id,
    )
    orders = sorted({r["order_id"] for r in seen if r["order_id"] is not None})
    if orders:
        await conn.execute(
            """SELECT 1 FROM ticketing.orders WHERE id = ANY($1::uuid[])
                ORDER BY id FOR UPDATE""",
            orders,
        )
    # FOR KEY SHARE is the lock the order items' foreign key takes anyway: taken here,
    # before the holds, it cannot close a cycle with a release or expiry of these holds.
    await conn.execute(
        """SELECT 1 FROM ticketing.ticket_tiers WHERE id = ANY($1::uuid[])
            ORDER BY id FOR KEY SHARE""",
        sorted({r["tier_id"] for r in seen}),
    )
    holds: list[asyncpg.Record] = await conn.fetch(
        """SELECT h.id, h.tier_id, h.event_id, h.quantity, h.status, h.expires_at,
                  h.order_id, o.status AS order_status
             FROM ticketing.ticket_holds h
             LEFT JOIN ticketing.orders o ON o.id = h.order_id
            WHERE h.id = ANY($1::uuid[]) AND h.user_id = $2
            ORDER BY h.id
              FOR UPDATE OF h""",
        wanted,
        user_id,
    )
    if any(h["order_id"] is not None and h["order_id"] not in orders for h in holds):
        raise _HoldsMoved
    return holds


async def _order_holds(conn: asyncpg.Connection, order_id: uuid.UUID) -> list[uuid.UUID]:
    """The holds an order was checked out with (still active, or converted into tickets)."""
    rows = await conn.fetch(
        """SELECT id FROM ticketing.ticket_holds
            WHERE order_id = $1 AND status IN ('active', 'converted') ORDER BY id""",
        order_id,
    )
    return [row["id"] for row in rows]


_REPEAT_COLUMNS = f"{ORDER_COLUMNS}, metadata->>'receipt_email' AS receipt_email"


async def _completed_checkout(
    conn: asyncpg.Connection, holds: list[asyncpg.Record], wanted: list[uuid.UUID]
) -> Checkout | None:
    """The order these exact holds already became (paid, or a free order completed)."""
    orders = {h["order_id"] for h in holds}
    if any(h["status"] != "converted" for h in holds) or len(orders) != 1 or None in orders:
        return None
    order_id = orders.pop()
    if await _order_holds(conn, order_id) != wanted:
        return None
    row = await conn.fetchrow(
        f"SELECT {_REPEAT_COLUMNS} FROM ticketing.orders WHERE id = $1", order_id
    )
    assert row is not None
    return Checkout(
        order=OrderRecord.from_row(row),
        reused=True,
        tickets=await _tickets_of(conn, order_id),
        receipt_email=row["receipt_email"],
    )


async def _repeat_pending(
    conn: asyncpg.Connection, order_id: uuid.UUID, contact: Contact, now: datetime
) -> Checkout:
    """The same holds checked out again: the same pending order, with the new contact.

    The order row is locked (by `_lock_holds`) and pending, so nothing has been paid
    yet. The payment intent keeps the receipt email of the first checkout: Stripe
    answers a repeated idempotency key only when every parameter is the same.
    """
    row = await conn.fetchrow(
        f"SELECT {_REPEAT_COLUMNS} FROM ticketing.orders WHERE id = $1", order_id
    )
    assert row is not None
    # Orders from before the receipt email was recorded: the contact it was sent with.
    receipt_email: str | None = row["receipt_email"] or row["contact_email"]
    stored = (row["contact_email"], row["contact_name"], row["contact_phone"])
    if stored != (contact.email, contact.name, contact.phone):
        row = await conn.fetchrow(
            f"""UPDATE ticketing.orders
                   SET contact_email = $2, contact_name = $3, contact_phone = $4,
                       updated_at = $5
                 WHERE id = $1 RETURNING {_REPEAT_COLUMNS}""",
            order_id,
            contact.email,
            contact.name,
            contact.phone,
            now,
        )
        assert row is not None
    return Checkout(order=OrderRecord.from_row(row), reused=True, receipt_email=receipt_email)


async def _cancel_orders(
    conn: asyncpg.Connection, order_ids: list[uuid.UUID], reason: str, now: datetime
) -> None:
    await conn.execute(
        """UPDATE ticketing.orders SET status = 'canceled', failure_reason = $2, updated_at = $3
            WHERE id = ANY($1::uuid[]) AND status = 'pending'""",
        order_ids,
        reason,
        now,
    )
    await conn.execute(
        """UPDATE ticketing.ticket_holds SET order_id = NULL, updated_at = $2
            WHERE order_id = ANY($1::uuid[]) AND status = 'active'""",
        order_ids,
        now,
    )


async def _insert_order(
    conn: asyncpg.Connection,
    user_id: uuid.UUID,
    holds: list[asyncpg.Record],
    contact: Contact,
    now: datetime,
) -> OrderRecord:
    quantities: dict[uuid.UUID, int] = defaultdict(int)
    for hold in holds:
        quantities[hold["tier_id"]] += hold["quantity"]
    tiers = await conn.fetch(
        """SELECT id, price_cents, currency FROM ticketing.ticket_tiers
            WHERE id = ANY($1::uuid[]) ORDER BY id""",
        list(quantities),
    )
    currencies = {tier["currency"] for tier in tiers}
    if len(currencies) != 1:
        raise OrderError(
            "Check out tiers of one currency at a time", code="MIXED_CURRENCIES", field="holdIds"
        )
    total = sum(tier["price_cents"] * quantities[tier["id"]] for tier in tiers)
    row = await conn.fetchrow(
        f"""INSERT INTO ticketing.orders
                (event_id, user_id, contact_email, contact_name, contact_phone, metadata,
                 total_cents, currency, created_at, updated_at)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9)
            RETURNING {ORDER_COLUMNS}""",
        holds[0]["event_id"],
        user_id,
        contact.email,
        contact.name,
        contact.phone,
        {"hold_ids": [str(h["id"]) for h in holds], "receipt_email": contact.email},
        total,
        currencies.pop(),
        now,
    )
    assert row is not None
    order = OrderRecord.from_row(row)
    await conn.execute(
        """INSERT INTO ticketing.order_items (order_id, tier_id, quantity, unit_price_cents)
           SELECT $1, t.tier_id, t.quantity, t.price
             FROM unnest($2::uuid[], $3::int[], $4::int[]) AS t(tier_id, quantity, price)""",
        order.id,
        [tier["id"] for tier in tiers],
        [quantities[tier["id"]] for tier in tiers],
        [tier["price_cents"] for tier in tiers],
    )
    await conn.execute(
        """UPDATE ticketing.ticket_holds SET order_id = $2, updated_at = $3
            WHERE id = ANY($1::uuid[])""",
        [h["id"] for h in holds],
        order.id,
        now,
    )
    return order


@retry_transient
async def attach_payment_intent(
    database: Database, order_id: uuid.UUID, payment_intent_id: str
) -> OrderRecord:
    """Record the gateway's payment intent on the order (the second checkout step).

    A pending order keeps the id it already has if the same intent is attached twice.
    """
    async with transaction(database) as conn:
        row = await conn.fetchrow(
            f"""UPDATE ticketing.orders
                   SET stripe_payment_intent_id = coalesce(stripe_payment_intent_id, $2)
                 WHERE id = $1 RETURNING {ORDER_COLUMNS}""",
            order_id,
            payment_intent_id,
        )
    if row is None:
        raise OrderError("Order not found", code="ORDER_NOT_FOUND")
    return OrderRecord.from_row(row)


@retry_transient
async def cancel_checkout(
    database: Database, order_id: uuid.UUID, *, reason: str, now: datetime
) -> None:
    """Compensate a checkout whose payment intent could not be created.

    The pending order becomes `canceled` and lets go of its holds, which stay active
    (and reserved) so the buyer can simply try again until they expire.
    """
    async with transaction(database) as conn:
        await conn.execute("SELECT 1 FROM ticketing.orders WHERE id = $1 FOR UPDATE", order_id)
        await _cancel_orders(conn, [order_id], reason, now)


# ---------------------------------------------------------------------- completion


@retry_transient
async def complete_order(
    database: Database,
    order_id: uuid.UUID,
    *,
    now: datetime,
    payment_intent_id: str | None = None,
) -> Completion:
    """Mark the order paid and issue its tickets, all or nothing, idempotently.

    See `_complete_locked` for the rules; this is the one-transaction entry point used
    by reconciliation and tests.
    """
    async with transaction(database) as conn:
        return await _complete_locked(conn, order_id, now, payment_intent_id)


async def _complete_locked(
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
        raise OrderError("Order not found", code="ORDER_NOT_FOUND")
    order = OrderRecord.from_row(row)
    existing = await _tickets_of(conn, order_id)
    if order.status in FINAL_STATUSES and (existing or order.status != "paid"):
        return Completion(order=order, tickets=existing, changed=False)
    items, tiers, holds = await _lock_order_stock(conn, order_id)
    held: dict[uuid.UUID, int] = defaultdict(int)
    for hold in holds:
        held[hold["tier_id"]] += hold["quantity"]
    extra = {item["tier_id"]: max(item["quantity"] - held[item["tier_id"]], 0) for item in items}
    short = [
        tier_id
        for tier_id, need in extra.items()
        if need
        and tiers[tier_id]["quantity"]
        - tiers[tier_id]["reserved_quantity"]
        - tiers[tier_id]["issued_quantity"]
        < need
    ]
    if short:
        return await _refund_unfulfillable(conn, order, holds, now, payment_intent_id)
    for item in items:
        tier_id = item["tier_id"]
        updated = await conn.fetchrow(
            """UPDATE ticketing.ticket_tiers
                  SET reserved_quantity = reserved_quantity - $2,
                      issued_quantity = issued_quantity + $3, updated_at = $5
                WHERE id = $1 AND quantity - reserved_quantity - issued_quantity >= $4
                RETURNING id, event_id, quantity, reserved_quantity, issued_quantity, version""",
            tier_id,
            held[tier_id],
            item["quantity"],
            extra[tier_id],
            now,
        )
        if updated is None:  # cannot happen: the tier is locked and was checked above
            raise RuntimeError(f"tier {tier_id} lost capacity while locked")
        await announce_tier(conn, updated)
    if holds:
        await conn.execute(
            """UPDATE ticketing.ticket_holds
                  SET status = 'converted', ended_at = $2, updated_at = $2
                WHERE id = ANY($1::uuid[])""",
            [h["id"] for h in holds],
            now,
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
    await publish(
        conn, f"user:{order.user_id}", op="order_paid", order_id=str(order_id), tickets=len(tickets)
    )
    return Completion(order=OrderRecord.from_row(paid), tickets=tickets, changed=True)


async def _lock_order_stock(
    conn: asyncpg.Connection, order_id: uuid.UUID
) -> tuple[list[asyncpg.Record], dict[uuid.UUID, asyncpg.Record], list[asyncpg.Record]]:
    """The order's items, its tiers (locked in primary-key order), then its active holds.

    The caller holds the order row: order, tiers, holds is the lock order of
    `db.ticketing`, which every writer of holds follows (the sweeper too).
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
    return await _tickets_of(conn, order.id)


async def _refund_unfulfillable(
    conn: asyncpg.Connection,
    order: OrderRecord,
    holds: list[asyncpg.Record],
    now: datetime,
    payment_intent_id: str | None,
) -> Completion:
    """The payment came too late and the tickets are gone: refund instead of overselling."""
    await _release_holds(conn, holds, now)
    row = await conn.fetchrow(
        f"""UPDATE ticketing.orders
               SET status = 'refunded', refunded_cents = total_cents, refund_reason = $2,
                   stripe_payment_intent_id = coalesce(stripe_payment_intent_id, $3),
                   updated_at = $4
             WHERE id = $1 RETURNING {ORDER_COLUMNS}""",
        order.id,
        LATE_REFUND_REASON,
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
            reason=LATE_REFUND_REASON,
            key=f"order-{order.id}-late",
            requested_by=None,
            now=now,
        )
    await publish(
        conn,
        f"user:{order.user_id}",
        op="order_refunded",
        order_id=str(order.id),
        reason=LATE_REFUND_REASON,
    )
    return Completion(order=refunded, tickets=[], changed=True, refund=refund)


async def _release_holds(
    conn: asyncpg.Connection, holds: list[asyncpg.Record], now: datetime
) -> None:
    """Give held capacity back (tiers in primary-key order) and end the holds."""
    per_tier: Counter[uuid.UUID] = Counter()
    for hold in holds:
        per_tier[hold["tier_id"]] += hold["quantity"]
    await return_seats(conn, per_tier, counter="reserved_quantity", now=now)
    if holds:
        await conn.execute(
            """UPDATE ticketing.ticket_holds
                  SET status = 'released', ended_at = $2, updated_at = $2
                WHERE id = ANY($1::uuid[])""",
            [h["id"] for h in holds],
            now,
        )


async def _tickets_of(conn: asyncpg.Connection, order_id: uuid.UUID) -> list[TicketRecord]:
    rows = await conn.fetch(
        f"{TICKET_SELECT} WHERE t.order_id = $1 ORDER BY t.tier_id, t.sequence_number",
        order_id,
    )
    return [TicketRecord.from_row(r) for r in rows]


# ------------------------------------------------------------------------- webhooks


@dataclass(frozen=True, slots=True)
class PaymentEvent:
    """The parts of a Stripe event this service acts on."""

    id: str
    type: str
    payment_intent_id: str | None
    order_id: uuid.UUID | None
    amount_refunded: int | None = None
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
        elif event.type == "payment_intent.succeeded":
            done = await _complete_locked(conn, order_id, now, event.payment_intent_id)
            result = "refunded_late" if done.refund else ("paid" if done.changed else "unchanged")
            outcome = EventOutcome(False, result, done.order, done.refund)
        elif event.type == "payment_intent.payment_failed":
            outcome = await _fail_locked(conn, order_id, event.failure_message, now)
        elif event.type in ("charge.refunded", "refund.created", "refund.updated"):
            outcome = await _external_refund_locked(conn, order_id, event, now)
        else:
            outcome = EventOutcome(duplicate=False, result="ignored")
        await conn.execute(
            "UPDATE ticketing.stripe_events SET processed_at = $2, result = $3 WHERE id = $1",
            event.id,
            now,
            outcome.result,
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
    """A failed payment fails a pending order only; its holds stay until they expire."""
    row = await conn.fetchrow(
        f"""UPDATE ticketing.orders SET status = 'failed', failure_reason = $2, updated_at = $3
             WHERE id = $1 AND status = 'pending' RETURNING {ORDER_COLUMNS}""",
        order_id,
        (message or "payment failed")[:500],
        now,
    )
    if row is None:
        return EventOutcome(duplicate=False, result="unchanged")
    return EventOutcome(duplicate=False, result="failed", order=OrderRecord.from_row(row))


async def _external_refund_locked(
    conn: asyncpg.Connection, order_id: uuid.UUID, event: PaymentEvent, now: datetime
) -> EventOutcome:
    """A refund made at Stripe (dashboard, dispute tooling) or echoing one of ours.

    Ours, or one that does not cover what is still unrefunded, changes nothing (partial
    refunds are made through this API, per ticket). A full refund of a paid order
    refunds its tickets; of an order whose success has not arrived yet, it ends the
    order as refunded and releases its holds, so the late success finds it final.
    """
    row = await conn.fetchrow(
        f"SELECT {ORDER_COLUMNS} FROM ticketing.orders WHERE id = $1 FOR UPDATE", order_id
    )
    assert row is not None
    order = OrderRecord.from_row(row)
    covered = event.amount_refunded is not None and event.amount_refunded >= order.total_cents
    if event.ours or order.status == "refunded" or not covered:
        return EventOutcome(duplicate=False, result="unchanged", order=order)
    if order.status in REOPENABLE_STATUSES:
        _, _, holds = await _lock_order_stock(conn, order_id)
        await _release_holds(conn, holds, now)
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
        ticket_ids=None,
        reason="refunded at the payment provider",
        requested_by=None,
        now=now,
        stripe_refund_id=event.refund_id or f"external:{event.id}",
    )
    return EventOutcome(False, "refunded", outcome.order, None)


# -------------------------------------------------------------------------- privacy


@retry_transient
async def anonymize_contacts(database: Database, *, now: datetime, after_days: int) -> int:
    """Erase contact data of orders whose event ended more than `after_days` ago.

    Amounts, items and tickets stay (they are the accounting record); the contact
    fields are cleared and `anonymized_at` set, so each order is anonymized once.
    """
    async with transaction(database) as conn:
        done = await conn.fetch(
            """UPDATE ticketing.orders o
                  SET contact_email = NULL, contact_name = NULL, contact_phone = NULL,
                      anonymized_at = $1, updated_at = $1
                 FROM events.events e
                WHERE e.id = o.event_id AND o.anonymized_at IS NULL
                  AND coalesce(e.end_at, e.start_at) < $2
                RETURNING o.id""",
            now,
            now - timedelta(days=after_days),
        )
    return len(done)
