"""Controls for the concurrent-delivery test: the harness can see a double completion.

`test_webhooks.py` sends the same payment five times at once and finds one set of
tickets. These controls run the same five-way race through a deliberately naive
completion (read the status without a lock, then write), so we know the race really
interleaves and the counts would expose a double completion: without the UNIQUE
(order, tier, sequence) key it issues five sets; with it, the database refuses four.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

DELIVERIES = 5
SEATS = 3


async def _pending_order(url: str) -> tuple[uuid.UUID, uuid.UUID]:
    conn = await asyncpg.connect(url)
    try:
        async with conn.transaction():
            user = uuid.uuid4()
            await conn.execute(
                "INSERT INTO users.profiles (id, role) VALUES ($1, 'organizer')", user
            )
            event = await conn.fetchval(
                """INSERT INTO events.events (organizer_id, title, start_at, status)
                   VALUES ($1, 'Race', $2, 'published') RETURNING id""",
                user,
                datetime.now(UTC) + timedelta(days=1),
            )
            tier = await conn.fetchval(
                """INSERT INTO ticketing.ticket_tiers (event_id, name, price_cents, quantity)
                   VALUES ($1, 'GA', 1000, 10) RETURNING id""",
                event,
            )
            order = await conn.fetchval(
                """INSERT INTO ticketing.orders (event_id, user_id, total_cents)
                   VALUES ($1, $2, 3000) RETURNING id""",
                event,
                user,
            )
    finally:
        await conn.close()
    return order, tier


async def _naive_complete(
    url: str, order: uuid.UUID, tier: uuid.UUID, barrier: asyncio.Barrier
) -> str:
    """Check-then-act with no lock: what `complete_order` must not be."""
    conn = await asyncpg.connect(url)
    try:
        async with conn.transaction():
            status = await conn.fetchval("SELECT status FROM ticketing.orders WHERE id = $1", order)
            await barrier.wait()  # every delivery has seen 'pending' before any writes
            if status != "pending":
                return "skipped"
            await conn.execute("UPDATE ticketing.orders SET status = 'paid' WHERE id = $1", order)
            row = await conn.fetchrow(
                "SELECT event_id, user_id FROM ticketing.orders WHERE id = $1", order
            )
            assert row is not None
            for sequence in range(1, SEATS + 1):
                await conn.execute(
                    """INSERT INTO ticketing.tickets
                           (order_id, event_id, tier_id, owner_user_id, sequence_number)
                       VALUES ($1, $2, $3, $4, $5)""",
                    order,
                    row["event_id"],
                    tier,
                    row["user_id"],
                    sequence,
                )
        return "paid"
    except asyncpg.UniqueViolationError:
        return "refused"
    finally:
        await conn.close()


async def _race(url: str) -> tuple[list[str], int]:
    order, tier = await _pending_order(url)
    barrier = asyncio.Barrier(DELIVERIES)
    results = await asyncio.gather(
        *(_naive_complete(url, order, tier, barrier) for _ in range(DELIVERIES))
    )
    conn = await asyncpg.connect(url)
    try:
        tickets: int = await conn.fetchval(
            "SELECT count(*) FROM ticketing.tickets WHERE order_id = $1", order
        )
    finally:
        await conn.close()
    return sorted(results), tickets


async def test_control_without_the_unique_key_a_naive_completion_issues_five_sets(
    database_url: str,
) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute(
            "ALTER TABLE ticketing.tickets "
            "DROP CONSTRAINT tickets_order_id_tier_id_sequence_number_key"
        )
    finally:
        await conn.close()
    results, tickets = await _race(database_url)
    assert results == ["paid"] * DELIVERIES
    assert tickets == DELIVERIES * SEATS  # what `count == 3` in the real test would catch


@pytest.mark.parametrize("_run", range(2))
async def test_control_with_the_unique_key_the_database_refuses_the_doubles(
    database_url: str, _run: int
) -> None:
    results, tickets = await _race(database_url)
    assert results == ["paid"] + ["refused"] * (DELIVERIES - 1)
    assert tickets == SEATS
