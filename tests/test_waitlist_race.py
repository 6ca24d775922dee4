"""Freed seats go to the waitlist, never to the public, under real concurrency.

A line of 30 (groups of 1-4) waits for a sold-out tier of 10; the 10 holds lapse at
once. Public buyers race `reserveTickets` over real HTTP against a running server while
the sweeper frees the seats (and the buyers' own requests find the lapsed holds): every
buyer is refused, and exactly the first entries that fit, first come first served with
skip, hold the 10 seats. The control frees the seats without the guard (the release
commits before anything is offered, and the public rule is switched off by zeroing the
line's demand): the same harness then sees buyers take the freed seats.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from typing import Any

from databases import Database

import db.sweeper
from db.core import transaction
from liventix.clock import FrozenClock
from tests.test_ticketing_race import race
from tests.waitlist_support import assert_line_balanced, line_up, sold_out_tier, statuses

QUANTITIES = [2, 3, 4, 1, 4, 2, 3, 1, 1, 2] * 3  # the line, first come first
BUYERS = 40
TTL = 900


def first_fitting(quantities: list[int], seats: int) -> list[bool]:
    """Which entries FIFO with skip offers `seats` to."""
    offered = []
    for quantity in quantities:
        fits = quantity <= seats
        seats -= quantity if fits else 0
        offered.append(fits)
    return offered


async def test_freed_seats_go_to_the_line_while_buyers_race(
    server: Any,
    database: Database,
    database_url: str,
    clock: FrozenClock,
    token: Callable[..., str],
) -> None:
    """10 seats freed at once, 40 public buyers racing: no buyer gets a seat; the first
    fitting entries (2, 3, 4, 1: 10 seats) are offered, everyone else keeps waiting."""
    _, tier, _ = await sold_out_tier(database, clock, quantity=10)
    entries = await line_up(database, clock, tier, QUANTITIES)
    clock.advance(TTL + 1)
    tokens = [token("user") for _ in range(BUYERS)]
    result, _ = await asyncio.gather(
        race(server, database_url, tier, tokens, [1] * BUYERS),
        db.sweeper.sweep_expired_holds(database, clock.now()),
    )
    assert all(status == 200 for status in result.statuses) and not result.errors
    assert result.answers("HoldPayload") == []
    assert {a["code"] for a in result.answers("TicketingError")} == {"SOLD_OUT"}
    expected = ["offered" if fits else "waiting" for fits in first_fitting(QUANTITIES, 10)]
    assert await statuses(database, clock, entries) == expected
    assert expected.count("offered") == 4
    await _assert_seats_are_the_lines(database, tier)
    await assert_line_balanced(database)


async def test_control_without_the_guard_buyers_take_the_freed_seats(
    server: Any,
    database: Database,
    database_url: str,
    clock: FrozenClock,
    token: Callable[..., str],
) -> None:
    """The control: the lapsed holds are released in a transaction that offers nothing
    and the line's demand is zeroed (no public rule); buyers then race before the offer.
    The harness sees the public take the freed seats, so the test above could fail."""
    _, tier, _ = await sold_out_tier(database, clock, quantity=10)
    entries = await line_up(database, clock, tier, QUANTITIES)
    clock.advance(TTL + 1)
    await _release_without_guard(database, tier, clock)
    tokens = [token("user") for _ in range(BUYERS)]
    result = await race(server, database_url, tier, tokens, [1] * BUYERS)
    assert len(result.answers("HoldPayload")) == 10, "the public took every freed seat"
    assert "offered" not in await statuses(database, clock, entries)


async def _assert_seats_are_the_lines(database: Database, tier: uuid.UUID) -> None:
    """Every active hold of the tier is a waitlist offer, and they hold all 10 seats."""
    async with transaction(database) as conn:
        row = await conn.fetchrow(
            """SELECT count(*) FILTER (WHERE w.id IS NULL) AS public,
                      coalesce(sum(h.quantity), 0) AS held
                 FROM ticketing.ticket_holds h
                 LEFT JOIN ticketing.waitlist_entries w ON w.hold_id = h.id
                WHERE h.tier_id = $1 AND h.status = 'active'""",
            tier,
        )
    assert row is not None and (row["public"], row["held"]) == (0, 10)


async def _release_without_guard(database: Database, tier: uuid.UUID, clock: FrozenClock) -> None:
    """What a path that frees seats without the waitlist would do (test-only SQL)."""
    async with transaction(database) as conn:
        await conn.execute("SELECT 1 FROM ticketing.ticket_tiers WHERE id = $1 FOR UPDATE", tier)
        await conn.execute(
            """UPDATE ticketing.ticket_holds SET status = 'expired', ended_at = $2
                WHERE tier_id = $1 AND status = 'active'""",
            tier,
            clock.now(),
        )
        await conn.execute(
            """UPDATE ticketing.ticket_tiers SET reserved_quantity = 0, waitlist_demand = 0
                WHERE id = $1""",
            tier,
        )
