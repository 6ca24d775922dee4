"""Ticketing: holds, typed errors, capacity edits, ghost-free expiry, live availability.

Repository tests call `db.tiers`, `db.reservations` and `db.sweeper` with the `database`
fixture; API tests go through GraphQL over HTTP (`client`) or a real WebSocket (`ws`).
Time moves with `clock`.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import asyncpg
import pytest
from databases import Database
from starlette.applications import Starlette

import db.errors
import db.events
import db.holds
import db.notify
import db.reservations
import db.sweeper
import db.tiers
import db.users
from db.core import connection, transaction
from liventix import jobs
from liventix.clock import FrozenClock
from tests.support import GraphQLClient, gid

TTL = 900

RESERVE = """
mutation($tier: ID!, $q: Int!) {
  reserveTickets(tierId: $tier, quantity: $q) {
    __typename
    ... on HoldPayload { hold { id quantity status expiresAt tierId orderId } }
    ... on TicketingError { code message field available }
  }
}"""

RELEASE = """
mutation($id: ID!) {
  releaseHold(holdId: $id) {
    __typename
    ... on HoldPayload { hold { id status quantity } }
    ... on TicketingError { code message }
  }
}"""

TIERS = """
query($id: ID!) {
  eventTiers(eventId: $id) { id name quantity reserved issued available status }
}"""

AVAILABILITY = """
subscription($id: ID!) {
  tierAvailability(eventId: $id) {
    eventId reason changedTierId
    tiers { tierId quantity reserved issued available }
  }
}"""


async def seed_tier(
    database: Database,
    now: datetime,
    *,
    quantity: int = 10,
    event_status: str = "published",
    **tier: Any,
) -> tuple[db.events.EventRecord, db.tiers.TierRecord]:
    """An organizer, an event in `event_status` and one tier of `quantity` seats."""
    organizer = uuid.uuid4()
    await db.users.ensure_profile(database, organizer, "organizer")
    actor = db.events.Actor(user_id=organizer)
    event = await db.events.create_event(
        database, actor, title="Flash Sale Night", start_at=now + timedelta(days=30)
    )
    if event_status != "draft":
        event = await db.events.set_event_status(database, actor, event.id, event_status, now)
    record = await db.tiers.create_tier(
        database,
        actor,
        event.id,
        name=tier.pop("name", "General"),
        price_cents=tier.pop("price_cents", 2500),
        quantity=quantity,
        now=now,
        **tier,
    )
    return event, record


async def new_buyer(database: Database) -> uuid.UUID:
    user_id = uuid.uuid4()
    await db.users.ensure_profile(database, user_id, "user")
    return user_id


async def tier_row(database: Database, tier_id: uuid.UUID) -> asyncpg.Record:
    async with connection(database) as conn:
        row = await conn.fetchrow("SELECT * FROM ticketing.ticket_tiers WHERE id = $1", tier_id)
    assert row is not None
    return row


async def reserve(
    database: Database, clock: FrozenClock, user: uuid.UUID, tier: uuid.UUID, quantity: int
) -> db.holds.HoldRecord:
    return await db.reservations.reserve_tickets(
        database, user, tier, quantity, now=clock.now(), ttl_seconds=TTL
    )


# --- repository level -----------------------------------------------------------------


async def test_second_request_adjusts_the_hold(database: Database, clock: FrozenClock) -> None:
    """A user's second reserve replaces the quantity of the same hold; only the delta moves."""
    _, tier = await seed_tier(database, clock.now(), quantity=10)
    buyer = await new_buyer(database)
    first = await reserve(database, clock, buyer, tier.id, 2)
    clock.advance(60)
    bigger = await reserve(database, clock, buyer, tier.id, 5)
    assert bigger.id == first.id and bigger.quantity == 5
    assert bigger.expires_at == clock.now() + timedelta(seconds=TTL)
    assert (await tier_row(database, tier.id))["reserved_quantity"] == 5
    smaller = await reserve(database, clock, buyer, tier.id, 1)
    assert smaller.id == first.id
    assert (await tier_row(database, tier.id))["reserved_quantity"] == 1
    released = await db.reservations.release_hold(
        database, db.events.Actor(user_id=buyer), first.id, clock.now()
    )
    assert released.status == "released"
    assert (await tier_row(database, tier.id))["reserved_quantity"] == 0
    again = await db.reservations.release_hold(
        database, db.events.Actor(user_id=buyer), first.id, clock.now()
    )
    assert again.status == "released"  # idempotent, no double give-back
    assert (await tier_row(database, tier.id))["reserved_quantity"] == 0


