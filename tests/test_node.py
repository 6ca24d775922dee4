"""Relay global object identification: `Node`, `node(id:)`, `nodes(ids:)`, global ids."""

from __future__ import annotations

import base64
import uuid
from typing import Any

from databases import Database
from graphql import GraphQLObjectType

import db.jobs
import db.reconcile
import db.waitlist
from liventix.auth import Role
from liventix.clock import FrozenClock
from schema import build_schema
from schema.root.node import MAX_NODES, READERS
from tests.discount_support import new_code
from tests.feed_support import CREATE_POST
from tests.orders_support import World, add_user, hold, paid_order, world
from tests.support import GraphQLClient, gid, key_of

__all__ = ["world"]

NODE = """
query ($id: ID!) {
  node(id: $id) {
    __typename id
    ... on Event { title }
    ... on TicketTier { name }
    ... on TierAvailability { tierId available }
    ... on EventAvailability { eventId reason tiers { id tierId } }
    ... on Hold { quantity }
    ... on Order { status }
    ... on Ticket { sequenceNumber }
    ... on Post { text }
    ... on User { displayName }
    ... on Viewer { role user { id } }
    ... on ReconciliationReport { runStatus: status }
    ... on Notification { category }
    ... on DiscountCode { code usesPaid }
    ... on WaitlistEntry { entryStatus: status position }
  }
}"""

NODES = "query ($ids: [ID!]!) { nodes(ids: $ids) { __typename id } }"


async def node(client: GraphQLClient, id: str, token: str | None = None) -> Any:
    return (await client(NODE, {"id": id}, token=token))["node"]


async def everything(
    client: GraphQLClient, database: Database, world: World, clock: FrozenClock
) -> dict[str, str]:
    """One id of every `Node` type, as the API handed it out."""
    order = await paid_order(client, database, world, clock, 1)
    held = await hold(database, clock, world.buyer, world.free_tier_id, 1)
    made = await client(CREATE_POST, {"eventId": gid("Event", world.event_id), "text": "hi"},
                        token=world.buyer_token)  # fmt: skip
    post = made["createPost"]["post"]
    run = await db.jobs.start_run(database, db.reconcile.JOB_NAME)
    mine = await client(
        "{ viewer { id } myTickets { edges { node { id } } } myHolds { id } "
        "notifications(first: 1) { edges { node { id } } } }",
        token=world.buyer_token,
    )
    tiers = await client(
        "query ($e: ID!) { eventTiers(eventId: $e) { id } }", {"e": gid("Event", world.event_id)}
    )
    code = await new_code(client, world, code="NODE", kind="COMP", maxUses=1)
    # 9 of the 10 seats are left: the buyer may wait for 10 together.
    entry = await db.waitlist.join_waitlist(database, world.buyer, world.tier_id, 10, clock.now())
    return {
        "DiscountCode": code["id"],
        "Event": post["event"]["id"],
        "TicketTier": tiers["eventTiers"][0]["id"],
        "TierAvailability": gid("TierAvailability", world.tier_id),
        "EventAvailability": gid("EventAvailability", world.event_id),
        "Hold": next(h["id"] for h in mine["myHolds"] if key_of(h["id"]) == held),
        "Order": order["id"],
        "Ticket": mine["myTickets"]["edges"][0]["node"]["id"],
        "Post": post["id"],
        "User": post["author"]["id"],
        "Viewer": mine["viewer"]["id"],
        "ReconciliationReport": gid("ReconciliationReport", run),
        "Notification": mine["notifications"]["edges"][0]["node"]["id"],
        "WaitlistEntry": gid("WaitlistEntry", entry.id),
    }


def test_every_type_with_an_id_is_a_node_and_has_a_reader() -> None:
    """A normalized cache keys objects by `id`: each type that has one implements
    `Node`, and `node(id:)` can read each of them back."""
    schema = build_schema()._schema
    with_ids = {
        t.name
        for t in schema.type_map.values()
        if isinstance(t, GraphQLObjectType) and not t.name.startswith("__") and "id" in t.fields
    }
    nodes = {t.name for t in schema.get_possible_types(schema.type_map["Node"])}  # type: ignore[arg-type]
    assert with_ids == nodes == set(READERS)
    assert {"TierAvailability", "EventAvailability"} <= nodes


