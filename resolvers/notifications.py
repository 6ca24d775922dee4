"""The viewer's notifications: the inbox, marking read, preferences.

Everything here is the signed-in viewer's own: each query and mutation is scoped to
their user id in SQL, so another user's ids name nothing (and say so).
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import time

import db.notification_prefs
import db.notifications
from db.errors import NotificationCode, NotificationError
from db.notification_prefs import Change, Preferences
from db.notification_rules import Lane
from resolvers.access import seen, signed_in
from resolvers.context import Info
from resolvers.errors import ClientCode, ClientError
from resolvers.ids import NOTIFICATION, parse_id

MAX_PAGE = 100
MAX_MARK = 500
_CLOCK = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")


@dataclass(frozen=True, slots=True)
class Counts:
    """Unread notifications per lane, and in all."""

    by_lane: dict[Lane, int]

    @property
    def total(self) -> int:
        return sum(self.by_lane.values())


@dataclass(frozen=True, slots=True)
class MarkOutcome:
    marked: list[uuid.UUID]
    not_found: list[str]
    counts: Counts


async def notifications(
    info: Info, lane: Lane | None, unread_only: bool, first: int, after: str | None
) -> db.notifications.NotificationPage:
    user_id = signed_in(info)
    if not 1 <= first <= MAX_PAGE:
        raise ClientError(f"first must be 1 to {MAX_PAGE}", ClientCode.BAD_USER_INPUT)
    try:
        return await db.notifications.list_notifications(
            info.context.db,
            user_id,
            lane=lane,
            unread_only=unread_only,
            first=first,
            after=after,
        )
    except ValueError:
        raise ClientError("Invalid cursor", ClientCode.BAD_USER_INPUT) from None


async def counts(info: Info) -> Counts:
    user_id = signed_in(info)
    return Counts(await db.notifications.unread_counts(info.context.db, user_id))


async def notification(info: Info, id: str) -> db.notifications.NotificationRecord | None:
    """One of the viewer's notifications by id; null for anyone else's."""
    user_id = signed_in(info)
    notification_id = parse_id(id, NOTIFICATION)
    if notification_id is None:
        return None
    (record,) = await db.notifications.get_notifications(info.context.db, [notification_id])
    return record if record is not None and record.user_id == user_id else None


async def mark_read(info: Info, ids: list[str]) -> MarkOutcome:
    """Mark the viewer's notifications among `ids` read; the others are listed back as
    not found (someone else's, or no notification at all) and nothing happens to them."""
    user_id = signed_in(info)
    if not 1 <= len(ids) <= MAX_MARK:
        raise ClientError(f"Give 1 to {MAX_MARK} ids", ClientCode.BAD_USER_INPUT)
    parsed = {value: parse_id(value, NOTIFICATION) for value in ids}
    known = [key for key in parsed.values() if key is not None]
    result = await db.notifications.mark_read(
        info.context.db, user_id, known, info.context.clock.now()
    )
    missing = set(result.not_found)
    not_found = [v for v, key in parsed.items() if key is None or key in missing]
    return MarkOutcome(result.marked, not_found, await counts(info))


async def mark_all_read(info: Info, lane: Lane | None) -> tuple[int, Counts]:
    user_id = signed_in(info)
    marked = await db.notifications.mark_all_read(
        info.context.db, user_id, lane, info.context.clock.now()
    )
    return marked, await counts(info)


async def preferences(info: Info) -> Preferences:
    user_id = signed_in(info)
    return await db.notification_prefs.get_preferences(info.context.db, user_id)


@dataclass(frozen=True, slots=True)
class QuietHoursInput:
    start: str
    end: str


def quiet_hours(value: QuietHoursInput | None) -> tuple[time, time] | None:
    """Quiet hours from "HH:MM" strings; INVALID_PREFERENCES naming the bad one."""
    if value is None:
        return None
    return _clock(value.start, "quiet_hours.start"), _clock(value.end, "quiet_hours.end")


def _clock(value: str, field: str) -> time:
    match = _CLOCK.match(value)
    if match is None:
        raise NotificationError(
            "A time of day as HH:MM, 00:00-23:59",
            code=NotificationCode.INVALID_PREFERENCES,
            field=field,
        )
    return time(int(match.group(1)), int(match.group(2)))


async def update_preferences(info: Info, change: Change) -> Preferences:
    user_id = signed_in(info)
    await seen(info)
    return await db.notification_prefs.update_preferences(
        info.context.db, user_id, change, info.context.clock.now()
    )
