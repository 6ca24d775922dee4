"""Manual approval of a waitlist, and the per-event offer window.

In manual mode a join is pending: it holds nothing back from the public and is offered
nothing until the organizer approves it (in line by its original join time, offered at
once if seats are free) or declines it. Decisions are all or nothing, idempotent, and
only the event's organizer (or an admin) may take them. Each scenario ends with the
books balanced and each tier's demand equal to its waiting entries.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import timedelta

from databases import Database

import db.events
import db.waitlist
import db.waitlist_approval
from db.core import connection
from db.errors import EventError, TicketingError
from db.events import Actor
from db.reservations import release_hold, reserve_tickets
from liventix.clock import FrozenClock
from tests.orders_support import add_user
from tests.support import GraphQLClient, gid
from tests.waitlist_support import assert_line_balanced, line_up, sold_out_tier, statuses

TTL = 900


async def _event_of(database: Database, tier: uuid.UUID) -> uuid.UUID:
    async with connection(database) as conn:
        event: uuid.UUID = await conn.fetchval(
            "SELECT event_id FROM ticketing.ticket_tiers WHERE id = $1", tier
        )
    return event


async def _settings(
    database: Database, clock: FrozenClock, organizer: uuid.UUID, tier: uuid.UUID, **changes: object
) -> db.events.EventRecord:
    event = await _event_of(database, tier)
    return await db.events.update_event(
        database, Actor(user_id=organizer), event, dict(changes), clock.now()
    )


async def _code(call: object) -> tuple[str, str | None]:
    try:
        await call  # type: ignore[misc]
    except (TicketingError, EventError) as exc:
        return str(exc.code), exc.field
    raise AssertionError("expected a typed error")


async def test_a_manual_join_is_pending_and_does_not_block_the_public(
    database: Database, clock: FrozenClock
) -> None:
    organizer, tier, holds = await sold_out_tier(database, clock, quantity=2)
    await _settings(database, clock, organizer, tier, waitlist_approval="manual")
    (entry,) = await line_up(database, clock, tier, [1])
    assert (entry.status, entry.position) == ("pending_approval", None)
    assert await _code(
        db.waitlist.join_waitlist(database, entry.user_id, tier, 1, clock.now())
    ) == ("ALREADY_WAITING", None)
    # A seat comes back: nobody is in line, so it goes to the public, not to the entry.
    await release_hold(database, Actor(user_id=organizer, is_admin=True), holds[0], clock.now())
    assert await statuses(database, clock, [entry]) == ["pending_approval"]
    buyer = await add_user(database)
    await reserve_tickets(database, buyer, tier, 1, now=clock.now(), ttl_seconds=TTL)
    await assert_line_balanced(database)


async def test_approve_lines_up_by_join_time_and_offers_free_seats(
    database: Database, clock: FrozenClock
) -> None:
    """Two wait in automatic mode, two more join pending; the later pending one is
    approved first, yet stands by its join time; approving the earlier one offers it
    the seat that is free."""
    organizer, tier, holds = await sold_out_tier(database, clock, quantity=2)
    first = await line_up(database, clock, tier, [1])
    await _settings(database, clock, organizer, tier, waitlist_approval="manual")
    early, late = await line_up(database, clock, tier, [1, 1])
    actor = Actor(user_id=organizer)
    (approved,) = await db.waitlist_approval.approve_entries(
        database, actor, [late.id], clock.now()
    )
    assert (approved.status, approved.position) == ("waiting", 2)
    # A seat comes back: the first in line is offered it.
    await release_hold(database, Actor(user_id=organizer, is_admin=True), holds[0], clock.now())
    assert await statuses(database, clock, [*first, early, late]) == [
        "offered",
        "pending_approval",
        "waiting",
    ]
    # The second seat goes to `late`, alone in line; approving `early` then finds no
    # seat free: it waits, first in line by its join time.
    await release_hold(database, Actor(user_id=organizer, is_admin=True), holds[1], clock.now())
    both = await db.waitlist_approval.approve_entries(
        database, actor, [early.id, late.id], clock.now()
    )
    assert [(e.status, e.position) for e in both] == [("waiting", 1), ("offered", None)]
    await assert_line_balanced(database)


async def test_approving_offers_a_seat_already_free(database: Database, clock: FrozenClock) -> None:
    """A seat freed while the entry was pending went to the public; approving the entry
    puts it in line and offers it that seat in the same transaction."""
    organizer, tier, holds = await sold_out_tier(database, clock, quantity=2)
    await _settings(database, clock, organizer, tier, waitlist_approval="manual")
    (entry,) = await line_up(database, clock, tier, [1])
    await release_hold(database, Actor(user_id=organizer, is_admin=True), holds[0], clock.now())
    (offered,) = await db.waitlist_approval.approve_entries(
        database, Actor(user_id=organizer), [entry.id], clock.now()
    )
    assert (offered.status, offered.position) == ("offered", None)
    assert offered.offer_expires_at == clock.now() + timedelta(minutes=60)
    await assert_line_balanced(database)


async def test_decline_is_final_and_decisions_are_idempotent(
    database: Database, clock: FrozenClock
) -> None:
    organizer, tier, _ = await sold_out_tier(database, clock, quantity=1)
    in_line = await line_up(database, clock, tier, [1])
    await _settings(database, clock, organizer, tier, waitlist_approval="manual")
    pending, gone = await line_up(database, clock, tier, [1, 1])
    await db.waitlist.leave_waitlist(database, Actor(user_id=gone.user_id), gone.id, clock.now())
    actor = Actor(user_id=organizer)
    approve, decline = db.waitlist_approval.approve_entries, db.waitlist_approval.decline_entries
    declined = await decline(database, actor, [pending.id, in_line[0].id], clock.now())
    assert [e.status for e in declined] == ["declined", "declined"]
    again = await decline(database, actor, [pending.id, pending.id], clock.now())
    assert [e.status for e in again] == ["declined"]
    assert await _code(approve(database, actor, [pending.id], clock.now())) == (
        "WAITLIST_ENTRY_CLOSED",
        "ids[0]",
    )
    assert await _code(decline(database, actor, [pending.id, gone.id], clock.now())) == (
        "WAITLIST_ENTRY_CLOSED",
        "ids[1]",
    )
    mine = await db.waitlist.my_entries(database, pending.user_id, clock.now())
    assert [e.status for e in mine] == ["declined"]
    await assert_line_balanced(database)


async def test_approving_an_entry_in_line_changes_nothing_and_a_refusal_changes_nothing(
    database: Database, clock: FrozenClock
) -> None:
    organizer, tier, _ = await sold_out_tier(database, clock, quantity=1)
    (waiting,) = await line_up(database, clock, tier, [1])
    await _settings(database, clock, organizer, tier, waitlist_approval="manual")
    pending, gone = await line_up(database, clock, tier, [1, 1])
    await db.waitlist.leave_waitlist(database, Actor(user_id=gone.user_id), gone.id, clock.now())
    actor = Actor(user_id=organizer)
    (same,) = await db.waitlist_approval.approve_entries(database, actor, [waiting.id], clock.now())
    assert (same.status, same.position, same.joined_at) == ("waiting", 1, waiting.joined_at)
    refused = db.waitlist_approval.approve_entries(
        database, actor, [pending.id, gone.id], clock.now()
    )
    assert await _code(refused) == ("WAITLIST_ENTRY_CLOSED", "ids[1]")
    assert await statuses(database, clock, [pending]) == ["pending_approval"]  # all or nothing
    await assert_line_balanced(database)


async def test_only_the_events_organizer_or_an_admin_decides(
    database: Database, clock: FrozenClock
) -> None:
    organizer, tier, _ = await sold_out_tier(database, clock, quantity=1)
    await _settings(database, clock, organizer, tier, waitlist_approval="manual")
    (entry,) = await line_up(database, clock, tier, [1])
    other = Actor(user_id=await add_user(database, "organizer"))
    for decide in (db.waitlist_approval.approve_entries, db.waitlist_approval.decline_entries):
        assert await _code(decide(database, other, [entry.id], clock.now())) == (
            "WAITLIST_ENTRY_NOT_FOUND",
            "ids[0]",
        )
        fan = Actor(user_id=entry.user_id)
        assert (await _code(decide(database, fan, [entry.id], clock.now())))[0] == (
            "WAITLIST_ENTRY_NOT_FOUND"
        )
    admin = Actor(user_id=await add_user(database, "admin"), is_admin=True)
    (approved,) = await db.waitlist_approval.approve_entries(
        database, admin, [entry.id], clock.now()
    )
    assert approved.status == "waiting"
    await assert_line_balanced(database)


async def test_switching_back_to_automatic_leaves_pending_entries_pending(
    database: Database, clock: FrozenClock
) -> None:
    organizer, tier, _ = await sold_out_tier(database, clock, quantity=1)
    await _settings(database, clock, organizer, tier, waitlist_approval="manual")
    (pending,) = await line_up(database, clock, tier, [1])
    await _settings(database, clock, organizer, tier, waitlist_approval="automatic")
    (later,) = await line_up(database, clock, tier, [1])
    assert await statuses(database, clock, [pending, later]) == ["pending_approval", "waiting"]
    await assert_line_balanced(database)


async def test_the_offer_window_is_the_events_setting(
    database: Database, clock: FrozenClock
) -> None:
    organizer, tier, holds = await sold_out_tier(database, clock, quantity=1)
    event = await _settings(database, clock, organizer, tier, waitlist_offer_minutes=15)
    assert (event.waitlist_offer_minutes, event.waitlist_approval) == (15, "automatic")
    (entry,) = await line_up(database, clock, tier, [1])
    await release_hold(database, Actor(user_id=organizer, is_admin=True), holds[0], clock.now())
    (offered,) = await db.waitlist.get_entries(database, [entry.id], clock.now())
    assert offered is not None and offered.offer_expires_at == clock.now() + timedelta(minutes=15)


async def test_bad_settings_are_refused_and_change_nothing(
    database: Database, clock: FrozenClock
) -> None:
    organizer, tier, _ = await sold_out_tier(database, clock, quantity=1)
    for changes, field in (
        ({"waitlist_offer_minutes": 4}, "waitlist_offer_minutes"),
        ({"waitlist_offer_minutes": 10081}, "waitlist_offer_minutes"),
        ({"waitlist_offer_minutes": None}, "waitlist_offer_minutes"),
        ({"waitlist_approval": "sometimes"}, "waitlist_approval"),
        ({"waitlist_approval": None}, "waitlist_approval"),
    ):
        refused = _settings(database, clock, organizer, tier, **changes)
        assert await _code(refused) == ("INVALID_INPUT", field)
    stranger = await add_user(database, "organizer")
    assert (await _code(_settings(database, clock, stranger, tier, waitlist_offer_minutes=30)))[
        0
    ] == "NOT_ALLOWED"
    (event,) = await db.events.get_events(database, [await _event_of(database, tier)])
    assert event is not None
    assert (event.waitlist_approval, event.waitlist_offer_minutes) == ("automatic", 60)


async def test_the_api_sets_manual_mode_lists_pending_and_approves(
    database: Database, clock: FrozenClock, client: GraphQLClient, token: Callable[..., str]
) -> None:
    """updateEvent's settings, a pending join, tierWaitlist with it, approve and decline
    over GraphQL, with typed errors for a fan and a bad window."""
    organizer, tier, _ = await sold_out_tier(database, clock, quantity=1)
    event = gid("Event", await _event_of(database, tier))
    org_token = token("organizer", organizer)
    fan_token = token("user", await add_user(database))
    settings = """mutation($id: ID!, $input: UpdateEventInput!) { updateEvent(id: $id,
        input: $input) { __typename ... on EventPayload { event { waitlistApproval
        waitlistOfferMinutes } } ... on TicketingError { code field } } }"""
    bad = await client(
        settings, {"id": event, "input": {"waitlistOfferMinutes": 2}}, token=org_token
    )
    assert bad["updateEvent"] == {
        "__typename": "TicketingError",
        "code": "INVALID_INPUT",
        "field": "waitlistOfferMinutes",
    }
    manual = {"waitlistApproval": "MANUAL", "waitlistOfferMinutes": 30}
    done = await client(settings, {"id": event, "input": manual}, token=org_token)
    assert done["updateEvent"]["event"] == manual
    join = """mutation($t: ID!) { joinWaitlist(tierId: $t, quantity: 1) {
        ... on WaitlistEntryPayload { entry { id status position } } } }"""
    entry = (await client(join, {"t": gid("TicketTier", tier)}, token=fan_token))["joinWaitlist"][
        "entry"
    ]
    assert (entry["status"], entry["position"]) == ("PENDING_APPROVAL", None)
    line = """query($t: ID!) { tierWaitlist(tierId: $t) {
        ... on WaitlistConnection { edges { node { id status position } } } } }"""
    queue = await client(line, {"t": gid("TicketTier", tier)}, token=org_token)
    assert queue["tierWaitlist"]["edges"] == [
        {"node": {"id": entry["id"], "status": "PENDING_APPROVAL", "position": None}}
    ]
    decide = """mutation($ids: [ID!]!) { %s(ids: $ids) { __typename
        ... on WaitlistEntriesPayload { entries { id status position } }
        ... on TicketingError { code field } } }"""
    approve = decide % "approveWaitlistEntries"
    refused = await client(approve, {"ids": [entry["id"]]}, token=fan_token)
    assert refused["approveWaitlistEntries"]["__typename"] == "TicketingError"
    approved = await client(approve, {"ids": [entry["id"]]}, token=org_token)
    assert approved["approveWaitlistEntries"]["entries"] == [
        {"id": entry["id"], "status": "WAITING", "position": 1}
    ]
    declined = await client(
        decide % "declineWaitlistEntries", {"ids": [entry["id"], "nope"]}, token=org_token
    )
    assert declined["declineWaitlistEntries"] == {
        "__typename": "TicketingError",
        "code": "WAITLIST_ENTRY_NOT_FOUND",
        "field": "ids[1]",
    }
    declined = await client(
        decide % "declineWaitlistEntries", {"ids": [entry["id"]]}, token=org_token
    )
    assert declined["declineWaitlistEntries"]["entries"][0]["status"] == "DECLINED"
    await assert_line_balanced(database)
