"""The waitlist of a sold-out tier: join, leave, and the line as its people and its
organizer see it.

A person joins a tier's line with the number of seats they want, only while the public
cannot get that many (`NOT_SOLD_OUT` otherwise). Seats freed later (a hold released,
made smaller or expired, tickets refunded, capacity raised) are offered to the line, in
the transaction that freed them, by `db.holds.offer_freed` (the one owner of "capacity
freed", with the rule for what the public may take): an offer is a hold of the
entry's seats that expires after the event's offer window (`waitlist_offer_minutes`,
an hour by default), checked out like any other hold. An offer that expires or is
given up frees its seats again, so they pass to the next in line.

An entry's stored status is `pending_approval`, `waiting`, `offered`, `left` or
`declined`; what became of an offer is its hold's status, so the status shown
(`ENTRY_STATUS`) is derived: pending_approval, waiting, offered, purchased (the hold
became tickets), expired (the offer lapsed), left or declined.

Manual approval (the event's `waitlist_approval`): a join to an event in manual mode is
`pending_approval`, not in line: it adds nothing to the tier's `waitlist_demand` and is
never offered seats, until its organizer approves it (`db.waitlist_approval`). Switching
the event back to automatic leaves pending entries pending.

Each operation is one transaction, opened here. Lock order (`db.holds`): the tier row
first (entries are written only under their tier's lock), then the entries, then holds.

Errors: `TicketingError` with TIER_NOT_FOUND, EVENT_NOT_PUBLISHED, SALES_ENDED,
QUANTITY_INVALID, MAX_PER_ORDER_EXCEEDED (``max_per_order``), NOT_SOLD_OUT
(``available``), ALREADY_WAITING (an entry pending, waiting or offered),
WAITLIST_ENTRY_NOT_FOUND, HOLD_IN_CHECKOUT, NOT_ALLOWED, INVALID_INPUT.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

import asyncpg
from databases import Database

import db.holds
from db.core import connection, retry_transient, transaction
from db.errors import TicketingCode, TicketingError
from db.events import Actor
from db.pages import decode_cursor, encode_cursor

MAX_PAGE = 100

# What an entry is now, from its stored status and its offer's hold ($1: now). The one
# place this is decided; every read below selects it.
ENTRY_STATUS = """CASE
    WHEN w.status <> 'offered' THEN w.status
    WHEN h.status = 'active' AND h.expires_at > $1 THEN 'offered'
    WHEN h.status = 'converted' THEN 'purchased'
    WHEN h.status IN ('active', 'expired') THEN 'expired'
    ELSE 'left' END"""

# A waiting entry's place in its tier's line (1 = next), counting waiting entries only.
_POSITION = """CASE WHEN w.status = 'waiting' THEN (
    SELECT count(*) FROM ticketing.waitlist_entries x
     WHERE x.tier_id = w.tier_id AND x.status = 'waiting'
       AND (x.joined_at, x.id) <= (w.joined_at, w.id))::int END"""

_SELECT = f"""SELECT w.id, w.tier_id, w.event_id, w.user_id, w.quantity, w.hold_id,
                     w.joined_at, w.offered_at, w.ended_at,
                     {ENTRY_STATUS} AS status, {_POSITION} AS position,
                     CASE WHEN h.status = 'active' THEN h.expires_at END AS offer_expires_at
                FROM ticketing.waitlist_entries w
                LEFT JOIN ticketing.ticket_holds h ON h.id = w.hold_id"""


@dataclass(frozen=True, slots=True)
class WaitlistEntryRecord:
    """An entry as shown: `status` derived (`ENTRY_STATUS`), `position` only while
    waiting, `offer_expires_at` while its offer's hold is active."""

    id: uuid.UUID
    tier_id: uuid.UUID
    event_id: uuid.UUID
    user_id: uuid.UUID
    quantity: int
    hold_id: uuid.UUID | None
    joined_at: datetime
    offered_at: datetime | None
    ended_at: datetime | None
    status: str
    position: int | None
    offer_expires_at: datetime | None

    @property
    def cursor(self) -> str:
        return encode_cursor(self.joined_at, self.id)

    @classmethod
    def from_row(cls, row: asyncpg.Record) -> WaitlistEntryRecord:
        return cls(**{name: row[name] for name in cls.__slots__})


