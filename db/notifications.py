"""Notifications: enqueue them (every trigger's one way in), and each user's inbox.

`enqueue` runs inside the transaction of the change that causes the notification (an
order paid, a post created), so both commit or neither does. It is one statement
however many recipients: the recipients are a query (`Recipients`), and one
``INSERT ... SELECT`` writes every notification and every delivery beyond the inbox.

The rules it applies, per recipient, in SQL (their owner: `db.notification_rules` for
lanes and default switches, `notify.preferences` for each user's choices):

- **Dedupe**: the same ``dedupe_key`` twice for a user yields one notification.
- **Switches**: a channel switched off for the category gets no delivery; the inbox
  switched off keeps the row (deliveries reference it) but hides it from the inbox.
- **Quiet hours** (start-end in the user's zone; a range may cross midnight): a delivery
  beyond the inbox that falls inside is not dropped but deferred: due at the end of the
  quiet period, computed in the user's zone by PostgreSQL (on a spring-forward day an
  end that does not exist, 02:00 say, is the first instant after the gap). The inbox is
  never quiet.
- **Daily cap** (per user, per local day): once the user's notifications delivered
  beyond the inbox today reach the cap, later ones still land in the inbox, and their
  other deliveries are recorded ``capped``, unsent. Two enqueues racing for one user
  may both pass a cap that had one place left: the cap is a comfort limit, not a quota.
- **Money** (a payment, a refund) and **waitlist offers** (`UNDEFERRED`): never
  deferred, never capped, never counted.
- **Channels**: email is ``pending`` for the outbox job (``skipped``: no email address);
  push and SMS have no provider and are recorded ``skipped``, reason ``no provider``.

One `InboxBatch` message announces the whole enqueue on commit; each process then
looks up which of its own live-inbox subscribers got a notification of the batch.
"""

from __future__ import annotations

import re
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import asyncpg
from databases import Database

from db.channels import InboxBatch, InboxMessage
from db.core import connection, transaction
from db.notification_rules import LANES, OUTBOX_CHANNELS, UNDEFERRED, Category, Channel, Lane
from db.notification_rules import default_switch as _default
from db.notify import publish
from db.pages import decode_seq_cursor, encode_seq_cursor

MAX_PAGE = 100


@dataclass(frozen=True, slots=True)
class Recipients:
    """Who receives a notification: a query whose one column is a user id, with its
    arguments numbered from $1. Duplicates and nulls are ignored."""

    sql: str
    args: tuple[Any, ...] = ()

    @classmethod
    def one(cls, user_id: uuid.UUID) -> Recipients:
        return cls("SELECT $1::uuid", (user_id,))


@dataclass(frozen=True, slots=True)
class Draft:
    """A notification as every recipient gets it."""

    category: Category
    title: str
    dedupe_key: str
    body: str = ""
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class NotificationRecord:
    id: uuid.UUID
    seq: int
    user_id: uuid.UUID
    category: str
    lane: str
    title: str
    body: str
    data: dict[str, Any]
    created_at: datetime
    read_at: datetime | None

    @property
    def cursor(self) -> str:
        return encode_seq_cursor(self.seq)

    @classmethod
    def from_row(cls, row: asyncpg.Record) -> NotificationRecord:
        return cls(**dict(row))


@dataclass(frozen=True, slots=True)
class NotificationPage:
    items: list[NotificationRecord]
    has_next_page: bool


@dataclass(frozen=True, slots=True)
class MarkResult:
    """What a mark-read call did: the ids it marked now (or that were already read),
    and those that name none of the user's notifications (nothing was changed there)."""

    marked: list[uuid.UUID]
    not_found: list[uuid.UUID]


_COLUMNS = "id, seq, user_id, category, lane, title, body, data, created_at, read_at"
_OWN_PARAMS = 11  # the enqueue statement's own parameters; the recipients' follow

