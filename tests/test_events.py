"""Events over the API: organizer writes, draft privacy, Relay pagination, batch loading."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import timedelta

from databases import Database

import db.events
import db.users
from liventix.clock import FrozenClock
from tests.support import GraphQLClient, gid

CREATE = """
mutation($in: CreateEventInput!) {
  createEvent(input: $in) {
    __typename
    ... on EventPayload { event { id title status timeZone organizer { id } } }
    ... on TicketingError { code field message }
  }
}"""

UPDATE = """
mutation($id: ID!, $in: UpdateEventInput!) {
  updateEvent(id: $id, input: $in) {
    __typename
    ... on EventPayload { event { id title venue description endAt } }
    ... on TicketingError { code field }
  }
}"""

STATUS = """
mutation($id: ID!, $s: EventStatus!) {
  setEventStatus(id: $id, status: $s) {
    __typename
    ... on EventPayload { event { status } }
    ... on TicketingError { code }
  }
}"""

EVENT = "query($id: ID!) { event(id: $id) { id title status tiers { name status } } }"

PAGE = """
query($first: Int!, $after: String) {
  events(first: $first, after: $after) {
    edges { cursor node { id title startAt } }
    pageInfo { hasNextPage endCursor }
  }
}"""


async def test_organizer_creates_edits_publishes(
    client: GraphQLClient, token: Callable[..., str]
) -> None:
    """Draft → edited → published; a draft is invisible to others until published."""
    owner_id = uuid.uuid4()
    owner = token("organizer", owner_id)
    made = await client(
        CREATE,
        {
            "in": {
                "title": "  Jazz Night ",
                "startAt": "2099-03-01T20:00:00+01:00",
                "timeZone": "Europe/Paris",
            }
        },
        token=owner,
    )
    event = made["createEvent"]["event"]
    assert event["title"] == "Jazz Night" and event["status"] == "DRAFT"
    assert event["organizer"] == {"id": gid("User", owner_id)}
    assert (await client(EVENT, {"id": event["id"]}))["event"] is None
    assert (await client(EVENT, {"id": event["id"]}, token=owner))["event"]["id"] == event["id"]

    edited = await client(UPDATE, {"id": event["id"], "in": {"venue": "Blue Room"}}, token=owner)
    assert edited["updateEvent"]["event"]["venue"] == "Blue Room"
    assert edited["updateEvent"]["event"]["title"] == "Jazz Night"  # untouched
    stranger = await client(
        UPDATE, {"id": event["id"], "in": {"title": "Mine"}}, token=token("organizer")
    )
    assert stranger["updateEvent"]["code"] == "NOT_ALLOWED"

    await client(STATUS, {"id": event["id"], "s": "PUBLISHED"}, token=owner)
    public = (await client(EVENT, {"id": event["id"]}))["event"]
    assert public["status"] == "PUBLISHED"
    mine = (await client("{ myEvents { id } }", token=owner))["myEvents"]
    assert mine == [{"id": event["id"]}]

    canceled = await client(STATUS, {"id": event["id"], "s": "CANCELED"}, token=owner)
    assert canceled["setEventStatus"]["event"]["status"] == "CANCELED"
    revived = await client(STATUS, {"id": event["id"], "s": "PUBLISHED"}, token=owner)
    assert revived["setEventStatus"]["code"] == "EVENT_CANCELED"


async def test_bad_event_input_is_a_typed_error(
    client: GraphQLClient, token: Callable[..., str]
) -> None:
    """Invalid input names its field and writes nothing."""
    owner = token("organizer")
    cases = [
        ({"title": "", "startAt": "2099-01-01T00:00:00Z"}, "title"),
        ({"title": "x", "startAt": "2099-01-01T00:00:00Z", "timeZone": "Mars/Base"}, "timeZone"),
        (
            {"title": "x", "startAt": "2099-01-02T00:00:00Z", "endAt": "2099-01-01T00:00:00Z"},
            "endAt",
        ),
    ]
    for payload, field in cases:
        result = (await client(CREATE, {"in": payload}, token=owner))["createEvent"]
        assert (result["code"], result["field"]) == ("INVALID_INPUT", field)
    assert (await client("{ myEvents { id } }", token=owner))["myEvents"] == []


async def test_events_are_paginated_soonest_first(
    client: GraphQLClient, database: Database, clock: FrozenClock
) -> None:
    """Published, not-yet-over events, by start time, with stable cursors."""
    organizer = uuid.uuid4()
    await db.users.ensure_profile(database, organizer, "organizer")
    actor = db.events.Actor(user_id=organizer)
    now = clock.now()
    expected = []
    for days in (5, 1, 3, 2, 4):
        event = await db.events.create_event(
            database, actor, title=f"Day {days}", start_at=now + timedelta(days=days)
        )
        await db.events.set_event_status(database, actor, event.id, "published", now)
        expected.append((days, gid("Event", event.id)))
    await db.events.create_event(database, actor, title="Draft", start_at=now)  # not listed
    past = await db.events.create_event(
        database, actor, title="Past", start_at=now - timedelta(days=2)
    )
    await db.events.set_event_status(database, actor, past.id, "published", now)
    seen: list[str] = []
    after = None
    while True:
        page = (await client(PAGE, {"first": 2, "after": after}))["events"]
        seen += [edge["node"]["id"] for edge in page["edges"]]
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]
    assert seen == [event_id for _, event_id in sorted(expected)]


async def test_get_events_batches_in_request_order(database: Database, clock: FrozenClock) -> None:
    """The DataLoader batch returns one slot per id, None for unknown ids."""
    organizer = uuid.uuid4()
    await db.users.ensure_profile(database, organizer, "organizer")
    actor = db.events.Actor(user_id=organizer)
    a = await db.events.create_event(database, actor, title="A", start_at=clock.now())
    b = await db.events.create_event(database, actor, title="B", start_at=clock.now())
    missing = uuid.uuid4()
    found = await db.events.get_events(database, [b.id, missing, a.id])
    assert [e.title if e else None for e in found] == ["B", None, "A"]
