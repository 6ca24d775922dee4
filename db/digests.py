"""Digest emails: schedule one per user and period, and say what one contains.

A user whose `notify.preferences.digest` is `daily` gets a digest once their local time
(`time_zone`) has reached 08:00; `weekly`, on their ISO `digest_weekday` at or after
08:00. `schedule_digests` writes one outbox row per user and period, named by the
period (`daily:2026-11-30`, `weekly:2026-W48`, in the user's zone), under the outbox's
UNIQUE (user_id, digest_period): running it twice, or from two processes, schedules one.
The outbox sender (`liventix.mail`) then sends it like any email.

A digest carries the user's unread inbox notifications created after their previous
digest (sent, or scheduled and not yet sent) and up to its own creation, but at most one
period back (1 day, 7 days): a user who reads everything in the app gets nothing, and a
digest that died is not repeated forever. Read at send time, so what the user read in
the meantime is left out. The period rule is written twice, in SQL for scheduling and
in Python for the preview (`period_key`); tests hold them to each other.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import asyncpg
from databases import Database

from db.core import connection, transaction
from db.notification_prefs import get_preferences
from db.notifications import NotificationRecord

SEND_AT = time(8, 0)  # local time of the user
PERIOD_LENGTHS = {"daily": timedelta(days=1), "weekly": timedelta(days=7)}
MAX_ITEMS = 50  # listed in one email; the rest is a count ("and 12 more")


@dataclass(frozen=True, slots=True)
class DigestContent:
    """The notifications a digest lists (newest first, at most `MAX_ITEMS`) and how
    many it covers in all."""

    notifications: list[NotificationRecord]
    total: int


@dataclass(frozen=True, slots=True)
class DigestPreview:
    """The user's next digest: its period and when it goes out (None when digests are
    off), and what it would contain if it went out now."""

    frequency: str
    period: str | None
    sends_at: datetime | None
    content: DigestContent


@dataclass(frozen=True, slots=True)
class ScheduleReport:
    scheduled: int  # rows written, this run
    pending: int  # of which to be sent (the others: no email address)


_SCHEDULE = """
WITH scheduled AS (
    INSERT INTO notify.outbox (user_id, channel, digest_period, status, reason, local_day,
                               due_at, created_at)
    SELECT p.user_id, 'email',
           p.digest || ':' || CASE p.digest WHEN 'daily' THEN to_char(l.local_now, 'YYYY-MM-DD')
                                            ELSE to_char(l.local_now, 'IYYY-"W"IW') END,
           CASE WHEN u.email IS NULL THEN 'skipped' ELSE 'pending' END,
           CASE WHEN u.email IS NULL THEN 'no email address' END,
           l.local_now::date, $1, $1
      FROM notify.preferences p
      JOIN users.profiles u ON u.id = p.user_id
     CROSS JOIN LATERAL (SELECT $1::timestamptz AT TIME ZONE p.time_zone AS local_now) l
     WHERE p.digest IN ('daily', 'weekly')
       AND l.local_now::time >= $2
       AND (p.digest = 'daily' OR extract(isodow FROM l.local_now) = p.digest_weekday)
        ON CONFLICT DO NOTHING
    RETURNING status
)
SELECT count(*) AS scheduled, count(*) FILTER (WHERE status = 'pending') AS pending
  FROM scheduled
"""

# $1 user, $2 the digest's end (its creation, or now), $3 the period's length, $4 the
# digest's own row (None for a preview): the previous digest is the latest other one.
_CONTENT = f"""
SELECT id, seq, user_id, category, lane, title, body, data, created_at, read_at,
       count(*) OVER () AS total
  FROM notify.notifications
 WHERE user_id = $1 AND in_app AND read_at IS NULL
   AND created_at <= $2
   AND created_at > greatest($2 - $3::interval, coalesce(
        (SELECT max(o.created_at) FROM notify.outbox o
          WHERE o.user_id = $1 AND o.digest_period IS NOT NULL
            AND o.status IN ('sent', 'pending') AND o.created_at <= $2
            AND o.id IS DISTINCT FROM $4::bigint),
        '-infinity'))
 ORDER BY seq DESC
 LIMIT {MAX_ITEMS}
"""


async def schedule_digests(database: Database, now: datetime) -> ScheduleReport:
    """Write the digest row of every user whose digest is due at `now` and not yet
    written for its period; one statement for all users."""
    async with transaction(database) as conn:
        row = await conn.fetchrow(_SCHEDULE, now, SEND_AT)
    assert row is not None
    return ScheduleReport(scheduled=row["scheduled"], pending=row["pending"])


async def digest_content(database: Database, outbox_id: int) -> DigestContent:
    """What the digest of outbox row `outbox_id` contains, read now."""
    async with connection(database) as conn:
        row = await conn.fetchrow(
            """SELECT user_id, digest_period, created_at FROM notify.outbox
                WHERE id = $1 AND digest_period IS NOT NULL""",
            outbox_id,
        )
        if row is None:
            raise LookupError(f"outbox row {outbox_id} is not a digest")
        frequency = row["digest_period"].partition(":")[0]
        length = PERIOD_LENGTHS[frequency]
        return await _content(conn, row["user_id"], row["created_at"], length, outbox_id)


async def digest_preview(database: Database, user_id: uuid.UUID, now: datetime) -> DigestPreview:
    """What the user's next digest would contain if it were sent at `now`, and when
    it goes out. With digests off: no period and nothing."""
    preferences = await get_preferences(database, user_id)
    frequency = preferences.digest
    if frequency not in PERIOD_LENGTHS:
        return DigestPreview(frequency, None, None, DigestContent([], 0))
    zone = ZoneInfo(preferences.time_zone)
    day = first_send_day(frequency, preferences.digest_weekday, now.astimezone(zone).date())
    async with connection(database) as conn:
        written = await conn.fetchval(
            "SELECT 1 FROM notify.outbox WHERE user_id = $1 AND digest_period = $2",
            user_id,
            period_key(frequency, day),
        )
        if written:  # this period's is out (or going): the next one
            day += PERIOD_LENGTHS[frequency]
        content = await _content(conn, user_id, now, PERIOD_LENGTHS[frequency], None)
    sends_at = datetime.combine(day, SEND_AT, tzinfo=zone)
    return DigestPreview(frequency, period_key(frequency, day), sends_at, content)


def first_send_day(frequency: str, weekday: int, today: date) -> date:
    """The first day from `today` on whose 08:00 a digest of `frequency` is sent
    (today itself even after 08:00: it is due, if not yet written)."""
    if frequency == "daily":
        return today
    return today + timedelta(days=(weekday - today.isoweekday()) % 7)


def period_key(frequency: str, day: date) -> str:
    """The period a digest sent on local `day` belongs to (as the scheduling SQL
    writes it): `daily:2026-11-30`, `weekly:2026-W48` (ISO week)."""
    if frequency == "daily":
        return f"daily:{day.isoformat()}"
    year, week, _ = day.isocalendar()
    return f"weekly:{year}-W{week:02d}"


async def _content(
    conn: asyncpg.Connection,
    user_id: uuid.UUID,
    end: datetime,
    length: timedelta,
    outbox_id: int | None,
) -> DigestContent:
    rows = await conn.fetch(_CONTENT, user_id, end, length, outbox_id)
    total = rows[0]["total"] if rows else 0
    items = [NotificationRecord(**{k: v for k, v in row.items() if k != "total"}) for row in rows]
    return DigestContent(items, total)
