"""The buyer's holds: reserve seats of a tier while paying, release them, list them.

Each operation is one transaction, opened here and retried from the start on a
serialization failure or deadlock (`db.core.retry_transient`); the seats and hold rows
themselves are written by `db.holds`, which keeps the lock order (tier, then hold).
A reserve is a single statement (`db.holds.reserve`) that commits by itself, so the
tier's row lock lasts as long as the server-side function runs, and no client round
trip. An operation that lost a race it can win on a second try (the same user's
concurrent first hold; checkout touching the hold being released) restarts a few times.

Errors: `TicketingError` with a `TicketingCode` (see `db.errors`); SOLD_OUT carries
``available`` (what is still free).
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

import asyncpg
from databases import Database

import db.holds
from db import notify
from db.core import connection, retry_transient, transaction
from db.errors import TicketingCode, TicketingError
from db.events import Actor
from db.holds import HOLD_COLUMNS, HoldRecord

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

    One statement (`db.holds.reserve`), committed by itself. A user's existing active
    hold on the tier is adjusted to the new quantity (only the difference is taken or
    given back) and its expiry refreshed, unless it is already attached to an order
    (`HOLD_IN_CHECKOUT`); asking again for the same quantity only refreshes it. Lapsed
    holds of the tier are released before a buyer is refused, and stay released when
    the buyer is refused anyway. Raises `TicketingError` with SOLD_OUT (details:
    ``available``), QUANTITY_INVALID, MAX_PER_ORDER_EXCEEDED, SALES_NOT_OPEN,
    SALES_ENDED, EVENT_NOT_PUBLISHED or TIER_NOT_FOUND. The user's profile must exist.
    """
    if quantity < 1:
        raise TicketingError(
            "Quantity must be at least 1", code=TicketingCode.QUANTITY_INVALID, field="quantity"
        )
    expires_at = now + timedelta(seconds=ttl_seconds)
    for _ in range(ATTEMPTS):
        try:
            held = await _reserve_once(database, user_id, tier_id, quantity, now, expires_at)
        except asyncpg.UniqueViolationError as exc:
            # The same user's concurrent request inserted the hold first: adjust it.
            if exc.constraint_name != "ticket_holds_one_active":
                raise
            continue
        if isinstance(held, TicketingError):
            raise held
        return held
    raise TicketingError("The hold changed concurrently; try again", code=TicketingCode.CONFLICT)


@retry_transient
async def _reserve_once(
    database: Database,
    user_id: uuid.UUID,
    tier_id: uuid.UUID,
    quantity: int,
    now: datetime,
    expires_at: datetime,
) -> HoldRecord | TicketingError:
    # One statement outside any transaction: it commits as the server-side function
    # returns, releasing the tier's row lock without waiting for a COMMIT from this
    # process (whose event loop may be busy with other requests). Leaving `recording`
    # normally means it committed: its announcements go to this process's subscribers.
    with notify.recording(database):
        async with connection(database) as conn:
            return await db.holds.reserve(
                conn,
                tier_id=tier_id,
                user_id=user_id,
                quantity=quantity,
                now=now,
                expires_at=expires_at,
            )


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
