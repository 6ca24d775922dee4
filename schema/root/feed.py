"""Root fields of the feed: pages, one post, create/delete, and the live feed."""

from __future__ import annotations

from collections.abc import AsyncGenerator

import strawberry

from liventix.context import Info
from resolvers import feed
from schema.feed import CreatePostResult, DeletePostResult, FeedUpdate, Post, PostConnection


@strawberry.type
class FeedQuery:
    event_feed: PostConnection = strawberry.field(
        resolver=feed.event_feed,
        description="An event's posts, newest first (`first` at most 50, `after` a cursor).",
    )
    home_feed: PostConnection = strawberry.field(
        resolver=feed.home_feed, description="Posts of all published events, newest first."
    )
    post: Post | None = strawberry.field(resolver=feed.post, description="One post by id.")


@strawberry.type
class FeedMutation:
    create_post: CreatePostResult = strawberry.mutation(
        resolver=feed.create_post,
        description="Post to an event's feed: text (at most 2,000 characters) and up to "
        "10 media items (https URLs; videos at most 30 seconds).",
    )
    delete_post: DeletePostResult = strawberry.mutation(
        resolver=feed.delete_post,
        description="Delete a post: its author, the event's organizer or an admin.",
    )


@strawberry.type
class FeedSubscription:
    @strawberry.subscription(
        description="New and deleted posts of an event as they happen. Pass the last "
        "cursor you saw as `after` to first receive what you missed."
    )
    async def event_feed(
        self, info: Info, event_id: strawberry.ID, after: str | None = None
    ) -> AsyncGenerator[FeedUpdate, None]:
        async for update in feed.event_feed_updates(info, event_id, after):
            yield update
