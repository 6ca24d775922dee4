"""Posts in an event's feed: create, soft-delete, and keyset-paginated reads.

Every write is one transaction that locks what it checks and announces itself with
`pg_notify` on ``feed:<event id>`` (op ``created`` / ``deleted``), so a subscriber
hears of a post only once it is committed. Reads never show deleted posts.

Pages are ordered by `feed.posts.seq` (unique, assigned at insert): a cursor is a seq,
and "older than the cursor" is `seq < $cursor`, which stays correct while new posts
arrive (they get higher seqs and never shift a later page). A page is ONE statement:
posts joined with their authors, so the caller can prime its author loader and
resolve a page of any size without further queries.

Who may read an event's feed is `db.events.event_visible` (a draft's feed is for those
who manage the event), used here as SQL (`event_visible_sql`) and in Python.

Errors: `FeedError` with a `FeedCode` (see `db.errors`): the content rules (see
`validate_post`), EVENT_NOT_FOUND, POST_NOT_FOUND and NOT_ALLOWED.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

import asyncpg
from databases import Database

from db import notification_triggers
from db.channels import FeedMessage
from db.core import connection, transaction
from db.errors import FeedCode, FeedError
from db.events import COLUMNS as EVENT_COLUMNS
from db.events import EventRecord, event_visible, event_visible_sql
from db.notify import publish
from db.users import Profile

MAX_TEXT_CHARS = 2000
MAX_MEDIA_ITEMS = 10
MAX_VIDEO_SECONDS = 30.0
MAX_URL_CHARS = 2048
MAX_MEDIA_PIXELS_SIDE = 100_000
MAX_PAGE_SIZE = 50
MEDIA_KINDS = ("image", "video")


@dataclass(frozen=True, slots=True)
class MediaItem:
    """One attachment as stored in `feed.posts.media` (jsonb), kind lower-case.

    The stored key ``durationSeconds`` is the jsonb format of existing rows, not a
    GraphQL name: it stays as it is.
    """

    url: str
    kind: str
    width: int
    height: int
    duration_seconds: float | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "url": self.url,
            "kind": self.kind,
            "width": self.width,
            "height": self.height,
            "durationSeconds": self.duration_seconds,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> MediaItem:
        return cls(
            url=data["url"],
            kind=data["kind"],
            width=data["width"],
            height=data["height"],
            duration_seconds=data.get("durationSeconds"),
        )


@dataclass(frozen=True, slots=True)
class PostRecord:
    id: uuid.UUID
    seq: int
    event_id: uuid.UUID
    author_id: uuid.UUID
    text: str
    media: tuple[MediaItem, ...]
    created_at: datetime


@dataclass(frozen=True, slots=True)
class FeedRow:
    """A post with its author and event, as one page statement returns them."""

    post: PostRecord
    author: Profile
    event: EventRecord

    def visible_to(self, viewer_id: uuid.UUID | None, is_admin: bool) -> bool:
        """Whether the viewer may see the post: its event is visible to them."""
        return event_visible(self.event, viewer_id, is_admin)


@dataclass(frozen=True, slots=True)
class FeedPage:
    rows: list[FeedRow]
    has_next: bool


_POST_COLUMNS = "p.id, p.seq, p.event_id, p.author_id, p.text, p.media, p.created_at"
_AUTHOR_COLUMNS = (
    "a.role AS a_role, a.display_name AS a_display_name, a.created_at AS a_created_at, "
    "a.handle AS a_handle"
)
_EVENT_FIELDS = tuple(f.name for f in fields(EventRecord))
_EVENT_COLUMNS = ", ".join(f"e.{name} AS e_{name}" for name in _EVENT_FIELDS)
# Posts with author and event: every read below selects these columns.
_ROW_COLUMNS = f"{_POST_COLUMNS}, {_AUTHOR_COLUMNS}, {_EVENT_COLUMNS}"
_ROW_JOINS = """JOIN users.profiles a ON a.id = p.author_id
                  JOIN events.events e ON e.id = p.event_id"""


def _post(row: asyncpg.Record) -> PostRecord:
    return PostRecord(
        id=row["id"],
        seq=row["seq"],
        event_id=row["event_id"],
        author_id=row["author_id"],
        text=row["text"],
        media=tuple(MediaItem.from_json(m) for m in row["media"]),
        created_at=row["created_at"],
    )


def _feed_row(row: asyncpg.Record) -> FeedRow:
    author = Profile(
        id=row["author_id"],
        role=row["a_role"],
        display_name=row["a_display_name"],
        created_at=row["a_created_at"],
        handle=row["a_handle"],
    )
    event = EventRecord(**{name: row[f"e_{name}"] for name in _EVENT_FIELDS})
    return FeedRow(post=_post(row), author=author, event=event)


# -- content rules -------------------------------------------------------------------


def validate_post(text: str, media: Sequence[MediaItem]) -> tuple[str, tuple[MediaItem, ...]]:
    """The trimmed text and the media, or `FeedError` naming the offending field.

    Rules: text at most 2,000 characters after trimming, not empty unless media is
    given; at most 10 media items; each an https URL with a host, a known kind,
    positive dimensions, and for videos a duration of at most 30 seconds.
    """
    text = text.strip()
    if len(text) > MAX_TEXT_CHARS:
        raise FeedError(
            f"Text is {len(text)} characters; at most {MAX_TEXT_CHARS} are allowed",
            code=FeedCode.TEXT_TOO_LONG,
            field="text",
        )
    if "\x00" in text:  # PostgreSQL text cannot hold NUL; refuse it as bad input
        raise FeedError("Text contains a NUL character", code=FeedCode.TEXT_INVALID, field="text")
    if not text and not media:
        raise FeedError("Write something or attach media", code=FeedCode.EMPTY_POST, field="text")
    if len(media) > MAX_MEDIA_ITEMS:
        raise FeedError(
            f"{len(media)} media items; at most {MAX_MEDIA_ITEMS} are allowed",
            code=FeedCode.TOO_MANY_MEDIA,
            field="media",
        )
    for index, item in enumerate(media):
        _validate_media(index, item)
    return text, tuple(media)


def _validate_media(index: int, item: MediaItem) -> None:
    where = f"media[{index}]"
    if not _is_https_url(item.url):
        raise FeedError(
            f"Media {index + 1}: the URL must be an https:// address",
            code=FeedCode.MEDIA_URL_INVALID,
            field=f"{where}.url",
        )
    if item.kind not in MEDIA_KINDS:
        raise FeedError(
            f"Media {index + 1}: unknown kind", code=FeedCode.MEDIA_INVALID, field=f"{where}.kind"
        )
    for name, value in (("width", item.width), ("height", item.height)):
        if not 1 <= value <= MAX_MEDIA_PIXELS_SIDE:
            raise FeedError(
                f"Media {index + 1}: {name} must be between 1 and {MAX_MEDIA_PIXELS_SIDE}",
                code=FeedCode.MEDIA_INVALID,
                field=f"{where}.{name}",
            )
    duration = item.duration_seconds
    if duration is not None and not 0 <= duration < float("inf"):
        raise FeedError(
            f"Media {index + 1}: duration must be a non-negative number of seconds",
            code=FeedCode.MEDIA_INVALID,
            field=f"{where}.duration_seconds",
        )
    if item.kind == "video":
        if duration is None:
            raise FeedError(
                f"Media {index + 1}: a video needs its duration",
                code=FeedCode.MEDIA_INVALID,
                field=f"{where}.duration_seconds",
            )
        if duration > MAX_VIDEO_SECONDS:
            raise FeedError(
                f"Media {index + 1}: the video is {duration:g} s long; "
                f"at most {MAX_VIDEO_SECONDS:g} s are allowed",
                code=FeedCode.VIDEO_TOO_LONG,
                field=f"{where}.duration_seconds",
            )


def _is_https_url(url: str) -> bool:
    if len(url) > MAX_URL_CHARS or any(c.isspace() or ord(c) < 32 for c in url):
        return False
    try:
        parts = urlsplit(url)
    except ValueError:
        return False
    return parts.scheme == "https" and bool(parts.hostname)


# -- writes --------------------------------------------------------------------------


async def create_post(
    database: Database,
    *,
    author_id: uuid.UUID,
    author_is_admin: bool,
    event_id: uuid.UUID,
    text: str,
    media: Sequence[MediaItem],
    now: datetime,
) -> FeedRow:
    """Validate, check the event accepts posts from the author, insert, announce.

    Published events accept posts from anyone signed in; drafts only from their
    organizer (or an admin) and are otherwise reported as not found; canceled events
    accept none. The author's profile row must exist (the post references it).
    """
    text, items = validate_post(text, media)
    async with transaction(database) as conn:
        found = await conn.fetchrow(
            f"SELECT {EVENT_COLUMNS} FROM events.events WHERE id = $1 FOR SHARE", event_id
        )
        event = EventRecord.from_row(found) if found is not None else None
        if event is None or not event_visible(event, author_id, author_is_admin):
            raise FeedError("No such event", code=FeedCode.EVENT_NOT_FOUND, field="event_id")
        if event.status == "canceled":
            raise FeedError("The event is canceled", code=FeedCode.NOT_ALLOWED, field="event_id")
        row = await conn.fetchrow(
            f"""WITH p AS (
                    INSERT INTO feed.posts (event_id, author_id, text, media, created_at)
                    VALUES ($1, $2, $3, $4, $5)
                    RETURNING id, seq, event_id, author_id, text, media, created_at)
                SELECT {_ROW_COLUMNS} FROM p {_ROW_JOINS}""",
            event_id,
            author_id,
            text,
            [item.to_json() for item in items],
            now,
        )
        assert row is not None
        result = _feed_row(row)
        await publish(
            conn, FeedMessage(event_id, "created", post_id=result.post.id, seq=result.post.seq)
        )
        await notification_triggers.post_created(
            conn,
            post_id=result.post.id,
            event_id=event_id,
            author_id=author_id,
            text=text,
            now=now,
        )
    return result


async def delete_post(
    database: Database,
    *,
    post_id: uuid.UUID,
    viewer_id: uuid.UUID,
    viewer_is_admin: bool,
    now: datetime,
) -> PostRecord:
    """Soft-delete a post (author, the event's organizer or an admin) and announce it.

    Raises `FeedError` with POST_NOT_FOUND for unknown or already deleted posts and
    NOT_ALLOWED for anyone else. The row is locked, so two deletes never both win.
    """
    async with transaction(database) as conn:
        row = await conn.fetchrow(
            f"""SELECT {_POST_COLUMNS}, e.organizer_id
                  FROM feed.posts p JOIN events.events e ON e.id = p.event_id
                 WHERE p.id = $1 AND p.deleted_at IS NULL
                   FOR UPDATE OF p""",
            post_id,
        )
        if row is None:
            raise FeedError("No such post", code=FeedCode.POST_NOT_FOUND, field="post_id")
        if not (viewer_is_admin or viewer_id in (row["author_id"], row["organizer_id"])):
            raise FeedError(
                "Only the author or the event's organizer may delete this post",
                code=FeedCode.NOT_ALLOWED,
                field="post_id",
            )
        await conn.execute(
            "UPDATE feed.posts SET deleted_at = $2, deleted_by = $3 WHERE id = $1",
            post_id,
            now,
            viewer_id,
        )
        post = _post(row)
        await publish(conn, FeedMessage(post.event_id, "deleted", post_id=post.id, seq=post.seq))
    return post


# -- reads ---------------------------------------------------------------------------


async def event_feed_page(
    database: Database,
    event_id: uuid.UUID,
    *,
    first: int,
    before_seq: int | None,
    viewer_id: uuid.UUID | None,
    is_admin: bool,
) -> FeedPage:
    """Newest-first posts of one event older than `before_seq`, with author and event.

    One statement: the event's visibility (drafts only for their organizer and admins)
    is part of the WHERE clause, so an invisible event reads as an empty feed.
    """
    limit = max(0, min(first, MAX_PAGE_SIZE))
    async with connection(database) as conn:
        rows = await conn.fetch(
            f"""SELECT {_ROW_COLUMNS}
                  FROM feed.posts p {_ROW_JOINS}
                 WHERE p.event_id = $1 AND p.deleted_at IS NULL
                   AND {event_visible_sql("e", viewer_id="$5", is_admin="$4")}
                   AND ($2::bigint IS NULL OR p.seq < $2)
                 ORDER BY p.seq DESC
                 LIMIT $3""",
            event_id,
            before_seq,
            limit + 1,
            is_admin,
            viewer_id,
        )
    return FeedPage(rows=[_feed_row(r) for r in rows[:limit]], has_next=len(rows) > limit)


async def home_feed_page(database: Database, *, first: int, before_seq: int | None) -> FeedPage:
    """Newest-first posts of all published events older than `before_seq`."""
    limit = max(0, min(first, MAX_PAGE_SIZE))
    async with connection(database) as conn:
        rows = await conn.fetch(
            f"""SELECT {_ROW_COLUMNS}
                  FROM feed.posts p {_ROW_JOINS}
                 WHERE p.deleted_at IS NULL AND e.status = 'published'
                   AND ($1::bigint IS NULL OR p.seq < $1)
                 ORDER BY p.seq DESC
                 LIMIT $2""",
            before_seq,
            limit + 1,
        )
    return FeedPage(rows=[_feed_row(r) for r in rows[:limit]], has_next=len(rows) > limit)


async def posts_since(
    database: Database, event_id: uuid.UUID, after_seq: int, *, limit: int
) -> list[FeedRow]:
    """Oldest-first posts of the event newer than `after_seq`, at most `limit` (what a
    reconnecting subscriber missed)."""
    async with connection(database) as conn:
        rows = await conn.fetch(
            f"""SELECT {_ROW_COLUMNS}
                  FROM feed.posts p {_ROW_JOINS}
                 WHERE p.event_id = $1 AND p.deleted_at IS NULL AND p.seq > $2
                 ORDER BY p.seq
                 LIMIT $3""",
            event_id,
            after_seq,
            limit,
        )
    return [_feed_row(r) for r in rows]


async def get_feed_rows(database: Database, ids: list[uuid.UUID]) -> list[FeedRow | None]:
    """Visible posts with author and event, in the order of `ids` (a DataLoader batch)."""
    async with connection(database) as conn:
        rows = await conn.fetch(
            f"""SELECT {_ROW_COLUMNS}
                  FROM feed.posts p {_ROW_JOINS}
                 WHERE p.id = ANY($1::uuid[]) AND p.deleted_at IS NULL""",
            ids,
        )
    by_id = {row["id"]: _feed_row(row) for row in rows}
    return [by_id.get(i) for i in ids]
