"""Digests: scheduled at 08:00 in each user's zone, once per period, with the unread
notifications since the previous digest; sent over SMTP by the outbox sender; and the
preview of the next one. The clock is moved, never slept on.

2026-11-30 is a Monday (ISO week 49); New York is UTC-5 then, Tokyo UTC+9.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from databases import Database

import db.digests
from db.core import create_database
from db.notification_prefs import Change, update_preferences
from liventix.auth import Role
from liventix.clock import FrozenClock
from tests.mail_support import (
    Runner,
    SmtpServer,
    add_notification,
    add_user,
    digest_rows,
    digest_tick,
    mail_settings,
    runner,
    send_tick,
    smtp,
)
from tests.support import GraphQLClient

__all__ = ["mail_settings", "runner", "smtp"]  # the fixtures, re-exported for pytest

MONDAY = datetime(2026, 11, 30, tzinfo=UTC)
PREVIEW = """
{
  notificationDigestPreview {
    frequency period sendsAt total
    notifications { id title createdAt readAt }
  }
}
"""


def at(day: datetime, hours: float) -> datetime:
    return day + timedelta(hours=hours)


async def digest_user(
    database: Database,
    now: datetime,
    *,
    zone: str = "America/New_York",
    digest: str = "daily",
    weekday: int = 1,
    email_address: str | None = "fan@example.com",
) -> uuid.UUID:
    user_id = await add_user(database, email_address)
    change = Change(digest=digest, time_zone=zone, digest_weekday=weekday)
    await update_preferences(database, user_id, change, now)
    return user_id


def digests_to(smtp: SmtpServer, address: str = "fan@example.com") -> list[Any]:
    return [m for m in smtp.mailbox.messages if m["To"] == address and "digest" in m["Message-ID"]]


def listed_titles(message: Any) -> str:
    text = message.get_body(("plain",))
    assert text is not None
    content: str = text.get_content()
    return content


async def test_a_daily_digest_waits_for_08_00_in_the_users_zone(
    runner: Runner, smtp: SmtpServer, clock: FrozenClock
) -> None:
    clock.set(at(MONDAY, 12.5))  # 07:30 in New York, 21:30 in Tokyo
    new_york = await digest_user(runner.db, clock.now(), email_address="ny@example.com")
    tokyo = await digest_user(
        runner.db, clock.now(), zone="Asia/Tokyo", email_address="tokyo@example.com"
    )
    for user_id in (new_york, tokyo):
        await add_notification(runner.db, user_id, clock.now() - timedelta(hours=1))

    assert (await digest_tick(runner))["scheduled"] == 1
    [row] = await digest_rows(runner.db)
    assert (row["user_id"], row["digest_period"], row["status"]) == (
        tokyo,
        "daily:2026-11-30",
        "pending",
    )
    assert (await send_tick(runner))["sent"] == 1
    assert len(digests_to(smtp, "tokyo@example.com")) == 1
    assert digests_to(smtp, "ny@example.com") == []  # not yet 08:00 there

    clock.set(at(MONDAY, 13) - timedelta(seconds=1))  # 07:59:59 in New York
    assert (await digest_tick(runner))["scheduled"] == 0
    clock.set(at(MONDAY, 13))  # 08:00 in New York
    assert (await digest_tick(runner))["scheduled"] == 1
    await send_tick(runner)
    [message] = digests_to(smtp, "ny@example.com")
    assert message["Message-ID"] == f"<digest.daily.2026-11-30.{new_york}@liventix.test>"
    assert message["Subject"] == "Your daily digest: 1 unread notification"
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert message.get_body(("html",)) is not None


async def test_a_digest_run_twice_for_the_same_period_sends_one_email(
    runner: Runner, smtp: SmtpServer, clock: FrozenClock, database_url: str
) -> None:
    clock.set(at(MONDAY, 14))  # 09:00 in New York
    user_id = await digest_user(runner.db, clock.now())
    await add_notification(runner.db, user_id, clock.now() - timedelta(hours=2))

    # Two processes schedule at the same instant, then again later the same day.
    pools = [create_database(database_url, min_size=1, max_size=2) for _ in range(2)]
    for pool in pools:
        await pool.connect()
    try:
        reports = await asyncio.gather(
            *(db.digests.schedule_digests(pool, clock.now()) for pool in pools)
        )
    finally:
        for pool in pools:
            await pool.disconnect()
    assert sorted(r.scheduled for r in reports) == [0, 1]
    await send_tick(runner)
    await send_tick(runner)
    clock.advance(5 * 3600)
    await digest_tick(runner)
    await send_tick(runner)

    assert len(digests_to(smtp)) == 1
    assert len(await digest_rows(runner.db)) == 1


async def test_a_digest_lists_the_unread_inbox_since_the_previous_digest(
    runner: Runner, smtp: SmtpServer, clock: FrozenClock
) -> None:
    clock.set(at(MONDAY, 13))  # 08:00 in New York
    now = clock.now()
    user_id = await digest_user(runner.db, now)
    await add_notification(runner.db, user_id, now - timedelta(days=2), title="Too old")
    await add_notification(
        runner.db, user_id, now - timedelta(hours=3), title="Already read", read_at=now
    )
    await add_notification(
        runner.db, user_id, now - timedelta(hours=3), title="Inbox off", in_app=False
    )
    await add_notification(runner.db, user_id, now - timedelta(hours=5), title="First unread")
    await add_notification(runner.db, user_id, now - timedelta(hours=1), title="Second unread")

    await digest_tick(runner)
    await send_tick(runner)
    [monday] = digests_to(smtp)
    listed = listed_titles(monday)
    assert "First unread" in listed and "Second unread" in listed
    assert listed.index("Second unread") < listed.index("First unread")  # newest first
    for absent in ("Too old", "Already read", "Inbox off"):
        assert absent not in listed
    assert monday["Subject"] == "Your daily digest: 2 unread notifications"

    clock.advance(3600)
    await add_notification(runner.db, user_id, clock.now(), title="After Monday's digest")
    clock.set(at(MONDAY, 24 + 13))  # Tuesday, 08:00 in New York
    await digest_tick(runner)
    await send_tick(runner)
    [_, tuesday] = digests_to(smtp)
    assert tuesday["Message-ID"] == f"<digest.daily.2026-12-01.{user_id}@liventix.test>"
    listed = listed_titles(tuesday)
    assert "After Monday's digest" in listed
    assert "First unread" not in listed and "Second unread" not in listed


async def test_a_digest_with_nothing_unread_is_recorded_not_sent(
    runner: Runner, smtp: SmtpServer, clock: FrozenClock
) -> None:
    clock.set(at(MONDAY, 13))
    await digest_user(runner.db, clock.now())
    await digest_tick(runner)
    assert (await send_tick(runner))["skipped"] == 1
    [row] = await digest_rows(runner.db)
    assert (row["status"], row["reason"]) == ("skipped", "nothing unread")
    assert smtp.mailbox.received == []


async def test_a_user_without_an_address_gets_a_skipped_digest_once(
    runner: Runner, smtp: SmtpServer, clock: FrozenClock
) -> None:
    clock.set(at(MONDAY, 13))
    user_id = await digest_user(runner.db, clock.now(), email_address=None)
    await add_notification(runner.db, user_id, clock.now())
    assert (await digest_tick(runner)) == {"scheduled": 1, "pending": 0}
    assert (await digest_tick(runner)) == {"scheduled": 0, "pending": 0}
    [row] = await digest_rows(runner.db)
    assert (row["status"], row["reason"]) == ("skipped", "no email address")
    assert (await send_tick(runner))["claimed"] == 0


async def test_a_weekly_digest_goes_out_on_its_iso_weekday_at_08_00(
    runner: Runner, smtp: SmtpServer, clock: FrozenClock
) -> None:
    clock.set(at(MONDAY, 9))
    user_id = await digest_user(runner.db, clock.now(), zone="UTC", digest="weekly", weekday=3)
    await add_notification(runner.db, user_id, clock.now())
    for moment in (at(MONDAY, 9), at(MONDAY, 24 + 23), at(MONDAY, 48 + 7.99)):
        clock.set(moment)  # Monday, Tuesday night, Wednesday 07:59
        assert (await digest_tick(runner))["scheduled"] == 0
    clock.set(at(MONDAY, 48 + 8))  # Wednesday 08:00
    assert (await digest_tick(runner))["scheduled"] == 1
    await send_tick(runner)
    [message] = digests_to(smtp)
    assert message["Message-ID"] == f"<digest.weekly.2026-W49.{user_id}@liventix.test>"
    assert message["Subject"] == "Your weekly digest: 1 unread notification"


@pytest.mark.parametrize(
    ("zone", "frequency", "weekday", "moment"),
    [
        # An ISO year that is not the calendar year: Friday 2027-01-01 is in 2026-W53.
        ("UTC", "weekly", 5, datetime(2027, 1, 1, 8, tzinfo=UTC)),
        # Monday 2029-12-31 is in 2030-W01.
        ("UTC", "weekly", 1, datetime(2029, 12, 31, 9, tzinfo=UTC)),
        # Still Sunday the 31st in Los Angeles when it is the 1st in UTC.
        ("America/Los_Angeles", "daily", 1, datetime(2027, 1, 1, 7, tzinfo=UTC)),
        # 08:00 on the spring-forward day in New York (EDT from 02:00 that morning).
        ("America/New_York", "daily", 1, datetime(2026, 3, 8, 12, tzinfo=UTC)),
    ],
)
async def test_the_scheduled_period_is_the_one_the_preview_names(
    database: Database,
    clock: FrozenClock,
    zone: str,
    frequency: str,
    weekday: int,
    moment: datetime,
) -> None:
    """The period rule is written in SQL (scheduling) and Python (preview): they agree,
    across ISO years and time zones."""
    clock.set(moment)
    user_id = await digest_user(database, moment, zone=zone, digest=frequency, weekday=weekday)
    preview = await db.digests.digest_preview(database, user_id, moment)
    assert (await db.digests.schedule_digests(database, moment)).scheduled == 1
    [row] = await digest_rows(database)
    assert row["digest_period"] == preview.period
    assert preview.sends_at is not None and preview.sends_at <= moment


def test_period_keys_and_send_days() -> None:
    assert db.digests.period_key("daily", date(2026, 11, 30)) == "daily:2026-11-30"
    assert db.digests.period_key("weekly", date(2027, 1, 1)) == "weekly:2026-W53"
    monday = date(2026, 11, 30)
    assert db.digests.first_send_day("daily", 1, monday) == monday
    assert db.digests.first_send_day("weekly", 1, monday) == monday
    assert db.digests.first_send_day("weekly", 3, monday) == date(2026, 12, 2)
    assert db.digests.first_send_day("weekly", 7, monday) == date(2026, 12, 6)


async def test_the_preview_shows_what_the_next_digest_would_contain(
    runner: Runner,
    smtp: SmtpServer,
    clock: FrozenClock,
    client: GraphQLClient,
    token: Any,
) -> None:
    clock.set(at(MONDAY, 12))  # 07:00 in New York
    user_id = await digest_user(runner.db, clock.now())
    viewer = token(Role.USER, user_id)
    old = await add_notification(runner.db, user_id, clock.now() - timedelta(hours=2), title="One")
    new = await add_notification(runner.db, user_id, clock.now() - timedelta(hours=1), title="Two")

    preview = (await client(PREVIEW, token=viewer))["notificationDigestPreview"]
    assert preview["frequency"] == "DAILY"
    assert preview["period"] == "daily:2026-11-30"
    assert datetime.fromisoformat(preview["sendsAt"]) == at(MONDAY, 13)
    assert preview["total"] == 2
    assert [n["title"] for n in preview["notifications"]] == ["Two", "One"]
    ids = [n["id"] for n in preview["notifications"]]
    node = await client(
        "query ($ids: [ID!]!) { nodes(ids: $ids) { id } }", {"ids": ids}, token=viewer
    )
    assert [n["id"] for n in node["nodes"]] == ids  # the inbox's own Notification ids
    direct = await db.digests.digest_preview(runner.db, user_id, clock.now())
    assert [n.id for n in direct.content.notifications] == [new, old]

    clock.set(at(MONDAY, 13))  # the digest goes out with exactly those
    await digest_tick(runner)
    await send_tick(runner)
    [message] = digests_to(smtp)
    assert "Two" in listed_titles(message) and "One" in listed_titles(message)

    preview = (await client(PREVIEW, token=viewer))["notificationDigestPreview"]
    assert preview["period"] == "daily:2026-12-01"  # today's is out: tomorrow's is next
    assert preview["total"] == 0 and preview["notifications"] == []

    clock.advance(60)
    await add_notification(runner.db, user_id, clock.now(), title="Three")
    preview = (await client(PREVIEW, token=viewer))["notificationDigestPreview"]
    assert [n["title"] for n in preview["notifications"]] == ["Three"]


async def test_the_preview_is_empty_with_digests_off_and_needs_a_viewer(
    database: Database, clock: FrozenClock, client: GraphQLClient, token: Any
) -> None:
    user_id = await add_user(database)
    await add_notification(database, user_id, clock.now())
    preview = (await client(PREVIEW, token=token(Role.USER, user_id)))["notificationDigestPreview"]
    assert preview == {
        "frequency": "OFF",
        "period": None,
        "sendsAt": None,
        "total": 0,
        "notifications": [],
    }
    response = await client.post(PREVIEW)
    assert response.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


async def test_a_digest_reaches_back_at_most_one_period(
    database: Database, clock: FrozenClock
) -> None:
    """Without a previous digest, a daily one covers the last day, a weekly one the
    last week."""
    clock.set(at(MONDAY, 13))
    daily = await digest_user(database, clock.now())
    weekly = await digest_user(database, clock.now(), digest="weekly")
    for user_id in (daily, weekly):
        for hours in (24 * 8, 24 * 6, 25, 23):  # oldest first, as they would arrive
            await add_notification(
                database, user_id, clock.now() - timedelta(hours=hours), title=f"{hours}h ago"
            )
    daily_preview = await db.digests.digest_preview(database, daily, clock.now())
    weekly_preview = await db.digests.digest_preview(database, weekly, clock.now())
    assert [n.title for n in daily_preview.content.notifications] == ["23h ago"]
    assert [n.title for n in weekly_preview.content.notifications] == [
        "23h ago",
        "25h ago",
        "144h ago",
    ]
