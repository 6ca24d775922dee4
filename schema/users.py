"""Users as the API shows them."""

from __future__ import annotations

from datetime import datetime
from enum import Enum
from typing import Annotated

import strawberry

import db.users
from resolvers.ids import USER, VIEWER
from resolvers.users import ViewerRecord
from schema.errors import UserError
from schema.node import Node, node_id


@strawberry.enum(description="What a user may do.")
class Role(Enum):
    ANONYMOUS = strawberry.enum_value(
        "anonymous", description="Not signed in: reads public data (published events, feeds)."
    )
    USER = strawberry.enum_value(
        "user", description="A signed-in fan: buys tickets, posts, sees their own orders."
    )
    ORGANIZER = strawberry.enum_value(
        "organizer",
        description="Creates and runs events: tiers, sales, refunds and check-in of their own.",
    )
    ADMIN = strawberry.enum_value(
        "admin", description="Platform staff: may act on every event and see operations views."
    )
    PARTNER = strawberry.enum_value(
        "partner",
        description="An integrator: acts as a user, and may introspect the schema in production.",
    )


@strawberry.type(description="A person: fan, organizer, partner or admin. Public fields only.")
class User(Node):
    display_name: str = strawberry.field(description="Public name, 1-100 characters.")
    role: Role = strawberry.field(description="The user's role on the platform.")
    handle: str | None = strawberry.field(
        description="The name others @mention them by (unique, any case); null if none."
    )

    @classmethod
    def from_profile(cls, profile: db.users.Profile) -> User:
        return cls(
            id=node_id(USER, profile.id),
            display_name=profile.display_name,
            role=Role(profile.role),
            handle=profile.handle,
        )


@strawberry.type(description="The signed-in user, with what only they may see.")
class Viewer(Node):
    role: Role = strawberry.field(description="The role the viewer's token grants.")
    handle: str | None = strawberry.field(
        description="The viewer's @handle (set it with `updateHandle`); null if none."
    )
    display_name: str = strawberry.field(
        description="Public name, 1-100 characters (change it with `updateDisplayName`)."
    )
    created_at: datetime = strawberry.field(
        description="When the API first saw this user (UTC, ISO 8601)."
    )
    token_expires_at: datetime | None = strawberry.field(
        description="When the viewer's token expires (UTC); null if it has no expiry. A WebSocket "
        "signed in with it is closed (4403) at that time."
    )
    profile: strawberry.Private[db.users.Profile]

    @classmethod
    def from_record(cls, record: ViewerRecord) -> Viewer:
        return cls(
            id=node_id(VIEWER, record.profile.id),
            role=Role(record.role),
            handle=record.profile.handle,
            display_name=record.profile.display_name,
            created_at=record.profile.created_at,
            token_expires_at=record.token_expires_at,
            profile=record.profile,
        )

    @strawberry.field(
        description="The viewer as others see them: their `User`, e.g. to recognize their "
        "own posts by `author.id`."
    )
    def user(self) -> User:
        return User.from_profile(self.profile)


@strawberry.enum(description="Why a profile change failed.")
class ProfileErrorCode(Enum):
    UNAUTHENTICATED = strawberry.enum_value(
        "UNAUTHENTICATED", description="Sign in first: no valid bearer token was sent."
    )
    HANDLE_INVALID = strawberry.enum_value(
        "HANDLE_INVALID", description="A handle is 3-30 letters, digits or underscores."
    )
    HANDLE_TAKEN = strawberry.enum_value(
        "HANDLE_TAKEN", description="Someone has that handle (in any case)."
    )
    INVALID_INPUT = strawberry.enum_value(
        "INVALID_INPUT", description="The input was refused for a reason no other code names."
    )


@strawberry.type(description="A profile change was refused; nothing changed.")
class ProfileError(UserError):
    code: ProfileErrorCode = strawberry.field(
        description="What went wrong; switch on it, never on `message`."
    )


@strawberry.type(description="The viewer after the change.")
class ViewerPayload:
    viewer: Viewer = strawberry.field(description="The viewer, changed.")


UpdateHandleResult = Annotated[
    ViewerPayload | ProfileError,
    strawberry.union("UpdateHandleResult", description="The viewer, or why not."),
]
