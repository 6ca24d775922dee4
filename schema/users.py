"""Users as the API shows them."""

from __future__ import annotations

from datetime import datetime
from enum import Enum

import strawberry

import db.users
from resolvers.users import ViewerRecord


@strawberry.enum(description="What a user may do.")
class Role(Enum):
    ANONYMOUS = "anonymous"
    USER = "user"
    ORGANIZER = "organizer"
    ADMIN = "admin"


@strawberry.type(description="A person: fan, organizer or admin. Public fields only.")
class User:
    id: strawberry.ID
    display_name: str
    role: Role

    @classmethod
    def from_profile(cls, profile: db.users.Profile) -> User:
        return cls(
            id=strawberry.ID(str(profile.id)),
            display_name=profile.display_name,
            role=Role(profile.role),
        )


@strawberry.type(description="The signed-in user, with what only they may see.")
class Viewer:
    id: strawberry.ID
    role: Role
    display_name: str
    created_at: datetime
    token_expires_at: datetime | None

    @classmethod
    def from_record(cls, record: ViewerRecord) -> Viewer:
        return cls(
            id=strawberry.ID(str(record.profile.id)),
            role=Role(record.role),
            display_name=record.profile.display_name,
            created_at=record.profile.created_at,
            token_expires_at=record.token_expires_at,
        )
