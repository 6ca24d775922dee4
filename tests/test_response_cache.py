"""The response cache of feed pages and tier lists: hits are served without touching the
database, no response outlives a committed change the process heard of (local writes,
writes by another process announced through PostgreSQL, and listener gaps), and a
signed-in viewer shares a response only where they see what anonymous viewers see."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable

import asyncpg
import pytest
from databases import Database
from starlette.applications import Starlette

import db.feed
import resolvers.post_cache
from db.channels import NOTIFY_CHANNEL
from liventix import response_cache
from liventix.clock import FrozenClock
from liventix.realtime import Hub
from resolvers.context import Services
from tests.feed_support import CREATE_POST, EVENT_FEED, Scene, count_statements, scene
from tests.realtime_support import notify_raw
from tests.support import GraphQLClient

__all__ = ["scene"]  # the fixture, re-exported for pytest


async def texts(client: GraphQLClient, scene: Scene, token: str | None = None) -> list[str]:
    data = await client(EVENT_FEED, {"eventId": str(scene.event_id), "first": 10}, token=token)
    return [edge["node"]["text"] for edge in data["eventFeed"]["edges"]]


async def test_repeated_anonymous_pages_are_served_without_sql(
    client: GraphQLClient, scene: Scene, monkeypatch: pytest.MonkeyPatch, app: Starlette
) -> None:
    variables = {"eventId": str(scene.event_id), "text": "cached", "media": None}
    hub: Hub = app.state.services.hub
    async with hub.subscribe(f"feed:{scene.event_id}") as inbox:
        await client(CREATE_POST, variables, token=scene.fan)
        # Let the post's own announcement arrive first: landing while the first page is
        # computed, it would (rightly) keep that page out of the cache.
        await asyncio.wait_for(anext(aiter(inbox)), 5)
    first = await texts(client, scene)
    with count_statements(monkeypatch) as statements:
        assert await texts(client, scene) == first == ["cached"]
    assert statements == []
    with count_statements(monkeypatch) as statements:
        assert await texts(client, scene, token=scene.fan) == first
    assert len(statements) == 1 and "FROM events.events" in statements[0], statements
    with count_statements(monkeypatch) as statements:  # the event's organizer is known now
        assert await texts(client, scene, token=scene.fan) == first
    assert statements == [], "a fan sees what anonymous viewers see: the same response"
    with count_statements(monkeypatch) as statements:
        assert await texts(client, scene, token=scene.organizer) == first
    assert statements, "the event's organizer must not be served the public response"
    with count_statements(monkeypatch) as statements:
        assert await texts(client, scene, token=scene.organizer) == first
    assert statements == [], "the organizer's own response is cached too"


async def test_a_local_write_is_visible_to_the_next_read(
    client: GraphQLClient, scene: Scene
) -> None:
    assert await texts(client, scene) == []
    for n in range(3):
        variables = {"eventId": str(scene.event_id), "text": f"p{n}", "media": None}
        await client(CREATE_POST, variables, token=scene.fan)
        assert (await texts(client, scene))[0] == f"p{n}"


async def test_a_write_announced_by_another_process_invalidates(
    client: GraphQLClient, scene: Scene, database_url: str, app: Starlette
) -> None:
    assert await texts(client, scene) == []
    conn = await asyncpg.connect(database_url)
    try:
        async with conn.transaction():
            post_id = await conn.fetchval(
                "INSERT INTO feed.posts (event_id, author_id, text) "
                "VALUES ($1, $2, 'elsewhere') RETURNING id",
                scene.event_id,
                scene.fan_id,
            )
            await notify_raw(
                conn,
                f"feed:{scene.event_id}",
                op="created",
                post_id=str(post_id),
                event_id=str(scene.event_id),
            )
    finally:
        await conn.close()
    hub: Hub = app.state.services.hub
    assert hub.subscriber_count(f"feed:{scene.event_id}") >= 1
    # The announcement reaches this process asynchronously; once it has, reads are fresh.
    deadline = time.monotonic() + 5
    while await texts(client, scene) != ["elsewhere"]:
        assert time.monotonic() < deadline, "cached page outlived the announcement"
        await asyncio.sleep(0.01)


async def test_a_listener_gap_resync_invalidates(
    client: GraphQLClient, scene: Scene, database_url: str, database: Database
) -> None:
    assert await texts(client, scene) == []
    # A post committed without announcement (as if lost in a listener gap) ...
    await database.execute(
        "INSERT INTO feed.posts (event_id, author_id, text) VALUES (:e, :a, 'silent')",
        {"e": scene.event_id, "a": scene.fan_id},
    )
    assert await texts(client, scene) == [], "expected the cached (stale) page"
    # ... is picked up once the hub tells subscribers to resync.
    conn = await asyncpg.connect(database_url)
    try:
        await notify_raw(conn, f"feed:{scene.event_id}", op="resync")
    finally:
        await conn.close()
    deadline = time.monotonic() + 5
    while await texts(client, scene) != ["silent"]:
        assert time.monotonic() < deadline, "resync did not invalidate the cache"
        await asyncio.sleep(0.01)


async def test_an_event_edit_invalidates_its_cached_pages(
    client: GraphQLClient, scene: Scene
) -> None:
    """Feed items embed their event: a committed title change must show on the next read."""
    variables = {"eventId": str(scene.event_id), "text": "hello", "media": None}
    await client(CREATE_POST, variables, token=scene.fan)
    query = {"eventId": str(scene.event_id), "first": 10}

    async def titles() -> set[str]:
        data = await client(EVENT_FEED, query)
        return {edge["node"]["event"]["title"] for edge in data["eventFeed"]["edges"]}

    before = await titles()
    assert await titles() == before  # now served from the cache
    rename = """mutation($id: ID!) { updateEvent(id: $id, input: {title: "Renamed"}) {
                  __typename } }"""
    data = await client(rename, {"id": str(scene.event_id)}, token=scene.organizer)
    assert data["updateEvent"]["__typename"] == "EventPayload"
    assert await titles() == {"Renamed"}


async def test_an_authors_rename_invalidates_the_pages_showing_them(
    client: GraphQLClient, scene: Scene
) -> None:
    variables = {"eventId": str(scene.event_id), "text": "hello", "media": None}
    await client(CREATE_POST, variables, token=scene.fan)
    query = {"eventId": str(scene.event_id), "first": 10}

    async def authors() -> set[str]:
        data = await client(EVENT_FEED, query)
        return {edge["node"]["author"]["displayName"] for edge in data["eventFeed"]["edges"]}

    assert await authors() == {"Fan"}
    assert await authors() == {"Fan"}  # now served from the cache
    rename = 'mutation { updateDisplayName(displayName: "Fan Renamed") { displayName } }'
    await client(rename, token=scene.fan)
    for _ in range(200):  # the announcement comes back through PostgreSQL
        if await authors() == {"Fan Renamed"}:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the cached page kept the old name")


async def test_concurrent_misses_share_one_execution(
    client: GraphQLClient, scene: Scene, app: Starlette, monkeypatch: pytest.MonkeyPatch
) -> None:
    """When a page drops out of the cache, a burst of readers runs it once, not N times."""
    variables = {"eventId": str(scene.event_id), "text": "burst", "media": None}
    hub: Hub = app.state.services.hub
    async with hub.subscribe(f"feed:{scene.event_id}") as inbox:
        await client(CREATE_POST, variables, token=scene.fan)
        await asyncio.wait_for(anext(aiter(inbox)), 5)
    assert await texts(client, scene) == ["burst"]  # watched and cached
    app.state.response_cache.invalidate(scene.event_id)
    with count_statements(monkeypatch) as statements:
        pages = await asyncio.gather(*(texts(client, scene) for _ in range(10)))
    assert pages == [["burst"]] * 10
    assert len(statements) == 1, statements


async def test_a_cached_page_expires_after_its_ttl_on_the_injected_clock(
    client: GraphQLClient, scene: Scene, database: Database, clock: FrozenClock
) -> None:
    """The page TTL is read from the app's clock, so moving it expires a page at once
    and a page never expires while it stands still, however slow the machine."""
    assert await texts(client, scene) == []  # cached
    await database.execute(  # committed without announcement: only the TTL can reveal it
        "INSERT INTO feed.posts (event_id, author_id, text) VALUES (:e, :a, 'silent')",
        {"e": scene.event_id, "a": scene.fan_id},
    )
    clock.advance(response_cache.DEFAULT_TTL * 0.9)
    assert await texts(client, scene) == [], "the page expired before its TTL"
    clock.advance(response_cache.DEFAULT_TTL * 0.2)
    assert await texts(client, scene) == ["silent"], "the page outlived its TTL"


async def test_the_live_post_cache_expires_on_the_injected_clock(
    app: Starlette,
    scene: Scene,
    database: Database,
    clock: FrozenClock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    post_id: uuid.UUID = await database.fetch_val(
        "INSERT INTO feed.posts (event_id, author_id, text) VALUES (:e, :a, 'live') RETURNING id",
        {"e": scene.event_id, "a": scene.fan_id},
    )
    services: Services = app.state.services
    cache = services.post_cache
    loads: list[list[uuid.UUID]] = []
    load = db.feed.get_feed_rows

    async def counting(database: Database, ids: list[uuid.UUID]) -> list[db.feed.FeedRow | None]:
        loads.append(ids)
        return await load(database, ids)

    monkeypatch.setattr(db.feed, "get_feed_rows", counting)
    row = await cache.get(services, post_id)
    assert row is not None and row.post.text == "live"
    clock.advance(resolvers.post_cache.POST_CACHE_TTL - 1)
    assert await cache.get(services, post_id) is row
    assert loads == [[post_id]], "reloaded before the TTL"
    clock.advance(2)
    assert await cache.get(services, post_id) == row
    assert loads == [[post_id], [post_id]], "the entry outlived its TTL"


async def test_cached_pages_keep_the_media_type_each_client_accepts(
    client: GraphQLClient, scene: Scene, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The Accept header picks the response's media type (`liventix.graphql_view`), so
    a page cached for one client is not served in that type to a client asking another."""
    body = {"query": EVENT_FEED, "variables": {"eventId": str(scene.event_id), "first": 10}}
    for accept in ("application/json", "application/graphql-response+json"):
        for _ in range(2):  # a miss, then a hit
            response = await client.http.post("/graphql", json=body, headers={"Accept": accept})
            assert response.status_code == 200, response.text
            assert response.headers["content-type"].startswith(accept)
    with count_statements(monkeypatch) as statements:
        await client.http.post("/graphql", json=body, headers={"Accept": "application/json"})
    assert statements == []  # still cached


