"""The live inbox over graphql-transport-ws: counts first, each new notification after
commit, mark-read from another tab, nothing of anyone else's, across processes."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest
from databases import Database

import db.demo
from db.core import transaction
from liventix.auth import Role, mint_token
from liventix.clock import FrozenClock
from liventix.settings import Settings
from tests.conftest import ServerThread
from tests.feed_support import CREATE_POST
from tests.orders_support import World, add_user, paid_order, world
from tests.support import ApiProcess, GraphQLClient, WSClient, gid

__all__ = ["world"]

EVENTS = """
subscription {
  notificationEvents {
    reason
    notification { id category title }
    counts { priority social total }
  }
}"""

MARK_ALL = "mutation { markAllNotificationsRead { marked } }"


async def next_event(client: WSClient, op: str) -> dict[str, Any]:
    event: dict[str, Any] = (await client.next_payload(op))["data"]["notificationEvents"]
    return event


async def subscribed(client: WSClient) -> str:
    op = await client.subscribe(EVENTS)
    assert (await next_event(client, op))["reason"] == "SNAPSHOT"
    return op


async def test_new_notifications_and_reads_reach_the_viewer_only(
    server: ServerThread,
    ws: Callable[..., Any],
    client: GraphQLClient,
    database: Database,
    world: World,
    clock: FrozenClock,
) -> None:
    await paid_order(client, database, world, clock, 1)
    buyer = await ws(token=world.buyer_token)
    op = await buyer.subscribe(EVENTS)
    snapshot = await next_event(buyer, op)
    assert snapshot == {
        "reason": "SNAPSHOT",
        "notification": None,
        "counts": {"priority": 1, "social": 0, "total": 1},
    }
    other_tab = await ws(token=world.buyer_token)
    other_op = await subscribed(other_tab)
    stranger = await ws(token=world.token(await add_user(database)))
    stranger_op = await subscribed(stranger)

    async with httpx.AsyncClient(base_url=server.http_url) as http:
        post = GraphQLClient(http)
        variables = {"eventId": gid("Event", world.event_id), "text": "Soundcheck!"}
        await post(CREATE_POST, variables, token=world.organizer_token)
        new = await next_event(buyer, op)
        assert new["reason"] == "NEW"
        assert new["notification"]["category"] == "NEW_POST"
        assert new["notification"]["title"] == "New post in Night Show"
        assert new["counts"] == {"priority": 1, "social": 1, "total": 2}
        assert (await next_event(other_tab, other_op))["reason"] == "NEW"
        await buyer.expect_nothing(0.3)  # exactly once, though the batch arrives twice

        await post(MARK_ALL, token=world.buyer_token)  # from another tab
    for client_, op_ in ((buyer, op), (other_tab, other_op)):
        read = await next_event(client_, op_)
        assert (read["reason"], read["counts"]["total"]) == ("READ", 0)
    await stranger.expect_nothing(0.3)
    assert stranger_op


async def test_anonymous_viewers_cannot_subscribe(ws: Callable[..., Any]) -> None:
    client = await ws()
    op = await client.subscribe(EVENTS)
    message = await client.receive()
    assert message["id"] == op
    errors = message["payload"] if message["type"] == "error" else message["payload"]["errors"]
    assert errors[0]["extensions"]["code"] == "UNAUTHENTICATED"


@pytest.mark.slow
async def test_a_notification_made_by_one_process_reaches_a_subscriber_of_another(
    two_processes: tuple[ApiProcess, ApiProcess], database: Database, settings: Settings
) -> None:
    a, b = two_processes
    holder = await add_user(database)
    async with transaction(database) as conn:
        await conn.execute("UPDATE users.profiles SET handle = 'kim' WHERE id = $1", holder)
    subscriber = WSClient(f"ws://127.0.0.1:{a.port}/graphql")
    await subscriber.connect()
    await subscriber.init({"Authorization": f"Bearer {mint_token(settings, holder, Role.USER)}"})
    try:
        op = await subscribed(subscriber)
        async with httpx.AsyncClient(base_url=b.url) as http:
            variables = {"eventId": gid("Event", db.demo.EVENT_IDS[0]), "text": "@kim from B"}
            organizer = mint_token(settings, db.demo.ORGANIZER_ID, Role.ORGANIZER)
            await GraphQLClient(http)(CREATE_POST, variables, token=organizer)
        new = await next_event(subscriber, op)
        assert (new["reason"], new["notification"]["category"]) == ("NEW", "MENTION")
    finally:
        await subscriber.close()
