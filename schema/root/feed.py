"""Root fields of the feed: pages, one post, create/delete, and the live feed."""

from __future__ import annotations

from collections.abc import AsyncGenerator

import strawberry

import resolvers.feed
import resolvers.feed_live
from resolvers.context import Info
from schema.feed import (
    CreatePostPayload,
    CreatePostResult,
    DeletePostPayload,
    DeletePostResult,
    FeedUpdate,
    MediaInput,
    Post,
    PostConnection,
    feed_update,
)

PAGE = resolvers.feed.DEFAULT_PAGE_SIZE


@strawberry.type
class FeedQuery:
    @strawberry.field(
        description="An event's posts, newest first (`first` at most 50, `after` a cursor)."
    )
    async def event_feed(
        self, info: Info, event_id: strawberry.ID, first: int = PAGE, after: str | None = None
    ) -> PostConnection:
        return PostConnection.from_slice(
            await resolvers.feed.event_feed(info, event_id, first, after)
        )

    @strawberry.field(description="Posts of all published events, newest first.")
    async def home_feed(
        self, info: Info, first: int = PAGE, after: str | None = None
    ) -> PostConnection:
        return PostConnection.from_slice(await resolvers.feed.home_feed(info, first, after))

    @strawberry.field(description="One post by id.")
    async def post(self, info: Info, id: strawberry.ID) -> Post | None:
        row = await resolvers.feed.post(info, id)
        return Post.from_row(row) if row else None


@strawberry.type
class FeedMutation:
    @strawberry.mutation(
        description="Post to an event's feed: text (at most 2,000 characters) and up to "
        "10 media items (https URLs; videos at most 30 seconds)."
    )
    async def create_post(
        self,
        info: Info,
        event_id: strawberry.ID,
        text: str = "",
        media: list[MediaInput] | None = None,
    ) -> CreatePostResult:
        items = [item.to_item() for item in media or ()]
        row = await resolvers.feed.create_post(info, event_id, text, items)
        return CreatePostPayload.from_row(row)

    @strawberry.mutation(
        description="Delete a post: its author, the event's organizer or an admin."
    )
    async def delete_post(self, info: Info, post_id: strawberry.ID) -> DeletePostResult:
        return DeletePostPayload.from_record(await resolvers.feed.delete_post(info, post_id))


@strawberry.type
class FeedSubscription:
    @strawberry.subscription(
        description="New and deleted posts of an event as they happen. Pass the last "
        "cursor you saw as `after` to first receive what you missed."
    )
    async def event_feed(
        self, info: Info, event_id: strawberry.ID, after: str | None = None
    ) -> AsyncGenerator[FeedUpdate, None]:
        async for change in resolvers.feed_live.event_feed_updates(info, event_id, after):
            yield feed_update(change)
