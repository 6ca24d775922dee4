"""Feed resolvers: create and delete posts, read feeds, and stream an event's feed live.

Reads fetch posts with their authors and events in one statement and prime the
request's DataLoaders with them, so nested fields (an event's organizer, say) reuse
what is already loaded. The live feed loads each announced post once per process,
however many subscribers receive it (`PostCache`).
"""

from __future__ import annotations

import asyncio
import uuid
from collections import OrderedDict
from collections.abc import AsyncGenerator, Iterable

import strawberry

import db.events
import db.feed
import db.pages
import db.users
from db.channels import FeedMessage, Resync
from db.errors import DomainError
from liventix.clock import Clock
from liventix.context import Context, Info, Services
from liventix.realtime.hub import SubscriberTooSlow
from resolvers.ids import parse_id
from schema.errors import ClientError
from schema.feed import (
    CreatePostPayload,
    CreatePostResult,
    DeletePostPayload,
    DeletePostResult,
    FeedError,
    FeedErrorCode,
    FeedResync,
    FeedUpdate,
    MediaInput,
    Post,
    PostConnection,
    PostCreated,
    PostDeleted,
    PostEdge,
)

DEFAULT_PAGE_SIZE = 20
POST_CACHE_TTL = 60.0  # seconds; long enough for every local subscriber to be sent a post
REPLAY_LIMIT = 200


def _before_seq(after: str | None) -> int | None:
    if after is None:
        return None
    seq = db.pages.decode_seq_cursor(after)
    if seq is None:
        raise ClientError("`after` is not a feed cursor", "BAD_USER_INPUT")
    return seq


def _prime(context: Context, rows: Iterable[db.feed.FeedRow]) -> None:
    """Share what a page already loaded with the request's DataLoaders."""
    rows = list(rows)
    if not rows:
        return
    loaders = context.loaders
    loaders.get(db.users.get_profiles).prime_many({r.author.id: r.author for r in rows})
    loaders.get(db.events.get_events).prime_many({r.event.id: r.event for r in rows})


def _connection(context: Context, page: db.feed.FeedPage, *, has_previous: bool) -> PostConnection:
    _prime(context, page.rows)
    return PostConnection.from_page(page, has_previous=has_previous)


# -- queries -------------------------------------------------------------------------


async def event_feed(
    info: Info, event_id: strawberry.ID, first: int = DEFAULT_PAGE_SIZE, after: str | None = None
) -> PostConnection:
    """An event's posts, newest first; empty for unknown events and others' drafts."""
    ctx = info.context
    before = _before_seq(after)
    eid = parse_id(event_id)
    if eid is None:
        return PostConnection.from_page(db.feed.FeedPage([], False), has_previous=False)
    page = await db.feed.event_feed_page(
        ctx.db,
        eid,
        first=first,
        before_seq=before,
        viewer_id=ctx.viewer.user_id,
        is_admin=ctx.viewer.is_admin,
    )
    return _connection(ctx, page, has_previous=before is not None)


async def home_feed(
    info: Info, first: int = DEFAULT_PAGE_SIZE, after: str | None = None
) -> PostConnection:
    """Posts of every published event, newest first."""
    ctx = info.context
    before = _before_seq(after)
    page = await db.feed.home_feed_page(ctx.db, first=first, before_seq=before)
    return _connection(ctx, page, has_previous=before is not None)


async def post(info: Info, id: strawberry.ID) -> Post | None:
    """One post, if it exists, is not deleted and its event is visible to the viewer."""
    ctx = info.context
    pid = parse_id(id)
    if pid is None:
        return None
    (row,) = await db.feed.get_feed_rows(ctx.db, [pid])
    if row is None or not row.visible_to(ctx.viewer.user_id, ctx.viewer.is_admin):
        return None
    _prime(ctx, [row])
    return Post.from_row(row)


# -- mutations -----------------------------------------------------------------------


async def create_post(
    info: Info,
    event_id: strawberry.ID,
    text: str = "",
    media: list[MediaInput] | None = None,
) -> CreatePostResult:
    ctx = info.context
    viewer = ctx.viewer
    if viewer.user_id is None:
        return FeedError(code=FeedErrorCode.UNAUTHENTICATED, message="Sign in to post")
    eid = parse_id(event_id)
    if eid is None:
        return FeedError(
            code=FeedErrorCode.EVENT_NOT_FOUND, message="No such event", field="eventId"
        )
    await ctx.services.first_sight.see(viewer)
    try:
        row = await db.feed.create_post(
            ctx.db,
            author_id=viewer.user_id,
            author_is_admin=viewer.is_admin,
            event_id=eid,
            text=text,
            media=[item.to_item() for item in media or ()],
            now=ctx.clock.now(),
        )
    except DomainError as error:
        return FeedError.from_domain(error)
    _prime(ctx, [row])
    return CreatePostPayload(post=Post.from_row(row), edge=PostEdge.from_row(row))


async def delete_post(info: Info, post_id: strawberry.ID) -> DeletePostResult:
    ctx = info.context
    viewer = ctx.viewer
    if viewer.user_id is None:
        return FeedError(code=FeedErrorCode.UNAUTHENTICATED, message="Sign in to delete posts")
    pid = parse_id(post_id)
    if pid is None:
        return FeedError(code=FeedErrorCode.POST_NOT_FOUND, message="No such post", field="postId")
    try:
        deleted = await db.feed.delete_post(
            ctx.db,
            post_id=pid,
            viewer_id=viewer.user_id,
            viewer_is_admin=viewer.is_admin,
            now=ctx.clock.now(),
        )
    except DomainError as error:
        return FeedError.from_domain(error)
    return DeletePostPayload(
        post_id=strawberry.ID(str(deleted.id)), event_id=strawberry.ID(str(deleted.event_id))
    )


