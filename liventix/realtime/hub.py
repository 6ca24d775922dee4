"""The per-process hub between PostgreSQL notifications and local subscribers.

Changes are announced with `pg_notify` inside the committing transaction
(`db.notify.publish`), so only committed changes are ever seen. Every API process
listens through `ReliablePostgresBackend` (a broadcaster backend with one dedicated,
self-healing connection) and dispatches each message, in its wire form (a JSON object,
see `db.channels`), to the local subscribers of its ``ch`` key (``tier:<event>``,
``feed:<event>``, ``user:<user>``). The hub routes by key and never looks inside a
message beyond that and `db.channels.supersedes`; consumers decode what they receive
with the message class of their channel.

Two kinds of local consumer:

- a `Subscription` (`subscribe`) gets each committed change exactly once, from LISTEN,
  in commit order, through a bounded mailbox (what GraphQL subscriptions use);
- a `Watch` (`watch`) is a synchronous callback for idempotent consumers (the feed
  page cache): it gets the LISTEN copies too, and *also* this process's own commits at
  once, right after COMMIT (`dispatch_committed`, registered by the app with
  `db.notify.dispatch_locally`), so a process never serves its own next read from a
  state older than its last write. Those arrive twice (local, then from LISTEN), which
  is why only watchers receive them: subscribers never see a duplicate.

broadcaster's `Broadcast` front end is not used for the fan-out: it gives each
subscriber an unbounded queue and its listener task can die silently. Instead:

- each subscriber has a bounded `Mailbox` (``settings.ws_buffer_size``); unread
  ``op="tier"`` messages for the same tier coalesce to the latest; one that still falls
  behind gets `SubscriberTooSlow` from its iterator and is counted as dropped;
- after any listener gap every subscriber and watcher receives a `Resync` of its key;
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
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import orjson
from broadcaster._backends.base import BroadcastBackend

from db.channels import Message as ChannelMessage
from db.channels import Resync, Wire, supersedes
from liventix.realtime import metrics
from liventix.realtime.backend import GAP_CHANNEL, ReliablePostgresBackend
from liventix.realtime.mailbox import Mailbox, MailboxOverflow

log = logging.getLogger("liventix.realtime")

Message = Wire
T = TypeVar("T")


class Notification(dict[str, Any]):
    """A message as delivered to every local subscriber of its key (one object)."""

    __slots__ = ("shared",)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.shared: dict[str, asyncio.Future[Any]] = {}

    def preload(self, name: str, value: Any) -> None:
        """Share `value` under `name`, as if `load_once` had loaded it (a producer that
        already holds what every consumer would load)."""
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        future.set_result(value)
        self.shared[name] = future


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
        if not self._mailbox.put(message, supersedes(message)):
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


class Watch:
    """A synchronous callback for every message of one key, local commits included
    (see the module doc); `close` it to stop."""

    def __init__(self, hub: Hub, key: str, callback: Callable[[Message], None]) -> None:
        self.key = key
        self._hub = hub
        self._callback = callback

    def offer(self, message: Message) -> None:
        try:
            self._callback(message)
        except Exception:  # one broken watcher must not stop the fan-out
            log.exception("watcher of %s failed", self.key)

    def close(self) -> None:
        self._hub._remove(self.key, self)


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
        self._subscribers: dict[str, set[Subscription | Watch]] = {}
        self._pump: asyncio.Task[None] | None = None
        self._stopping = False

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
        for subscribers in self._subscribers.values():
            for subscriber in subscribers:
                if isinstance(subscriber, Subscription):
                    subscriber.close()

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
        """Offer `message` (wire form) to every local subscriber of its ``ch`` key."""
        if not isinstance(message, Notification):
            message = Notification(message)
        for subscriber in tuple(self._subscribers.get(message.get("ch", ""), ())):
            subscriber.offer(message)

    def dispatch_committed(self, messages: Sequence[ChannelMessage]) -> None:
        """Offer the messages of a transaction this process has just committed to the
        watchers of their keys (not to subscriptions: they get the LISTEN copy)."""
        for sent in messages:
            watchers = [s for s in self._subscribers.get(sent.channel, ()) if isinstance(s, Watch)]
            if watchers:
                message = Notification(sent.encode())
                for watcher in watchers:
                    watcher.offer(message)

    def resync_all(self) -> None:
        """Tell every local subscriber that notifications may have been missed."""
        keys = list(self._subscribers)
        if keys:
            log.warning("notifying subscribers of %d key(s) to resync after a gap", len(keys))
        for key in keys:
            metrics.RESYNCS.inc(len(self._subscribers.get(key, ())))
            self.dispatch(Resync(key).encode())

    @asynccontextmanager
    async def subscribe(self, key: str) -> AsyncIterator[Subscription]:
        """Receive the messages for `key` while inside the block."""
        subscription = Subscription(key, self._buffer_size)
        self._add(key, subscription)
        try:
            yield subscription
        finally:
            self._remove(key, subscription)

    def watch(self, key: str, callback: Callable[[Message], None]) -> Watch:
        """Call `callback` synchronously with every message of `key` until the returned
        `Watch` is closed: LISTEN copies, resyncs, and this process's own commits at
        once (so those twice: `callback` must be idempotent, and quick)."""
        watcher = Watch(self, key, callback)
        self._add(key, watcher)
        return watcher

    def _add(self, key: str, subscriber: Subscription | Watch) -> None:
        self._subscribers.setdefault(key, set()).add(subscriber)
        metrics.SUBSCRIBERS.inc()

    def _remove(self, key: str, subscriber: Subscription | Watch) -> None:
        subscribers = self._subscribers.get(key)
        if subscribers is None or subscriber not in subscribers:
            return
        metrics.SUBSCRIBERS.dec()
        subscribers.discard(subscriber)
        if not subscribers:
            del self._subscribers[key]

    def subscriber_count(self, key: str | None = None) -> int:
        if key is not None:
            return len(self._subscribers.get(key, ()))
        return sum(len(s) for s in self._subscribers.values())