_ENQUEUE = """
WITH batch AS (SELECT nextval('notify.batches') AS id),
recipients AS (
    SELECT DISTINCT r.user_id FROM ({recipients}) AS r (user_id) WHERE r.user_id IS NOT NULL
),
settings AS (
    SELECT r.user_id, u.email, coalesce(p.switches, '{{}}'::jsonb) AS switches,
           p.quiet_start, p.quiet_end, p.daily_cap, coalesce(p.time_zone, 'UTC') AS zone,
           $7::timestamptz AT TIME ZONE coalesce(p.time_zone, 'UTC') AS local_now
      FROM recipients r
      JOIN users.profiles u ON u.id = r.user_id
      LEFT JOIN notify.preferences p ON p.user_id = r.user_id
),
created AS (
    INSERT INTO notify.notifications
           (user_id, category, lane, title, body, data, dedupe_key, batch, in_app, created_at)
    SELECT s.user_id, $1, $2, $3, $4, $5::jsonb, $6, (SELECT id FROM batch),
           coalesce((s.switches -> 'in_app' ->> $1)::boolean, $9), $7
      FROM settings s
        ON CONFLICT (user_id, dedupe_key) DO NOTHING
    RETURNING id, user_id
),
wanted AS (
    SELECT c.id, s.*, ch.channel,
           NOT $8 AND s.quiet_start IS NOT NULL AND CASE
               WHEN s.quiet_start < s.quiet_end
               THEN s.local_now::time >= s.quiet_start AND s.local_now::time < s.quiet_end
               ELSE s.local_now::time >= s.quiet_start OR s.local_now::time < s.quiet_end
           END AS quiet,
           NOT $8 AND s.daily_cap IS NOT NULL AND s.daily_cap <= (
               SELECT count(DISTINCT o.notification_id) FROM notify.outbox o
                WHERE o.user_id = s.user_id AND o.local_day = s.local_now::date
                  AND o.counts_to_cap
           ) AS over_cap
      FROM created c
      JOIN settings s ON s.user_id = c.user_id
     CROSS JOIN unnest($10::text[], $11::boolean[]) AS ch (channel, fallback)
     WHERE coalesce((s.switches -> ch.channel ->> $1)::boolean, ch.fallback)
),
delivered AS (
    INSERT INTO notify.outbox (user_id, channel, notification_id, status, reason, local_day,
                               counts_to_cap, due_at, created_at)
    SELECT w.user_id, w.channel, w.id,
           CASE WHEN w.over_cap THEN 'capped'
                WHEN w.channel <> 'email' OR w.email IS NULL THEN 'skipped'
                ELSE 'pending' END,
           CASE WHEN w.over_cap THEN 'over the daily cap'
                WHEN w.channel <> 'email' THEN 'no provider'
                WHEN w.email IS NULL THEN 'no email address'
                WHEN w.quiet THEN 'deferred to the end of quiet hours' END,
           w.local_now::date,
           NOT $8 AND NOT w.over_cap,
           CASE WHEN w.quiet
                THEN (w.local_now::date + w.quiet_end
                      + CASE WHEN w.quiet_end <= w.local_now::time
                             THEN interval '1 day' ELSE interval '0' END) AT TIME ZONE w.zone
                ELSE $7 END,
           $7
      FROM wanted w
    RETURNING 1
)
SELECT (SELECT id FROM batch) AS batch, (SELECT count(*) FROM created) AS created,
       (SELECT count(*) FROM delivered) AS deliveries
"""


async def enqueue(
    conn: asyncpg.Connection, recipients: Recipients, draft: Draft, now: datetime
) -> int:
    """Notify every recipient, in the caller's transaction; the number notified (a
    recipient who already has `draft.dedupe_key` is not notified again)."""
    channels = [c.value for c in OUTBOX_CHANNELS]
    fallbacks = [_default(c, draft.category) for c in OUTBOX_CHANNELS]
    sql = _ENQUEUE.format(recipients=_shifted(recipients.sql, _OWN_PARAMS))
    row = await conn.fetchrow(
        sql,
        draft.category.value,
        LANES[draft.category].value,
        draft.title[:200],
        draft.body[:2000],
        draft.data,
        draft.dedupe_key,
        now,
        draft.category in UNDEFERRED,
        _default(Channel.IN_APP, draft.category),
        channels,
        fallbacks,
        *recipients.args,
    )
    assert row is not None
    if row["created"]:
        await publish(conn, InboxBatch(row["batch"]))
    created: int = row["created"]
    return created


def _shifted(sql: str, offset: int) -> str:
    """`sql` with its parameters $n renumbered to $(n + offset)."""
    return re.sub(r"\$(\d+)", lambda m: f"${int(m.group(1)) + offset}", sql)


# -- the inbox ---------------------------------------------------------------------------


