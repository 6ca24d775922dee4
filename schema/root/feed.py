"""Root fields of the feed: pages, one post, create/delete, and the live feed."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import Annotated

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

EventId = Annotated[strawberry.ID, strawberry.argument(description="The event's id.")]
First = Annotated[
    int, strawberry.argument(description="Page size, 1-50 (a larger value returns 50 posts).")
]
After = Annotated[
    str | None,
    strawberry.argument(
        description="The `endCursor` of the previous page (older posts follow); null for "
        "the newest."
    ),
]


@strawberry.type
class FeedQuery:
    @strawberry.field(
        description="An event's posts, newest first (`first` at most 50, `after` a cursor). "
        "Empty for an unknown event or a draft you do not organize."
    )
    async def event_feed(
        self, info: Info, event_id: EventId, first: First = PAGE, after: After = None
    ) -> PostConnection:
        return PostConnection.from_slice(
            await resolvers.feed.event_feed(info, event_id, first, after)
        )

    @strawberry.field(description="Posts of all published events, newest first.")
    async def home_feed(
        self, info: Info, first: First = PAGE, after: After = None
    ) -> PostConnection:
        return PostConnection.from_slice(await resolvers.feed.home_feed(info, first, after))

    @strawberry.field(
        description="One post by id; null if unknown, deleted, or in an event you may not see."
    )
    async def post(
        self,
        info: Info,
        id: Annotated[strawberry.ID, strawberry.argument(description="The post's id.")],
    ) -> Post | None:
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
        event_id: EventId,
        text: Annotated[
            str,
            strawberry.argument(
                description="The text, at most 2,000 characters; may be empty if media "
                "are attached."
            ),
        ] = "",
        media: Annotated[
            list[MediaInput] | None,
            strawberry.argument(description="Up to 10 media items, in order; null: none."),
        ] = None,
    ) -> CreatePostResult:
        items = [item.to_item() for item in media or ()]
        row = await resolvers.feed.create_post(info, event_id, text, items)
        return CreatePostPayload.from_row(row)

    @strawberry.mutation(
        description="Delete a post: its author, the event's organizer or an admin."
    )
    async def delete_post(
        self,
        info: Info,
        post_id: Annotated[strawberry.ID, strawberry.argument(description="The post to delete.")],
    ) -> DeletePostResult:
        return DeletePostPayload.from_record(await resolvers.feed.delete_post(info, post_id))


@strawberry.type
class FeedSubscription:
    @strawberry.subscription(
        description="New and deleted posts of an event as they happen. Pass the last "
        "cursor you saw as `after` to first receive what you missed."
    )
    async def event_feed(
        self,
        info: Info,
        event_id: EventId,
        after: Annotated[
            str | None,
            strawberry.argument(
                description="The last post cursor you saw: up to 200 posts published "
                "since are replayed first (more yields a FeedResync); null: only new ones."
            ),
        ] = None,
    ) -> AsyncGenerator[FeedUpdate, None]:
        async for change in resolvers.feed_live.event_feed_updates(info, event_id, after):
            yield feed_update(change)
