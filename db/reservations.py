"""The buyer's holds: reserve seats of a tier while paying, release them, list them.

Each operation is one transaction, opened here and retried from the start on a
serialization failure or deadlock (`db.core.retry_transient`); the seats and hold rows
themselves are written by `db.holds`, which keeps the lock order (tier, then hold).
A hold that changed between our read and our write (the same user racing themselves,
or checkout or the sweeper touching it meanwhile) restarts the operation a few times.

Errors: `TicketingError` with a `TicketingCode` (see `db.errors`); SOLD_OUT carries
``available`` (what is still free).
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

import asyncpg
from databases import Database

import db.holds
from db.core import connection, retry_transient, transaction
from db.errors import TicketingCode, TicketingError
from db.events import Actor
from db.holds import HOLD_COLUMNS, HoldRecord
from db.tiers import T_COLUMNS

# Optimistic restarts when a hold changed between our read and our write.
ATTEMPTS = 4


class _Conflict(Exception):
    """The hold changed under us: roll back and start the operation again."""


async def active_holds(database: Database, user_id: uuid.UUID, now: datetime) -> list[HoldRecord]:
    """The user's holds that still reserve capacity (active and not yet expired)."""
    async with connection(database) as conn:
        rows = await conn.fetch(
            f"""SELECT {HOLD_COLUMNS} FROM ticketing.ticket_holds
                 WHERE user_id = $1 AND status = 'active' AND expires_at > $2
                 ORDER BY expires_at, id""",
            user_id,
            now,
        )
    return [HoldRecord.from_row(row) for row in rows]


async def get_holds(database: Database, ids: list[uuid.UUID]) -> list[HoldRecord | None]:
    """Holds in the order of `ids`, in any status (a DataLoader batch); whose they are
    is the caller's to check."""
    async with connection(database) as conn:
        rows = await conn.fetch(
            f"SELECT {HOLD_COLUMNS} FROM ticketing.ticket_holds WHERE id = ANY($1::uuid[])", ids
        )
    by_id = {row["id"]: HoldRecord.from_row(row) for row in rows}
    return [by_id.get(i) for i in ids]


_RESERVE_CONTEXT = f"""
SELECT {T_COLUMNS}, e.status AS event_status,
       h.id AS hold_id, h.quantity AS hold_quantity, h.order_id AS hold_order_id,
       h.expires_at AS hold_expires_at
  FROM ticketing.ticket_tiers t
  JOIN events.events e ON e.id = t.event_id
  LEFT JOIN ticketing.ticket_holds h
         ON h.tier_id = t.id AND h.user_id = $2 AND h.status = 'active'
 WHERE t.id = $1"""


def _check_on_sale(row: asyncpg.Record, quantity: int, now: datetime) -> None:
    if row["event_status"] != "published":
        raise TicketingError("The event is not on sale", code=TicketingCode.EVENT_NOT_PUBLISHED)
    if row["status"] == "closed":
        raise TicketingError("Sales for this tier are closed", code=TicketingCode.SALES_ENDED)
    if row["sales_start_at"] is not None and now < row["sales_start_at"]:
        raise TicketingError(
            "Sales have not opened yet",
            code=TicketingCode.SALES_NOT_OPEN,
            opens_at=row["sales_start_at"],
        )
    if row["sales_end_at"] is not None and now >= row["sales_end_at"]:
        raise TicketingError("Sales have ended", code=TicketingCode.SALES_ENDED)
    if quantity > row["max_per_order"]:
        raise TicketingError(
            f"At most {row['max_per_order']} per order",
            code=TicketingCode.MAX_PER_ORDER_EXCEEDED,
            field="quantity",
            max_per_order=row["max_per_order"],
        )


@retry_transient
async def expire_tier_holds(database: Database, tier_id: uuid.UUID, now: datetime) -> None:
    """Release one tier's expired holds (and announce the freed seats), committed."""
    async with transaction(database) as conn:
        await db.holds.expire_tier_holds(conn, tier_id, now)


