"""The live feed over a real WebSocket: created and deleted posts of the subscribed
event only, nothing from rolled-back transactions, catch-up after a reconnect, one
load per post however many subscribers, and resync on a listener gap."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from typing import Any

import asyncpg
import httpx
import pytest
from databases import Database

import db.feed
from liventix.realtime import Hub
from tests.conftest import ServerThread
from tests.feed_support import CREATE_POST, DELETE_POST, POST_FIELDS, Scene, add_event, scene
from tests.realtime_support import notify_raw
from tests.support import GraphQLClient, WSClient, gid, key_of

__all__ = ["scene"]  # the fixture, re-exported for pytest

SUBSCRIBE = f"""
subscription Live($eventId: ID!, $after: String) {{
  eventFeed(eventId: $eventId, after: $after) {{
    __typename
    ... on PostCreated {{ cursor post {{ __typename {POST_FIELDS} }} }}
    ... on PostDeleted {{ postId eventId }}
    ... on FeedResync {{ eventId reason lastCursor }}
  }}
}}
"""


@pytest.fixture
async def http(server: ServerThread) -> Any:
    async with httpx.AsyncClient(base_url=server.http_url) as client:
        yield GraphQLClient(client)


def hub_of(server: ServerThread) -> Hub:
    hub: Hub = server.server.config.app.state.services.hub
    return hub


async def subscribed(server: ServerThread, event_id: uuid.UUID, count: int = 1) -> None:
    """Wait until `count` subscribers of the event's feed are registered in the hub."""
    hub = hub_of(server)
    deadline = time.monotonic() + 5
    while hub.subscriber_count(f"feed:{event_id}") < count:
        assert time.monotonic() < deadline, (
            f"subscription never reached the hub {hub.subscriber_count(f'feed:{event_id}')}"
        )
        await asyncio.sleep(0.01)


async def post(http: GraphQLClient, token: str, event_id: uuid.UUID, text: str) -> dict[str, Any]:
    variables = {"eventId": str(event_id), "text": text, "media": None}
    result: dict[str, Any] = (await http(CREATE_POST, variables, token=token))["createPost"]
    assert result["__typename"] == "CreatePostPayload", result
    return result


async def next_update(client: WSClient, op_id: str) -> dict[str, Any]:
    payload = await client.next_payload(op_id)
    assert not payload.get("errors"), payload
    update: dict[str, Any] = payload["data"]["eventFeed"]
    return update


async def test_subscriber_gets_created_and_deleted_posts_of_its_event_only(
    ws: Callable[..., Any],
    server: ServerThread,
    http: GraphQLClient,
    scene: Scene,
    database: Database,
) -> None:
    other_event = await add_event(database, scene.organizer_id, title="Other")
    client: WSClient = await ws(token=scene.fan)
    op = await client.subscribe(SUBSCRIBE, {"eventId": str(scene.event_id)})
    await subscribed(server, scene.event_id)

    await post(http, scene.fan, other_event, "elsewhere")
    created = await post(http, scene.fan, scene.event_id, "hello live")
    update = await next_update(client, op)
    assert update["__typename"] == "PostCreated"
    assert update["post"] == created["post"], "live post differs from the created post"
    assert update["cursor"] == created["edge"]["cursor"]

    deleted = await http(DELETE_POST, {"postId": created["post"]["id"]}, token=scene.organizer)
    assert deleted["deletePost"]["__typename"] == "DeletePostPayload"
    update = await next_update(client, op)
    assert update == {
        "__typename": "PostDeleted",
        "postId": created["post"]["id"],
        "eventId": gid("Event", scene.event_id),
    }
    await client.expect_nothing(0.3)


