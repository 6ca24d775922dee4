"""Posts announced on the live feed, loaded once per process for all subscribers."""

from __future__ import annotations

import asyncio
import uuid
from collections import OrderedDict
from typing import Protocol

from databases import Database

import db.feed
from liventix.clock import Clock

POST_CACHE_TTL = 60.0  # seconds; long enough for every local subscriber to be sent a post


class Services(Protocol):
    """What the cache needs of `resolvers.context.Services` (which holds the cache)."""

    db: Database


class PostCache:
    """Posts announced on the live feed, loaded once per process for all subscribers.

    The first subscriber to ask for a post starts its load; the others await the same
    future. Entries live for `ttl` seconds (a bounded LRU), long enough for every local
    subscriber to receive the notification; deletions evict at once. Age is read from
    `clock` (the app's), so tests expire entries by moving it. One per running app
    (`Services.post_cache`: tests run several).
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
