"""Root fields about the viewer."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
from datetime import UTC, datetime

import strawberry

from liventix.context import Info
from resolvers import users
from schema.users import Viewer


@strawberry.type
class UsersQuery:
    viewer: Viewer | None = strawberry.field(
        resolver=users.viewer, description="The signed-in user; null when anonymous."
    )
    me: Viewer | None = strawberry.field(resolver=users.viewer, description="Alias of `viewer`.")


@strawberry.type
class UsersMutation:
    update_display_name: Viewer = strawberry.mutation(resolver=users.update_display_name)


@strawberry.type
class UsersSubscription:
    @strawberry.subscription(
        description="Server time every `intervalSeconds` (1-60); a "
        "connectivity check for clients and the playground."
    )
    async def clock(
        self, info: Info, interval_seconds: int = 1, count: int = 10
    ) -> AsyncGenerator[datetime, None]:
        interval = min(max(interval_seconds, 1), 60)
        for _ in range(min(max(count, 1), 1000)):
            yield datetime.now(UTC)
            await asyncio.sleep(interval)