async def test_node_reads_back_every_type_by_the_id_it_was_given(
    client: GraphQLClient, database: Database, world: World, clock: FrozenClock
) -> None:
    ids = await everything(client, database, world, clock)
    admin = world.token(uuid.uuid4(), Role.ADMIN)
    assert set(ids) == set(READERS)
    for type_name, id in ids.items():
        token = {"ReconciliationReport": admin, "DiscountCode": world.organizer_token}.get(
            type_name, world.buyer_token
        )
        found = await node(client, id, token)
        assert found is not None, type_name
        assert (found["__typename"], found["id"]) == (type_name, id)
        assert base64.b64decode(id).decode().startswith(f"{type_name}:")
    availability = await node(client, ids["EventAvailability"])
    assert availability["reason"] == "SNAPSHOT"
    assert availability["tiers"][0]["id"] == ids["TierAvailability"]
    viewer = await node(client, ids["Viewer"], world.buyer_token)
    assert viewer["user"]["id"] == gid("User", world.buyer)


async def test_a_node_is_seen_by_exactly_who_sees_its_own_field(
    client: GraphQLClient, database: Database, world: World, clock: FrozenClock
) -> None:
    ids = await everything(client, database, world, clock)
    stranger = world.token(await add_user(database))
    hidden = ("Order", "Ticket", "Hold", "Viewer", "Notification", "DiscountCode", "WaitlistEntry")
    for type_name in hidden:
        assert await node(client, ids[type_name], stranger) is None, type_name
    # The order's organizer sees the order and its tickets, as `order(id:)` shows them.
    assert (await node(client, ids["Order"], world.organizer_token))["status"] == "PAID"
    assert (await node(client, ids["Ticket"], world.organizer_token)) is not None
    # Anonymous: public objects only, and the same refusal as `order(id:)` gives.
    assert (await node(client, ids["Event"]))["title"] == "Night Show"
    assert (await node(client, ids["Post"]))["text"] == "hi"
    response = await client.post(NODE, {"id": ids["Order"]})
    assert response.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    response = await client.post(NODE, {"id": ids["ReconciliationReport"]}, token=stranger)
    assert response.json()["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    # A draft event is its organizer's alone, by node as by `event(id:)`.
    async with database.connection() as conn:
        await conn.execute(
            "UPDATE events.events SET status = 'draft' WHERE id = :id", {"id": world.event_id}
        )
    for type_name in ("Event", "TicketTier", "TierAvailability", "EventAvailability", "Post"):
        assert await node(client, ids[type_name], stranger) is None, type_name
        assert await node(client, ids[type_name], world.organizer_token) is not None, type_name


async def test_nodes_keeps_the_order_and_nulls_what_names_nothing(
    client: GraphQLClient, database: Database, world: World, clock: FrozenClock
) -> None:
    ids = await everything(client, database, world, clock)
    asked = [
        ids["Post"],
        str(world.event_id),  # a bare UUID names no type
        gid("Event", uuid.uuid4()),  # no such event
        gid("Nope", world.event_id),  # no such type
        "not base64!",
        base64.b64encode(b"Event:not-a-uuid").decode(),
        ids["Event"],
    ]
    found = (await client(NODES, {"ids": asked}))["nodes"]
    assert [n and n["id"] for n in found] == [
        ids["Post"],
        None,
        None,
        None,
        None,
        None,
        ids["Event"],
    ]
    too_many = [ids["Event"]] * (MAX_NODES + 1)
    response = await client.post(NODES, {"ids": too_many})
    assert response.json()["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"


async def test_ids_are_stable_and_arguments_take_them_or_the_deprecated_uuid(
    client: GraphQLClient, world: World
) -> None:
    query = "query ($id: ID!) { event(id: $id) { id } }"
    global_id = gid("Event", world.event_id)
    by_global = await client(query, {"id": global_id})
    by_uuid = await client(query, {"id": str(world.event_id)})
    assert by_global == by_uuid == {"event": {"id": global_id}}
    # An id of another type names no event.
    assert await client(query, {"id": gid("Post", world.event_id)}) == {"event": None}


async def test_a_long_nodes_list_costs_its_length(client: GraphQLClient) -> None:
    """The cost limit counts each id of `nodes(ids:)` like a page's `first`."""
    ids = ", ".join(f'"{gid("Event", uuid.uuid4())}"' for _ in range(100))
    light = "organizer { id } tiers { id name available }"
    query = f"{{ nodes(ids: [{ids}]) {{ ... on Event {{ {light} }} }} }}"
    assert "errors" not in (await client.post(query)).json()
    # 1 + 100 * (1 + 10 tiers * 10 fields) = 10,101 > the default limit of 10,000
    heavy = "tiers { id name priceCents currency quantity reserved issued available "
    heavy += "maxPerOrder sortOrder }"
    query = f"{{ nodes(ids: [{ids}]) {{ ... on Event {{ {heavy} }} }} }}"
    errors = (await client.post(query)).json()["errors"]
    assert errors[0]["extensions"]["code"] == "QUERY_TOO_COSTLY"