TIERS = "query Tiers($eventId: ID!) { eventTiers(eventId: $eventId) { name status reserved } }"


async def add_tier(database: Database, event_id: uuid.UUID, name: str, status: str) -> uuid.UUID:
    tier_id: uuid.UUID = await database.fetch_val(
        """INSERT INTO ticketing.ticket_tiers (event_id, name, price_cents, quantity, status)
           VALUES (:e, :n, 1000, 10, :s) RETURNING id""",
        {"e": event_id, "n": name, "s": status},
    )
    return tier_id


async def announce_reserved(database_url: str, tier_id: uuid.UUID, reserved: int) -> None:
    """Another process changes the tier's counters and announces them, as holds do."""
    conn = await asyncpg.connect(database_url)
    try:
        async with conn.transaction():
            await conn.execute(
                """UPDATE ticketing.ticket_tiers SET reserved_quantity = $2,
                          version = version + 1 WHERE id = $1""",
                tier_id,
                reserved,
            )
            await conn.execute(
                """SELECT ticketing.announce_tier($2, t)
                     FROM ticketing.ticket_tiers t WHERE t.id = $1""",
                tier_id,
                NOTIFY_CHANNEL,
            )
    finally:
        await conn.close()


async def tier_names(client: GraphQLClient, event_id: uuid.UUID, token: str | None) -> list[str]:
    data = await client(TIERS, {"eventId": str(event_id)}, token=token)
    return [tier["name"] for tier in data["eventTiers"]]


