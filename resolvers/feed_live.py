"""The live feed of an event: new and deleted posts as they commit.

Each announced post is loaded once per process, however many subscribers receive it
(`Services.post_cache`).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncGenerator
from dataclasses import dataclass

import db.events
import db.feed
import db.pages
from db.channels import FeedMessage, Resync
from liventix.realtime.hub import SubscriberTooSlow
from resolvers.context import Info
from resolvers.errors import ClientCode, ClientError
from resolvers.feed import before_seq
from resolvers.ids import EVENT, parse_id

REPLAY_LIMIT = 200


@dataclass(frozen=True, slots=True)
class PostAdded:
    """A post was published; `cursor` is its position in the feed."""

    row: db.feed.FeedRow
    cursor: str


@dataclass(frozen=True, slots=True)
class PostRemoved:
    """A post was deleted."""

    post_id: uuid.UUID
    event_id: uuid.UUID


@dataclass(frozen=True, slots=True)
class FeedGap:
    """Updates may have been missed (``TOO_MANY_MISSED``, ``MISSED_NOTIFICATIONS``,
    ``TOO_SLOW``): the client should catch up from `last_cursor`."""

    event_id: uuid.UUID
    reason: str
    last_cursor: str | None


FeedChange = PostAdded | PostRemoved | FeedGap


async def event_feed_updates(
    info: Info, event_id: str, after: str | None = None
) -> AsyncGenerator[FeedChange, None]:
    """Stream an event's new and deleted posts as they commit.

    With `after` (the last cursor the client saw), first replay the posts it missed:
    the hub subscription is opened before the replay query, so nothing committed in
    between is lost, and posts both replayed and announced are sent once.
    """
    ctx = info.context
    after_seq = before_seq(after)
    eid = parse_id(event_id, EVENT)
    (event,) = await db.events.get_events(ctx.db, [eid]) if eid else (None,)
    if event is None or not db.events.event_visible(event, ctx.viewer.user_id, ctx.viewer.is_admin):
        raise ClientError("No such event", ClientCode.EVENT_NOT_FOUND)
    services = ctx.services
    cache = services.post_cache
    last_cursor = after
    async with services.hub.subscribe(FeedMessage.channel_of(event.id)) as inbox:
        replayed: set[uuid.UUID] = set()
        if after_seq is not None:
            rows = await db.feed.posts_since(ctx.db, event.id, after_seq, limit=REPLAY_LIMIT + 1)
            if len(rows) > REPLAY_LIMIT:
                yield FeedGap(event_id=event.id, reason="TOO_MANY_MISSED", last_cursor=last_cursor)
                rows = []
            for row in rows:
                replayed.add(row.post.id)
                cache.put(row)
                last_cursor = db.pages.encode_seq_cursor(row.post.seq)
                yield PostAdded(row=row, cursor=last_cursor)
        try:
            async for received in inbox:
                message = FeedMessage.decode(received)
                if isinstance(message, Resync):
                    yield FeedGap(
                        event_id=event.id, reason="MISSED_NOTIFICATIONS", last_cursor=last_cursor
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
                    yield PostAdded(row=loaded, cursor=last_cursor)
                elif message.kind == "deleted":
                    cache.forget(pid)
                    yield PostRemoved(post_id=pid, event_id=event.id)
        except SubscriberTooSlow:
            # The client fell behind; tell it to catch up rather than fail opaquely.
            yield FeedGap(event_id=event.id, reason="TOO_SLOW", last_cursor=last_cursor)
