"""Manual approval of waitlist entries: the organizer approves or declines, in bulk.

For an event whose waitlist needs approval (`events.waitlist_approval = 'manual'`), a
join is `pending_approval`: not in line (`db.waitlist`). Approving puts it in line with
its original join time, so the line stays first come first served by join time, and
adds its seats to the tier's `waitlist_demand`; any seats already free are then offered
by the one owner of "capacity freed", `db.holds.offer_freed`. Declining is final: the
person sees DECLINED, and a declined entry is never approved. Switching an event back
to automatic leaves its pending entries pending: they are still the organizer's to
decide.

Each call is one transaction and all or nothing: every id must be an entry of an event
the actor manages (WAITLIST_ENTRY_NOT_FOUND, `field` ``ids[i]``, otherwise), and every
entry must allow the decision (WAITLIST_ENTRY_CLOSED otherwise), or nothing changes.
Deciding again what is already so is a no-op (approving an entry in line, declining a
declined one). Lock order (`db.holds`): the entries' tiers by primary key, then the
entries, then (when offering) holds.
"""

from __future__ import annotations

import uuid
from collections import Counter
from datetime import datetime

import asyncpg
from databases import Database

import db.holds
from db.core import retry_transient, transaction
from db.errors import TicketingCode, TicketingError
from db.events import Actor
from db.waitlist import WaitlistEntryRecord, read_entries

MAX_IDS = 100


@retry_transient
async def approve_entries(
    database: Database, actor: Actor, ids: list[uuid.UUID], now: datetime
) -> list[WaitlistEntryRecord]:
    """Put pending entries in line by their join time, then offer free seats to the
    tiers' lines. Entries in line already are left as they are; a declined or left
    entry is refused (WAITLIST_ENTRY_CLOSED)."""
    ids = _distinct(ids)
    async with transaction(database) as conn:
        entries = await _lock_entries(conn, actor, ids)
        _refuse(ids, entries, closed=("declined", "left"), verb="approved")
        pending = [e for e in entries.values() if e["status"] == "pending_approval"]
        await _set_status(conn, [e["id"] for e in pending], "waiting", now)
        for tier_id, seats in _seats_by_tier(pending).items():
            await db.holds.wait_for_seats(conn, tier_id, seats, now)
        await db.holds.offer_freed(conn, sorted({e["tier_id"] for e in pending}), now)
        return await _read(conn, ids, now)


@retry_transient
async def decline_entries(
    database: Database, actor: Actor, ids: list[uuid.UUID], now: datetime
) -> list[WaitlistEntryRecord]:
    """Decline entries pending approval or waiting in line (their seats leave the tier's
    demand); declined ones are left as they are. An entry that left, or that was
    offered seats already (the offer is its holder's to use or give up), is refused
    (WAITLIST_ENTRY_CLOSED)."""
    ids = _distinct(ids)
    async with transaction(database) as conn:
        entries = await _lock_entries(conn, actor, ids)
        _refuse(ids, entries, closed=("left", "offered"), verb="declined")
        open_ = [e for e in entries.values() if e["status"] in ("pending_approval", "waiting")]
        await _set_status(conn, [e["id"] for e in open_], "declined", now)
        waiting = [e for e in open_ if e["status"] == "waiting"]
        for tier_id, seats in _seats_by_tier(waiting).items():
            await db.holds.wait_for_seats(conn, tier_id, -seats, now)
        return await _read(conn, ids, now)


def _distinct(ids: list[uuid.UUID]) -> list[uuid.UUID]:
    """The ids once each, in the caller's order; INVALID_INPUT past `MAX_IDS`."""
    distinct = list(dict.fromkeys(ids))
    if len(distinct) > MAX_IDS:
        raise TicketingError(
            f"At most {MAX_IDS} entries at a time", code=TicketingCode.INVALID_INPUT, field="ids"
        )
    return distinct


async def _lock_entries(
    conn: asyncpg.Connection, actor: Actor, ids: list[uuid.UUID]
) -> dict[uuid.UUID, asyncpg.Record]:
    """Check the actor manages every entry's event, then lock the tiers (by primary key)
    and the entries, in the lock order; the entries as locked, by id."""
    found = await conn.fetch(
        """SELECT w.id, w.tier_id, e.organizer_id FROM ticketing.waitlist_entries w
             JOIN events.events e ON e.id = w.event_id WHERE w.id = ANY($1::uuid[])""",
        ids,
    )
    managed = {row["id"]: row["tier_id"] for row in found if actor.may_manage(row["organizer_id"])}
    for index, entry_id in enumerate(ids):
        if entry_id not in managed:
            raise TicketingError(
                "Waitlist entry not found among your events",
                code=TicketingCode.WAITLIST_ENTRY_NOT_FOUND,
                field=f"ids[{index}]",
            )
    await conn.execute(
        """SELECT 1 FROM ticketing.ticket_tiers WHERE id = ANY($1::uuid[])
            ORDER BY id FOR UPDATE""",
        sorted(set(managed.values())),
    )
    rows = await conn.fetch(
        """SELECT id, tier_id, quantity, status FROM ticketing.waitlist_entries
            WHERE id = ANY($1::uuid[]) ORDER BY joined_at, id FOR UPDATE""",
        ids,
    )
    return {row["id"]: row for row in rows}


def _refuse(
    ids: list[uuid.UUID],
    entries: dict[uuid.UUID, asyncpg.Record],
    *,
    closed: tuple[str, ...],
    verb: str,
) -> None:
    """WAITLIST_ENTRY_CLOSED naming the first entry whose stored status is in `closed`."""
    for index, entry_id in enumerate(ids):
        status = entries[entry_id]["status"]
        if status in closed:
            shown = "was offered seats" if status == "offered" else f"is {status}"
            raise TicketingError(
                f"This entry {shown}: it cannot be {verb}",
                code=TicketingCode.WAITLIST_ENTRY_CLOSED,
                field=f"ids[{index}]",
            )


async def _set_status(
    conn: asyncpg.Connection, ids: list[uuid.UUID], status: str, now: datetime
) -> None:
    """Move entries to `status` (a declined entry ends now; `joined_at` never moves)."""
    if not ids:
        return
    await conn.execute(
        """UPDATE ticketing.waitlist_entries
              SET status = $2, updated_at = $3,
                  ended_at = CASE WHEN $2 = 'declined' THEN $3 ELSE ended_at END
            WHERE id = ANY($1::uuid[])""",
        ids,
        status,
        now,
    )


def _seats_by_tier(entries: list[asyncpg.Record]) -> dict[uuid.UUID, int]:
    seats: Counter[uuid.UUID] = Counter()
    for entry in entries:
        seats[entry["tier_id"]] += entry["quantity"]
    return dict(seats)


async def _read(
    conn: asyncpg.Connection, ids: list[uuid.UUID], now: datetime
) -> list[WaitlistEntryRecord]:
    records = await read_entries(conn, ids, now)
    return [record for record in records if record is not None]