async def test_managers_see_their_drafts_and_hidden_tiers_after_the_public_was_served(
    client: GraphQLClient, scene: Scene, database: Database, token: Callable[..., str]
) -> None:
    """The anonymous response is cached first; the organizer and an admin still get
    what they manage, and a fan still gets the public response."""
    await database.execute(
        "INSERT INTO feed.posts (event_id, author_id, text) VALUES (:e, :a, 'draft post')",
        {"e": scene.draft_id, "a": scene.organizer_id},
    )
    await add_tier(database, scene.event_id, "Open", "active")
    await add_tier(database, scene.event_id, "Secret", "hidden")
    admin = token("admin")
    draft = Scene(**{**scene.__dict__, "event_id": scene.draft_id})
    assert await texts(client, draft) == []  # cached for anonymous viewers
    assert await tier_names(client, scene.event_id, None) == ["Open"]
    for viewer, posts, tiers in (
        (scene.fan, [], ["Open"]),
        (scene.organizer, ["draft post"], ["Open", "Secret"]),
        (admin, ["draft post"], ["Open", "Secret"]),
        (None, [], ["Open"]),
    ):
        assert await texts(client, draft, token=viewer) == posts
        assert sorted(await tier_names(client, scene.event_id, viewer)) == tiers


async def test_tier_counters_changed_by_another_process_invalidate_the_tier_list(
    client: GraphQLClient, scene: Scene, database: Database, database_url: str
) -> None:
    tier_id = await add_tier(database, scene.event_id, "GA", "active")
    reserved = await client(TIERS, {"eventId": str(scene.event_id)}, token=scene.fan)
    assert reserved["eventTiers"][0]["reserved"] == 0  # cached now
    await announce_reserved(database_url, tier_id, 2)
    for _ in range(200):
        data = await client(TIERS, {"eventId": str(scene.event_id)}, token=scene.fan)
        if data["eventTiers"][0]["reserved"] == 2:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the cached tier list outlived the announced change")