async def test_adjust_beyond_capacity_is_sold_out_and_keeps_hold(
    database: Database, clock: FrozenClock
) -> None:
    """Growing a hold past what is free fails with SOLD_OUT and leaves the hold as it was."""
    _, tier = await seed_tier(database, clock.now(), quantity=4)
    buyer, other = await new_buyer(database), await new_buyer(database)
    await reserve(database, clock, other, tier.id, 2)
    hold = await reserve(database, clock, buyer, tier.id, 1)
    with pytest.raises(db.errors.TicketingError) as raised:
        await reserve(database, clock, buyer, tier.id, 4)
    assert raised.value.code == "SOLD_OUT" and raised.value.details["available"] == 1
    (kept,) = await db.reservations.active_holds(database, buyer, clock.now())
    assert kept.id == hold.id and kept.quantity == 1
    assert (await tier_row(database, tier.id))["reserved_quantity"] == 3


async def test_direct_update_breaking_invariant_fails_check(
    database: Database, clock: FrozenClock
) -> None:
    """The database itself refuses an oversold or negative tier, whatever the code does."""
    _, tier = await seed_tier(database, clock.now(), quantity=5)
    async with connection(database) as conn:
        with pytest.raises(asyncpg.CheckViolationError) as over:
            await conn.execute(
                "UPDATE ticketing.ticket_tiers SET reserved_quantity = 4, issued_quantity = 2"
                " WHERE id = $1",
                tier.id,
            )
        assert over.value.constraint_name == "tier_never_oversold"
        with pytest.raises(asyncpg.CheckViolationError) as negative:
            await conn.execute(
                "UPDATE ticketing.ticket_tiers SET reserved_quantity = -1 WHERE id = $1", tier.id
            )
        assert negative.value.constraint_name == "tier_reserved_nonnegative"


async def test_expired_holds_never_block_a_buyer(database: Database, clock: FrozenClock) -> None:
    """A tier fully held by expired holds still sells: they are released in the same txn."""
    _, tier = await seed_tier(database, clock.now(), quantity=3)
    ghosts = [await new_buyer(database) for _ in range(3)]
    for ghost in ghosts:
        await reserve(database, clock, ghost, tier.id, 1)
    buyer = await new_buyer(database)
    with pytest.raises(db.errors.TicketingError) as raised:
        await reserve(database, clock, buyer, tier.id, 2)
    assert raised.value.code == "SOLD_OUT"
    clock.advance(TTL + 1)
    hold = await reserve(database, clock, buyer, tier.id, 2)
    assert hold.quantity == 2
    row = await tier_row(database, tier.id)
    assert row["reserved_quantity"] == 2
    async with connection(database) as conn:
        statuses = await conn.fetch(
            "SELECT status FROM ticketing.ticket_holds WHERE user_id = ANY($1::uuid[])", ghosts
        )
    assert {r["status"] for r in statuses} == {"expired"}


async def test_own_expired_hold_is_replaced(database: Database, clock: FrozenClock) -> None:
    """Reserving again after one's own hold lapsed starts a fresh hold (the old one expired)."""
    _, tier = await seed_tier(database, clock.now(), quantity=3)
    buyer = await new_buyer(database)
    old = await reserve(database, clock, buyer, tier.id, 3)
    clock.advance(TTL)
    fresh = await reserve(database, clock, buyer, tier.id, 2)
    assert fresh.id != old.id
    assert (await tier_row(database, tier.id))["reserved_quantity"] == 2


