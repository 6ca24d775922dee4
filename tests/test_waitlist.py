"""The waitlist of a sold-out tier: who may join, first come first served with skip, and
every path that frees seats offering them to the line in the same transaction.

Each scenario ends with the books balanced (the SPEC's alert queries return 0, tier
counters equal their rows) and each tier's waitlist demand equal to its waiting entries.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from databases import Database

import db.checkout
import db.completion
import db.refunds
import db.sweeper
import db.tiers
import db.waitlist
from db.checkout import Contact
from db.core import connection
from db.errors import TicketingError
from db.events import Actor
from db.refund_rules import RefundReason, RefundRequest
from db.reservations import release_hold, reserve_tickets
from liventix.clock import FrozenClock
from tests.orders_support import add_event, add_user, count
from tests.support import GraphQLClient, gid
from tests.waitlist_support import assert_line_balanced, line_up, sold_out_tier, statuses

TTL = 900


async def _code(call: object) -> str:
    try:
        await call  # type: ignore[misc]
    except TicketingError as exc:
        return str(exc.code)
    raise AssertionError("expected a TicketingError")


async def test_join_only_when_sold_out_once_and_with_a_valid_quantity(
    database: Database, clock: FrozenClock
) -> None:
    """NOT_SOLD_OUT while the seats can be held; then one entry per person and tier."""
    organizer = await add_user(database, "organizer")
    _, tier, holds = await sold_out_tier(database, clock, quantity=3)
    user = await add_user(database)
    await release_hold(database, Actor(user_id=organizer, is_admin=True), holds[0], clock.now())
    join = db.waitlist.join_waitlist
    assert await _code(join(database, user, tier, 1, clock.now())) == "NOT_SOLD_OUT"
    entry = await join(database, user, tier, 2, clock.now())  # 1 free, 2 wanted: may wait
    assert (entry.status, entry.position, entry.quantity) == ("waiting", 1, 2)
    assert await _code(join(database, user, tier, 1, clock.now())) == "ALREADY_WAITING"
    assert await _code(join(database, user, tier, 0, clock.now())) == "QUANTITY_INVALID"
    assert await _code(join(database, user, tier, 11, clock.now())) == "MAX_PER_ORDER_EXCEEDED"
    # The free seat is the line's now: the public is refused it.
    buyer = await add_user(database)
    assert (
        await _code(reserve_tickets(database, buyer, tier, 1, now=clock.now(), ttl_seconds=TTL))
        == "SOLD_OUT"
    )
    await assert_line_balanced(database)


async def test_fifo_with_skip_a_group_that_does_not_fit_keeps_its_place(
    database: Database, clock: FrozenClock
) -> None:
    """5 seats freed at once (a hold made smaller) for a line of 3, 5, 1, 2: the 3 and the
    1 are offered; the 5 and the 2 keep their places; the last free seat stays theirs."""
    organizer = await add_user(database, "organizer")
    event, tier, _ = await add_event(database, organizer, clock, quantity=10)
    big = await add_user(database)
    await reserve_tickets(database, big, tier, 10, now=clock.now(), ttl_seconds=TTL)
    entries = await line_up(database, clock, tier, [3, 5, 1, 2])
    await reserve_tickets(database, big, tier, 5, now=clock.now(), ttl_seconds=TTL)
    assert await statuses(database, clock, entries) == ["offered", "waiting", "offered", "waiting"]
    records = await db.waitlist.get_entries(database, [e.id for e in entries], clock.now())
    assert [r.position if r else None for r in records] == [None, 1, None, 2]
    buyer = await add_user(database)
    assert (
        await _code(reserve_tickets(database, buyer, tier, 1, now=clock.now(), ttl_seconds=TTL))
        == "SOLD_OUT"
    )
    # The 5 leaves: the 2 behind it fits nothing yet (1 seat free), and stays first.
    await db.waitlist.leave_waitlist(
        database, Actor(user_id=entries[1].user_id), entries[1].id, clock.now()
    )
    (last,) = await db.waitlist.get_entries(database, [entries[3].id], clock.now())
    assert last is not None and (last.status, last.position) == ("waiting", 1)
    # The free seat is the line's: shown to the public as none, as a hold finds it.
    (tiers,) = await db.tiers.tiers_for_events(database, [event])
    (line_tier,) = [t for t in tiers if t.id == tier]
    free = line_tier.quantity - line_tier.reserved_quantity - line_tier.issued_quantity
    assert (free, line_tier.available) == (1, 0)
    await assert_line_balanced(database)


async def test_release_offers_the_seats_and_notifies_in_the_priority_lane(
    database: Database, clock: FrozenClock
) -> None:
    """A released hold becomes the first entry's offer: a hold for the event's window,
    with a WAITLIST_OFFER notification in the priority lane, never deferred."""
    _, tier, holds = await sold_out_tier(database, clock, quantity=2)
    (entry,) = await line_up(database, clock, tier, [1])
    async with connection(database) as conn:
        holder = await conn.fetchval(
            "SELECT user_id FROM ticketing.ticket_holds WHERE id = $1", holds[0]
        )
    await release_hold(database, Actor(user_id=holder), holds[0], clock.now())
    (offered,) = await db.waitlist.get_entries(database, [entry.id], clock.now())
    assert offered is not None and offered.status == "offered" and offered.hold_id is not None
    async with connection(database) as conn:
        minutes = await conn.fetchval(
            """SELECT extract(epoch FROM expires_at - $2) / 60
                 FROM ticketing.ticket_holds WHERE id = $1""",
            offered.hold_id,
            clock.now(),
        )
        note = await conn.fetchrow(
            "SELECT category, lane, data FROM notify.notifications WHERE user_id = $1",
            entry.user_id,
        )
    assert minutes == 60
    assert note is not None and (note["category"], note["lane"]) == ("waitlist_offer", "priority")
    await assert_line_balanced(database)


async def test_sweeper_expiry_offers_and_an_expired_offer_passes_on(
    database: Database, clock: FrozenClock
) -> None:
    """Holds lapse → the sweeper offers their seats; the offer lapses after its window →
    the next sweep passes the seats to the next in line."""
    _, tier, _ = await sold_out_tier(database, clock, quantity=1)
    first, second = await line_up(database, clock, tier, [1, 1])
    clock.advance(TTL + 1)
    await db.sweeper.sweep_expired_holds(database, clock.now())
    assert await statuses(database, clock, [first, second]) == ["offered", "waiting"]
    clock.advance(60 * 60 + 1)
    await db.sweeper.sweep_expired_holds(database, clock.now())
    assert await statuses(database, clock, [first, second]) == ["expired", "offered"]
    await assert_line_balanced(database)


async def test_lazy_expiry_in_reserve_offers_before_the_buyer(
    database: Database, clock: FrozenClock
) -> None:
    """A buyer who finds lapsed holds releases them, but the line gets them: SOLD_OUT."""
    _, tier, _ = await sold_out_tier(database, clock, quantity=2)
    (entry,) = await line_up(database, clock, tier, [2])
    clock.advance(TTL + 1)
    buyer = await add_user(database)
    assert (
        await _code(reserve_tickets(database, buyer, tier, 1, now=clock.now(), ttl_seconds=TTL))
        == "SOLD_OUT"
    )
    assert await statuses(database, clock, [entry]) == ["offered"]
    async with connection(database) as conn:
        notes = await conn.fetchval(
            "SELECT count(*) FROM notify.notifications WHERE user_id = $1", entry.user_id
        )
    assert notes == 1
    await assert_line_balanced(database)


async def test_capacity_raised_is_offered_first(database: Database, clock: FrozenClock) -> None:
    """The organizer adds 3 seats: the line (2, then 1) gets all 3, the public none."""
    organizer, tier, _ = await sold_out_tier(database, clock, quantity=2)
    entries = await line_up(database, clock, tier, [2, 1])
    updated = await db.tiers.update_tier(
        database, Actor(user_id=organizer), tier, {"quantity": 5}, clock.now()
    )
    assert (updated.reserved_quantity, updated.available) == (5, 0)
    assert await statuses(database, clock, entries) == ["offered", "offered"]
    await assert_line_balanced(database)


async def test_leaving_while_offered_passes_the_offer_on_and_is_idempotent(
    database: Database, clock: FrozenClock
) -> None:
    _, tier, _ = await sold_out_tier(database, clock, quantity=1)
    first, second = await line_up(database, clock, tier, [1, 1])
    clock.advance(TTL + 1)
    await db.sweeper.sweep_expired_holds(database, clock.now())
    me = Actor(user_id=first.user_id)
    left = await db.waitlist.leave_waitlist(database, me, first.id, clock.now())
    again = await db.waitlist.leave_waitlist(database, me, first.id, clock.now())
    assert left.status == again.status == "left"
    assert await statuses(database, clock, [second]) == ["offered"]
    stranger = Actor(user_id=second.user_id)
    assert await _code(db.waitlist.leave_waitlist(database, stranger, first.id, clock.now())) == (
        "WAITLIST_ENTRY_NOT_FOUND"
    )
    await assert_line_balanced(database)


async def test_the_offered_user_checks_out_with_the_offer_hold(
    database: Database, clock: FrozenClock
) -> None:
    """The offer is a hold: checkout and completion take it as they are; the entry then
    reads PURCHASED, and a public hold on top of the offer is refused (OFFER_HELD)."""
    _, tier, _ = await sold_out_tier(database, clock, quantity=1)
    (entry,) = await line_up(database, clock, tier, [1])
    clock.advance(TTL + 1)
    await db.sweeper.sweep_expired_holds(database, clock.now())
    (offered,) = await db.waitlist.get_entries(database, [entry.id], clock.now())
    assert offered is not None and offered.hold_id is not None
    resize = reserve_tickets(database, entry.user_id, tier, 2, now=clock.now(), ttl_seconds=TTL)
    assert await _code(resize) == "OFFER_HELD"
    done = await db.checkout.create_pending_order(
        database,
        user_id=entry.user_id,
        hold_ids=[offered.hold_id],
        contact=Contact(email="sam@example.com", name="Sam Fan"),
        now=clock.now(),
    )
    await db.completion.complete_order(
        database, done.order.id, now=clock.now(), payment_intent_id="pi_w"
    )
    assert await statuses(database, clock, [entry]) == ["purchased"]
    assert await count(database, "SELECT count(*) FROM ticketing.tickets") == 1
    await assert_line_balanced(database)


async def test_the_api_joins_lists_and_leaves(
    database: Database, clock: FrozenClock, client: GraphQLClient, token: Callable[..., str]
) -> None:
    """joinWaitlist, myWaitlistEntries, tierWaitlist (organizer, with positions),
    leaveWaitlist over GraphQL, with typed errors."""
    organizer, tier, _ = await sold_out_tier(database, clock, quantity=1)
    fan_token = token("user", await add_user(database))
    org_token = token("organizer", organizer)
    join = """mutation($t: ID!, $q: Int!) { joinWaitlist(tierId: $t, quantity: $q) {
        __typename ... on WaitlistEntryPayload { entry { id status position quantity } }
        ... on TicketingError { code } } }"""
    data = await client(join, {"t": gid("TicketTier", tier), "q": 2}, token=fan_token)
    entry = data["joinWaitlist"]["entry"]
    assert (entry["status"], entry["position"]) == ("WAITING", 1)
    again = await client(join, {"t": gid("TicketTier", tier), "q": 2}, token=fan_token)
    assert again["joinWaitlist"] == {"__typename": "TicketingError", "code": "ALREADY_WAITING"}
    mine = await client("{ myWaitlistEntries { id status offerHold { id } } }", token=fan_token)
    assert mine["myWaitlistEntries"] == [
        {"id": entry["id"], "status": "WAITING", "offerHold": None}
    ]
    line = """query($t: ID!) { tierWaitlist(tierId: $t) { __typename
        ... on WaitlistConnection { edges { node { id position } } }
        ... on TicketingError { code } } }"""
    queue = await client(line, {"t": gid("TicketTier", tier)}, token=org_token)
    assert queue["tierWaitlist"]["edges"] == [{"node": {"id": entry["id"], "position": 1}}]
    leave = """mutation($e: ID!) { leaveWaitlist(entryId: $e) {
        ... on WaitlistEntryPayload { entry { status } } ... on TicketingError { code } } }"""
    left = await client(leave, {"e": entry["id"]}, token=fan_token)
    assert left["leaveWaitlist"] == {"entry": {"status": "LEFT"}}
    await assert_line_balanced(database)


@pytest.mark.parametrize("quantities", [[1] * 30])
async def test_thirty_in_line_ten_freed_at_once(
    database: Database, clock: FrozenClock, quantities: list[int]
) -> None:
    """10 holds lapse together: exactly the first 10 entries are offered, in order."""
    _, tier, _ = await sold_out_tier(database, clock, quantity=10)
    entries = await line_up(database, clock, tier, quantities)
    clock.advance(TTL + 1)
    await db.sweeper.sweep_expired_holds(database, clock.now())
    assert await statuses(database, clock, entries) == ["offered"] * 10 + ["waiting"] * 20
    await assert_line_balanced(database)


async def test_refunded_tickets_are_offered_to_the_line(
    database: Database, clock: FrozenClock
) -> None:
    """A refund that voids tickets frees their seats (`db.holds.give_back_voided_seats`):
    the first entry in line is offered them in the refund's own transaction."""
    organizer, tier, _ = await sold_out_tier(database, clock, quantity=1)
    (first,) = await line_up(database, clock, tier, [1])
    clock.advance(TTL + 1)
    await db.sweeper.sweep_expired_holds(database, clock.now())
    (offered,) = await db.waitlist.get_entries(database, [first.id], clock.now())
    assert offered is not None and offered.hold_id is not None
    done = await db.checkout.create_pending_order(
        database,
        user_id=first.user_id,
        hold_ids=[offered.hold_id],
        contact=Contact(email="sam@example.com", name="Sam Fan"),
        now=clock.now(),
    )
    await db.completion.complete_order(
        database, done.order.id, now=clock.now(), payment_intent_id="pi_r"
    )
    (second,) = await line_up(database, clock, tier, [1])  # sold out again: the line
    assert await statuses(database, clock, [second]) == ["waiting"]
    await db.refunds.refund_order(
        database,
        order_id=done.order.id,
        actor_id=organizer,
        actor_is_admin=False,
        asked=db.refunds.RefundAsked(RefundRequest(), RefundReason.EVENT_CHANGED),
        now=clock.now(),
    )
    assert await statuses(database, clock, [first, second]) == ["purchased", "offered"]
    await assert_line_balanced(database)
