"""Notifications through the API: triggers, the inbox, preferences, the live inbox, and
that a user only ever sees and changes their own."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

from databases import Database

from db.core import transaction
from liventix.auth import Role
from liventix.clock import FrozenClock
from tests.feed_support import CREATE_POST
from tests.orders_support import REFUND, World, add_user, paid_order, world
from tests.support import GraphQLClient, gid

__all__ = ["world"]

INBOX = """
query ($lane: NotificationLane, $unread: Boolean! = false, $after: String) {
  notifications(lane: $lane, unreadOnly: $unread, first: 10, after: $after) {
    edges { node { id category lane title body data readAt } }
    pageInfo { hasNextPage endCursor }
  }
  notificationCounts { priority social system total }
}"""

MARK = """
mutation ($ids: [ID!]!) {
  markNotificationsRead(ids: $ids) { marked notFound counts { total priority } }
}"""

MARK_ALL = """
mutation ($lane: NotificationLane) {
  markAllNotificationsRead(lane: $lane) { marked counts { total social priority } }
}"""

PREFS = """
{ notificationPreferences {
    switches { channel category enabled } quietHours { start end } timeZone dailyCap
    digest digestWeekday } }"""

UPDATE = """
mutation ($input: UpdateNotificationPreferencesInput!) {
  updateNotificationPreferences(input: $input) {
    __typename
    ... on NotificationPreferencesPayload {
      preferences { quietHours { start end } timeZone dailyCap digest digestWeekday
                    switches { channel category enabled } }
    }
    ... on NotificationError { code message field }
  }
}"""


async def inbox(client: GraphQLClient, token: str, **variables: Any) -> dict[str, Any]:
    return await client(INBOX, variables, token=token)


def categories(data: dict[str, Any]) -> list[str]:
    return [e["node"]["category"] for e in data["notifications"]["edges"]]


async def holder(
    client: GraphQLClient, database: Database, world: World, clock: FrozenClock
) -> dict[str, Any]:
    """The world's buyer, holding two paid tickets."""
    return await paid_order(client, database, world, clock, 2)


async def test_a_paid_order_and_a_refund_reach_the_buyers_priority_lane(
    client: GraphQLClient, database: Database, world: World, clock: FrozenClock
) -> None:
    order = await holder(client, database, world, clock)
    await client(REFUND, {"order": order["id"]}, token=world.organizer_token)
    data = await inbox(client, world.buyer_token)
    assert categories(data) == ["ORDER_REFUNDED", "ORDER_PAID"]
    paid = data["notifications"]["edges"][1]["node"]
    assert paid["lane"] == "PRIORITY" and paid["title"].startswith("Payment received")
    assert paid["data"]["orderId"] and paid["readAt"] is None
    assert data["notificationCounts"] == {"priority": 2, "social": 0, "system": 0, "total": 2}
    # The organizer, who made the refund, is told nothing.
    assert categories(await inbox(client, world.organizer_token)) == []


async def test_a_post_reaches_ticket_holders_but_not_its_author_and_mentions_by_handle(
    client: GraphQLClient, database: Database, world: World, clock: FrozenClock
) -> None:
    await holder(client, database, world, clock)
    fan = await add_user(database)
    async with transaction(database) as conn:
        await conn.execute("UPDATE users.profiles SET handle = 'Sam_Fan' WHERE id = $1", fan)
    text = "Doors at 8! @sam_fan see you there (mail me: x@sam_fan.com)"
    made = await client(
        CREATE_POST, {"eventId": gid("Event", world.event_id), "text": text},
        token=world.organizer_token,
    )  # fmt: skip
    assert made["createPost"]["__typename"] == "CreatePostPayload"
    buyer = await inbox(client, world.buyer_token, lane="SOCIAL")
    (post,) = [e["node"] for e in buyer["notifications"]["edges"]]
    assert post["category"] == "NEW_POST" and post["body"].startswith("Doors at 8!")
    assert post["data"]["postId"]
    assert categories(await inbox(client, world.token(fan))) == ["MENTION"]
    assert categories(await inbox(client, world.organizer_token)) == []


async def test_canceling_an_event_tells_every_holder(
    client: GraphQLClient, database: Database, world: World, clock: FrozenClock
) -> None:
    await holder(client, database, world, clock)
    cancel = """mutation ($id: ID!) {
      setEventStatus(id: $id, status: CANCELED) { __typename } }"""
    done = await client(cancel, {"id": gid("Event", world.event_id)}, token=world.organizer_token)
    assert done["setEventStatus"]["__typename"] == "EventPayload"
    assert categories(await inbox(client, world.buyer_token))[0] == "EVENT_CANCELED"


