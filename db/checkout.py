"""Checkout: the user's holds become a pending order, priced here, ready to be paid.

Every public function is one business operation in one transaction, opened here (and
retried from the start on a serialization failure or deadlock, `db.core.retry_transient`);
the order row is locked before its status is read (see `db.order_records`). Row locks
follow the one order written in `db.holds`: orders, then tiers, then holds; the holds
themselves are written by `db.holds`. The payment gateway is never called here:
`liventix.payments` creates the payment intent after this commits, then records it with
`attach_payment_intent` (or undoes the checkout with `cancel_checkout`).

A discount code given at checkout is priced here (`db.discount_codes.discount`) and
one of its uses reserved in the same transaction (`db.code_uses`), its row locked right
after the orders, as the lock order says.

Errors: `OrderError` with CONFLICT, HOLD_NOT_FOUND, HOLD_EXPIRED, MIXED_EVENTS,
MIXED_CURRENCIES, CONTACT_INVALID, ORDER_NOT_FOUND, CODE_NOT_FOUND, CODE_EXPIRED,
CODE_EXHAUSTED or CODE_NOT_APPLICABLE.
"""

from __future__ import annotations

import re
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime

import asyncpg
from databases import Database

import db.code_uses
import db.discount_codes
import db.holds
from db.core import retry_transient, transaction
from db.discount_codes import DiscountCodeRecord, Line
from db.errors import OrderCode, OrderError
from db.order_records import ORDER_COLUMNS, OrderRecord, TicketRecord, tickets_of

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
        raise OrderError(
            "Enter a valid email address", code=OrderCode.CONTACT_INVALID, field="email"
        )
    if not 1 <= len(name) <= 200:
        raise OrderError(
            "Name must be 1 to 200 characters", code=OrderCode.CONTACT_INVALID, field="name"
        )
    if phone is not None and not _PHONE.match(phone):
        raise OrderError(
            "Enter a valid phone number", code=OrderCode.CONTACT_INVALID, field="phone"
        )
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


# ---------------------------------------------------------------------------- checkout


async def create_pending_order(
    database: Database,
    *,
    user_id: uuid.UUID,
    hold_ids: list[uuid.UUID],
    contact: Contact,
    now: datetime,
    code: str | None = None,
) -> Checkout:
    """Turn the user's active holds (one event) into a `pending` order, priced here.

    Holds stay active and reserved; they point at the order until it is paid (they are
    converted) or fails (they stay reusable until they expire). Checking out the same
    holds again, even concurrently, returns the same order (`reused`): a pending one
    takes the new contact details, a completed one is returned as it is. Checking out
    an overlapping set cancels the earlier pending order. A free order (total 0) is
    then completed by `complete_order` in its own transaction. Locks follow the order
    in `db.holds`: the orders the holds point at, their tiers (FOR KEY SHARE, so
    checkout never waits for buyers of the same tier), then the holds. Raises
    `OrderError` (HOLD_NOT_FOUND, HOLD_EXPIRED, MIXED_EVENTS, MIXED_CURRENCIES,
    CONTACT_INVALID, CONFLICT) before writing anything.

    `code`, in any case, is the event's discount code to apply: the order records it and
    what it took off, and reserves one of its uses (CODE_NOT_FOUND, CODE_EXPIRED,
    CODE_EXHAUSTED, CODE_NOT_APPLICABLE otherwise, and nothing is written). A repeat
    with the same holds and another code (or none) replaces the pending order.
    """
    contact = validate_contact(contact)
    code = (code or "").strip() or None
    wanted = sorted(set(hold_ids))
    if not wanted:
        raise OrderError(
            "Choose at least one hold", code=OrderCode.HOLD_NOT_FOUND, field="hold_ids"
        )
    for _ in range(CHECKOUT_ATTEMPTS):
        try:
            return await _checkout_once(database, user_id, wanted, contact, now, code)
        except _HoldsMoved:
            continue
    raise OrderError("Your checkout changed concurrently; try again", code=OrderCode.CONFLICT)


class _HoldsMoved(Exception):
    """A concurrent checkout attached the holds to an order we had not locked: restart."""


@retry_transient
async def _checkout_once(
    database: Database,
    user_id: uuid.UUID,
    wanted: list[uuid.UUID],
    contact: Contact,
    now: datetime,
    code_text: str | None,
) -> Checkout:
    """One attempt of `create_pending_order`, in one transaction (see there)."""
    async with transaction(database) as conn:
        holds, code = await _lock_holds(conn, user_id, wanted, code_text)
        if len(holds) != len(wanted):
            raise OrderError("Hold not found", code=OrderCode.HOLD_NOT_FOUND, field="hold_ids")
        done = await _completed_checkout(conn, holds, wanted)
        if done is not None:
            return done
        if any(h["status"] == "converted" for h in holds):
            raise OrderError("Hold not found", code=OrderCode.HOLD_NOT_FOUND, field="hold_ids")
        if any(h["status"] != "active" or h["expires_at"] <= now for h in holds):
            raise OrderError(
                "Your reservation expired; reserve the tickets again",
                code=OrderCode.HOLD_EXPIRED,
                field="hold_ids",
            )
        if len({h["event_id"] for h in holds}) != 1:
            raise OrderError(
                "Check out tickets of one event at a time",
                code=OrderCode.MIXED_EVENTS,
                field="hold_ids",
            )
        if code_text is not None and code is None:
            raise OrderError(
                "No such code for this event", code=OrderCode.CODE_NOT_FOUND, field="code"
            )
        pending = {h["order_id"] for h in holds if h["order_status"] == "pending"}
        if len(pending) == 1 and all(h["order_id"] in pending for h in holds):
            order_id = next(iter(pending))
            if await _same_checkout(conn, order_id, wanted, code):
                return await _repeat_pending(conn, order_id, contact, now)
        if pending:
            await _cancel_orders(conn, list(pending), "superseded by a new checkout", now)
        order = await _insert_order(conn, user_id, holds, contact, code, now)
    return Checkout(order=order, reused=False, receipt_email=contact.email)