async def test_sweeper_expires_holds_and_fixes_drift(
    database: Database, clock: FrozenClock
) -> None:
    """The sweep expires lapsed holds, then recomputes reserved from active holds."""
    _, tier = await seed_tier(database, clock.now(), quantity=10)
    _, other = await seed_tier(database, clock.now(), quantity=10)
    for _ in range(3):
        await reserve(database, clock, await new_buyer(database), tier.id, 2)
    clock.advance(TTL // 2)
    keeper = await reserve(database, clock, await new_buyer(database), tier.id, 1)
    async with connection(database) as conn:  # simulate drift left by a bug
        await conn.execute(
            "UPDATE ticketing.ticket_tiers SET reserved_quantity = 4 WHERE id = $1", other.id
        )
    clock.advance(TTL // 2 + 1)
    report = await db.sweeper.sweep_expired_holds(database, clock.now())
    assert (report.expired_holds, report.freed_quantity, report.drift_fixed) == (3, 6, 1)
    assert (await tier_row(database, tier.id))["reserved_quantity"] == keeper.quantity
    assert (await tier_row(database, other.id))["reserved_quantity"] == 0
    again = await db.sweeper.sweep_expired_holds(database, clock.now())
    assert (again.expired_holds, again.drift_fixed) == (0, 0)


async def test_capacity_cannot_go_below_reserved_plus_issued(
    database: Database, clock: FrozenClock
) -> None:
    """Cutting capacity below what is taken is CAPACITY_BELOW_SOLD, with the minimum."""
    event, tier = await seed_tier(database, clock.now(), quantity=10)
    async with connection(database) as conn:
        organizer = await conn.fetchval(
            "SELECT organizer_id FROM events.events WHERE id = $1", event.id
        )
        await conn.execute(
            "UPDATE ticketing.ticket_tiers SET issued_quantity = 3 WHERE id = $1", tier.id
        )
    actor = db.events.Actor(user_id=organizer)
    await reserve(database, clock, await new_buyer(database), tier.id, 4)
    with pytest.raises(db.errors.TicketingError) as raised:
        await db.tiers.update_tier(database, actor, tier.id, {"quantity": 6}, clock.now())
    assert raised.value.code == "CAPACITY_BELOW_SOLD" and raised.value.details["minimum"] == 7
    updated = await db.tiers.update_tier(database, actor, tier.id, {"quantity": 7}, clock.now())
    assert updated.available == 0
    clock.advance(TTL + 1)  # the hold lapses: the cut succeeds without waiting for a sweep
    cut = await db.tiers.update_tier(database, actor, tier.id, {"quantity": 3}, clock.now())
    assert (cut.quantity, cut.reserved_quantity, cut.issued_quantity) == (3, 0, 3)
    stranger = db.events.Actor(user_id=await new_buyer(database))
    with pytest.raises(db.errors.TicketingError) as denied:
        await db.tiers.update_tier(database, stranger, tier.id, {"quantity": 9}, clock.now())
    assert denied.value.code == "NOT_ALLOWED"


async def test_hold_in_checkout_cannot_be_adjusted_or_released(
    database: Database, clock: FrozenClock
) -> None:
    """Once checkout attached an order to the hold, reserve and release refuse to touch it."""
    event, tier = await seed_tier(database, clock.now(), quantity=10)
    buyer = await new_buyer(database)
    hold = await reserve(database, clock, buyer, tier.id, 2)
    async with transaction(database) as conn:
        order_id = await conn.fetchval(
            """INSERT INTO ticketing.orders (event_id, user_id, total_cents)
               VALUES ($1, $2, 5000) RETURNING id""",
            event.id,
            buyer,
        )
        await conn.execute(
            "UPDATE ticketing.ticket_holds SET order_id = $2 WHERE id = $1", hold.id, order_id
        )
    with pytest.raises(db.errors.TicketingError) as adjusting:
        await reserve(database, clock, buyer, tier.id, 3)
    assert adjusting.value.code == "HOLD_IN_CHECKOUT"
    with pytest.raises(db.errors.TicketingError) as releasing:
        await db.reservations.release_hold(
            database, db.events.Actor(user_id=buyer), hold.id, clock.now()
        )
    assert releasing.value.code == "HOLD_IN_CHECKOUT"
    assert (await tier_row(database, tier.id))["reserved_quantity"] == 2


# --- over the API -------------------------------------------------------------------


async def api_tier(
    client: GraphQLClient, token: Callable[..., str], *, quantity: int = 10, **tier: Any
) -> tuple[str, str, str]:
    """(event id, tier id, organizer token) for a published event made through the API."""
    organizer = token("organizer")
    created = await client(
        """mutation($in: CreateEventInput!) { createEvent(input: $in) {
             ... on EventPayload { event { id status } } ... on TicketingError { code } } }""",
        {"in": {"title": "Rooftop", "startAt": "2099-06-01T19:00:00+00:00"}},
        token=organizer,
    )
    event_id = created["createEvent"]["event"]["id"]
    tier_input = {"eventId": event_id, "name": "GA", "priceCents": 1500, "quantity": quantity}
    tier_input.update(tier)
    made = await client(
        """mutation($in: CreateTierInput!) { createTier(input: $in) {
             ... on TierPayload { tier { id available } } ... on TicketingError { code } } }""",
        {"in": tier_input},
        token=organizer,
    )
    published = await client(
        """mutation($id: ID!) { publishEvent(id: $id) {
             ... on EventPayload { event { status } } } }""",
        {"id": event_id},
        token=organizer,
    )
    assert published["publishEvent"]["event"]["status"] == "PUBLISHED"
    return event_id, made["createTier"]["tier"]["id"], organizer


async def test_reserve_adjust_release_over_api(
    client: GraphQLClient, token: Callable[..., str]
) -> None:
    """The hold lifecycle through GraphQL, with counters visible in eventTiers."""
    event_id, tier_id, _ = await api_tier(client, token, quantity=10)
    buyer = token("user")
    held = (await client(RESERVE, {"tier": tier_id, "q": 3}, token=buyer))["reserveTickets"]
    assert held["__typename"] == "HoldPayload" and held["hold"]["quantity"] == 3
    adjusted = (await client(RESERVE, {"tier": tier_id, "q": 1}, token=buyer))["reserveTickets"]
    assert adjusted["hold"]["id"] == held["hold"]["id"]
    (tier,) = (await client(TIERS, {"id": event_id}))["eventTiers"]
    assert (tier["quantity"], tier["reserved"], tier["available"]) == (10, 1, 9)
    holds = (await client("{ myHolds { id quantity } }", token=buyer))["myHolds"]
    assert holds == [{"id": held["hold"]["id"], "quantity": 1}]
    released = await client(RELEASE, {"id": held["hold"]["id"]}, token=buyer)
    assert released["releaseHold"]["hold"]["status"] == "RELEASED"
    (tier,) = (await client(TIERS, {"id": event_id}))["eventTiers"]
    assert tier["available"] == 10


async def test_typed_errors_over_api(
    client: GraphQLClient, token: Callable[..., str], clock: FrozenClock
) -> None:
    """Each expected failure is a TicketingError with its code, never a GraphQL error."""
    _, tier_id, _ = await api_tier(client, token, quantity=2, maxPerOrder=2)
    buyer = token("user")

    async def code(q: int, who: str | None = buyer, tier: str = tier_id) -> str:
        result = (await client(RESERVE, {"tier": tier, "q": q}, token=who))["reserveTickets"]
        assert result["__typename"] == "TicketingError", result
        return str(result["code"])

    assert await code(0) == "QUANTITY_INVALID"
    assert await code(3) == "MAX_PER_ORDER_EXCEEDED"
    assert await code(1, who=None) == "UNAUTHENTICATED"
    assert await code(1, tier=str(uuid.uuid4())) == "TIER_NOT_FOUND"
    await client(RESERVE, {"tier": tier_id, "q": 2}, token=token("user"))
    sold_out = (await client(RESERVE, {"tier": tier_id, "q": 1}, token=buyer))["reserveTickets"]
    assert (sold_out["code"], sold_out["available"]) == ("SOLD_OUT", 0)
    not_mine = await client(RELEASE, {"id": str(uuid.uuid4())}, token=buyer)
    assert not_mine["releaseHold"]["code"] == "HOLD_NOT_FOUND"

    now = clock.now()
    _, later_id, _ = await api_tier(
        client, token, salesStartAt=(now + timedelta(hours=1)).isoformat()
    )
    assert await code(1, tier=later_id) == "SALES_NOT_OPEN"
    _, over_id, _ = await api_tier(
        client,
        token,
        salesStartAt=(now - timedelta(hours=2)).isoformat(),
        salesEndAt=(now - timedelta(hours=1)).isoformat(),
    )
    assert await code(1, tier=over_id) == "SALES_ENDED"

    fan_made = await client(
        """mutation { createEvent(input: {title: "x", startAt: "2099-01-01T00:00:00Z"}) {
             ... on TicketingError { code } } }""",
        token=buyer,
    )
    assert fan_made["createEvent"]["code"] == "NOT_ALLOWED"


async def test_unpublished_event_does_not_sell(
    client: GraphQLClient, token: Callable[..., str]
) -> None:
    """A tier of a draft event answers EVENT_NOT_PUBLISHED."""
    event_id, tier_id, organizer = await api_tier(client, token)
    await client(
        """mutation($id: ID!) { setEventStatus(id: $id, status: DRAFT) {
             ... on EventPayload { event { status } } } }""",
        {"id": event_id},
        token=organizer,
    )
    result = await client(RESERVE, {"tier": tier_id, "q": 1}, token=token("user"))
    assert result["reserveTickets"]["code"] == "EVENT_NOT_PUBLISHED"


async def test_sweeper_frees_capacity_and_subscription_reports_it(
    app: Starlette,
    server: Any,
    ws: Callable[..., Any],
    database: Database,
    clock: FrozenClock,
) -> None:
    """Expired holds are released by the registered sweeper job; subscribers see it live."""
    event, tier = await seed_tier(database, clock.now(), quantity=2)
    await reserve(database, clock, await new_buyer(database), tier.id, 2)
    client = await ws()
    op = await client.subscribe(AVAILABILITY, {"id": str(event.id)})
    first = (await client.next_payload(op))["data"]["tierAvailability"]
    assert first["reason"] == "SNAPSHOT"
    assert first["tiers"] == [
        {
            "tierId": gid("TicketTier", tier.id),
            "quantity": 2,
            "reserved": 2,
            "issued": 0,
            "available": 0,
        }
    ]
    clock.advance(TTL + 1)
    (sweeper,) = [job for job in jobs.registry() if job.name == "sweep_holds"]
    assert sweeper.interval(app.state.services) <= 30
    report = await jobs.run_once(app.state.services, sweeper)
    assert report is not None and report["expired_holds"] == 1
    change = (await client.next_payload(op))["data"]["tierAvailability"]
    assert (change["reason"], change["changedTierId"]) == ("CHANGE", gid("TicketTier", tier.id))
    assert change["tiers"][0]["available"] == 2
    async with connection(database) as conn:
        run = await conn.fetchrow(
            "SELECT status, items FROM ops.job_runs WHERE job = 'sweep_holds'"
        )
    assert run is not None and (run["status"], run["items"]) == ("ok", 1)


async def test_subscription_ignores_rolled_back_changes(
    server: Any, ws: Callable[..., Any], database: Database, clock: FrozenClock
) -> None:
    """A change whose transaction rolls back is never announced; a committed one is."""
    event, tier = await seed_tier(database, clock.now(), quantity=5)
    client = await ws()
    op = await client.subscribe(AVAILABILITY, {"id": str(event.id)})
    await client.next_payload(op)  # snapshot
    buyer = await new_buyer(database)

    class Abort(Exception):
        pass

    with pytest.raises(Abort):
        async with transaction(database) as conn:
            row = await conn.fetchrow(
                """UPDATE ticketing.ticket_tiers SET reserved_quantity = reserved_quantity + 1
                    WHERE id = $1 RETURNING *""",
                tier.id,
            )
            await db.notify.announce_tier(conn, row)
            raise Abort
    with pytest.raises(db.errors.TicketingError):  # rolls back inside reserve
        await reserve(database, clock, buyer, tier.id, 6)
    await client.expect_nothing(0.4)
    await reserve(database, clock, buyer, tier.id, 1)
    change = (await client.next_payload(op))["data"]["tierAvailability"]
    assert change["tiers"][0]["reserved"] == 1


async def test_a_change_older_than_the_snapshot_is_not_replayed(
    server: Any, ws: Callable[..., Any], database: Database, clock: FrozenClock
) -> None:
    """A notification committed before the snapshot but delivered after it is skipped."""
    event, tier = await seed_tier(database, clock.now(), quantity=5)
    buyer = await new_buyer(database)
    await reserve(database, clock, buyer, tier.id, 2)
    client = await ws()
    op = await client.subscribe(AVAILABILITY, {"id": str(event.id)})
    snapshot = (await client.next_payload(op))["data"]["tierAvailability"]
    assert snapshot["tiers"][0]["reserved"] == 2
    async with transaction(database) as conn:
        current = await conn.fetchrow(
            "SELECT version FROM ticketing.ticket_tiers WHERE id = $1", tier.id
        )
        assert current is not None
        # What the reservation's own notification looked like, arriving late.
        stale = {
            "id": tier.id,
            "event_id": event.id,
            "quantity": 5,
            "reserved_quantity": 0,
            "issued_quantity": 0,
            "version": current["version"] - 1,
            "waitlist_demand": 0,
        }
        await db.notify.announce_tier(conn, stale)
    await client.expect_nothing(0.4)
    await reserve(database, clock, await new_buyer(database), tier.id, 1)
    change = (await client.next_payload(op))["data"]["tierAvailability"]
    assert change["tiers"][0]["reserved"] == 3
