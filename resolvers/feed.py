"""Feed resolvers: create and delete posts, and read feeds.

Reads fetch posts with their authors and events in one statement and prime the
request's DataLoaders with them, so nested fields (an event's organizer, say) reuse
what is already loaded. The live feed is in `resolvers.feed_live`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import db.events
import db.feed
import db.pages
import db.users
from db.errors import FeedCode, FeedError
from resolvers.access import seen, signed_in
from resolvers.context import Context, Info
from resolvers.errors import ClientCode, ClientError
from resolvers.ids import EVENT, POST, parse_id

DEFAULT_PAGE_SIZE = 20


@dataclass(frozen=True, slots=True)
class FeedSlice:
    """A page of a feed and whether one came before it."""

    page: db.feed.FeedPage
    has_previous: bool


def before_seq(after: str | None) -> int | None:
    """The feed position a page starts after; BAD_USER_INPUT if `after` is no cursor."""
    if after is None:
        return None
    seq = db.pages.decode_seq_cursor(after)
    if seq is None:
        raise ClientError("`after` is not a feed cursor", ClientCode.BAD_USER_INPUT)
    return seq


def _prime(context: Context, rows: Iterable[db.feed.FeedRow]) -> None:
    """Share what a page already loaded with the request's DataLoaders."""
    rows = list(rows)
    if not rows:
        return
    loaders = context.loaders
    loaders.get(db.users.get_profiles).prime_many({r.author.id: r.author for r in rows})
    loaders.get(db.events.get_events).prime_many({r.event.id: r.event for r in rows})


def _slice(context: Context, page: db.feed.FeedPage, before: int | None) -> FeedSlice:
    _prime(context, page.rows)
    return FeedSlice(page=page, has_previous=before is not None)


# -- queries -------------------------------------------------------------------------


async def event_feed(
    info: Info, event_id: str, first: int = DEFAULT_PAGE_SIZE, after: str | None = None
) -> FeedSlice:
    """An event's posts, newest first; empty for unknown events and others' drafts."""
    ctx = info.context
    before = before_seq(after)
    eid = parse_id(event_id, EVENT)
    if eid is None:
        return FeedSlice(page=db.feed.FeedPage([], False), has_previous=False)
    page = await db.feed.event_feed_page(
        ctx.db,
        eid,
        first=first,
        before_seq=before,
        viewer_id=ctx.viewer.user_id,
        is_admin=ctx.viewer.is_admin,
    )
    return _slice(ctx, page, before)


async def home_feed(
    info: Info, first: int = DEFAULT_PAGE_SIZE, after: str | None = None
) -> FeedSlice:
    """Posts of every published event, newest first."""
    ctx = info.context
    before = before_seq(after)
    page = await db.feed.home_feed_page(ctx.db, first=first, before_seq=before)
    return _slice(ctx, page, before)


async def post(info: Info, id: str) -> db.feed.FeedRow | None:
    """One post, if it exists, is not deleted and its event is visible to the viewer."""
    ctx = info.context
    pid = parse_id(id, POST)
    if pid is None:
        return None
    (row,) = await db.feed.get_feed_rows(ctx.db, [pid])
    if row is None or not row.visible_to(ctx.viewer.user_id, ctx.viewer.is_admin):
        return None
    _prime(ctx, [row])
    return row


# -- mutations -----------------------------------------------------------------------


async def create_post(
    info: Info, event_id: str, text: str, media: Sequence[db.feed.MediaItem]
) -> db.feed.FeedRow:
    """Post to an event's feed; the row comes back as a feed page shows it."""
    ctx = info.context
    author_id = signed_in(info, "Sign in to post")
    eid = parse_id(event_id, EVENT)
    if eid is None:
        raise FeedError("No such event", code=FeedCode.EVENT_NOT_FOUND, field="event_id")
    await seen(info)
    row = await db.feed.create_post(
        ctx.db,
        author_id=author_id,
        author_is_admin=ctx.viewer.is_admin,
        event_id=eid,
        text=text,
        media=list(media),
        now=ctx.clock.now(),
    )
    _prime(ctx, [row])
    return row


async def delete_post(info: Info, post_id: str) -> db.feed.PostRecord:
    """Soft-delete a post: its author, the event's organizer or an admin."""
    ctx = info.context
    viewer_id = signed_in(info, "Sign in to delete posts")
    pid = parse_id(post_id, POST)
    if pid is None:
        raise FeedError("No such post", code=FeedCode.POST_NOT_FOUND, field="post_id")
    return await db.feed.delete_post(
        ctx.db,
        post_id=pid,
        viewer_id=viewer_id,
        viewer_is_admin=ctx.viewer.is_admin,
        now=ctx.clock.now(),
    )
