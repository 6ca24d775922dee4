"""One lock order for tiers and holds, and a bounded retry of transient failures.

`db.holds` writes down the order every transaction takes row locks in (orders,
tiers, holds, tickets). The first test replays, step by step on real connections, the
interleaving that used to deadlock checkout against `releaseHold`; the retry tests
provoke a real deadlock between two connections and show `retry_transient` reruns the
victim; the last two run hundreds of checkout/release pairs, and checkout/resize pairs
(the resize through the hold function, `ticketing.reserve_hold`), on the same holds at
once and check every answer is typed and the books still balance.
"""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import AsyncIterator, Awaitable

import asyncpg
import pytest
from databases import Database

import db.checkout
import db.core
import db.errors
import db.holds
import db.reservations
from db.checkout import Checkout, Contact
from db.core import retry_transient, transaction
from db.errors import DomainError
from db.events import Actor
from liventix.clock import FrozenClock
from liventix.payments import flows
from liventix.payments.flows import CheckoutResult
from liventix.payments.gateways import LocalGateway
from tests.orders_support import PRICE, add_event, add_user, assert_books_balanced, count, hold
from tests.support import until_waiting

CONTACT = Contact(email="sam@example.com", name="Sam Fan")


@pytest.fixture
async def monitor(database_url: str) -> AsyncIterator[asyncpg.Connection]:
    """A connection outside the pool, to watch who waits for a lock."""
    conn = await asyncpg.connect(database_url)
    try:
        yield conn
    finally:
        await conn.close()


def retries(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "db.core"]