@dataclass(frozen=True, slots=True)
class WaitlistPage:
    entries: list[WaitlistEntryRecord]
    has_next_page: bool


async def _entry(
    conn: asyncpg.Connection, entry_id: uuid.UUID, now: datetime
) -> WaitlistEntryRecord:
    row = await conn.fetchrow(f"{_SELECT} WHERE w.id = $2", now, entry_id)
    assert row is not None
    return WaitlistEntryRecord.from_row(row)


# --- join ------------------------------------------------------------------------------


@retry_transient
async def join_waitlist(
    database: Database, user_id: uuid.UUID, tier_id: uuid.UUID, quantity: int, now: datetime
) -> WaitlistEntryRecord:
    """Put the user in the tier's line for `quantity` seats.

    Only while the public cannot hold that many (NOT_SOLD_OUT with ``available``
    otherwise), once per tier at a time (ALREADY_WAITING while an entry waits or holds
    an active offer). The tier's lapsed holds are released first, so a ghost
    reservation never sends anyone to the line; free seats the new entry fits (left
    over because the entries ahead did not) are offered to it at once. For an event
    whose waitlist needs approval the entry is `pending_approval` instead: not in line,
    so it asks for no seats and is offered none until approved.
    """
    if quantity < 1:
        raise TicketingError(
            "Quantity must be at least 1", code=TicketingCode.QUANTITY_INVALID, field="quantity"
        )
    async with transaction(database) as conn:
        tier = await _lock_tier_for_join(conn, tier_id, quantity, now)
        await db.holds.expire_tier_holds(conn, tier_id, now)
        await _refuse_duplicate(conn, tier_id, user_id, now)
        row = await conn.fetchrow(
            """SELECT quantity - reserved_quantity - issued_quantity - waitlist_demand AS public
                 FROM ticketing.ticket_tiers WHERE id = $1""",
            tier_id,
        )
        assert row is not None
        if row["public"] >= quantity:
            raise TicketingError(
                f"Not sold out: {row['public']} left, buy them instead",
                code=TicketingCode.NOT_SOLD_OUT,
                field="quantity",
                available=row["public"],
            )
        manual = tier["waitlist_approval"] == "manual"
        entry_id = await conn.fetchval(
            """INSERT INTO ticketing.waitlist_entries
                   (tier_id, event_id, user_id, quantity, status, joined_at, updated_at)
               VALUES ($1, $2, $3, $4, $5, $6, $6) RETURNING id""",
            tier_id,
            tier["event_id"],
            user_id,
            quantity,
            "pending_approval" if manual else "waiting",
            now,
        )
        if not manual:
            await db.holds.wait_for_seats(conn, tier_id, quantity, now)
        await db.holds.offer_freed(conn, [tier_id], now)
        return await _entry(conn, entry_id, now)


async def _lock_tier_for_join(
    conn: asyncpg.Connection, tier_id: uuid.UUID, quantity: int, now: datetime
) -> asyncpg.Record:
    """Lock the tier (first in the lock order) and refuse a line nobody could buy from."""
    tier = await conn.fetchrow(
        """SELECT t.event_id, t.status, t.max_per_order, t.sales_end_at,
                  e.status AS event_status, e.waitlist_approval
             FROM ticketing.ticket_tiers t JOIN events.events e ON e.id = t.event_id
            WHERE t.id = $1 FOR UPDATE OF t""",
        tier_id,
    )
    if tier is None:
        raise TicketingError("Tier not found", code=TicketingCode.TIER_NOT_FOUND, field="tier_id")
    if tier["event_status"] != "published":
        raise TicketingError("The event is not on sale", code=TicketingCode.EVENT_NOT_PUBLISHED)
    ended = tier["sales_end_at"] is not None and now >= tier["sales_end_at"]
    if tier["status"] == "closed" or ended:
        raise TicketingError("Sales have ended", code=TicketingCode.SALES_ENDED)
    if quantity > tier["max_per_order"]:
        raise TicketingError(
            f"At most {tier['max_per_order']} per order",
            code=TicketingCode.MAX_PER_ORDER_EXCEEDED,
            field="quantity",
            max_per_order=tier["max_per_order"],
        )
    return tier