async def _lock_holds(
    conn: asyncpg.Connection, user_id: uuid.UUID, wanted: list[uuid.UUID], code_text: str | None
) -> tuple[list[asyncpg.Record], DiscountCodeRecord | None]:
    """Lock, in the documented order, the orders the holds point at, the discount codes
    of those orders and the code `code_text` names (read again once locked), the holds'
    tiers, then the holds.

    Which orders, codes and tiers is read without a lock first; a hold's tier never
    changes, but its order may have been set meanwhile by a concurrent checkout of the
    same holds, which raises `_HoldsMoved` so the caller starts again and finds that
    order. The code is None when not given, or when the holds' event has no such code.
    """
    seen = await conn.fetch(
        """SELECT tier_id, order_id, event_id FROM ticketing.ticket_holds
            WHERE id = ANY($1::uuid[]) AND user_id = $2""",
        wanted,
        user_id,
    )
    orders = sorted({r["order_id"] for r in seen if r["order_id"] is not None})
    locked = await conn.fetch(
        """SELECT discount_code_id FROM ticketing.orders WHERE id = ANY($1::uuid[])
            ORDER BY id FOR UPDATE""",
        orders,
    )
    events = {r["event_id"] for r in seen}
    found = None
    if code_text is not None and len(events) == 1:
        found = await db.discount_codes.find_code(conn, events.pop(), code_text)
    code_ids = {r["discount_code_id"] for r in locked if r["discount_code_id"] is not None}
    await db.code_uses.lock_codes(conn, code_ids | ({found.id} if found else set()))
    code = await db.discount_codes.get_code(conn, found.id) if found else None
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
    return holds, code


async def _same_checkout(
    conn: asyncpg.Connection,
    order_id: uuid.UUID,
    wanted: list[uuid.UUID],
    code: DiscountCodeRecord | None,
) -> bool:
    """Whether the pending order was checked out with exactly these holds and this code."""
    if await _order_holds(conn, order_id) != wanted:
        return False
    applied: uuid.UUID | None = await conn.fetchval(
        "SELECT discount_code_id FROM ticketing.orders WHERE id = $1", order_id
    )
    return applied == (code.id if code else None)


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
        tickets=await tickets_of(conn, order_id),
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
    await db.code_uses.release_uses(conn, order_ids, now)
    await db.holds.detach_holds(conn, order_ids, now)


async def _insert_order(
    conn: asyncpg.Connection,
    user_id: uuid.UUID,
    holds: list[asyncpg.Record],
    contact: Contact,
    code: DiscountCodeRecord | None,
    now: datetime,
) -> OrderRecord:
    lines, currency = await _lines(conn, holds)
    discount = _discount(code, lines, currency, now)
    total = sum(line.unit_price_cents * line.quantity for line in lines) - discount
    row = await conn.fetchrow(
        f"""INSERT INTO ticketing.orders
                (event_id, user_id, contact_email, contact_name, contact_phone, metadata,
                 total_cents, currency, discount_code_id, discount_code, discount_cents,
                 created_at, updated_at)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $12)
            RETURNING {ORDER_COLUMNS}""",
        holds[0]["event_id"],
        user_id,
        contact.email,
        contact.name,
        contact.phone,
        {"hold_ids": [str(h["id"]) for h in holds], "receipt_email": contact.email},
        total,
        currency,
        code.id if code else None,
        code.code if code else None,
        discount,
        now,
    )
    assert row is not None
    order = OrderRecord.from_row(row)
    await conn.execute(
        """INSERT INTO ticketing.order_items (order_id, tier_id, quantity, unit_price_cents)
           SELECT $1, t.tier_id, t.quantity, t.price
             FROM unnest($2::uuid[], $3::int[], $4::int[]) AS t(tier_id, quantity, price)""",
        order.id,
        [line.tier_id for line in lines],
        [line.quantity for line in lines],
        [line.unit_price_cents for line in lines],
    )
    await db.holds.attach_holds(conn, [h["id"] for h in holds], order.id, now)
    if code is not None:
        await db.code_uses.reserve_use(
            conn, code_id=code.id, order_id=order.id, user_id=user_id, now=now
        )
    return order


async def _lines(conn: asyncpg.Connection, holds: list[asyncpg.Record]) -> tuple[list[Line], str]:
    """The holds as priced lines (one per tier, by tier id) and their one currency."""
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
            "Check out tiers of one currency at a time",
            code=OrderCode.MIXED_CURRENCIES,
            field="hold_ids",
        )
    lines = [Line(tier["id"], tier["price_cents"], quantities[tier["id"]]) for tier in tiers]
    return lines, currencies.pop()


def _discount(
    code: DiscountCodeRecord | None, lines: list[Line], currency: str, now: datetime
) -> int:
    """What the (locked) code takes off; CODE_EXPIRED if it is off or outside its window
    now. Whether a use is left is the conditional update's to say (`reserve_use`)."""
    if code is None:
        return 0
    started = code.starts_at is None or code.starts_at <= now
    ended = code.ends_at is not None and code.ends_at <= now
    if not code.enabled or not started or ended:
        raise OrderError("This code is not valid now", code=OrderCode.CODE_EXPIRED, field="code")
    return db.discount_codes.discount(code, lines, currency)


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
        raise OrderError("Order not found", code=OrderCode.ORDER_NOT_FOUND)
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
