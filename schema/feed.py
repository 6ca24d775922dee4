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
from resolvers.ids import EVENT, POST
from schema.errors import UserError
from schema.events import Event
from schema.inputs import enum_value_of
from schema.node import Node, node_id
from schema.users import User


@strawberry.enum(description="What a media item is.")
class MediaKind(Enum):
    IMAGE = strawberry.enum_value("image", description="A still image.")
    VIDEO = strawberry.enum_value(
        "video", description="A video of at most 30 seconds; it has a duration."
    )


@strawberry.type(description="An image or a video (at most 30 seconds) attached to a post.")
class Media:
    url: str = strawberry.field(description="Where the file is: an https URL.")
    kind: MediaKind = strawberry.field(description="Image or video.")
    width: int = strawberry.field(description="Width in pixels.")
    height: int = strawberry.field(description="Height in pixels.")
    duration_seconds: float | None = strawberry.field(
        description="A video's length in seconds (at most 30); null for images."
    )

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
    url: str = strawberry.field(
        description="An https URL of the uploaded file, at most 2,048 characters."
    )
    kind: MediaKind = strawberry.field(description="Image or video.")
    width: int = strawberry.field(description="Width in pixels, 1-100,000.")
    height: int = strawberry.field(description="Height in pixels, 1-100,000.")
    duration_seconds: float | None = strawberry.field(
        default=None, description="Required for videos; at most 30."
    )

    def to_item(self) -> db.feed.MediaItem:
        return db.feed.MediaItem(
            url=self.url,
            kind=enum_value_of(self.kind),
            width=self.width,
            height=self.height,
            duration_seconds=self.duration_seconds,
        )


@strawberry.type(description="A post in an event's feed.")
class Post(Node):
    text: str = strawberry.field(
        description="The text, at most 2,000 characters; empty for a media-only post."
    )
    media: list[Media] = strawberry.field(description="Attached media, 0-10, in order.")
    created_at: datetime = strawberry.field(description="When the post was published.")
    row: strawberry.Private[db.feed.FeedRow]

    @classmethod
    def from_row(cls, row: db.feed.FeedRow) -> Post:
        post = row.post
        return cls(
            id=node_id(POST, post.id),
            text=post.text,
            media=[Media.from_item(item) for item in post.media],
            created_at=post.created_at,
            row=row,
        )

    @strawberry.field(description="Opaque position of this post in its feed.")
    def cursor(self) -> str:
        return db.pages.encode_seq_cursor(self.row.post.seq)

    @strawberry.field(description="Who posted it.")
    def author(self) -> User:
        return User.from_profile(self.row.author)

    @strawberry.field(description="The event whose feed the post is in.")
    def event(self) -> Event:
        return Event.from_record(self.row.event)


@strawberry.type(description="A post in a feed page, with its position.")
class PostEdge:
    cursor: str = strawberry.field(
        description="Opaque position of this post; pass it as `after` to continue."
    )
    node: Post = strawberry.field(description="The post.")

    @classmethod
    def from_row(cls, row: db.feed.FeedRow) -> PostEdge:
        return cls(cursor=db.pages.encode_seq_cursor(row.post.seq), node=Post.from_row(row))


@strawberry.type(description="A page of a feed, newest first; page size at most 50.")
class PostConnection:
    edges: list[PostEdge] = strawberry.field(
        description="The posts of this page, newest first; empty past the last page."
    )
    page_info: PageInfo = strawberry.field(
        description="Whether older posts follow, and `endCursor` to fetch them."
    )

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
    UNAUTHENTICATED = strawberry.enum_value(
        "UNAUTHENTICATED", description="Sign in first: no valid bearer token was sent."
    )
    TEXT_TOO_LONG = strawberry.enum_value(
        "TEXT_TOO_LONG", description="The text is over 2,000 characters."
    )
    TEXT_INVALID = strawberry.enum_value(
        "TEXT_INVALID", description="The text holds a character that cannot be stored (NUL)."
    )
    EMPTY_POST = strawberry.enum_value(
        "EMPTY_POST", description="Neither text nor media: nothing to post."
    )
    TOO_MANY_MEDIA = strawberry.enum_value(
        "TOO_MANY_MEDIA", description="More than 10 media items."
    )
    MEDIA_URL_INVALID = strawberry.enum_value(
        "MEDIA_URL_INVALID", description="A media URL is not an https address (see `field`)."
    )
    MEDIA_INVALID = strawberry.enum_value(
        "MEDIA_INVALID",
        description="A media item's kind, size or duration is not valid (see `field`).",
    )
    VIDEO_TOO_LONG = strawberry.enum_value(
        "VIDEO_TOO_LONG", description="A video is longer than 30 seconds."
    )
    EVENT_NOT_FOUND = strawberry.enum_value(
        "EVENT_NOT_FOUND", description="No such event (or one the viewer may not see)."
    )
    POST_NOT_FOUND = strawberry.enum_value(
        "POST_NOT_FOUND", description="No such post, or it was deleted."
    )
    NOT_ALLOWED = strawberry.enum_value(
        "NOT_ALLOWED",
        description="Only the author, the event's organizer or an admin may delete a post.",
    )
    INVALID = strawberry.enum_value(
        "INVALID", description="The input was refused for a reason no other code names."
    )