async def _refuse_duplicate(
    conn: asyncpg.Connection, tier_id: uuid.UUID, user_id: uuid.UUID, now: datetime
) -> None:
    live = await conn.fetchval(
        f"""SELECT w.id FROM ticketing.waitlist_entries w
              LEFT JOIN ticketing.ticket_holds h ON h.id = w.hold_id
             WHERE w.tier_id = $2 AND w.user_id = $3
               AND {ENTRY_STATUS} IN ('pending_approval', 'waiting', 'offered')""",
        now,
        tier_id,
        user_id,
    )
    if live is not None:
        raise TicketingError(
            "You are already on this tier's waitlist",
            code=TicketingCode.ALREADY_WAITING,
        )


# --- leave -----------------------------------------------------------------------------


@retry_transient
async def leave_waitlist(
    database: Database, actor: Actor, entry_id: uuid.UUID, now: datetime
) -> WaitlistEntryRecord:
    """Take the entry out of its line; idempotent (an entry that left, or whose offer
    ended, is returned as it is).

    An active offer is given up: its hold is released and its seats pass to the next
    in line in this transaction, unless the hold is in checkout (HOLD_IN_CHECKOUT:
    cancel that order first). WAITLIST_ENTRY_NOT_FOUND for someone else's entry.
    """
    async with connection(database) as conn:
        found = await conn.fetchrow(
            "SELECT tier_id, user_id FROM ticketing.waitlist_entries WHERE id = $1", entry_id
        )
    if found is None or not (actor.is_admin or found["user_id"] == actor.user_id):
        raise TicketingError(
            "Waitlist entry not found",
            code=TicketingCode.WAITLIST_ENTRY_NOT_FOUND,
            field="entry_id",
        )
    async with transaction(database) as conn:
        await conn.execute(
            "SELECT 1 FROM ticketing.ticket_tiers WHERE id = $1 FOR UPDATE", found["tier_id"]
        )
        entry = await conn.fetchrow(
            """SELECT w.status, w.quantity, w.hold_id FROM ticketing.waitlist_entries w
                WHERE w.id = $1 FOR UPDATE""",
            entry_id,
        )
        assert entry is not None
        if entry["status"] == "pending_approval":  # not in line: asks for no seats
            await _mark_left(conn, entry_id, now)
        elif entry["status"] == "waiting":
            await _mark_left(conn, entry_id, now)
            await db.holds.wait_for_seats(conn, found["tier_id"], -entry["quantity"], now)
        elif entry["status"] == "offered":
            await _give_up_offer(conn, entry_id, entry["hold_id"], now)
        return await _entry(conn, entry_id, now)


async def _mark_left(conn: asyncpg.Connection, entry_id: uuid.UUID, now: datetime) -> None:
    await conn.execute(
        """UPDATE ticketing.waitlist_entries
              SET status = 'left', ended_at = $2, updated_at = $2 WHERE id = $1""",
        entry_id,
        now,
    )


async def _give_up_offer(
    conn: asyncpg.Connection, entry_id: uuid.UUID, hold_id: uuid.UUID, now: datetime
) -> None:
    """Release the offer's hold (its seats go to the next in line) and leave; an offer
    already over (bought, expired, released) is left as it is."""
    row = await conn.fetchrow(
        f"SELECT {db.holds.HOLD_COLUMNS} FROM ticketing.ticket_holds WHERE id = $1", hold_id
    )
    hold = db.holds.HoldRecord.from_row(row) if row is not None else None
    if hold is None or hold.status != "active":
        return
    if hold.order_id is not None:
        raise TicketingError(
            "This offer is in checkout; cancel that order first",
            code=TicketingCode.HOLD_IN_CHECKOUT,
        )
    await _mark_left(conn, entry_id, now)
    if await db.holds.release_unattached(conn, hold, now) is None:
        raise TicketingError(
            "The offer changed concurrently; try again", code=TicketingCode.CONFLICT
        )