async def test_a_rolled_back_insert_publishes_nothing(
    ws: Callable[..., Any],
    server: ServerThread,
    http: GraphQLClient,
    scene: Scene,
    database_url: str,
) -> None:
    client: WSClient = await ws()
    op = await client.subscribe(SUBSCRIBE, {"eventId": str(scene.event_id)})
    await subscribed(server, scene.event_id)

    conn = await asyncpg.connect(database_url)
    try:
        tx = conn.transaction()
        await tx.start()
        ghost = await conn.fetchval(
            "INSERT INTO feed.posts (event_id, author_id, text) VALUES ($1, $2, 'x') RETURNING id",
            scene.event_id,
            scene.fan_id,
        )
        await notify_raw(
            conn,
            f"feed:{scene.event_id}",
            op="created",
            post_id=str(ghost),
            event_id=str(scene.event_id),
        )
        await tx.rollback()
    finally:
        await conn.close()
    await client.expect_nothing(0.3)
    real = await post(http, scene.fan, scene.event_id, "committed")
    update = await next_update(client, op)
    assert update["post"]["id"] == real["post"]["id"]


async def test_reconnecting_with_a_cursor_replays_what_was_missed_once(
    ws: Callable[..., Any],
    server: ServerThread,
    http: GraphQLClient,
    scene: Scene,
) -> None:
    seen = await post(http, scene.fan, scene.event_id, "seen")
    missed = [await post(http, scene.fan, scene.event_id, f"missed {n}") for n in range(3)]
    client: WSClient = await ws(token=scene.fan)
    op = await client.subscribe(
        SUBSCRIBE, {"eventId": str(scene.event_id), "after": seen["edge"]["cursor"]}
    )
    replayed = [await next_update(client, op) for _ in missed]
    assert [u["post"]["id"] for u in replayed] == [m["post"]["id"] for m in missed]
    assert [u["post"] for u in replayed] == [m["post"] for m in missed]
    await subscribed(server, scene.event_id)
    live = await post(http, scene.fan, scene.event_id, "live")
    assert (await next_update(client, op))["post"]["id"] == live["post"]["id"]
    await client.expect_nothing(0.3)


async def test_each_post_is_loaded_once_for_all_subscribers(
    ws: Callable[..., Any],
    server: ServerThread,
    http: GraphQLClient,
    scene: Scene,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    loads: list[list[uuid.UUID]] = []
    original = db.feed.get_feed_rows

    async def counting(database: Database, ids: list[uuid.UUID]) -> Any:
        loads.append(ids)
        return await original(database, ids)

    monkeypatch.setattr(db.feed, "get_feed_rows", counting)
    subscribers = []
    for n in range(5):
        # Distinct documents: the server shares identical subscriptions' executions,
        # and this test is about five executions each receiving the post.
        document = SUBSCRIBE.replace("subscription Live(", f"subscription Live{n}(")
        client: WSClient = await ws()
        op = await client.subscribe(document, {"eventId": str(scene.event_id)})
        subscribers.append((client, op))
    await subscribed(server, scene.event_id, 5)
    created = await post(http, scene.fan, scene.event_id, "for everyone")
    for client, op in subscribers:
        assert (await next_update(client, op))["post"] == created["post"]
    assert loads == [[key_of(created["post"]["id"])]]


async def test_a_listener_gap_tells_subscribers_to_resync(
    ws: Callable[..., Any],
    server: ServerThread,
    http: GraphQLClient,
    scene: Scene,
    database_url: str,
) -> None:
    created = await post(http, scene.fan, scene.event_id, "before the gap")
    client: WSClient = await ws()
    op = await client.subscribe(
        SUBSCRIBE, {"eventId": str(scene.event_id), "after": created["edge"]["cursor"]}
    )
    await subscribed(server, scene.event_id)
    conn = await asyncpg.connect(database_url)
    try:
        await notify_raw(conn, f"feed:{scene.event_id}", op="resync")
    finally:
        await conn.close()
    update = await next_update(client, op)
    assert update == {
        "__typename": "FeedResync",
        "eventId": gid("Event", scene.event_id),
        "reason": "MISSED_NOTIFICATIONS",
        "lastCursor": created["edge"]["cursor"],
    }


async def test_subscribing_to_a_strangers_draft_is_refused(
    ws: Callable[..., Any], scene: Scene
) -> None:
    client: WSClient = await ws(token=scene.fan)
    op = await client.subscribe(SUBSCRIBE, {"eventId": str(scene.draft_id)})
    message = await client.receive()
    assert message["id"] == op
    errors = message["payload"] if message["type"] == "error" else message["payload"]["errors"]
    assert errors[0]["extensions"]["code"] == "EVENT_NOT_FOUND"
