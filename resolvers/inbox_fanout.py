"""The process's inbox fan-out: one watch on the batch channel, one query per batch.

An enqueue announces its whole batch with one message (`InboxBatch`), however many
users it notified. `InboxFanout` watches that channel and, per batch, asks the database
once which of the users *this process* has live inbox subscribers for got a
notification, then hands each such user an `InboxMessage` on their own key, with the
notification and the user's counts already loaded: the cost follows this process's
subscribers, not the batch (a post to 10,000 ticket holders costs a process with three
inbox subscribers two queries about three users), and no subscriber queries anything.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections import Counter, OrderedDict
from collections.abc import Iterator

from databases import Database

import db.notifications
from db.channels import InboxBatch, InboxMessage, Resync
from liventix.realtime import Hub
from liventix.realtime.hub import Message, Notification, Watch

log = logging.getLogger("liventix.inbox")
SEEN_BATCHES = 4096  # a batch arrives twice (own commit, then LISTEN): handled once
# What each per-user message carries, preloaded (`Notification.preload`) for its readers.
NOTIFICATION = "notification"
COUNTS = "counts"


class InboxFanout:
    """Per process: the users with live inbox subscribers here, and the one watch that
    turns each batch into per-user messages for them."""

    def __init__(self, hub: Hub, database: Database) -> None:
        self._hub = hub
        self._database = database
        self._users: Counter[uuid.UUID] = Counter()
        self._watch: Watch | None = None
        self._seen: OrderedDict[int, None] = OrderedDict()
        self._tasks: set[asyncio.Task[None]] = set()

    @contextlib.contextmanager
    def listening(self, user_id: uuid.UUID) -> Iterator[None]:
        """While inside, batches are looked up for `user_id` too."""
        if self._watch is None:
            self._watch = self._hub.watch(InboxBatch.CHANNEL, self._on_batch)
        self._users[user_id] += 1
        try:
            yield
        finally:
            self._users[user_id] -= 1
            if self._users[user_id] <= 0:
                del self._users[user_id]

    def _on_batch(self, message: Message) -> None:
        decoded = InboxBatch.decode(message)
        if not isinstance(decoded, InboxBatch) or not self._users:
            return  # a resync reaches every user's own key from the hub
        if decoded.batch in self._seen:
            return
        self._seen[decoded.batch] = None
        while len(self._seen) > SEEN_BATCHES:
            self._seen.popitem(last=False)
        task = asyncio.create_task(self._deliver(decoded.batch, list(self._users)))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _deliver(self, batch: int, users: list[uuid.UUID]) -> None:
        try:
            found = await db.notifications.batch_deliveries(self._database, batch, users)
        except Exception:
            log.exception("could not look up inbox batch %s; telling its users to resync", batch)
            for user_id in users:
                self._hub.dispatch(Resync(InboxMessage.channel_of(user_id)).encode())
            return
        for record, counts in found:
            message = Notification(InboxMessage(record.user_id, "new", record.id).encode())
            message.preload(NOTIFICATION, record)
            message.preload(COUNTS, counts)
            self._hub.dispatch(message)