# --- reads -----------------------------------------------------------------------------


async def my_entries(
    database: Database, user_id: uuid.UUID, now: datetime
) -> list[WaitlistEntryRecord]:
    """The user's entries that have not left, newest first (at most `MAX_PAGE`)."""
    async with connection(database) as conn:
        rows = await conn.fetch(
            f"""{_SELECT} WHERE w.user_id = $2 AND w.status <> 'left'
                 ORDER BY w.joined_at DESC, w.id DESC LIMIT {MAX_PAGE}""",
            now,
            user_id,
        )
    return [WaitlistEntryRecord.from_row(row) for row in rows]


async def get_entries(
    database: Database, ids: list[uuid.UUID], now: datetime
) -> list[WaitlistEntryRecord | None]:
    """Entries in the order of `ids` (whose they are is the caller's to check)."""
    async with connection(database) as conn:
        return await read_entries(conn, ids, now)


async def read_entries(
    conn: asyncpg.Connection, ids: list[uuid.UUID], now: datetime
) -> list[WaitlistEntryRecord | None]:
    """Entries in the order of `ids`, on the caller's connection (inside its transaction,
    they show what it wrote)."""
    rows = await conn.fetch(f"{_SELECT} WHERE w.id = ANY($2::uuid[])", now, ids)
    by_id = {row["id"]: WaitlistEntryRecord.from_row(row) for row in rows}
    return [by_id.get(i) for i in ids]


async def tier_line(
    database: Database,
    actor: Actor,
    tier_id: uuid.UUID,
    now: datetime,
    *,
    first: int,
    after: str | None,
) -> WaitlistPage:
    """A tier's line for its organizer (or an admin): the entries pending approval,
    waiting or holding an active offer, by join time, each waiting one with its
    position (pending entries are listed so they can be approved, without a position).

    TIER_NOT_FOUND for a tier the actor does not manage; INVALID_INPUT for a bad
    `first` (1 to `MAX_PAGE`) or `after` cursor.
    """
    if not 1 <= first <= MAX_PAGE:
        raise TicketingError(
            f"first must be 1 to {MAX_PAGE}", code=TicketingCode.INVALID_INPUT, field="first"
        )
    start = decode_cursor(after) if after is not None else None
    if after is not None and start is None:
        raise TicketingError("Unknown cursor", code=TicketingCode.INVALID_INPUT, field="after")
    async with connection(database) as conn:
        organizer = await conn.fetchval(
            """SELECT e.organizer_id FROM ticketing.ticket_tiers t
                 JOIN events.events e ON e.id = t.event_id WHERE t.id = $1""",
            tier_id,
        )
        if organizer is None or not actor.may_manage(organizer):
            raise TicketingError(
                "Tier not found", code=TicketingCode.TIER_NOT_FOUND, field="tier_id"
            )
        at, after_id = start if start is not None else (None, None)
        rows = await conn.fetch(
            f"""SELECT * FROM ({_SELECT} WHERE w.tier_id = $2
                 AND ($3::timestamptz IS NULL OR (w.joined_at, w.id) > ($3, $4::uuid))) e
                WHERE e.status IN ('pending_approval', 'waiting', 'offered')
                ORDER BY e.joined_at, e.id LIMIT $5""",
            now,
            tier_id,
            at,
            after_id,
            first + 1,
        )
    entries = [WaitlistEntryRecord.from_row(row) for row in rows[:first]]
    return WaitlistPage(entries=entries, has_next_page=len(rows) > first)
