"""Each user's notification preferences: read them, change them by deep merge.

A user without a row has every default (`db.notification_rules`). An update names only
what it changes: a switch, a channel's switches, quiet hours, the cap, the digest; the
rest stays as it was (`merge`). It is validated whole before anything is written, so a
refused update changes nothing (`NotificationError` with the offending field).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field, replace
from datetime import datetime, time
from types import EllipsisType
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

import asyncpg
from databases import Database

from db.core import connection, transaction
from db.errors import NotificationCode, NotificationError
from db.notification_rules import Category, Channel, switch

DIGESTS = ("off", "daily", "weekly")


@dataclass(frozen=True, slots=True)
class Preferences:
    """A user's preferences; `switches` holds only their overrides of the defaults."""

    switches: dict[str, dict[str, bool]] = field(default_factory=dict)
    quiet_start: time | None = None
    quiet_end: time | None = None
    time_zone: str = "UTC"
    daily_cap: int | None = None
    digest: str = "off"
    digest_weekday: int = 1  # ISO: Monday is 1

    def enabled(self, channel: Channel, category: Category) -> bool:
        return switch(self.switches, channel, category)

    @classmethod
    def from_row(cls, row: asyncpg.Record | None) -> Preferences:
        if row is None:
            return cls()
        return cls(**dict(row))


@dataclass(frozen=True, slots=True)
class Change:
    """What an update sets; `...` (the default) leaves a field as it is. Quiet hours are
    set or cleared together: `quiet` is (start, end) or None."""

    switches: dict[str, dict[str, bool]] = field(default_factory=dict)
    quiet: tuple[time, time] | EllipsisType | None = ...
    time_zone: str | EllipsisType = ...
    daily_cap: int | EllipsisType | None = ...
    digest: str | EllipsisType = ...
    digest_weekday: int | EllipsisType = ...


_COLUMNS = "switches, quiet_start, quiet_end, time_zone, daily_cap, digest, digest_weekday"


async def get_preferences(database: Database, user_id: uuid.UUID) -> Preferences:
    async with connection(database) as conn:
        row = await conn.fetchrow(
            f"SELECT {_COLUMNS} FROM notify.preferences WHERE user_id = $1", user_id
        )
    return Preferences.from_row(row)


def merge(current: Preferences, change: Change) -> Preferences:
    """`current` with `change` applied: switches merge per channel and per category;
    every other field is replaced only when the change sets it."""
    switches = {channel: dict(values) for channel, values in current.switches.items()}
    for channel, values in change.switches.items():
        switches.setdefault(channel, {}).update(values)
    merged = replace(current, switches=switches)
    if change.quiet is not ...:
        start, end = change.quiet if change.quiet is not None else (None, None)
        merged = replace(merged, quiet_start=start, quiet_end=end)
    for name in ("time_zone", "daily_cap", "digest", "digest_weekday"):
        value = getattr(change, name)
        if value is not ...:
            merged = replace(merged, **{name: value})
    return merged


def validate(preferences: Preferences) -> None:
    """NotificationError naming the first invalid field (nothing is written then)."""
    for channel, values in preferences.switches.items():
        if channel not in Channel.__members__.values():
            raise _invalid(f"Unknown channel {channel!r}", "switches")
        for category in values:
            if category not in Category.__members__.values():
                raise _invalid(f"Unknown category {category!r}", "switches")
    if not _known_zone(preferences.time_zone):
        raise _invalid("Not an IANA time zone, e.g. Europe/Berlin", "time_zone")
    if preferences.quiet_start is not None and preferences.quiet_start == preferences.quiet_end:
        raise _invalid("Quiet hours must start and end at different times", "quiet_hours")
    if preferences.daily_cap is not None and not 1 <= preferences.daily_cap <= 1000:
        raise _invalid("The daily cap must be 1 to 1000, or null for none", "daily_cap")
    if preferences.digest not in DIGESTS:
        raise _invalid("Digest must be off, daily or weekly", "digest")
    if not 1 <= preferences.digest_weekday <= 7:
        raise _invalid("The digest weekday must be 1 (Monday) to 7 (Sunday)", "digest_weekday")


async def update_preferences(
    database: Database, user_id: uuid.UUID, change: Change, now: datetime
) -> Preferences:
    """Apply `change` by deep merge, atomically (the row is locked while merging, so
    two partial updates at once both land)."""
    async with transaction(database) as conn:
        await conn.execute(
            "INSERT INTO notify.preferences (user_id) VALUES ($1) ON CONFLICT DO NOTHING",
            user_id,
        )
        row = await conn.fetchrow(
            f"SELECT {_COLUMNS} FROM notify.preferences WHERE user_id = $1 FOR UPDATE", user_id
        )
        merged = merge(Preferences.from_row(row), change)
        validate(merged)
        await conn.execute(
            """UPDATE notify.preferences
                  SET switches = $2::jsonb, quiet_start = $3, quiet_end = $4, time_zone = $5,
                      daily_cap = $6, digest = $7, digest_weekday = $8, updated_at = $9
                WHERE user_id = $1""",
            user_id,
            merged.switches,
            merged.quiet_start,
            merged.quiet_end,
            merged.time_zone,
            merged.daily_cap,
            merged.digest,
            merged.digest_weekday,
            now,
        )
    return merged


async def set_switch(
    database: Database,
    user_id: uuid.UUID,
    channel: Channel,
    category: Category,
    on: bool,
    now: datetime,
) -> Preferences:
    """Turn one channel x category switch on or off (an unsubscribe link, say)."""
    change = Change(switches={channel.value: {category.value: on}})
    return await update_preferences(database, user_id, change, now)


def _known_zone(name: str) -> bool:
    if name not in _zones():
        return False
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True


_ZONES: frozenset[str] | None = None


def _zones() -> frozenset[str]:
    global _ZONES
    if _ZONES is None:
        _ZONES = frozenset(available_timezones()) | {"UTC"}
    return _ZONES


def _invalid(message: str, field_name: str) -> NotificationError:
    return NotificationError(message, code=NotificationCode.INVALID_PREFERENCES, field=field_name)