async def reserve_tickets(
    database: Database,
    user_id: uuid.UUID,
    tier_id: uuid.UUID,
    quantity: int,
    *,
    now: datetime,
    ttl_seconds: int,
) -> HoldRecord:
    """Hold `quantity` seats of a tier for the user until ``now + ttl_seconds``.

    One transaction. A user's existing active hold on the tier is adjusted to the new
    quantity (only the difference is taken or given back) and its expiry refreshed,
    unless it is already attached to an order (`HOLD_IN_CHECKOUT`). Raises
    `TicketingError` with SOLD_OUT (details: ``available``), QUANTITY_INVALID,
    MAX_PER_ORDER_EXCEEDED, SALES_NOT_OPEN, SALES_ENDED, EVENT_NOT_PUBLISHED or
    TIER_NOT_FOUND. The user's profile must exist.
    """
    if quantity < 1:
        raise TicketingError(
            "Quantity must be at least 1", code=TicketingCode.QUANTITY_INVALID, field="quantity"
        )
    expires_at = now + timedelta(seconds=ttl_seconds)
    for _ in range(ATTEMPTS):
        try:
            return await _reserve_once(database, user_id, tier_id, quantity, now, expires_at)
        except _Conflict:
            continue
        except db.holds.SoldOutAfterExpiring as refused:
            await expire_tier_holds(database, tier_id, now)
            raise db.holds.sold_out(refused.available) from None
        except asyncpg.UniqueViolationError as exc:
            # The same user's concurrent request inserted the hold first: adjust it.
            if exc.constraint_name != "ticket_holds_one_active":
                raise
    raise TicketingError("The hold changed concurrently; try again", code=TicketingCode.CONFLICT)


@retry_transient
async def _reserve_once(
    database: Database,
    user_id: uuid.UUID,
    tier_id: uuid.UUID,
    quantity: int,
    now: datetime,
    expires_at: datetime,
) -> HoldRecord:
    async with transaction(database) as conn:
        context = await conn.fetchrow(_RESERVE_CONTEXT, tier_id, user_id)
        if context is None:
            raise TicketingError(
                "Tier not found", code=TicketingCode.TIER_NOT_FOUND, field="tier_id"
            )
        _check_on_sale(context, quantity, now)
        hold_id: uuid.UUID | None = context["hold_id"]
        held = 0
        lapsed = False
        if hold_id is not None:
            if context["hold_order_id"] is not None:
                raise TicketingError(
                    "This hold is in checkout; finish or cancel that order first",
                    code=TicketingCode.HOLD_IN_CHECKOUT,
                )
            if context["hold_expires_at"] <= now:
                # The user's own hold lapsed: retire it like the sweeper would, start anew.
                await db.holds.expire_tier_holds(conn, tier_id, now)
                hold_id = None
                lapsed = True
            else:
                held = context["hold_quantity"]
        delta = quantity - held
        # The tier first (lock order), by the conditional update itself: a buyer waits
        # for the tier only while another transaction holds it.
        if delta > 0:
            await db.holds.take_seats(conn, tier_id, delta, now, expired_already=lapsed)
        elif delta < 0:
            await db.holds.give_back(conn, tier_id, -delta)
        if hold_id is None:
            return await db.holds.insert_hold(
                conn,
                tier_id=tier_id,
                event_id=context["event_id"],
                user_id=user_id,
                quantity=quantity,
                expires_at=expires_at,
                now=now,
            )
        resized = await db.holds.resize_hold(
            conn, hold_id, held=held, quantity=quantity, expires_at=expires_at, now=now
        )
        if resized is None:
            raise _Conflict
        return resized


async def release_hold(
    database: Database, actor: Actor, hold_id: uuid.UUID, now: datetime
) -> HoldRecord:
    """Give a hold's seats back. Idempotent for holds already released or expired.

    Raises HOLD_NOT_FOUND (also for another user's hold) or HOLD_IN_CHECKOUT.
    """
    for _ in range(ATTEMPTS):
        try:
            return await _release_once(database, actor, hold_id, now)
        except _Conflict:
            continue
    raise TicketingError("The hold changed concurrently; try again", code=TicketingCode.CONFLICT)


@retry_transient
async def _release_once(
    database: Database, actor: Actor, hold_id: uuid.UUID, now: datetime
) -> HoldRecord:
    async with transaction(database) as conn:
        found = await conn.fetchrow(
            f"SELECT {HOLD_COLUMNS} FROM ticketing.ticket_holds WHERE id = $1", hold_id
        )
        if found is None or not (actor.is_admin or found["user_id"] == actor.user_id):
            raise TicketingError(
                "Hold not found", code=TicketingCode.HOLD_NOT_FOUND, field="hold_id"
            )
        hold = HoldRecord.from_row(found)
        if hold.status in ("released", "expired"):
            return hold
        if hold.status == "converted":
            raise TicketingError("This hold became tickets", code=TicketingCode.HOLD_NOT_FOUND)
        if hold.order_id is not None:
            raise TicketingError(
                "This hold is in checkout; cancel that order instead",
                code=TicketingCode.HOLD_IN_CHECKOUT,
            )
        # A checkout that got the hold meanwhile makes the release match nothing, and
        # the retry reports HOLD_IN_CHECKOUT.
        released = await db.holds.release_unattached(conn, hold, now)
        if released is None:
            raise _Conflict
    return released