# -- live feed -----------------------------------------------------------------------


class PostCache:
    """Posts announced on the live feed, loaded once per process for all subscribers.

    The first subscriber to ask for a post starts its load; the others await the same
    future. Entries live for `ttl` seconds (a bounded LRU), long enough for every local
    subscriber to receive the notification; deletions evict at once. Age is read from
    `clock` (the app's), so tests expire entries by moving it.
    """

    def __init__(self, clock: Clock, *, maxsize: int = 1024, ttl: float = POST_CACHE_TTL) -> None:
        self._clock = clock
        self._maxsize = maxsize
        self._ttl = ttl
        self._entries: OrderedDict[
            uuid.UUID, tuple[float, asyncio.Future[db.feed.FeedRow | None]]
        ] = OrderedDict()

    async def get(self, services: Services, post_id: uuid.UUID) -> db.feed.FeedRow | None:
        now = self._clock.monotonic()
        entry = self._entries.get(post_id)
        if entry is not None and now - entry[0] < self._ttl:
            self._entries.move_to_end(post_id)
            return await asyncio.shield(entry[1])
        future = asyncio.ensure_future(self._load(services, post_id))
        self._entries[post_id] = (now, future)
        while len(self._entries) > self._maxsize:
            self._entries.popitem(last=False)
        return await asyncio.shield(future)

    async def _load(self, services: Services, post_id: uuid.UUID) -> db.feed.FeedRow | None:
        try:
            (row,) = await db.feed.get_feed_rows(services.db, [post_id])
        except BaseException:
            self._entries.pop(post_id, None)  # let the next subscriber retry
            raise
        return row

    def put(self, row: db.feed.FeedRow) -> None:
        if row.post.id not in self._entries:
            future: asyncio.Future[db.feed.FeedRow | None] = (
                asyncio.get_running_loop().create_future()
            )
            future.set_result(row)
            self._entries[row.post.id] = (self._clock.monotonic(), future)
            while len(self._entries) > self._maxsize:
                self._entries.popitem(last=False)

    def forget(self, post_id: uuid.UUID) -> None:
        self._entries.pop(post_id, None)


def post_cache(services: Services) -> PostCache:
    """The process's post cache (one per running app: tests run several)."""
    cache = services.extras.get("feed.post_cache")
    if not isinstance(cache, PostCache):
        cache = PostCache(services.clock)
        services.extras["feed.post_cache"] = cache
    return cache


async def event_feed_updates(
    info: Info, event_id: strawberry.ID, after: str | None = None
) -> AsyncGenerator[FeedUpdate, None]:
    """Stream an event's new and deleted posts as they commit.

    With `after` (the last cursor the client saw), first replay the posts it missed:
    the hub subscription is opened before the replay query, so nothing committed in
    between is lost, and posts both replayed and announced are sent once.
    """
    ctx = info.context
    after_seq = _before_seq(after)
    eid = parse_id(event_id)
    (event,) = await db.events.get_events(ctx.db, [eid]) if eid else (None,)
    if event is None or not db.events.event_visible(event, ctx.viewer.user_id, ctx.viewer.is_admin):
        raise ClientError("No such event", "EVENT_NOT_FOUND")
    services = ctx.services
    cache = post_cache(services)
    last_cursor = after
    async with services.hub.subscribe(FeedMessage.channel_of(event.id)) as inbox:
        replayed: set[uuid.UUID] = set()
        if after_seq is not None:
            rows = await db.feed.posts_since(ctx.db, event.id, after_seq, limit=REPLAY_LIMIT + 1)
            if len(rows) > REPLAY_LIMIT:
                yield FeedResync(
                    event_id=strawberry.ID(str(event.id)),
                    reason="TOO_MANY_MISSED",
                    last_cursor=last_cursor,
                )
                rows = []
            for row in rows:
                replayed.add(row.post.id)
                cache.put(row)
                last_cursor = db.pages.encode_seq_cursor(row.post.seq)
                yield PostCreated(post=Post.from_row(row), cursor=last_cursor)
        try:
            async for received in inbox:
                message = FeedMessage.decode(received)
                if isinstance(message, Resync):
                    yield FeedResync(
                        event_id=strawberry.ID(str(event.id)),
                        reason="MISSED_NOTIFICATIONS",
                        last_cursor=last_cursor,
                    )
                    continue
                if message is None or message.post_id is None:
                    continue  # malformed, or an event edit or author rename: not shown
                pid = message.post_id
                if message.kind == "created":
                    if pid in replayed:
                        continue
                    loaded = await cache.get(services, pid)
                    if loaded is None:
                        continue  # deleted before it could be loaded: a delete follows
                    last_cursor = db.pages.encode_seq_cursor(loaded.post.seq)
                    yield PostCreated(post=Post.from_row(loaded), cursor=last_cursor)
                elif message.kind == "deleted":
                    cache.forget(pid)
                    yield PostDeleted(
                        post_id=strawberry.ID(str(pid)), event_id=strawberry.ID(str(event.id))
                    )
        except SubscriberTooSlow:
            # The client fell behind; tell it to catch up rather than fail opaquely.
            yield FeedResync(
                event_id=strawberry.ID(str(event.id)),
                reason="TOO_SLOW",
                last_cursor=last_cursor,
            )