async def test_a_feed_page_showing_its_events_tiers_follows_their_counters(
    client: GraphQLClient, scene: Scene, database: Database, database_url: str
) -> None:
    tier_id = await add_tier(database, scene.event_id, "GA", "active")
    await database.execute(
        "INSERT INTO feed.posts (event_id, author_id, text) VALUES (:e, :a, 'hi')",
        {"e": scene.event_id, "a": scene.fan_id},
    )
    query = """query ($eventId: ID!) { eventFeed(eventId: $eventId) {
        edges { node { event { tiers { reserved } } } } } }"""

    async def reserved() -> int:
        data = await client(query, {"eventId": str(scene.event_id)})
        value: int = data["eventFeed"]["edges"][0]["node"]["event"]["tiers"][0]["reserved"]
        return value

    assert await reserved() == 0  # cached now
    await announce_reserved(database_url, tier_id, 3)
    for _ in range(200):
        if await reserved() == 3:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the cached feed page kept the old tier counters")


async def test_an_organizers_rename_invalidates_the_pages_showing_them(
    client: GraphQLClient, scene: Scene
) -> None:
    query = """query ($eventId: ID!) { eventFeed(eventId: $eventId) {
        edges { node { event { organizer { displayName } } } } } }"""
    await client(CREATE_POST, {"eventId": str(scene.event_id), "text": "x"}, token=scene.fan)

    async def organizer() -> str:
        data = await client(query, {"eventId": str(scene.event_id)})
        name: str = data["eventFeed"]["edges"][0]["node"]["event"]["organizer"]["displayName"]
        return name

    assert await organizer() == "Org"  # cached now
    rename = 'mutation { updateDisplayName(displayName: "Org Renamed") { displayName } }'
    await client(rename, token=scene.organizer)
    for _ in range(200):
        if await organizer() == "Org Renamed":
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the cached page kept the organizer's old name")