async def test_marking_read_is_the_viewers_own(
    client: GraphQLClient, database: Database, world: World, clock: FrozenClock
) -> None:
    await holder(client, database, world, clock)
    mine = await inbox(client, world.buyer_token)
    (note_id,) = [e["node"]["id"] for e in mine["notifications"]["edges"]]
    stranger = world.token(await add_user(database))
    # Someone else: the id names nothing of theirs, and nothing changes.
    refused = (await client(MARK, {"ids": [note_id]}, token=stranger))["markNotificationsRead"]
    assert refused == {"marked": [], "notFound": [note_id], "counts": {"total": 0, "priority": 0}}
    assert (await inbox(client, world.buyer_token))["notificationCounts"]["total"] == 1
    assert await client("query ($id: ID!) { node(id: $id) { id } }", {"id": note_id},
                        token=stranger) == {"node": None}  # fmt: skip
    assert categories(await inbox(client, stranger)) == []
    # The owner marks it; a bogus id is reported, not an error.
    bogus = gid("Notification", uuid.uuid4())
    marked = await client(MARK, {"ids": [note_id, bogus]}, token=world.buyer_token)
    assert marked["markNotificationsRead"] == {
        "marked": [note_id],
        "notFound": [bogus],
        "counts": {"total": 0, "priority": 0},
    }
    unread = await inbox(client, world.buyer_token, unread=True)
    assert unread["notifications"]["edges"] == []


async def test_mark_all_read_by_lane(
    client: GraphQLClient, database: Database, world: World, clock: FrozenClock
) -> None:
    await holder(client, database, world, clock)
    await client(
        CREATE_POST, {"eventId": gid("Event", world.event_id), "text": "hello"},
        token=world.organizer_token,
    )  # fmt: skip
    social = await client(MARK_ALL, {"lane": "SOCIAL"}, token=world.buyer_token)
    assert social["markAllNotificationsRead"] == {
        "marked": 1,
        "counts": {"total": 1, "social": 0, "priority": 1},
    }
    everything = await client(MARK_ALL, {}, token=world.buyer_token)
    assert everything["markAllNotificationsRead"]["counts"]["total"] == 0


