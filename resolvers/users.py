"""Who is asking."""

from __future__ import annotations

import strawberry

import db.users
from liventix.context import Info
from schema.errors import ClientError
from schema.users import Role, Viewer


async def viewer(info: Info) -> Viewer | None:
    """The signed-in user (null when anonymous); creates the profile on first sight."""
    ctx = info.context
    if ctx.viewer.user_id is None:
        return None
    profile = await db.users.ensure_profile(ctx.db, ctx.viewer.user_id, ctx.viewer.role.value)
    return Viewer(
        id=strawberry.ID(str(profile.id)),
        role=Role(ctx.viewer.role.value),
        display_name=profile.display_name,
        created_at=profile.created_at,
        token_expires_at=ctx.viewer.expires_at,
    )


async def update_display_name(info: Info, display_name: str) -> Viewer:
    ctx = info.context
    if ctx.viewer.user_id is None:
        raise ClientError("Sign in to change your name", "UNAUTHENTICATED")
    name = display_name.strip()
    if not 1 <= len(name) <= 100:
        raise ClientError("Display name must be 1 to 100 characters", "BAD_USER_INPUT")
    await db.users.ensure_profile(ctx.db, ctx.viewer.user_id, ctx.viewer.role.value)
    profile = await db.users.update_display_name(ctx.db, ctx.viewer.user_id, name)
    return Viewer(
        id=strawberry.ID(str(profile.id)),
        role=Role(ctx.viewer.role.value),
        display_name=profile.display_name,
        created_at=profile.created_at,
        token_expires_at=ctx.viewer.expires_at,
    )
