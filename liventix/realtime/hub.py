"""The per-process hub between PostgreSQL notifications and local subscribers.

Changes are announced with `pg_notify` inside the committing transaction
(`db.notify.publish`), so only committed changes are ever seen. Every API process
listens through `ReliablePostgresBackend` (a broadcaster backend with one dedicated,
self-healing connection) and dispatches each message to the local subscribers of its
`ch` key (``tier:<event>``, ``feed:<event>``, ``user:<user>``).

broadcaster's `Broadcast` front end is not used for the fan-out: it gives each
subscriber an unbounded queue and its listener task can die silently. Instead:

- each subscriber has a bounded `Mailbox` (``settings.ws_buffer_size``); unread
  ``op="tier"`` messages for the same tier coalesce to the latest; one that still falls
  behind gets `SubscriberTooSlow` from its iterator and is counted as dropped;
- after any listener gap every subscriber receives ``{"ch": key, "op": "resync"}``;
- the pump task that reads the backend is supervised: if it ever dies, it is restarted
  and subscribers are told to resync.

Every subscriber of a key receives the *same* message object for one notification, so
`load_once(message, name, factory)` lets the work a message triggers (loading the new
post, say) happen once per process however many subscriptions consume it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Hashable
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import orjson
from broadcaster._backends.base import BroadcastBackend

from liventix.realtime import metrics
from liventix.realtime.backend import GAP_CHANNEL, ReliablePostgresBackend
from liventix.realtime.mailbox import Mailbox, MailboxOverflow

log = logging.getLogger("liventix.realtime")

Message = dict[str, Any]
T = TypeVar("T")


class Notification(dict[str, Any]):
    """A message as delivered to every local subscriber of its key (one object)."""

    __slots__ = ("shared",)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.shared: dict[str, asyncio.Future[Any]] = {}


async def load_once(message: Message, name: str, factory: Callable[[], Awaitable[T]]) -> T:
    """`await factory()` once per notification and `name`, shared by all its consumers.

    For plain dicts (not from the hub) it simply calls `factory`. A failure is shared
    too (every consumer sees the same exception), and nothing is retried.
    """
    if not isinstance(message, Notification):
        return await factory()
    future = message.shared.get(name)
    if future is None:
        future = asyncio.ensure_future(factory())
        message.shared[name] = future
    result: T = await asyncio.shield(future)
    return result


class SubscriberTooSlow(Exception):
    """The subscriber's buffer overflowed; it must reconnect and resync."""


def _coalesce_key(message: Message) -> Hashable | None:
    op = message.get("op")
    if op == "tier":
        return ("tier", message.get("tier_id"))
    if op == "resync":
        return ("resync",)
    return None


class Subscription:
    """A bounded mailbox for one subscriber of one channel key."""

    def __init__(self, key: str, maxsize: int) -> None:
        self.key = key
        self._mailbox: Mailbox[Message] = Mailbox(maxsize)

    @property
    def overflowed(self) -> bool:
        return self._mailbox.overflowed

    def offer(self, message: Message) -> None:
        """Queue `message` without blocking; on overflow the subscriber is cut off."""
        if self._mailbox.overflowed:
            return
        if not self._mailbox.put(message, _coalesce_key(message)):
            metrics.SLOW_SUBSCRIBERS_DROPPED.labels("hub").inc()
            log.warning("subscriber of %s overflowed its buffer; dropping it", self.key)

    def close(self) -> None:
        self._mailbox.close()

    def __aiter__(self) -> AsyncIterator[Message]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[Message]:
        while True:
            try:
                yield await self._mailbox.get()
            except MailboxOverflow:
                raise SubscriberTooSlow(self.key) from None
            except EOFError:
                return


class Hub:
    """Owns the listener backend and the map from channel keys to subscribers."""

    def __init__(
        self,
        url: str,
        *,
        buffer_size: int = 256,
        backend: BroadcastBackend | None = None,
    ) -> None:
        self._buffer_size = buffer_size
        self._backend = backend or ReliablePostgresBackend(url)
        self._subscribers: dict[str, set[Subscription]] = {}
        self._pump: asyncio.Task[None] | None = None
        self._stopping = False

    @property
    def backend(self) -> BroadcastBackend:
        return self._backend

    @property
    def listener_pid(self) -> int | None:
        """PostgreSQL pid of the LISTEN connection (for operators and tests)."""
        return getattr(self._backend, "server_pid", None)

    async def start(self) -> None:
        self._stopping = False
        await self._backend.connect()
        self._start_pump()

    async def stop(self) -> None:
        self._stopping = True
        if self._pump is not None:
            self._pump.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._pump
            self._pump = None
        await self._backend.disconnect()
        for subscriptions in self._subscribers.values():
            for subscription in subscriptions:
                subscription.close()

    def _start_pump(self) -> None:
        self._pump = asyncio.create_task(self._run_pump(), name="realtime-hub-pump")
        self._pump.add_done_callback(self._pump_done)

    def _pump_done(self, task: asyncio.Task[None]) -> None:
        if self._stopping or task.cancelled():
            return
        log.error("realtime pump died; restarting it", exc_info=task.exception())
        self.resync_all()
        self._start_pump()

    async def _run_pump(self) -> None:
        while True:
            event = await self._backend.next_published()
            if event.channel == GAP_CHANNEL:
                self.resync_all()
                continue
            try:
                message = Notification(orjson.loads(event.message))
            except (orjson.JSONDecodeError, TypeError, ValueError):
                log.error("ignoring malformed notification %r", event.message[:200])
                continue
            self.dispatch(message)

    def dispatch(self, message: Message) -> None:
        """Offer `message` to every local subscriber of its `ch` key."""
        if not isinstance(message, Notification):
            message = Notification(message)
        for subscription in tuple(self._subscribers.get(message.get("ch", ""), ())):
            subscription.offer(message)

    def resync_all(self) -> None:
        """Tell every local subscriber that notifications may have been missed."""
        keys = list(self._subscribers)
        if keys:
            log.warning("notifying subscribers of %d key(s) to resync after a gap", len(keys))
        for key in keys:
            metrics.RESYNCS.inc(len(self._subscribers.get(key, ())))
            self.dispatch({"ch": key, "op": "resync"})

    @asynccontextmanager
    async def subscribe(self, key: str) -> AsyncIterator[Subscription]:
        """Receive the messages for `key` while inside the block."""
        subscription = Subscription(key, self._buffer_size)
        self._subscribers.setdefault(key, set()).add(subscription)
        metrics.SUBSCRIBERS.inc()
        try:
            yield subscription
        finally:
            metrics.SUBSCRIBERS.dec()
            subscribers = self._subscribers.get(key)
            if subscribers is not None:
                subscribers.discard(subscription)
                if not subscribers:
                    del self._subscribers[key]

    def subscriber_count(self, key: str | None = None) -> int:
        if key is not None:
            return len(self._subscribers.get(key, ()))
        return sum(len(s) for s in self._subscribers.values())
