"""The email outbox: claim due rows, record what sending them did, list the dead.

Rows are written by `db.notifications.enqueue` (one per notification email) and
`db.digests.schedule_digests` (one per digest); this module moves them on. An email row
goes through these states (`status`, with `locked_until` as the lease)::

    pending ──claim──▶ pending, leased ──sent──▶ sent
       ▲                    │
       │                    ├──failed, attempts < max──▶ pending (due_at = now + backoff)
       │                    ├──failed, attempts = max, or undeliverable──▶ dead
       │                    ├──nothing to send (no address, empty digest)──▶ skipped
       └──lease ran out (the sender stopped, crashed, or released it)──┘

`claim_due` commits the lease before anything is sent, so no transaction is open while
the SMTP server talks (SKIP LOCKED lets several processes claim at once; the committed
lease keeps a claimed row from being claimed again until it runs out). The retry delay
after the n-th failure is `base * 2**(n-1)`, at most `MAX_BACKOFF_SECONDS`.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

import asyncpg
from databases import Database

from db.core import connection, transaction
from db.notifications import NotificationRecord

MAX_BACKOFF_SECONDS = 6 * 3600  # however many attempts are allowed, retry at least this often
ERROR_MAX_LENGTH = 2000


@dataclass(frozen=True, slots=True)
class Claimed:
    """An email row leased to the caller until `locked_until`: a notification's email
    (`notification` set) or a digest (`digest_period` set), for `email` (None: the
    profile has no address any more)."""

    id: int
    user_id: uuid.UUID
    email: str | None
    attempts: int
    locked_until: datetime
    created_at: datetime
    notification: NotificationRecord | None
    digest_period: str | None


@dataclass(frozen=True, slots=True)
class DeadEmail:
    """A dead-lettered email, for admins: what it was, to whom, and why it died."""

    id: int
    user_id: uuid.UUID
    recipient: str | None
    notification_id: uuid.UUID | None
    category: str | None
    title: str | None
    digest_period: str | None
    attempts: int
    reason: str | None
    last_error: str | None
    created_at: datetime
    died_at: datetime


# The row locks (FOR UPDATE SKIP LOCKED) keep two claims running at once apart; the
# lease (`locked_until`), committed with the claim, keeps later claims off a row that
# is being sent. Under READ COMMITTED a row locked by a claim that then commits is
# re-checked against the lease condition before it is locked again, and fails it.
_CLAIM = """
WITH due AS (
    SELECT id FROM notify.outbox
     WHERE status = 'pending' AND channel = 'email' AND due_at <= $1
       AND (locked_until IS NULL OR locked_until <= $1)
     ORDER BY due_at, id
     LIMIT $2
       FOR UPDATE SKIP LOCKED
), claimed AS (
    UPDATE notify.outbox o SET locked_until = $3
      FROM due WHERE o.id = due.id
    RETURNING o.id, o.user_id, o.notification_id, o.digest_period, o.attempts,
              o.locked_until, o.created_at, o.due_at
)
SELECT c.id, c.user_id, c.digest_period, c.attempts, c.locked_until, c.created_at,
       u.email, n.id AS n_id, n.seq AS n_seq, n.category AS n_category, n.lane AS n_lane,
       n.title AS n_title, n.body AS n_body, n.data AS n_data,
       n.created_at AS n_created_at, n.read_at AS n_read_at
  FROM claimed c
  JOIN users.profiles u ON u.id = c.user_id
  LEFT JOIN notify.notifications n ON n.id = c.notification_id
 ORDER BY c.due_at, c.id