async def list_notifications(
    database: Database,
    user_id: uuid.UUID,
    *,
    lane: Lane | None,
    unread_only: bool,
    first: int,
    after: str | None,
) -> NotificationPage:
    """The user's inbox, newest first, after the cursor `after` (a `ValueError` if it
    is not one of ours)."""
    before = None
    if after is not None:
        before = decode_seq_cursor(after)
        if before is None:
            raise ValueError("not a notification cursor")
    async with connection(database) as conn:
        rows = await conn.fetch(
            f"""SELECT {_COLUMNS} FROM notify.notifications
                 WHERE user_id = $1 AND in_app
                   AND ($2::text IS NULL OR lane = $2)
                   AND (NOT $3 OR read_at IS NULL)
                   AND ($4::bigint IS NULL OR seq < $4)
                 ORDER BY seq DESC LIMIT $5""",
            user_id,
            lane.value if lane else None,
            unread_only,
            before,
            first + 1,
        )
    items = [NotificationRecord.from_row(r) for r in rows]
    return NotificationPage(items[:first], has_next_page=len(items) > first)


async def unread_counts(database: Database, user_id: uuid.UUID) -> dict[Lane, int]:
    """Unread notifications per lane (every lane present, 0 included)."""
    async with connection(database) as conn:
        rows = await conn.fetch(
            """SELECT lane, count(*) AS unread FROM notify.notifications
                WHERE user_id = $1 AND in_app AND read_at IS NULL GROUP BY lane""",
            user_id,
        )
    counts = dict.fromkeys(Lane, 0)
    for row in rows:
        counts[Lane(row["lane"])] = row["unread"]
    return counts


async def get_notifications(
    database: Database, ids: list[uuid.UUID]
) -> list[NotificationRecord | None]:
    """Notifications in the order of `ids`; whose they are is the caller's to check."""
    async with connection(database) as conn:
        rows = await conn.fetch(
            f"SELECT {_COLUMNS} FROM notify.notifications WHERE id = ANY($1::uuid[])", ids
        )
    by_id = {row["id"]: NotificationRecord.from_row(row) for row in rows}
    return [by_id.get(i) for i in ids]


async def batch_deliveries(
    database: Database, batch: int, user_ids: list[uuid.UUID]
) -> list[tuple[NotificationRecord, dict[Lane, int]]]:
    """The notifications of `batch` (shown in the inbox) that went to any of `user_ids`,
    each with its user's unread counts: the live fan-out's two queries per batch, sized
    by the process's subscribers, so no subscriber has to load anything itself."""
    async with connection(database) as conn:
        rows = await conn.fetch(
            f"""SELECT {_COLUMNS} FROM notify.notifications
                 WHERE batch = $1 AND user_id = ANY($2::uuid[]) AND in_app ORDER BY seq""",
            batch,
            user_ids,
        )
        records = [NotificationRecord.from_row(r) for r in rows]
        counted = await conn.fetch(
            """SELECT user_id, lane, count(*) AS unread FROM notify.notifications
                WHERE user_id = ANY($1::uuid[]) AND in_app AND read_at IS NULL
                GROUP BY user_id, lane""",
            list({r.user_id for r in records}),
        )
    counts: dict[uuid.UUID, dict[Lane, int]] = defaultdict(lambda: dict.fromkeys(Lane, 0))
    for row in counted:
        counts[row["user_id"]][Lane(row["lane"])] = row["unread"]
    return [(record, counts[record.user_id]) for record in records]


async def mark_read(
    database: Database, user_id: uuid.UUID, ids: list[uuid.UUID], now: datetime
) -> MarkResult:
    """Mark the user's notifications among `ids` read; others' ids change nothing."""
    async with transaction(database) as conn:
        rows = await conn.fetch(
            """UPDATE notify.notifications SET read_at = coalesce(read_at, $3)
                WHERE user_id = $1 AND id = ANY($2::uuid[]) AND in_app
            RETURNING id, read_at = $3 AS changed""",
            user_id,
            ids,
            now,
        )
        if any(row["changed"] for row in rows):
            await publish(conn, InboxMessage(user_id, "read"))
    mine = {row["id"] for row in rows}
    return MarkResult(
        marked=[i for i in dict.fromkeys(ids) if i in mine],
        not_found=[i for i in dict.fromkeys(ids) if i not in mine],
    )


async def mark_all_read(
    database: Database, user_id: uuid.UUID, lane: Lane | None, now: datetime
) -> int:
    """Mark every unread notification of the user read (of one lane, if given)."""
    async with transaction(database) as conn:
        marked: int = await conn.fetchval(
            """WITH changed AS (
                   UPDATE notify.notifications SET read_at = $3
                    WHERE user_id = $1 AND read_at IS NULL AND in_app
                      AND ($2::text IS NULL OR lane = $2)
                   RETURNING 1)
               SELECT count(*) FROM changed""",
            user_id,
            lane.value if lane else None,
            now,
        )
        if marked:
            await publish(conn, InboxMessage(user_id, "read"))
    return marked
