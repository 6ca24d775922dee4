"""The hold in one statement: `ticketing.reserve_hold`, through `db.holds.reserve`.

Real concurrent transactions, each on its own connection, race through the function
for the last seats of a tier while a gate holds the tier's row lock, so they all meet
at the conditional update: exactly k of N win, and a control (the same harness with a
naive read-then-write function) shows the harness does catch an oversell. Then: a
refusal of a sold-out tier answers without waiting for the tier's row lock (while a
lapsed hold makes the same call wait, since it must release it); lapsed holds are
released inside the buyer's own call and stay released when the buyer is refused
anyway; every notification the function sends is exactly what
`db.channels.TierMessage` encodes, also handed to this process's dispatcher; and one
buyer's concurrent reserves end in one hold.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from datetime import timedelta
from typing import Any

import asyncpg
import orjson
import pytest
from databases import Database

import db.holds
import db.notify
import db.reservations
from db.channels import NOTIFY_CHANNEL, Message, TierMessage
from db.core import connection
from db.errors import TicketingError
from liventix.clock import FrozenClock
from tests.orders_support import add_event, add_user, assert_books_balanced, count, hold
from tests.support import until_waiting

TTL = 900
# Buyers racing at once for the last seats, each on a connection of its own (kept well
# under the server's connection limit, which the other tests share).
RACERS = 24
LAST_SEATS = 5


@pytest.fixture
async def monitor(database_url: str) -> AsyncIterator[asyncpg.Connection]:
    """A connection outside the pool, to watch who waits for a lock."""
    conn = await asyncpg.connect(database_url)
    try:
        yield conn
    finally:
        await conn.close()


@pytest.fixture
async def listener(database_url: str) -> AsyncIterator[asyncio.Queue[str]]:
    """Every payload sent on the realtime channel, as LISTEN delivers it."""
    conn = await asyncpg.connect(database_url)
    heard: asyncio.Queue[str] = asyncio.Queue()

    def received(_conn: object, _pid: int, _channel: str, payload: str) -> None:
        heard.put_nowait(payload)

    await conn.add_listener(NOTIFY_CHANNEL, received)
    try:
        yield heard
    finally:
        await conn.close()


async def heard_messages(heard: asyncio.Queue[str], n: int) -> list[TierMessage]:
    """The next `n` payloads, each checked to be exactly `TierMessage`'s wire form."""
    messages = []
    for _ in range(n):
        payload = await asyncio.wait_for(heard.get(), 5)
        message = TierMessage.decode(orjson.loads(payload))
        assert isinstance(message, TierMessage), payload
        assert payload == orjson.dumps(message.encode()).decode()
        messages.append(message)
    return messages


async def tier_with_last_seats(
    database: Database, clock: FrozenClock, quantity: int, left: int
) -> uuid.UUID:
    """A published tier of `quantity` seats, all but `left` held by other buyers."""
    organizer = await add_user(database, "organizer")
    _, tier_id, _ = await add_event(database, organizer, clock, quantity=quantity)
    for _ in range(quantity - left):
        await hold(database, clock, await add_user(database), tier_id, 1)
    return tier_id