async def test_the_inbox_pages_newest_first(
    client: GraphQLClient, database: Database, world: World, clock: FrozenClock
) -> None:
    await holder(client, database, world, clock)
    for n in range(12):
        await client(
            CREATE_POST, {"eventId": gid("Event", world.event_id), "text": f"post {n}"},
            token=world.organizer_token,
        )  # fmt: skip
    first = await inbox(client, world.buyer_token)
    assert first["notifications"]["pageInfo"]["hasNextPage"]
    assert first["notifications"]["edges"][0]["node"]["body"] == "post 11"
    after = first["notifications"]["pageInfo"]["endCursor"]
    second = await inbox(client, world.buyer_token, after=after)
    assert [e["node"]["body"] for e in second["notifications"]["edges"]][-1].startswith("2 tickets")
    bad = await client.post(INBOX, {"after": "nope"}, token=world.buyer_token)
    assert bad.json()["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"


async def test_preferences_merge_deeply(
    client: GraphQLClient, database: Database, token: Callable[..., str]
) -> None:
    fan = token(Role.USER, await add_user(database))
    defaults = (await client(PREFS, token=fan))["notificationPreferences"]
    assert defaults["quietHours"] is None and defaults["digest"] == "OFF"
    assert {"channel": "EMAIL", "category": "NEW_POST", "enabled": False} in defaults["switches"]

    first = {
        "quietHours": {"start": "23:00", "end": "07:00"},
        "timeZone": "America/New_York",
        "switches": [{"channel": "EMAIL", "category": "NEW_POST", "enabled": True}],
    }
    await client(UPDATE, {"input": first}, token=fan)
    second = {
        "dailyCap": 5,
        "switches": [{"channel": "PUSH", "category": "MENTION", "enabled": False}],
    }
    result = (await client(UPDATE, {"input": second}, token=fan))["updateNotificationPreferences"]
    prefs = result["preferences"]
    assert prefs["quietHours"] == {"start": "23:00", "end": "07:00"}  # kept
    assert prefs["timeZone"] == "America/New_York" and prefs["dailyCap"] == 5
    assert {"channel": "EMAIL", "category": "NEW_POST", "enabled": True} in prefs["switches"]
    assert {"channel": "PUSH", "category": "MENTION", "enabled": False} in prefs["switches"]
    cleared = await client(UPDATE, {"input": {"quietHours": None, "dailyCap": None}}, token=fan)
    prefs = cleared["updateNotificationPreferences"]["preferences"]
    assert prefs["quietHours"] is None and prefs["dailyCap"] is None
    assert prefs["timeZone"] == "America/New_York"


async def test_invalid_preferences_are_refused_and_change_nothing(
    client: GraphQLClient, database: Database, token: Callable[..., str]
) -> None:
    fan = token(Role.USER, await add_user(database))
    await client(UPDATE, {"input": {"dailyCap": 3}}, token=fan)
    before = (await client(PREFS, token=fan))["notificationPreferences"]
    cases = {
        "timeZone": {"timeZone": "Mars/Olympus_Mons", "dailyCap": 9},
        "quietHours.start": {"quietHours": {"start": "25:00", "end": "07:00"}},
        "quietHours.end": {"quietHours": {"start": "23:00", "end": "7am"}},
        "quietHours": {"quietHours": {"start": "23:00", "end": "23:00"}},
        "dailyCap": {"dailyCap": 0},
        "digestWeekday": {"digest": "WEEKLY", "digestWeekday": 8},
    }
    for field, change in cases.items():
        result = (await client(UPDATE, {"input": change}, token=fan))[
            "updateNotificationPreferences"
        ]
        assert result["__typename"] == "NotificationError", (field, result)
        assert (result["code"], result["field"]) == ("INVALID_PREFERENCES", field)
    assert (await client(PREFS, token=fan))["notificationPreferences"] == before
    anonymous = await client.post(PREFS)
    assert anonymous.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


HANDLE = """
mutation ($handle: String) {
  updateHandle(handle: $handle) {
    __typename
    ... on ViewerPayload { viewer { handle user { handle } } }
    ... on ProfileError { code field }
  }
}"""


async def test_handles_are_unique_whatever_their_case(
    client: GraphQLClient, database: Database, token: Callable[..., str]
) -> None:
    kim = token(Role.USER, await add_user(database))
    other = token(Role.USER, await add_user(database))
    mine = (await client(HANDLE, {"handle": "Kim_2"}, token=kim))["updateHandle"]
    assert mine["viewer"] == {"handle": "Kim_2", "user": {"handle": "Kim_2"}}
    taken = (await client(HANDLE, {"handle": "kim_2"}, token=other))["updateHandle"]
    assert (taken["code"], taken["field"]) == ("HANDLE_TAKEN", "handle")
    for bad in ("ab", "has space", "x" * 31, "émile", "kim_3\n"):
        refused = (await client(HANDLE, {"handle": bad}, token=other))["updateHandle"]
        assert refused["code"] == "HANDLE_INVALID", bad
    cleared = (await client(HANDLE, {"handle": None}, token=kim))["updateHandle"]
    assert cleared["viewer"]["handle"] is None
    free_again = (await client(HANDLE, {"handle": "KIM_2"}, token=other))["updateHandle"]
    assert free_again["viewer"]["handle"] == "KIM_2"


async def test_a_change_holders_rely_on_tells_them_a_cosmetic_one_does_not(
    client: GraphQLClient, database: Database, world: World, clock: FrozenClock
) -> None:
    await holder(client, database, world, clock)
    edit = """mutation ($id: ID!, $input: UpdateEventInput!) {
      updateEvent(id: $id, input: $input) { __typename } }"""
    event = gid("Event", world.event_id)
    await client(edit, {"id": event, "input": {"description": "Now with snacks"}},
                 token=world.organizer_token)  # fmt: skip
    assert categories(await inbox(client, world.buyer_token)) == ["ORDER_PAID"]
    clock.advance(60)
    await client(edit, {"id": event, "input": {"venue": "The Big Hall"}},
                 token=world.organizer_token)  # fmt: skip
    changed = await inbox(client, world.buyer_token)
    assert categories(changed) == ["EVENT_CHANGED", "ORDER_PAID"]
    assert changed["notifications"]["edges"][0]["node"]["title"] == "Night Show has changed"
