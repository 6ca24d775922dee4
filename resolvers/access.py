"""Who may ask: the auth checks every resolver starts with.

Each check raises `ClientError` (UNAUTHENTICATED, NOT_ALLOWED, FORBIDDEN) or returns
who is asking. `seen` also guarantees the viewer's profile row exists, through the
process's one first-sight path (`liventix.first_sight`): free after the viewer's first
request to this process, and still sure for a WebSocket operation that races the
handshake's background first sight.
"""

from __future__ import annotations

import uuid

import db.events
from liventix.auth import Role
from resolvers.context import Info
from resolvers.errors import ClientCode, ClientError

SIGN_IN_FIRST = "Sign in first"


def signed_in(info: Info, message: str = SIGN_IN_FIRST) -> uuid.UUID:
    """The viewer's user id; UNAUTHENTICATED (with `message`) when anonymous."""
    user_id = info.context.viewer.user_id
    if user_id is None:
        raise ClientError(message, ClientCode.UNAUTHENTICATED)
    return user_id


async def seen(info: Info) -> None:
    """Make sure the signed-in viewer's profile row exists (a no-op once seen)."""
    await info.context.services.first_sight.see(info.context.viewer)


def actor(info: Info, user_id: uuid.UUID) -> db.events.Actor:
    """The signed-in viewer as the repository functions' `Actor`."""
    return db.events.Actor(user_id=user_id, is_admin=info.context.viewer.is_admin)


async def organizer(info: Info) -> db.events.Actor:
    """The viewer as an organizer or admin, profile ensured; else UNAUTHENTICATED or
    NOT_ALLOWED."""
    user_id = signed_in(info)
    if info.context.viewer.role not in (Role.ORGANIZER, Role.ADMIN):
        raise ClientError("Only organizers may manage events", ClientCode.NOT_ALLOWED)
    await seen(info)
    return actor(info, user_id)


def admin_only(info: Info) -> None:
    """FORBIDDEN unless the viewer is an admin."""
    if not info.context.viewer.is_admin:
        raise ClientError("Admins only", ClientCode.FORBIDDEN)