"""


async def claim_due(
    database: Database, now: datetime, *, limit: int, lease: timedelta
) -> list[Claimed]:
    """Lease up to `limit` email rows due at `now` (oldest due first) until
    `now + lease`, and commit the lease before returning: send them after this, outside
    any transaction. Rows another process holds are skipped, not waited for."""
    async with transaction(database) as conn:
        rows = await conn.fetch(_CLAIM, now, limit, now + lease)
    return [_claimed(row) for row in rows]


def _claimed(row: asyncpg.Record) -> Claimed:
    notification = None
    if row["n_id"] is not None:
        notification = NotificationRecord(
            id=row["n_id"],
            seq=row["n_seq"],
            user_id=row["user_id"],
            category=row["n_category"],
            lane=row["n_lane"],
            title=row["n_title"],
            body=row["n_body"],
            data=row["n_data"],
            created_at=row["n_created_at"],
            read_at=row["n_read_at"],
        )
    return Claimed(
        id=row["id"],
        user_id=row["user_id"],
        email=row["email"],
        attempts=row["attempts"],
        locked_until=row["locked_until"],
        created_at=row["created_at"],
        notification=notification,
        digest_period=row["digest_period"],
    )


async def mark_sent(database: Database, outbox_id: int, now: datetime) -> None:
    """The SMTP server accepted the message. Recorded even if the lease ran out in the
    meantime: the message is out, and saying so is what prevents another copy."""
    async with transaction(database) as conn:
        await conn.execute(
            """UPDATE notify.outbox SET status = 'sent', sent_at = $2, locked_until = NULL
                WHERE id = $1 AND status = 'pending'""",
            outbox_id,
            now,
        )


async def mark_skipped(database: Database, outbox_id: int, reason: str) -> None:
    """Nothing to send after all (no address any more, a digest with nothing unread)."""
    async with transaction(database) as conn:
        await conn.execute(
            """UPDATE notify.outbox SET status = 'skipped', reason = $2, locked_until = NULL
                WHERE id = $1 AND status = 'pending'""",
            outbox_id,
            reason,
        )


async def mark_failed(
    database: Database,
    outbox_id: int,
    error: str,
    now: datetime,
    *,
    max_attempts: int,
    retry_base_seconds: float,
    undeliverable: str | None = None,
) -> str | None:
    """Count a failed attempt: due again after the backoff, or `dead` once it has
    failed `max_attempts` times, or at once when `undeliverable` says why retrying
    cannot help (e.g. the server refused the address for good). Returns the row's new
    status (None if it was no longer pending). A dead row's `due_at` is when its last
    attempt failed."""
    async with transaction(database) as conn:
        status: str | None = await conn.fetchval(
            """WITH failed AS (
                   SELECT id, attempts + 1 AS attempts,
                          $5::text IS NOT NULL OR attempts + 1 >= $4 AS dies,
                          $3::timestamptz
                              + make_interval(secs => least($6 * power(2, attempts), $7))
                              AS retry_at
                     FROM notify.outbox WHERE id = $1 AND status = 'pending' FOR UPDATE)
               UPDATE notify.outbox o
                  SET attempts = f.attempts, last_error = left($2, $8), locked_until = NULL,
                      status = CASE WHEN f.dies THEN 'dead' ELSE 'pending' END,
                      reason = CASE WHEN NOT f.dies THEN o.reason
                                    ELSE coalesce($5, 'failed ' || f.attempts || ' times')
                               END,
                      due_at = CASE WHEN f.dies THEN $3 ELSE f.retry_at END
                 FROM failed f WHERE o.id = f.id
               RETURNING o.status""",
            outbox_id,
            error,
            now,
            max_attempts,
            undeliverable,
            float(retry_base_seconds),
            float(MAX_BACKOFF_SECONDS),
            ERROR_MAX_LENGTH,
        )
    return status


async def release(database: Database, outbox_ids: list[int]) -> None:
    """Give leased rows back unsent (the lease is running out), due as they were."""
    if not outbox_ids:
        return
    async with transaction(database) as conn:
        await conn.execute(
            """UPDATE notify.outbox SET locked_until = NULL
                WHERE id = ANY($1::bigint[]) AND status = 'pending'""",
            outbox_ids,
        )


async def dead_emails(database: Database, first: int) -> list[DeadEmail]:
    """Dead-lettered emails, the most recently created first (at most `first`)."""
    async with connection(database) as conn:
        rows = await conn.fetch(
            """SELECT o.id, o.user_id, u.email AS recipient, o.notification_id, n.category,
                      n.title, o.digest_period, o.attempts, o.reason, o.last_error,
                      o.created_at, o.due_at AS died_at
                 FROM notify.outbox o
                 JOIN users.profiles u ON u.id = o.user_id
                 LEFT JOIN notify.notifications n ON n.id = o.notification_id
                WHERE o.status = 'dead'
                ORDER BY o.created_at DESC, o.id DESC
                LIMIT $1""",
            first,
        )
    return [DeadEmail(**dict(row)) for row in rows]


async def count_dead(database: Database) -> int:
    """How many emails are dead-lettered (the metric behind the alert)."""
    async with connection(database) as conn:
        count: int = await conn.fetchval("SELECT count(*) FROM notify.outbox WHERE status = 'dead'")
    return count
