"""Root fields about the viewer."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from datetime import datetime
from typing import Annotated

import strawberry

import resolvers.users
from resolvers.context import Info
from schema.users import UpdateHandleResult, Viewer, ViewerPayload


async def _viewer(info: Info) -> Viewer | None:
    record = await resolvers.users.viewer(info)
    return Viewer.from_record(record) if record else None


@strawberry.type
class UsersQuery:
    @strawberry.field(description="The signed-in user; null when anonymous.")
    async def viewer(self, info: Info) -> Viewer | None:
        return await _viewer(info)

    @strawberry.field(description="Alias of `viewer`.")
    async def me(self, info: Info) -> Viewer | None:
        return await _viewer(info)


@strawberry.type
class UsersMutation:
    @strawberry.mutation(
        description="Change the viewer's public name (signed-in users). A blank or too "
        "long name is a BAD_USER_INPUT error."
    )
    async def update_display_name(
        self,
        info: Info,
        display_name: Annotated[
            str,
            strawberry.argument(
                description="The new name: 1-100 characters after trimming spaces."
            ),
        ],
    ) -> Viewer:
        return Viewer.from_record(await resolvers.users.update_display_name(info, display_name))

    @strawberry.mutation(
        description="Choose the viewer's @handle, by which posts mention them (null clears "
        "it). Unique whatever its case: HANDLE_TAKEN if someone has it."
    )
    async def update_handle(
        self,
        info: Info,
        handle: Annotated[
            str | None,
            strawberry.argument(description="3-30 letters, digits or underscores; or null."),
        ],
    ) -> UpdateHandleResult:
        record = await resolvers.users.update_handle(info, handle)
        return ViewerPayload(viewer=Viewer.from_record(record))


@strawberry.type
class UsersSubscription:
    @strawberry.subscription(
        description="Server time every `intervalSeconds` (1-60); a "
        "connectivity check for clients and the playground."
    )
    async def clock(
        self,
        info: Info,
        interval_seconds: Annotated[
            int,
            strawberry.argument(
                description="Seconds between messages, 1-60 (values outside are clamped)."
            ),
        ] = 1,
        count: Annotated[
            int,
            strawberry.argument(
                description="How many messages before the subscription completes, 1-1000 (clamped)."
            ),
        ] = 10,
    ) -> AsyncGenerator[datetime, None]:
        async for now in resolvers.users.clock(interval_seconds, count):
            yield now