class Gate:
    """Holds a tier's row lock on a connection of its own until opened."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn
        self.tx = conn.transaction()

    async def close(self, tier_id: uuid.UUID) -> None:
        await self.tx.start()
        await self.conn.execute(
            "SELECT 1 FROM ticketing.ticket_tiers WHERE id = $1 FOR UPDATE", tier_id
        )

    async def open(self) -> None:
        await self.tx.rollback()


Reserve = Callable[[asyncpg.Connection, uuid.UUID], Awaitable[str]]
"""One buyer's attempt on a connection of their own: "held" or the refusal's code."""


async def gated_race(
    database_url: str,
    monitor: asyncpg.Connection,
    tier_id: uuid.UUID,
    buyers: Sequence[uuid.UUID],
    reserve: Reserve,
) -> list[str]:
    """Each buyer calls `reserve` on a connection of their own while a gate holds the
    tier; once all of them wait for it, the gate opens and they race."""
    conns = [await asyncpg.connect(database_url) for _ in buyers]
    gate = Gate(await asyncpg.connect(database_url))
    try:
        await gate.close(tier_id)
        calls = [
            asyncio.create_task(reserve(conn, buyer))
            for conn, buyer in zip(conns, buyers, strict=True)
        ]
        await until_waiting(monitor, len(buyers))
        await gate.open()
        return list(await asyncio.gather(*calls))
    finally:
        await asyncio.gather(gate.conn.close(), *(c.close() for c in conns))


async def test_n_concurrent_reserves_for_the_last_k_seats_exactly_k_win(
    database: Database, database_url: str, clock: FrozenClock, monitor: asyncpg.Connection
) -> None:
    """24 transactions at the conditional update at once for the last 5 seats: 5 holds,
    19 SOLD_OUT with nothing left, and the counters equal the holds (no oversell)."""
    tier_id = await tier_with_last_seats(database, clock, 30, LAST_SEATS)
    buyers = [await add_user(database) for _ in range(RACERS)]
    left: list[int] = []

    async def reserve(conn: asyncpg.Connection, buyer: uuid.UUID) -> str:
        now = clock.now()
        held = await db.holds.reserve(
            conn,
            tier_id=tier_id,
            user_id=buyer,
            quantity=1,
            now=now,
            expires_at=now + timedelta(seconds=TTL),
        )
        if isinstance(held, TicketingError):
            left.append(held.details["available"])
            return str(held.code)
        return "held"

    results = await gated_race(database_url, monitor, tier_id, buyers, reserve)
    assert results.count("held") == LAST_SEATS, results
    assert results.count("SOLD_OUT") == RACERS - LAST_SEATS
    assert set(left) == {0}
    active = await count(
        database,
        """SELECT coalesce(sum(quantity), 0) FROM ticketing.ticket_holds
            WHERE tier_id = $1 AND status = 'active'""",
        tier_id,
    )
    reserved = await count(
        database, "SELECT reserved_quantity FROM ticketing.ticket_tiers WHERE id = $1", tier_id
    )
    assert active == reserved == 30
    await assert_books_balanced(database)


# What the function's conditional update guards against, for the control below only.
NAIVE_RESERVE = """
CREATE FUNCTION naive_reserve(p_tier uuid, p_user uuid, p_quantity int, p_now timestamptz,
                              p_expires_at timestamptz, OUT outcome text)
LANGUAGE plpgsql AS $$
DECLARE free int; event uuid;
BEGIN
    SELECT quantity - reserved_quantity - issued_quantity, event_id INTO free, event
      FROM ticketing.ticket_tiers WHERE id = p_tier;
    IF free < p_quantity THEN outcome := 'SOLD_OUT'; RETURN; END IF;
    UPDATE ticketing.ticket_tiers SET reserved_quantity = reserved_quantity + p_quantity
     WHERE id = p_tier;
    INSERT INTO ticketing.ticket_holds (tier_id, event_id, user_id, quantity, expires_at)
    VALUES (p_tier, event, p_user, p_quantity, p_expires_at);
    outcome := 'held';