@strawberry.type(description="A post could not be created or deleted.")
class FeedError(UserError):
    code: FeedErrorCode = strawberry.field(
        description="What went wrong; switch on it, never on `message`."
    )


@strawberry.type(description="The created post, in the same shape a feed returns it.")
class CreatePostPayload:
    post: Post = strawberry.field(description="The new post.")
    edge: PostEdge = strawberry.field(description="The post as a feed edge, to prepend.")

    @classmethod
    def from_row(cls, row: db.feed.FeedRow) -> CreatePostPayload:
        return cls(post=Post.from_row(row), edge=PostEdge.from_row(row))


@strawberry.type(description="The post was deleted: drop it from cached feeds.")
class DeletePostPayload:
    post_id: strawberry.ID = strawberry.field(description="The deleted post's id.")
    event_id: strawberry.ID = strawberry.field(description="The event whose feed held it.")

    @classmethod
    def from_record(cls, post: db.feed.PostRecord) -> DeletePostPayload:
        return cls(post_id=node_id(POST, post.id), event_id=node_id(EVENT, post.event_id))


CreatePostResult = Annotated[
    CreatePostPayload | FeedError,
    strawberry.union("CreatePostResult", description="The new post, or why it was refused."),
]
DeletePostResult = Annotated[
    DeletePostPayload | FeedError,
    strawberry.union("DeletePostResult", description="The deleted post's ids, or why not."),
]


@strawberry.type(description="A post was published in the feed.")
class PostCreated:
    post: Post = strawberry.field(description="The new post, as a feed page shows it.")
    cursor: str = strawberry.field(
        description="Its feed position: the `after` to resubscribe with."
    )


@strawberry.type(description="A post was deleted: drop it from the client's feed.")
class PostDeleted:
    post_id: strawberry.ID = strawberry.field(description="The deleted post's id.")
    event_id: strawberry.ID = strawberry.field(description="The event whose feed held it.")


@strawberry.type(
    description="Updates may have been missed: refetch the feed (or resubscribe with "
    "`after` set to `lastCursor`) to catch up."
)
class FeedResync:
    event_id: strawberry.ID = strawberry.field(description="The event whose feed to refetch.")
    reason: str = strawberry.field(
        description="Why: TOO_MANY_MISSED (over 200 posts to replay), "
        "MISSED_NOTIFICATIONS (the server's listener reconnected) or TOO_SLOW (the "
        "client fell behind)."
    )
    last_cursor: str | None = strawberry.field(
        description="The last position delivered to this subscriber; null if none."
    )


FeedUpdate = Annotated[
    PostCreated | PostDeleted | FeedResync,
    strawberry.union(
        "FeedUpdate", description="A change of an event's feed, or a request to catch up."
    ),
]


def feed_update(change: FeedChange) -> PostCreated | PostDeleted | FeedResync:
    """The live feed's message for a change the resolver streamed."""
    if isinstance(change, PostAdded):
        return PostCreated(post=Post.from_row(change.row), cursor=change.cursor)
    if isinstance(change, PostRemoved):
        return PostDeleted(
            post_id=node_id(POST, change.post_id),
            event_id=node_id(EVENT, change.event_id),
        )
    assert isinstance(change, FeedGap)
    return FeedResync(
        event_id=node_id(EVENT, change.event_id),
        reason=change.reason,
        last_cursor=change.last_cursor,
    )
