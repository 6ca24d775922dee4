"""The live console counts of each event: one reader per event and process, however
many subscribers, recomputing at most once per `RECOMPUTE_SECONDS`.

A console message (`db.channels.ConsoleMessage`) says only that an event's figures
changed; recomputing them is a few aggregate queries. A burst (a hundred orders paid
in a second, doors opening) would cost a hundred recomputes per subscriber if each
subscription recomputed on each message. Instead, per event, this process keeps one
hub subscription and one `_EventCounts`: a message marks the counts stale, and a
recompute starts no sooner than `RECOMPUTE_SECONDS` after the previous one began, so a
burst costs about one recompute per interval, shared by every subscriber of the event
in this process (organizers and admins alike: the counts do not depend on who asks).
Messages arriving during a recompute mark the counts stale again, so the last change
of a burst is always reflected, at most an interval later.

Subscribers wait on an event flag and read the latest counts, so a slow one skips
intermediate results instead of queueing them. A newcomer to a running event gets the
latest counts at once, as its snapshot: they reflect every change announced since the
reader subscribed, and later changes reach it like everyone else. After a listener gap
(a `Resync`) the counts are recomputed and sent with the reason ``resync``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from typing import Literal

from databases import Database

import db.console
from db.channels import ConsoleMessage, Resync
from liventix.realtime import Hub

log = logging.getLogger("liventix.console")

RECOMPUTE_SECONDS = 0.25
Reason = Literal["snapshot", "change", "resync"]


@dataclass(frozen=True, slots=True)
class CountsUpdate:
    """The counts of an event and why they are sent: ``snapshot`` (a subscriber's
    first), ``change`` (after changes) or ``resync`` (after a listener gap)."""

    event_id: uuid.UUID
    reason: Reason
    counts: db.console.ConsoleCounts


class CountsUnavailable(Exception):
    """The counts could not be read (the database failed); the stream ends."""


class _EventCounts:
    """One event's reader: its hub subscription, latest counts and followers."""

    def __init__(self, owner: ConsoleCounter, event: db.console.ManagedEvent) -> None:
        self.owner = owner
        self.event = event
        self.followers: set[asyncio.Event] = set()
        self.latest: CountsUpdate | None = None
        self.version = 0
        self.failure: BaseException | None = None
        self._pending: Reason | None = None
        self._last_start = -float("inf")
        self._recompute: asyncio.Task[None] | None = None
        self.task = asyncio.create_task(self._run(), name=f"console-counts-{event.id}")
        self.task.add_done_callback(self._ended)

    async def _run(self) -> None:
        """Subscribe first, then read: a change committed in between is not lost."""
        hub = self.owner.hub
        async with hub.subscribe(ConsoleMessage.channel_of(self.event.id)) as messages:
            await self._publish("snapshot")
            async for received in messages:
                message = ConsoleMessage.decode(received)
                if message is not None:
                    self._mark("resync" if isinstance(message, Resync) else "change")

    def _mark(self, reason: Reason) -> None:
        """The counts are stale: recompute soon (a resync wins over a change)."""
        self._pending = "resync" if "resync" in (reason, self._pending) else "change"
        if self._recompute is None or self._recompute.done():
            self._recompute = asyncio.create_task(self._recompute_soon())
            self._recompute.add_done_callback(self._ended)

    async def _recompute_soon(self) -> None:
        while self._pending is not None:
            wait = self._last_start + self.owner.interval - self.owner.monotonic()
            await asyncio.sleep(max(0.0, wait))
            reason, self._pending = self._pending, None
            await self._publish(reason)

    async def _publish(self, reason: Reason) -> None:
        self._last_start = self.owner.monotonic()
        counts = await db.console.console_counts(self.owner.database, self.event)
        self.owner.recomputes += 1
        self.version += 1
        self.latest = CountsUpdate(self.event.id, reason, counts)
        self._wake()

    def _wake(self) -> None:
        for follower in self.followers:
            follower.set()

    def _ended(self, task: asyncio.Task[None]) -> None:
        """A failed reader or recompute ends every follower's stream (with an error)."""
        if task.cancelled() or task.exception() is None:
            return
        self.failure = task.exception()
        log.error("live console counts of event %s failed", self.event.id, exc_info=self.failure)
        self._wake()

    async def updates(self, wake: asyncio.Event) -> AsyncGenerator[CountsUpdate, None]:
        """The counts for one follower: the latest first (as a snapshot), then each
        newer version it is awake to see."""
        seen = 0
        while True:
            await wake.wait()
            wake.clear()
            if self.failure is not None:
                raise CountsUnavailable(str(self.event.id)) from self.failure
            latest = self.latest
            if latest is None or self.version == seen:
                continue
            yield replace(latest, reason="snapshot") if seen == 0 else latest
            seen = self.version

    def stop(self) -> list[asyncio.Task[None]]:
        """Cancel the reader and any recompute; the tasks to await."""
        tasks = [t for t in (self.task, self._recompute) if t is not None and not t.done()]
        for task in tasks:
            task.cancel()
        return tasks


class ConsoleCounter:
    """Per process: the events whose live counts someone follows here."""

    def __init__(
        self,
        hub: Hub,
        database: Database,
        *,
        interval: float = RECOMPUTE_SECONDS,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.hub = hub
        self.database = database
        self.interval = interval
        self.monotonic = monotonic
        self.recomputes = 0
        """How many times counts were read (for tests and the curious)."""
        self._events: dict[uuid.UUID, _EventCounts] = {}
        self._stopping: set[asyncio.Task[None]] = set()

    def following(self, event_id: uuid.UUID) -> int:
        """How many followers the event's counts have in this process."""
        shared = self._events.get(event_id)
        return len(shared.followers) if shared else 0

    @asynccontextmanager
    async def follow(
        self, event: db.console.ManagedEvent
    ) -> AsyncIterator[AsyncGenerator[CountsUpdate, None]]:
        """The event's counts while inside the block: the current ones first, then
        after changes. Access is the caller's to check first."""
        shared = self._events.get(event.id)
        if shared is None or shared.failure is not None:
            if shared is not None:  # failed: its followers end, newcomers start afresh
                self._stop(shared)
            shared = self._events[event.id] = _EventCounts(self, event)
        wake = asyncio.Event()
        shared.followers.add(wake)
        if shared.latest is not None:
            wake.set()
        try:
            yield shared.updates(wake)
        finally:
            shared.followers.discard(wake)
            if not shared.followers and self._events.get(event.id) is shared:
                del self._events[event.id]
                self._stop(shared)

    def _stop(self, shared: _EventCounts) -> None:
        for task in shared.stop():
            self._stopping.add(task)
            task.add_done_callback(self._stopping.discard)

    async def aclose(self) -> None:
        """Stop every reader (at shutdown, before the hub and the pool close)."""
        for shared in tuple(self._events.values()):
            self._stop(shared)
        self._events.clear()
        for task in tuple(self._stopping):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