END $$"""


async def test_control_a_naive_function_oversells_in_the_same_harness(
    database: Database, database_url: str, clock: FrozenClock, monitor: asyncpg.Connection
) -> None:
    """Read, decide, then write unconditionally: with the CHECK gone, the same gated
    race holds far more than the 5 seats left."""
    tier_id = await tier_with_last_seats(database, clock, 30, LAST_SEATS)
    buyers = [await add_user(database) for _ in range(RACERS)]
    async with connection(database) as conn:
        await conn.execute(NAIVE_RESERVE)
        await conn.execute("ALTER TABLE ticketing.ticket_tiers DROP CONSTRAINT tier_never_oversold")

    async def naive(conn: asyncpg.Connection, buyer: uuid.UUID) -> str:
        now = clock.now()
        outcome: str = await conn.fetchval(
            "SELECT naive_reserve($1, $2, 1, $3, $4)",
            tier_id,
            buyer,
            now,
            now + timedelta(seconds=TTL),
        )
        return outcome

    results = await gated_race(database_url, monitor, tier_id, buyers, naive)
    assert results.count("held") > LAST_SEATS, results
    reserved = await count(
        database, "SELECT reserved_quantity FROM ticketing.ticket_tiers WHERE id = $1", tier_id
    )
    assert reserved > 30


async def test_a_sold_out_refusal_does_not_wait_for_the_tier_lock(
    database: Database, clock: FrozenClock, database_url: str, monitor: asyncpg.Connection
) -> None:
    """While another transaction holds the sold-out tier's row, a refusal still comes at
    once; once a hold of the tier has lapsed, the same call waits for the row (it must
    release that hold) and then succeeds."""
    tier_id = await tier_with_last_seats(database, clock, 3, 0)
    buyer = await add_user(database)
    gate = Gate(await asyncpg.connect(database_url))
    try:
        await gate.close(tier_id)
        with pytest.raises(TicketingError) as refused:
            await asyncio.wait_for(
                db.reservations.reserve_tickets(
                    database, buyer, tier_id, 1, now=clock.now(), ttl_seconds=TTL
                ),
                timeout=5,
            )
        assert refused.value.code == "SOLD_OUT" and refused.value.details["available"] == 0
        clock.advance(TTL + 1)
        waiting = asyncio.create_task(
            db.reservations.reserve_tickets(
                database, buyer, tier_id, 2, now=clock.now(), ttl_seconds=TTL
            )
        )
        await until_waiting(monitor, 1)
        assert not waiting.done()
        await gate.open()
        held = await asyncio.wait_for(waiting, 5)
    finally:
        await gate.conn.close()
    assert held.quantity == 2 and held.status == "active"
    await assert_books_balanced(database)


async def test_lapsed_holds_are_released_inside_the_buyers_call(
    database: Database, clock: FrozenClock, listener: asyncio.Queue[str]
) -> None:
    """A tier held entirely by lapsed holds sells: one statement expires them and takes
    the seats (every row it wrote has the same transaction id), announcing the release
    and then the hold, each exactly as `TierMessage` encodes it, versions rising."""
    tier_id = await tier_with_last_seats(database, clock, 3, 0)
    ghosts = await count(
        database, "SELECT count(*) FROM ticketing.ticket_holds WHERE tier_id = $1", tier_id
    )
    assert ghosts == 3
    await heard_messages(listener, 3)  # the ghosts' own holds
    clock.advance(TTL + 1)
    buyer = await add_user(database)
    held = await db.reservations.reserve_tickets(
        database, buyer, tier_id, 2, now=clock.now(), ttl_seconds=TTL
    )
    released, taken = await heard_messages(listener, 2)
    assert (released.tier_id, released.reserved, taken.reserved) == (tier_id, 0, 2)
    assert taken.version == released.version + 1
    async with connection(database) as conn:
        rows = await conn.fetch(
            """SELECT status, ended_at, xmin::text AS writer FROM ticketing.ticket_holds
                WHERE tier_id = $1 ORDER BY created_at""",
            tier_id,
        )
    assert [r["status"] for r in rows] == ["expired"] * 3 + ["active"]
    assert {r["ended_at"] for r in rows[:3]} == {clock.now()}
    assert len({r["writer"] for r in rows}) == 1, "release and hold in one transaction"
    assert held.id == (await db.reservations.active_holds(database, buyer, clock.now()))[0].id
    await assert_books_balanced(database)


async def test_a_refused_buyer_still_releases_lapsed_holds_and_this_process_hears_it(
    database: Database, clock: FrozenClock, listener: asyncio.Queue[str]
) -> None:
    """Releasing the lapsed holds leaves too few seats: SOLD_OUT with what is free, the
    release committed all the same, announced over LISTEN and to the local dispatcher."""
    organizer = await add_user(database, "organizer")
    _, tier_id, _ = await add_event(database, organizer, clock, quantity=3)
    await hold(database, clock, await add_user(database), tier_id, 2)
    clock.advance(TTL // 2)
    await hold(database, clock, await add_user(database), tier_id, 1)
    await heard_messages(listener, 2)
    clock.advance(TTL // 2 + 1)  # the first hold lapsed, the second has not
    dispatched: list[Message] = []
    buyer = await add_user(database)
    with (
        db.notify.dispatch_locally(database, dispatched.extend),
        pytest.raises(TicketingError) as refused,
    ):
        await db.reservations.reserve_tickets(
            database, buyer, tier_id, 3, now=clock.now(), ttl_seconds=TTL
        )
    assert refused.value.code == "SOLD_OUT" and refused.value.details["available"] == 2
    (released,) = await heard_messages(listener, 1)
    assert released.reserved == 1
    assert dispatched == [released]
    await assert_books_balanced(database)


async def test_resizing_and_repeating_a_hold(
    database: Database, clock: FrozenClock, listener: asyncio.Queue[str]
) -> None:
    """The same buyer again: a new quantity resizes the same hold (only the difference
    moves, announced); the same quantity only refreshes its expiry, announcing nothing."""
    tier_id = await tier_with_last_seats(database, clock, 10, 10)
    buyer = await add_user(database)
    first = await db.reservations.reserve_tickets(
        database, buyer, tier_id, 2, now=clock.now(), ttl_seconds=TTL
    )
    clock.advance(60)
    dispatched: list[Message] = []
    with db.notify.dispatch_locally(database, dispatched.extend):
        bigger = await db.reservations.reserve_tickets(
            database, buyer, tier_id, 4, now=clock.now(), ttl_seconds=TTL
        )
        clock.advance(60)
        again = await db.reservations.reserve_tickets(
            database, buyer, tier_id, 4, now=clock.now(), ttl_seconds=TTL
        )
    assert first.id == bigger.id == again.id and again.quantity == 4
    assert again.expires_at == clock.now() + timedelta(seconds=TTL)
    made, grown = await heard_messages(listener, 2)
    assert (made.reserved, grown.reserved) == (2, 4)
    assert dispatched == [grown]
    await listener_is_quiet(listener)
    await assert_books_balanced(database)


async def listener_is_quiet(heard: asyncio.Queue[str]) -> None:
    await asyncio.sleep(0.3)
    assert heard.empty(), heard.get_nowait()


async def test_one_buyers_concurrent_reserves_end_in_one_hold(
    database: Database,
    clock: FrozenClock,
    database_url: str,
    monitor: asyncpg.Connection,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A double (sextuple) submit: six reserves by one buyer meet at the tier's lock with
    no hold yet. The first inserts it; each other insert hits the one-active-hold index,
    rolls its whole statement back (its seats too) and runs again as a resize. One
    hold, every answer is it, and the tier reserves exactly its seats."""
    tier_id = await tier_with_last_seats(database, clock, 10, 10)
    buyer = await add_user(database)
    quantities = [1, 2, 3, 2, 1, 3]
    attempts = 0
    attempt = db.reservations._reserve_once

    async def counted(*args: Any) -> object:
        nonlocal attempts
        attempts += 1
        return await attempt(*args)

    monkeypatch.setattr(db.reservations, "_reserve_once", counted)
    gate = Gate(await asyncpg.connect(database_url))
    try:
        await gate.close(tier_id)
        calls = [
            asyncio.create_task(
                db.reservations.reserve_tickets(
                    database, buyer, tier_id, q, now=clock.now(), ttl_seconds=TTL
                )
            )
            for q in quantities
        ]
        await until_waiting(monitor, len(quantities))
        await gate.open()
        holds = await asyncio.gather(*calls)
    finally:
        await gate.conn.close()
    assert attempts == 2 * len(quantities) - 1, "each later insert ran again as a resize"
    (kept,) = await db.reservations.active_holds(database, buyer, clock.now())
    assert {h.id for h in holds} == {kept.id}
    reserved = await count(
        database, "SELECT reserved_quantity FROM ticketing.ticket_tiers WHERE id = $1", tier_id
    )
    assert reserved == kept.quantity
    await assert_books_balanced(database)
