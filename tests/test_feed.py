"""Feed over HTTP: content rules at their limits, the created post's shape, deletion
rights, keyset pagination under concurrent inserts, and the page's query count."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from databases import Database

from tests.feed_support import (
    CREATE_POST,
    DELETE_POST,
    EVENT_FEED,
    Scene,
    add_event,
    add_profile,
    count_statements,
    image,
    scene,
    video,
)
from tests.support import GraphQLClient, gid

__all__ = ["scene"]  # the fixture, re-exported for pytest


async def create(
    client: GraphQLClient,
    token: str | None,
    event_id: uuid.UUID | str,
    text: str = "",
    media: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    variables = {"eventId": str(event_id), "text": text, "media": media}
    result: dict[str, Any] = (await client(CREATE_POST, variables, token=token))["createPost"]
    return result


async def feed(
    client: GraphQLClient, event_id: uuid.UUID, first: int = 20, after: str | None = None
) -> dict[str, Any]:
    variables = {"eventId": str(event_id), "first": first, "after": after}
    result: dict[str, Any] = (await client(EVENT_FEED, variables))["eventFeed"]
    return result


def assert_error(result: dict[str, Any], code: str, field: str | None = None) -> None:
    assert result["__typename"] == "FeedError", result
    assert result["code"] == code, result
    assert result["message"]
    if field is not None:
        assert result["field"] == field, result


# -- content rules at and beyond each limit ----------------------------------------------


async def test_text_of_2000_characters_passes_and_2001_is_refused(
    client: GraphQLClient, scene: Scene
) -> None:
    ok = await create(client, scene.fan, scene.event_id, "a" * 2000)
    assert ok["__typename"] == "CreatePostPayload"
    assert len(ok["post"]["text"]) == 2000
    assert_error(
        await create(client, scene.fan, scene.event_id, "a" * 2001), "TEXT_TOO_LONG", "text"
    )


async def test_text_is_trimmed_before_it_is_measured(client: GraphQLClient, scene: Scene) -> None:
    ok = await create(client, scene.fan, scene.event_id, "  " + "b" * 2000 + "\n ")
    assert ok["post"]["text"] == "b" * 2000


async def test_empty_text_needs_media(client: GraphQLClient, scene: Scene) -> None:
    assert_error(await create(client, scene.fan, scene.event_id, "   \n"), "EMPTY_POST", "text")
    ok = await create(client, scene.fan, scene.event_id, " ", [image()])
    assert ok["post"]["text"] == ""
    assert ok["post"]["media"][0]["kind"] == "IMAGE"


async def test_ten_media_pass_and_eleven_are_refused(client: GraphQLClient, scene: Scene) -> None:
    ok = await create(client, scene.fan, scene.event_id, "ten", [image()] * 10)
    assert len(ok["post"]["media"]) == 10
    eleven = await create(client, scene.fan, scene.event_id, "eleven", [image()] * 11)
    assert_error(eleven, "TOO_MANY_MEDIA", "media")


async def test_video_of_30_seconds_passes_and_30_1_is_refused_naming_the_item(
    client: GraphQLClient, scene: Scene
) -> None:
    ok = await create(client, scene.fan, scene.event_id, "clip", [video(30.0)])
    assert ok["post"]["media"][0]["durationSeconds"] == 30.0
    media = [image(), image(), video(30.1)]
    refused = await create(client, scene.fan, scene.event_id, "clip", media)
    assert_error(refused, "VIDEO_TOO_LONG", "media[2].durationSeconds")


async def test_media_urls_must_be_https(client: GraphQLClient, scene: Scene) -> None:
    for url in ("http://cdn.example.com/i.jpg", "https://", "javascript:alert(1)", "ftp://x/y"):
        refused = await create(client, scene.fan, scene.event_id, "pic", [image(), image(url)])
        assert_error(refused, "MEDIA_URL_INVALID", "media[1].url")


async def test_videos_need_a_duration_and_media_a_size(client: GraphQLClient, scene: Scene) -> None:
    no_duration = {**video(1), "durationSeconds": None}
    assert_error(
        await create(client, scene.fan, scene.event_id, "v", [no_duration]),
        "MEDIA_INVALID",
        "media[0].durationSeconds",
    )
    flat = {**image(), "height": 0}
    assert_error(
        await create(client, scene.fan, scene.event_id, "i", [flat]),
        "MEDIA_INVALID",
        "media[0].height",
    )


async def test_refused_posts_change_nothing(
    client: GraphQLClient, scene: Scene, database: Database
) -> None:
    await create(client, scene.fan, scene.event_id, "x" * 2001)
    await create(client, scene.fan, scene.event_id, "v", [video(31)])
    assert await database.fetch_val("SELECT count(*) FROM feed.posts") == 0


async def test_anonymous_and_unknown_events_are_refused(
    client: GraphQLClient, scene: Scene
) -> None:
    assert_error(await create(client, None, scene.event_id, "hi"), "UNAUTHENTICATED")
    assert_error(await create(client, scene.fan, uuid.uuid4(), "hi"), "EVENT_NOT_FOUND", "eventId")
    assert_error(await create(client, scene.fan, "not-a-uuid", "hi"), "EVENT_NOT_FOUND")


async def test_drafts_accept_posts_from_their_organizer_only(
    client: GraphQLClient, scene: Scene, database: Database
) -> None:
    assert_error(await create(client, scene.fan, scene.draft_id, "early"), "EVENT_NOT_FOUND")
    ok = await create(client, scene.organizer, scene.draft_id, "teaser")
    assert ok["__typename"] == "CreatePostPayload"
    canceled = await add_event(database, scene.organizer_id, status="canceled")
    assert_error(await create(client, scene.fan, canceled, "hi"), "NOT_ALLOWED")


async def test_a_new_users_first_post_creates_their_profile(
    client: GraphQLClient, scene: Scene, token: Callable[..., str]
) -> None:
    newcomer = uuid.uuid4()
    ok = await create(client, token("user", newcomer), scene.event_id, "first!")
    assert ok["post"]["author"]["id"] == gid("User", newcomer)


# -- shape ---------------------------------------------------------------------------


async def test_created_post_has_exactly_the_feed_items_type_fields_and_values(
    client: GraphQLClient, scene: Scene
) -> None:
    created = await create(client, scene.fan, scene.event_id, " hello ", [video(12.5), image()])
    page = await feed(client, scene.event_id)
    item = page["edges"][0]
    assert created["post"] == item["node"]
    assert created["edge"] == item
    assert created["post"]["__typename"] == "Post"
    assert created["post"]["text"] == "hello"
    assert created["post"]["author"] == {
        "id": gid("User", scene.fan_id),
        "displayName": "Fan",
        "role": "USER",
    }
    assert created["post"]["event"]["id"] == gid("Event", scene.event_id)


# -- deletion ------------------------------------------------------------------------


async def test_strangers_may_not_delete_but_the_organizer_and_author_may(
    client: GraphQLClient, scene: Scene, token: Callable[..., str]
) -> None:
    first = (await create(client, scene.fan, scene.event_id, "one"))["post"]["id"]
    second = (await create(client, scene.fan, scene.event_id, "two"))["post"]["id"]
    stranger = token("user", uuid.uuid4())
    refused = (await client(DELETE_POST, {"postId": first}, token=stranger))["deletePost"]
    assert_error(refused, "NOT_ALLOWED", "postId")
    other_organizer = token("organizer", uuid.uuid4())
    refused = (await client(DELETE_POST, {"postId": first}, token=other_organizer))["deletePost"]
    assert_error(refused, "NOT_ALLOWED")

    by_organizer = await client(DELETE_POST, {"postId": first}, token=scene.organizer)
    assert by_organizer["deletePost"] == {
        "__typename": "DeletePostPayload",
        "postId": first,
        "eventId": gid("Event", scene.event_id),
    }
    by_author = (await client(DELETE_POST, {"postId": second}, token=scene.fan))["deletePost"]
    assert by_author["__typename"] == "DeletePostPayload"
    again = (await client(DELETE_POST, {"postId": second}, token=scene.fan))["deletePost"]
    assert_error(again, "POST_NOT_FOUND")


async def test_deleted_posts_vanish_from_feeds_and_lookups(
    client: GraphQLClient, scene: Scene
) -> None:
    keep = (await create(client, scene.fan, scene.event_id, "keep"))["post"]["id"]
    gone = (await create(client, scene.fan, scene.event_id, "gone"))["post"]["id"]
    await client(DELETE_POST, {"postId": gone}, token=scene.fan)
    ids = [e["node"]["id"] for e in (await feed(client, scene.event_id))["edges"]]
    assert ids == [keep]
    home = await client("{ homeFeed { edges { node { id } } } }")
    assert [e["node"]["id"] for e in home["homeFeed"]["edges"]] == [keep]
    assert (await client("query($id: ID!) { post(id: $id) { id } }", {"id": gone})) == {
        "post": None
    }
    found = await client("query($id: ID!) { post(id: $id) { id text } }", {"id": keep})
    assert found == {"post": {"id": keep, "text": "keep"}}


# -- reads ---------------------------------------------------------------------------


async def test_home_feed_shows_published_events_only_and_drafts_stay_private(
    client: GraphQLClient, scene: Scene
) -> None:
    public = (await create(client, scene.fan, scene.event_id, "public"))["post"]["id"]
    teaser = (await create(client, scene.organizer, scene.draft_id, "teaser"))["post"]["id"]
    home = await client("{ homeFeed { edges { node { id } } } }")
    assert [e["node"]["id"] for e in home["homeFeed"]["edges"]] == [public]
    assert (await feed(client, scene.draft_id))["edges"] == []
    as_organizer = await client(EVENT_FEED, {"eventId": str(scene.draft_id)}, token=scene.organizer)
    assert [e["node"]["id"] for e in as_organizer["eventFeed"]["edges"]] == [teaser]
    lookup = await client("query($id: ID!) { post(id: $id) { id } }", {"id": teaser})
    assert lookup == {"post": None}


async def test_bad_cursor_is_a_client_error(client: GraphQLClient, scene: Scene) -> None:
    response = await client.post(EVENT_FEED, {"eventId": str(scene.event_id), "after": "zzz"})
    error = response.json()["errors"][0]
    assert error["extensions"]["code"] == "BAD_USER_INPUT"


async def test_page_size_is_capped_at_50(
    client: GraphQLClient, scene: Scene, database: Database
) -> None:
    await _insert_posts(database, scene, 60)
    page = await feed(client, scene.event_id, first=500)
    assert len(page["edges"]) == 50
    assert page["pageInfo"]["hasNextPage"] is True


async def _insert_posts(database: Database, scene: Scene, count: int) -> None:
    await database.execute(
        f"""INSERT INTO feed.posts (event_id, author_id, text)
            SELECT '{scene.event_id}', '{scene.fan_id}', 'bulk ' || g
              FROM generate_series(1, {count}) g"""
    )


async def test_pagination_has_no_duplicates_or_gaps_while_posts_are_created(
    client: GraphQLClient, scene: Scene, database: Database
) -> None:
    await _insert_posts(database, scene, 45)
    before = {gid("Post", r["id"]) for r in await database.fetch_all("SELECT id FROM feed.posts")}
    writer_done = asyncio.Event()

    async def keep_posting() -> int:
        made = 0
        while not writer_done.is_set():
            await create(client, scene.fan, scene.event_id, f"live {made}")
            made += 1
        return made

    writer = asyncio.create_task(keep_posting())
    seen: list[str] = []
    after: str | None = None
    while True:
        page = await feed(client, scene.event_id, first=7, after=after)
        seen.extend(e["node"]["id"] for e in page["edges"])
        await asyncio.sleep(0)  # let the writer interleave between pages
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]
    writer_done.set()
    made = await writer
    assert made > 0, "the writer never ran concurrently"
    assert len(seen) == len(set(seen)), "a post appeared on two pages"
    assert before <= set(seen), "a post that existed before paging began was skipped"


# -- cost ----------------------------------------------------------------------------


async def test_a_page_of_50_posts_costs_one_statement(
    client: GraphQLClient,
    scene: Scene,
    database: Database,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for n in range(5):
        author = await add_profile(database, "user", f"author {n}")
        await database.execute(
            f"""INSERT INTO feed.posts (event_id, author_id, text)
                SELECT '{scene.event_id}', '{author}', 'p' || g FROM generate_series(1, 10) g"""
        )
    with count_statements(monkeypatch) as small:
        page = await feed(client, scene.event_id, first=5)
    with count_statements(monkeypatch) as large:
        page = await feed(client, scene.event_id, first=50)
    assert len(page["edges"]) == 50
    assert len({e["node"]["author"]["id"] for e in page["edges"]}) == 5
    assert len(large) == len(small) == 1, large
