"""A reliable PostgreSQL LISTEN backend for broadcaster.

broadcaster's own PostgreSQL backend is not fit for production here: it publishes
`pg_notify` on its own connection (outside the caller's transaction, so a rolled-back
change would still be announced), shares one connection between LISTEN and publishing
(concurrent use fails), never reconnects, and queues without bound. This backend
implements broadcaster's `BroadcastBackend` interface with:

- a dedicated connection that only LISTENs (publishing belongs in the committing
  transaction: `db.notify.publish`; `publish` here exists for tools and tests);
- supervision: loss of the connection (termination callback, or a failed health
  check for half-open TCP) is logged and counted, and the connection is re-opened
  with exponential backoff and jitter, then LISTEN is issued again;
- a *gap* marker (`Event(GAP_CHANNEL, "")`) delivered after every re-LISTEN, because
  notifications sent while nobody listened are gone: the hub turns it into a `resync`
  for every local subscriber, which reloads state *after* listening resumed, so
  nothing is missed between the reload and the next notification;
- a bounded queue: if the consumer falls `max_queue` notifications behind, the backlog
  is dropped and replaced by one gap marker (subscribers resync rather than the
  process running out of memory).

The channel is one per database (`db.channels.NOTIFY_CHANNEL`); routing to subscribers
happens by the ``ch`` key inside each payload, so `subscribe`/`unsubscribe` have nothing
to do.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from typing import Any

import asyncpg
from broadcaster._backends.base import BroadcastBackend
from broadcaster._base import Event

from db.channels import NOTIFY_CHANNEL
from liventix.realtime import metrics

log = logging.getLogger("liventix.realtime")

GAP_CHANNEL = ""
"""The channel of the marker event that says "notifications may have been missed"."""


class ReliablePostgresBackend(BroadcastBackend):
    def __init__(
        self,
        url: str,
        *,
        channel: str = NOTIFY_CHANNEL,
        min_backoff: float = 0.05,
        max_backoff: float = 5.0,
        health_interval: float = 15.0,
        connect_timeout: float = 5.0,
        max_queue: int = 100_000,
    ) -> None:
        self._url = url
        self._channel = channel
        self._min_backoff = min_backoff
        self._max_backoff = max_backoff
        self._health_interval = health_interval
        self._connect_timeout = connect_timeout
        self._max_queue = max_queue
        self._queue: asyncio.Queue[Event] = asyncio.Queue()
        self._conn: asyncpg.Connection | None = None
        self._lost: asyncio.Event | None = None
        self._supervisor: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()
        self._closing = False

    # -- BroadcastBackend interface -------------------------------------------------

    async def connect(self) -> None:
        """Open the first connection (errors propagate: a bad URL fails start-up)."""
        self._closing = False
        await self._open()
        self._supervisor = asyncio.create_task(self._supervise(), name="realtime-listener")

    async def disconnect(self) -> None:
        self._closing = True
        if self._supervisor is not None:
            self._supervisor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._supervisor
            self._supervisor = None
        await self._close_conn()

    async def subscribe(self, group: str) -> None:
        """Nothing to do: one LISTEN channel carries every key (see module doc)."""

    async def unsubscribe(self, group: str) -> None:
        """Nothing to do: one LISTEN channel carries every key (see module doc)."""

    async def publish(self, channel: str, message: Any) -> None:
        """Notify outside any transaction. Application changes must not use this:
        they call `db.notify.publish` inside the transaction that makes the change."""
        async with self._lock:
            if self._conn is None:
                raise ConnectionError("listener connection is down")
            await self._conn.execute("SELECT pg_notify($1, $2)", self._channel, str(message))

    async def next_published(self) -> Event:
        return await self._queue.get()

    # -- introspection ------------------------------------------------------------

    @property
    def server_pid(self) -> int | None:
        """The PostgreSQL backend pid of the LISTEN connection (None while down)."""
        return self._conn.get_server_pid() if self._conn is not None else None

    # -- internals ----------------------------------------------------------------

    async def _open(self) -> None:
        conn: asyncpg.Connection = await asyncpg.connect(
            self._url,
            timeout=self._connect_timeout,
            server_settings={"application_name": "liventix-listener"},
        )
        lost = asyncio.Event()
        conn.add_termination_listener(lambda _conn: lost.set())
        try:
            await conn.add_listener(self._channel, self._on_notify)
        except BaseException:
            conn.terminate()
            raise
        self._conn, self._lost = conn, lost
        metrics.LISTENER_CONNECTED.set(1)

    async def _close_conn(self) -> None:
        conn, self._conn = self._conn, None
        metrics.LISTENER_CONNECTED.set(0)
        if conn is not None and not conn.is_closed():
            try:
                async with asyncio.timeout(2.0):
                    await conn.close()
            except (TimeoutError, OSError, asyncpg.PostgresError):
                conn.terminate()

    def _on_notify(self, _conn: object, _pid: int, _channel: str, payload: object) -> None:
        metrics.NOTIFICATIONS.inc()
        if self._queue.qsize() >= self._max_queue:
            log.error("listener backlog over %d notifications: dropping it (gap)", self._max_queue)
            self._drain_queue()
            self._signal_gap()
            return
        self._queue.put_nowait(Event(self._channel, str(payload)))

    def _drain_queue(self) -> None:
        while not self._queue.empty():
            self._queue.get_nowait()

    def _signal_gap(self) -> None:
        self._queue.put_nowait(Event(GAP_CHANNEL, ""))

    async def _supervise(self) -> None:
        """Watch the connection; on loss, reconnect with backoff and signal a gap."""
        while not self._closing:
            await self._watch()
            if self._closing:
                return
            metrics.LISTENER_DISCONNECTS.inc()
            log.warning("realtime listener lost its PostgreSQL connection; reconnecting")
            await self._close_conn()
            await self._reconnect()

    async def _watch(self) -> None:
        """Return when the connection is lost or fails its periodic health check."""
        assert self._lost is not None
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._health_interval):
                    await self._lost.wait()
                return
            try:
                async with self._lock, asyncio.timeout(self._connect_timeout):
                    assert self._conn is not None
                    await self._conn.fetchval("SELECT 1")
            except (TimeoutError, OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
                log.warning("realtime listener failed its health check")
                return

    async def _reconnect(self) -> None:
        backoff = self._min_backoff
        attempt = 0
        while not self._closing:
            attempt += 1
            try:
                await self._open()
            except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                delay = backoff * (0.5 + random.random())
                log.warning(
                    "realtime listener reconnect attempt %d failed (%s); retrying in %.2fs",
                    attempt,
                    type(exc).__name__,
                    delay,
                )
                await asyncio.sleep(delay)
                backoff = min(backoff * 2, self._max_backoff)
                continue
            metrics.LISTENER_RECONNECTS.inc()
            log.warning(
                "realtime listener reconnected after %d attempt(s); notifications in the "
                "gap are lost, telling subscribers to resync",
                attempt,
            )
            self._signal_gap()
            return
