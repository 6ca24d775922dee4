"""Enqueue's rules against a real PostgreSQL: dedupe, switches, quiet hours in the
user's zone (across midnight and daylight-saving changes), the daily cap, money."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, time
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from databases import Database

from db.core import connection, transaction
from db.notification_prefs import Change, update_preferences
from db.notification_rules import Category
from db.notifications import Draft, Recipients, enqueue

NEW_YORK = ZoneInfo("America/New_York")


async def user(database: Database, email: str | None = "fan@example.com") -> uuid.UUID:
    user_id = uuid.uuid4()
    async with transaction(database) as conn:
        await conn.execute("INSERT INTO users.profiles (id, email) VALUES ($1, $2)", user_id, email)
    return user_id


async def notify(
    database: Database, user_id: uuid.UUID, category: Category, now: datetime, key: str = ""
) -> int:
    draft = Draft(category, "Something happened", dedupe_key=key or uuid.uuid4().hex)
    async with transaction(database) as conn:
        return await enqueue(conn, Recipients.one(user_id), draft, now)


async def deliveries(database: Database, user_id: uuid.UUID) -> list[dict[str, Any]]:
    async with connection(database) as conn:
        rows = await conn.fetch(
            """SELECT n.category, o.channel, o.status, o.reason, o.due_at, o.created_at
                 FROM notify.outbox o JOIN notify.notifications n ON n.id = o.notification_id
                WHERE o.user_id = $1 ORDER BY o.id""",
            user_id,
        )
    return [dict(r) for r in rows]


def new_york(*args: int, fold: int = 0) -> datetime:
    return datetime(*args, tzinfo=NEW_YORK, fold=fold).astimezone(UTC)  # type: ignore[misc]


async def test_one_notification_per_dedupe_key(database: Database) -> None:
    fan = await user(database)
    now = datetime(2026, 6, 1, 12, tzinfo=UTC)
    assert await notify(database, fan, Category.ORDER_PAID, now, key="order:1:paid") == 1
    assert await notify(database, fan, Category.ORDER_PAID, now, key="order:1:paid") == 0
    async with connection(database) as conn:
        assert await conn.fetchval("SELECT count(*) FROM notify.notifications") == 1


async def test_channels_follow_the_defaults_and_the_users_switches(database: Database) -> None:
    fan = await user(database)
    no_address = await user(database, email=None)
    now = datetime(2026, 6, 1, 12, tzinfo=UTC)
    await notify(database, fan, Category.ORDER_PAID, now)
    assert [(d["channel"], d["status"], d["reason"]) for d in await deliveries(database, fan)] == [
        ("email", "pending", None),
        ("push", "skipped", "no provider"),
    ]
    await notify(database, no_address, Category.ORDER_PAID, now)
    assert (await deliveries(database, no_address))[0]["reason"] == "no email address"
    # Social is in the inbox and on push by default, not by email; the user turns push off.
    other = await user(database)
    change = Change(switches={"push": {"new_post": False}, "sms": {"new_post": True}})
    await update_preferences(database, other, change, now)
    await notify(database, other, Category.NEW_POST, now)
    assert [(d["channel"], d["status"]) for d in await deliveries(database, other)] == [
        ("sms", "skipped")
    ]


QUIET = Change(
    quiet=(time(23), time(2)),
    time_zone="America/New_York",
    switches={"email": {"new_post": True}},
)


@pytest.mark.parametrize(
    ("local", "due"),
    [
        # Just before quiet hours: at once.
        (new_york(2026, 6, 1, 22, 59), new_york(2026, 6, 1, 22, 59)),
        # Inside, before midnight: the end is tomorrow, 02:00 local.
        (new_york(2026, 6, 1, 23, 30), new_york(2026, 6, 2, 2, 0)),
        # Inside, after midnight: 02:00 the same day.
        (new_york(2026, 6, 2, 1, 59), new_york(2026, 6, 2, 2, 0)),
        # The end itself is outside: at once.
        (new_york(2026, 6, 2, 2, 0), new_york(2026, 6, 2, 2, 0)),
        # Spring forward (2026-03-08): 02:00 does not exist; the first instant after the
        # gap is 03:00 EDT, which is 07:00 UTC.
        (new_york(2026, 3, 8, 1, 30), datetime(2026, 3, 8, 7, 0, tzinfo=UTC)),
        # Fall back (2026-11-01): 01:30 happens twice, both quiet; 02:00 EST is 07:00 UTC.
        (new_york(2026, 11, 1, 1, 30), datetime(2026, 11, 1, 7, 0, tzinfo=UTC)),
        (new_york(2026, 11, 1, 1, 30, fold=1), datetime(2026, 11, 1, 7, 0, tzinfo=UTC)),
    ],
)
async def test_quiet_hours_across_midnight_in_the_users_zone(
    database: Database, local: datetime, due: datetime
) -> None:
    fan = await user(database)
    await update_preferences(database, fan, QUIET, local)
    await notify(database, fan, Category.NEW_POST, local)
    (email,) = [d for d in await deliveries(database, fan) if d["channel"] == "email"]
    assert email["status"] == "pending"
    assert email["due_at"] == due
    quiet = due != local
    assert (email["reason"] == "deferred to the end of quiet hours") is quiet
    # The inbox is never quiet: the notification is there now.
    async with connection(database) as conn:
        assert (
            await conn.fetchval(
                "SELECT created_at FROM notify.notifications WHERE user_id = $1", fan
            )
            == local
        )


async def test_money_is_never_deferred_or_capped(database: Database) -> None:
    fan = await user(database)
    night = new_york(2026, 6, 1, 23, 30)
    change = Change(
        daily_cap=1, quiet=QUIET.quiet, time_zone=QUIET.time_zone, switches=QUIET.switches
    )
    await update_preferences(database, fan, change, night)
    await notify(database, fan, Category.NEW_POST, night)  # uses the one place
    await notify(database, fan, Category.NEW_POST, night)  # over the cap
    await notify(database, fan, Category.ORDER_PAID, night)
    emails = [d for d in await deliveries(database, fan) if d["channel"] == "email"]
    assert [(d["category"], d["status"]) for d in emails] == [
        ("new_post", "pending"),
        ("new_post", "capped"),
        ("order_paid", "pending"),
    ]
    assert emails[1]["reason"] == "over the daily cap"
    assert emails[2]["due_at"] == night and emails[2]["reason"] is None
    async with connection(database) as conn:
        assert (
            await conn.fetchval("SELECT count(*) FROM notify.notifications WHERE user_id = $1", fan)
            == 3
        )  # all three in the inbox


async def test_the_cap_counts_per_local_day(database: Database) -> None:
    fan = await user(database)
    evening = new_york(2026, 6, 1, 20, 0)  # 00:00 UTC the next day
    change = Change(
        daily_cap=1, time_zone="America/New_York", switches={"email": {"new_post": True}}
    )
    await update_preferences(database, fan, change, evening)
    await notify(database, fan, Category.NEW_POST, evening)
    await notify(database, fan, Category.NEW_POST, new_york(2026, 6, 1, 23, 59))
    await notify(database, fan, Category.NEW_POST, new_york(2026, 6, 2, 0, 1))
    statuses = [d["status"] for d in await deliveries(database, fan) if d["channel"] == "email"]
    assert statuses == ["pending", "capped", "pending"]
