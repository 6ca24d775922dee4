"""The per-process hub between PostgreSQL notifications and local subscribers.

Changes are announced with `pg_notify` inside the committing transaction
(`db.notify.publish`); every API process LISTENs on one channel with a dedicated
connection and dispatches each message to the local subscribers of its `ch` key
(``tier:<event>``, ``feed:<event>``, ``user:<user>``). Each subscriber has a bounded
buffer: one that cannot keep up is cut off rather than allowed to grow memory.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
import orjson

from db.notify import CHANNEL

log = logging.getLogger("liventix.realtime")

Message = dict[str, Any]


class SubscriberTooSlow(Exception):
    """The subscriber's buffer overflowed; it must reconnect and resync."""


class Subscription:
    """A bounded mailbox for one subscriber of one channel key."""

    def __init__(self, key: str, maxsize: int) -> None:
        self.key = key
        self._queue: asyncio.Queue[Message] = asyncio.Queue(maxsize)
        self.overflowed = False

    def offer(self, message: Message) -> None:
        if self.overflowed:
            return
        try:
            self._queue.put_nowait(message)
        except asyncio.QueueFull:
            self.overflowed = True
            log.warning("subscriber of %s overflowed its buffer; dropping it", self.key)

    def __aiter__(self) -> AsyncIterator[Message]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[Message]:
        while True:
            if self.overflowed:
                raise SubscriberTooSlow(self.key)
            yield await self._queue.get()


class Hub:
    """Owns the LISTEN connection and the map from channel keys to subscribers."""

    def __init__(self, url: str, *, buffer_size: int = 256) -> None:
        self._url = url
        self._buffer_size = buffer_size
        self._subscribers: dict[str, set[Subscription]] = {}
        self._conn: asyncpg.Connection | None = None

    async def start(self) -> None:
        self._conn = await asyncpg.connect(self._url)
        await self._conn.add_listener(CHANNEL, self._on_notify)

    async def stop(self) -> None:
        if self._conn is not None:
            await self._conn.close()
            self._conn = None

    def _on_notify(self, _conn: object, _pid: int, _channel: str, payload: object) -> None:
        try:
            message: Message = orjson.loads(str(payload))
        except orjson.JSONDecodeError:
            log.error("ignoring malformed notification %r", str(payload)[:200])
            return
        self.dispatch(message)

    def dispatch(self, message: Message) -> None:
        for subscription in tuple(self._subscribers.get(message.get("ch", ""), ())):
            subscription.offer(message)

    @asynccontextmanager
    async def subscribe(self, key: str) -> AsyncIterator[Subscription]:
        subscription = Subscription(key, self._buffer_size)
        self._subscribers.setdefault(key, set()).add(subscription)
        try:
            yield subscription
        finally:
            subscribers = self._subscribers.get(key)
            if subscribers is not None:
                subscribers.discard(subscription)
                if not subscribers:
                    del self._subscribers[key]

    def subscriber_count(self, key: str | None = None) -> int:
        if key is not None:
            return len(self._subscribers.get(key, ()))
        return sum(len(s) for s in self._subscribers.values())