async def test_checkout_and_release_of_one_hold_never_deadlock(
    database: Database,
    database_url: str,
    clock: FrozenClock,
    monitor: asyncpg.Connection,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The interleaving that deadlocked now queues on the tier, without any retry.

    A third connection holds the event row, which the new order's foreign key needs:
    checkout stops there, after its hold lock. Release then starts and blocks; the gate
    opens. The old code had checkout holding the hold and waiting for the tier (order
    items' foreign key) while release held the tier and waited for the hold.
    """
    organizer, buyer = await add_user(database, "organizer"), await add_user(database)
    event_id, tier_id, _ = await add_event(database, organizer, clock)
    held = await hold(database, clock, buyer, tier_id, 2)
    gate = await asyncpg.connect(database_url)
    try:
        opened = gate.transaction()
        await opened.start()
        await gate.execute("SELECT 1 FROM events.events WHERE id = $1 FOR UPDATE", event_id)
        checkout = asyncio.create_task(
            db.checkout.create_pending_order(
                database, user_id=buyer, hold_ids=[held], contact=CONTACT, now=clock.now()
            )
        )
        await until_waiting(monitor, 1)
        release = asyncio.create_task(
            db.reservations.release_hold(database, Actor(user_id=buyer), held, clock.now())
        )
        await until_waiting(monitor, 2)
        await opened.rollback()
        done, released = await asyncio.gather(checkout, release, return_exceptions=True)
    finally:
        await gate.close()
    assert isinstance(done, Checkout) and done.order.status == "pending", done
    assert isinstance(released, db.errors.TicketingError), released
    assert released.code == "HOLD_IN_CHECKOUT"
    assert retries(caplog) == [], "the lock order alone must prevent this deadlock"
    await assert_books_balanced(database)


async def _make_probe(database: Database) -> None:
    async with transaction(database) as conn:
        await conn.execute("CREATE TABLE lock_probe (id int PRIMARY KEY)")
        await conn.execute("INSERT INTO lock_probe VALUES (1), (2)")


async def test_retry_transient_reruns_the_victim_of_a_real_deadlock(
    database: Database,
    database_url: str,
    monitor: asyncpg.Connection,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Rows 1 then 2 against a rival taking 2 then 1: the victim is rerun and succeeds."""
    await _make_probe(database)
    attempts = 0
    holding_first = asyncio.Event()

    @retry_transient
    async def lock_both() -> int:
        nonlocal attempts
        attempts += 1
        async with transaction(database) as conn:
            await conn.execute("SELECT 1 FROM lock_probe WHERE id = 1 FOR UPDATE")
            holding_first.set()
            await conn.execute("SELECT 1 FROM lock_probe WHERE id = 2 FOR UPDATE")
        return attempts

    rival = await asyncpg.connect(database_url)
    try:
        with_rival = rival.transaction()
        await with_rival.start()
        await rival.execute("SELECT 1 FROM lock_probe WHERE id = 2 FOR UPDATE")
        task = asyncio.create_task(lock_both())
        await holding_first.wait()
        await until_waiting(monitor, 1)
        # lock_both has waited longest, so its deadlock check runs first: it is the victim.
        await rival.execute("SELECT 1 FROM lock_probe WHERE id = 1 FOR UPDATE")
        await with_rival.commit()
        assert await task == 2
    finally:
        await rival.close()
    assert len(retries(caplog)) == 1 and "DeadlockDetectedError" in retries(caplog)[0]


async def test_retry_transient_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    """A failure that keeps coming back reaches the caller after RETRY_ATTEMPTS runs."""
    monkeypatch.setattr(db.core, "RETRY_BACKOFF_SECONDS", 0.0)
    calls = 0

    @retry_transient
    async def always_fails() -> None:
        nonlocal calls
        calls += 1
        raise asyncpg.SerializationError("could not serialize access")

    with pytest.raises(asyncpg.SerializationError):
        await always_fails()
    assert calls == db.core.RETRY_ATTEMPTS


async def test_retry_transient_runs_once_inside_an_open_transaction(database: Database) -> None:
    """Only the outermost transaction can be retried: inside one, the error propagates."""
    calls = 0

    @retry_transient
    async def fails() -> None:
        nonlocal calls
        calls += 1
        raise asyncpg.DeadlockDetectedError("deadlock detected")

    with pytest.raises(asyncpg.DeadlockDetectedError):
        async with transaction(database):
            await fails()
    assert calls == 1


PAIRS = 240
TIERS = 4
# Pairs in flight at once: both sides of each pair run concurrently, and so many pairs
# keep the pool (20) busy without queueing past its acquire timeout on a slow machine.
IN_FLIGHT = 8


async def _typed(call: Awaitable[object]) -> object:
    """The call's result, or its domain error; anything else is re-raised (a failure)."""
    try:
        return await call
    except DomainError as exc:
        return exc


async def test_hundreds_of_checkout_release_pairs_on_the_same_holds(
    database: Database, clock: FrozenClock, caplog: pytest.LogCaptureFixture
) -> None:
    """240 holds, each checked out and released at once: one wins, the other is typed.

    Checkout wins → release says HOLD_IN_CHECKOUT; release wins → checkout says
    HOLD_EXPIRED. Nothing else (no deadlock, no "Unexpected error"); afterwards reserved
    equals the sum of active holds and the SPEC's alert queries return 0.
    """
    organizer = await add_user(database, "organizer")
    tiers = [(await add_event(database, organizer, clock, quantity=PAIRS))[1] for _ in range(TIERS)]
    buyers = [await add_user(database) for _ in range(PAIRS)]
    holds = [
        await hold(database, clock, buyer, tiers[i % TIERS], 1) for i, buyer in enumerate(buyers)
    ]
    gateway = LocalGateway()
    rng = random.Random(5)
    slots = asyncio.Semaphore(IN_FLIGHT)

    async def pair(buyer: uuid.UUID, held: uuid.UUID) -> tuple[object, object]:
        async def checkout() -> CheckoutResult:
            await asyncio.sleep(rng.random() / 500)
            return await flows.checkout(
                database, gateway, clock, user_id=buyer, hold_ids=[held], contact=CONTACT
            )

        async def release() -> db.holds.HoldRecord:
            await asyncio.sleep(rng.random() / 500)
            return await db.reservations.release_hold(
                database, Actor(user_id=buyer), held, clock.now()
            )

        async with slots:
            won, freed = await asyncio.gather(_typed(checkout()), _typed(release()))
        return won, freed

    outcomes = await asyncio.gather(*(pair(b, h) for b, h in zip(buyers, holds, strict=True)))
    checkouts = 0
    for won, freed in outcomes:
        if isinstance(won, CheckoutResult):
            checkouts += 1
            assert isinstance(freed, DomainError) and freed.code == "HOLD_IN_CHECKOUT", freed
        else:
            assert isinstance(won, DomainError) and won.code == "HOLD_EXPIRED", won
            assert isinstance(freed, db.holds.HoldRecord) and freed.status == "released"
    assert 0 < checkouts < PAIRS, "both sides should win some races"
    assert retries(caplog) == [], "with one lock order nothing deadlocks to begin with"
    assert await count(database, "SELECT count(*) FROM ticketing.orders") == checkouts
    reserved = await count(database, "SELECT sum(reserved_quantity) FROM ticketing.ticket_tiers")
    assert reserved == checkouts
    await assert_books_balanced(database)


async def test_checkout_and_resize_of_one_hold_never_deadlock(
    database: Database, clock: FrozenClock, caplog: pytest.LogCaptureFixture
) -> None:
    """Holds each checked out and resized (1 → 2 seats) by their buyer at once.

    The resize goes through `ticketing.reserve_hold` (tier FOR UPDATE, then the hold),
    checkout takes FOR KEY SHARE on the tier, then the hold: checkout first → the
    resize says HOLD_IN_CHECKOUT and the order has 1 seat; resize first → the order has
    2. Nothing else, no retry, and the books balance.
    """
    organizer = await add_user(database, "organizer")
    pairs = PAIRS // 2
    tiers = [(await add_event(database, organizer, clock, quantity=pairs * 2))[1] for _ in range(2)]
    buyers = [await add_user(database) for _ in range(pairs)]
    holds = [await hold(database, clock, buyer, tiers[i % 2], 1) for i, buyer in enumerate(buyers)]
    gateway = LocalGateway()
    rng = random.Random(7)
    slots = asyncio.Semaphore(IN_FLIGHT)

    async def pair(buyer: uuid.UUID, held: uuid.UUID, tier: uuid.UUID) -> tuple[object, object]:
        async def checkout() -> CheckoutResult:
            await asyncio.sleep(rng.random() / 500)
            return await flows.checkout(
                database, gateway, clock, user_id=buyer, hold_ids=[held], contact=CONTACT
            )

        async def resize() -> db.holds.HoldRecord:
            await asyncio.sleep(rng.random() / 500)
            return await db.reservations.reserve_tickets(
                database, buyer, tier, 2, now=clock.now(), ttl_seconds=900
            )

        async with slots:
            won, grown = await asyncio.gather(_typed(checkout()), _typed(resize()))
        return won, grown

    outcomes = await asyncio.gather(
        *(pair(b, h, tiers[i % 2]) for i, (b, h) in enumerate(zip(buyers, holds, strict=True)))
    )
    first = 0
    for won, grown in outcomes:
        assert isinstance(won, CheckoutResult), won
        if isinstance(grown, DomainError):
            assert grown.code == "HOLD_IN_CHECKOUT", grown
            assert won.checkout.order.total_cents == PRICE
            first += 1
        else:
            assert isinstance(grown, db.holds.HoldRecord) and grown.quantity == 2
            assert won.checkout.order.total_cents == 2 * PRICE
    assert 0 < first < pairs, "both sides should win some races"
    assert retries(caplog) == [], "with one lock order nothing deadlocks to begin with"
    await assert_books_balanced(database)
