"""Feed types: posts with media, their connection, the mutations' payloads and the
live feed's updates.

One `Post` type serves every path (a feed page, `post(id)`, `createPost`, the live
feed), so a client can prepend a created post to its cached feed without refetching.
A `Post` is built from a row that already carries its author and event (one SQL
statement per page), so `author` and `event` resolve synchronously, without I/O.
"""

from __future__ import annotations

from datetime import datetime
from enum import Enum
from typing import Annotated

import strawberry
from strawberry.relay import PageInfo

import db.feed
import db.pages
from resolvers.feed import FeedSlice
from resolvers.feed_live import FeedChange, FeedGap, PostAdded, PostRemoved
from schema.errors import UserError
from schema.events import Event
from schema.users import User


@strawberry.enum(description="What a media item is.")
class MediaKind(Enum):
    IMAGE = "image"
    VIDEO = "video"


@strawberry.type(description="An image or a video (at most 30 seconds) attached to a post.")
class Media:
    url: str
    kind: MediaKind
    width: int
    height: int
    duration_seconds: float | None

    @classmethod
    def from_item(cls, item: db.feed.MediaItem) -> Media:
        return cls(
            url=item.url,
            kind=MediaKind(item.kind),
            width=item.width,
            height=item.height,
            duration_seconds=item.duration_seconds,
        )


@strawberry.input(description="A media item to attach: https URL, kind, size, duration.")
class MediaInput:
    url: str
    kind: MediaKind
    width: int
    height: int
    duration_seconds: float | None = strawberry.field(
        default=None, description="Required for videos; at most 30."
    )

    def to_item(self) -> db.feed.MediaItem:
        return db.feed.MediaItem(
            url=self.url,
            kind=self.kind.value,
            width=self.width,
            height=self.height,
            duration_seconds=self.duration_seconds,
        )


@strawberry.type(description="A post in an event's feed.")
class Post:
    id: strawberry.ID
    text: str
    media: list[Media]
    created_at: datetime
    row: strawberry.Private[db.feed.FeedRow]

    @classmethod
    def from_row(cls, row: db.feed.FeedRow) -> Post:
        post = row.post
        return cls(
            id=strawberry.ID(str(post.id)),
            text=post.text,
            media=[Media.from_item(item) for item in post.media],
            created_at=post.created_at,
            row=row,
        )

    @strawberry.field(description="Opaque position of this post in its feed.")
    def cursor(self) -> str:
        return db.pages.encode_seq_cursor(self.row.post.seq)

    @strawberry.field
    def author(self) -> User:
        return User.from_profile(self.row.author)

    @strawberry.field
    def event(self) -> Event:
        return Event.from_record(self.row.event)


@strawberry.type
class PostEdge:
    cursor: str
    node: Post

    @classmethod
    def from_row(cls, row: db.feed.FeedRow) -> PostEdge:
        return cls(cursor=db.pages.encode_seq_cursor(row.post.seq), node=Post.from_row(row))


@strawberry.type(description="A page of a feed, newest first; page size at most 50.")
class PostConnection:
    edges: list[PostEdge]
    page_info: PageInfo

    @classmethod
    def from_slice(cls, feed: FeedSlice) -> PostConnection:
        edges = [PostEdge.from_row(row) for row in feed.page.rows]
        return cls(
            edges=edges,
            page_info=PageInfo(
                has_next_page=feed.page.has_next,
                has_previous_page=feed.has_previous,
                start_cursor=edges[0].cursor if edges else None,
                end_cursor=edges[-1].cursor if edges else None,
            ),
        )


@strawberry.enum(description="Why a feed operation failed.")
class FeedErrorCode(Enum):
    UNAUTHENTICATED = "UNAUTHENTICATED"
    TEXT_TOO_LONG = "TEXT_TOO_LONG"
    TEXT_INVALID = "TEXT_INVALID"
    EMPTY_POST = "EMPTY_POST"
    TOO_MANY_MEDIA = "TOO_MANY_MEDIA"
    MEDIA_URL_INVALID = "MEDIA_URL_INVALID"
    MEDIA_INVALID = "MEDIA_INVALID"
    VIDEO_TOO_LONG = "VIDEO_TOO_LONG"
    EVENT_NOT_FOUND = "EVENT_NOT_FOUND"
    POST_NOT_FOUND = "POST_NOT_FOUND"
    NOT_ALLOWED = "NOT_ALLOWED"
    INVALID = "INVALID"


@strawberry.type(description="A post could not be created or deleted.")
class FeedError(UserError):
    code: FeedErrorCode


@strawberry.type(description="The created post, in the same shape a feed returns it.")
class CreatePostPayload:
    post: Post
    edge: PostEdge = strawberry.field(description="The post as a feed edge, to prepend.")

    @classmethod
    def from_row(cls, row: db.feed.FeedRow) -> CreatePostPayload:
        return cls(post=Post.from_row(row), edge=PostEdge.from_row(row))


@strawberry.type
class DeletePostPayload:
    post_id: strawberry.ID
    event_id: strawberry.ID

    @classmethod
    def from_record(cls, post: db.feed.PostRecord) -> DeletePostPayload:
        return cls(post_id=strawberry.ID(str(post.id)), event_id=strawberry.ID(str(post.event_id)))


CreatePostResult = Annotated[CreatePostPayload | FeedError, strawberry.union("CreatePostResult")]
DeletePostResult = Annotated[DeletePostPayload | FeedError, strawberry.union("DeletePostResult")]


@strawberry.type(description="A post was published in the feed.")
class PostCreated:
    post: Post
    cursor: str


@strawberry.type(description="A post was deleted: drop it from the client's feed.")
class PostDeleted:
    post_id: strawberry.ID
    event_id: strawberry.ID


@strawberry.type(
    description="Updates may have been missed: refetch the feed (or resubscribe with "
    "`after` set to `lastCursor`) to catch up."
)
class FeedResync:
    event_id: strawberry.ID
    reason: str
    last_cursor: str | None


FeedUpdate = Annotated[PostCreated | PostDeleted | FeedResync, strawberry.union("FeedUpdate")]


def feed_update(change: FeedChange) -> PostCreated | PostDeleted | FeedResync:
    """The live feed's message for a change the resolver streamed."""
    if isinstance(change, PostAdded):
        return PostCreated(post=Post.from_row(change.row), cursor=change.cursor)
    if isinstance(change, PostRemoved):
        return PostDeleted(
            post_id=strawberry.ID(str(change.post_id)),
            event_id=strawberry.ID(str(change.event_id)),
        )
    assert isinstance(change, FeedGap)
    return FeedResync(
        event_id=strawberry.ID(str(change.event_id)),
        reason=change.reason,
        last_cursor=change.last_cursor,
    )
