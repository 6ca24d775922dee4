"""User profiles: the row a user gets the first time the API sees their token."""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import asyncpg
from databases import Database

from db.channels import FeedMessage
from db.core import connection, retry_transient, transaction
from db.errors import ProfileCode, ProfileError
from db.notify import publish


@dataclass(frozen=True, slots=True)
class Profile:
    id: uuid.UUID
    role: str
    display_name: str
    created_at: datetime
    handle: str | None = None


_COLUMNS = "id, role, display_name, created_at, handle"
HANDLE = re.compile(r"[A-Za-z0-9_]{3,30}")


ROLES = ("user", "organizer", "admin", "partner")


def _stored_role(role: str) -> str:
    return role if role in ROLES else "user"


async def ensure_profile(database: Database, user_id: uuid.UUID, role: str) -> Profile:
    """Create the profile on first sight; keep its role in step with the token's."""
    async with transaction(database) as conn:
        row = await conn.fetchrow(
            f"""INSERT INTO users.profiles (id, role) VALUES ($1, $2)
                ON CONFLICT (id) DO UPDATE
                   SET role = EXCLUDED.role, last_seen_at = now()
                RETURNING {_COLUMNS}""",
            user_id,
            _stored_role(role),
        )
    assert row is not None
    return Profile(**dict(row))


@retry_transient
async def ensure_profiles(database: Database, users: Sequence[tuple[uuid.UUID, str]]) -> None:
    """`ensure_profile` for many users in one statement (each user id at most once).

    Rows are written in id order, so two processes writing overlapping sets lock them
    in the same order; a deadlock is still retried (`retry_transient`).
    """
    ordered = sorted(users)
    async with transaction(database) as conn:
        await conn.execute(
            """INSERT INTO users.profiles (id, role)
               SELECT * FROM unnest($1::uuid[], $2::text[])
               ON CONFLICT (id) DO UPDATE SET role = EXCLUDED.role, last_seen_at = now()""",
            [user_id for user_id, _ in ordered],
            [_stored_role(role) for _, role in ordered],
        )


async def get_profiles(database: Database, ids: list[uuid.UUID]) -> list[Profile | None]:
    """Profiles in the order of `ids` (a DataLoader batch: one query)."""
    async with connection(database) as conn:
        rows = await conn.fetch(
            f"SELECT {_COLUMNS} FROM users.profiles WHERE id = ANY($1::uuid[])", ids
        )
    by_id = {row["id"]: Profile(**dict(row)) for row in rows}
    return [by_id.get(i) for i in ids]


async def update_display_name(database: Database, user_id: uuid.UUID, name: str) -> Profile:
    """Rename a user; announced on the feeds they posted in, whose pages show the name."""
    async with transaction(database) as conn:
        row = await conn.fetchrow(
            f"UPDATE users.profiles SET display_name = $2 WHERE id = $1 RETURNING {_COLUMNS}",
            user_id,
            name,
        )
        await _announce_author(conn, user_id)
    assert row is not None
    return Profile(**dict(row))


async def set_handle(database: Database, user_id: uuid.UUID, handle: str | None) -> Profile:
    """Give the user the @handle others mention them by (None: none). Unique whatever
    its case: the database arbitrates, so two users racing for one handle cannot both
    get it."""
    if handle is not None and not HANDLE.fullmatch(handle):
        raise ProfileError(
            "A handle is 3-30 letters, digits or underscores",
            code=ProfileCode.HANDLE_INVALID,
            field="handle",
        )
    try:
        async with transaction(database) as conn:
            row = await conn.fetchrow(
                f"UPDATE users.profiles SET handle = $2 WHERE id = $1 RETURNING {_COLUMNS}",
                user_id,
                handle,
            )
            await _announce_author(conn, user_id)
    except asyncpg.UniqueViolationError:
        raise ProfileError(
            "That handle is taken", code=ProfileCode.HANDLE_TAKEN, field="handle"
        ) from None
    assert row is not None
    return Profile(**dict(row))


async def _announce_author(conn: asyncpg.Connection, user_id: uuid.UUID) -> None:
    """Feed pages show their authors and their events' organizers: tell the feeds the
    user posted in and those of the events they organize."""
    events = await conn.fetch(
        """SELECT event_id FROM feed.posts WHERE author_id = $1 AND deleted_at IS NULL
           UNION SELECT id FROM events.events WHERE organizer_id = $1""",
        user_id,
    )
    for event in events:
        await publish(conn, FeedMessage(event["event_id"], "author", user_id=user_id))
