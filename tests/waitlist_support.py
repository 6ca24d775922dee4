"""Helpers for the waitlist tests: a sold-out tier, a line of people, and the checks
every scenario ends with (books balanced, the line's demand equal to its rows)."""

from __future__ import annotations

import uuid
from datetime import timedelta

from databases import Database

import db.waitlist
from db.core import connection
from liventix.clock import FrozenClock
from tests.orders_support import add_event, add_user, assert_books_balanced, hold


async def sold_out_tier(
    database: Database, clock: FrozenClock, quantity: int = 10
) -> tuple[uuid.UUID, uuid.UUID, list[uuid.UUID]]:
    """(organizer, tier, holds): a tier whose `quantity` seats are held one per buyer."""
    organizer = await add_user(database, "organizer")
    _, tier_id, _ = await add_event(database, organizer, clock, quantity=quantity)
    holds = [
        await hold(database, clock, await add_user(database), tier_id, 1) for _ in range(quantity)
    ]
    return organizer, tier_id, holds


async def line_up(
    database: Database, clock: FrozenClock, tier_id: uuid.UUID, quantities: list[int]
) -> list[db.waitlist.WaitlistEntryRecord]:
    """One new user per quantity joins the tier's line, a second apart (FIFO order)."""
    entries = []
    for quantity in quantities:
        user = await add_user(database)
        entries.append(
            await db.waitlist.join_waitlist(database, user, tier_id, quantity, clock.now())
        )
        clock.advance(1)
    return entries


async def statuses(
    database: Database, clock: FrozenClock, entries: list[db.waitlist.WaitlistEntryRecord]
) -> list[str]:
    records = await db.waitlist.get_entries(database, [e.id for e in entries], clock.now())
    return [r.status if r else "missing" for r in records]


async def assert_line_balanced(database: Database) -> None:
    """Books balanced, and each tier's `waitlist_demand` is its waiting entries' seats."""
    await assert_books_balanced(database)
    async with connection(database) as conn:
        drift = await conn.fetchval(
            """SELECT count(*) FROM ticketing.ticket_tiers t
                WHERE t.waitlist_demand <> coalesce((
                    SELECT sum(quantity) FROM ticketing.waitlist_entries w
                     WHERE w.tier_id = t.id AND w.status = 'waiting'), 0)"""
        )
    assert drift == 0


OFFER_WINDOW = timedelta(minutes=60)
