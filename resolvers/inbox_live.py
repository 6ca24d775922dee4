"""The live inbox: each new notification and the counts, to the viewer's subscriptions.

New notifications reach the user's key through the process's `InboxFanout`
(`resolvers.inbox_fanout`); marking read is announced on the user's key directly, from
whichever process made it.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncGenerator
from dataclasses import dataclass

import db.notifications
from db.channels import InboxMessage, Resync
from db.notification_rules import Lane
from liventix.realtime.hub import Message, load_once
from resolvers.access import signed_in
from resolvers.context import Info
from resolvers.inbox_fanout import COUNTS, NOTIFICATION
from resolvers.notifications import Counts, counts


@dataclass(frozen=True, slots=True)
class InboxEvent:
    """What the live inbox sends: why, the new notification (for ``new``), the counts."""

    reason: str  # snapshot | new | read | resync
    counts: Counts
    notification: db.notifications.NotificationRecord | None = None


async def inbox_events(info: Info) -> AsyncGenerator[InboxEvent, None]:
    """The viewer's counts now, then each new notification with the counts after it,
    and the counts after every mark-read (from any process, after commit)."""
    user_id = signed_in(info)
    services = info.context.services
    key = InboxMessage.channel_of(user_id)
    async with services.hub.subscribe(key) as messages:
        with services.inbox.listening(user_id):
            yield InboxEvent("snapshot", await counts(info))
            async for received in messages:
                message = InboxMessage.decode(received)
                if isinstance(message, Resync):
                    yield InboxEvent("resync", await counts(info))
                elif message is not None and message.kind == "read":
                    yield InboxEvent("read", await counts(info))
                elif message is not None and message.notification_id is not None:
                    record, unread = await _load(info, received, message.notification_id)
                    if record is not None and record.user_id == user_id:
                        yield InboxEvent("new", unread, record)


async def _load(
    info: Info, received: Message, notification_id: uuid.UUID
) -> tuple[db.notifications.NotificationRecord | None, Counts]:
    """The notification and the counts after it: preloaded by the fan-out, else read
    (once per process for all the user's subscriptions)."""

    async def read() -> db.notifications.NotificationRecord | None:
        (record,) = await db.notifications.get_notifications(info.context.db, [notification_id])
        return record

    async def count() -> dict[Lane, int]:
        return (await counts(info)).by_lane

    record = await load_once(received, NOTIFICATION, read)
    return record, Counts(await load_once(received, COUNTS, count))
