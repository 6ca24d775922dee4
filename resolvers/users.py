"""Who is asking, and users as others see them."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncGenerator
from dataclasses import dataclass
from datetime import UTC, datetime

import db.users
from resolvers.access import seen, signed_in
from resolvers.context import Info
from resolvers.errors import ClientCode, ClientError
from resolvers.ids import USER, VIEWER, parse_id


@dataclass(frozen=True, slots=True)
class ViewerRecord:
    """The signed-in user: their profile, and what their token says."""

    profile: db.users.Profile
    role: str
    token_expires_at: datetime | None


def _viewer_record(info: Info, profile: db.users.Profile) -> ViewerRecord:
    viewer = info.context.viewer
    return ViewerRecord(profile=profile, role=viewer.role.value, token_expires_at=viewer.expires_at)


async def viewer(info: Info) -> ViewerRecord | None:
    """The signed-in user (null when anonymous); their profile exists (first sight)."""
    ctx = info.context
    if ctx.viewer.user_id is None:
        return None
    await seen(info)
    profile = await ctx.loaders.profile(ctx.viewer.user_id)
    if profile is None:  # first sight made it; nothing deletes profiles
        raise LookupError(f"no profile for {ctx.viewer.user_id} after first sight")
    return _viewer_record(info, profile)


async def update_display_name(info: Info, display_name: str) -> ViewerRecord:
    user_id = signed_in(info, "Sign in to change your name")
    name = display_name.strip()
    if not 1 <= len(name) <= 100:
        raise ClientError("Display name must be 1 to 100 characters", ClientCode.BAD_USER_INPUT)
    await seen(info)
    profile = await db.users.update_display_name(info.context.db, user_id, name)
    return _viewer_record(info, profile)


async def user(info: Info, user_id: uuid.UUID) -> db.users.Profile | None:
    """A user's public profile (batched per request)."""
    return await info.context.loaders.profile(user_id)


async def update_handle(info: Info, handle: str | None) -> ViewerRecord:
    """Set (or, with None, clear) the viewer's @handle; typed errors if invalid or taken."""
    user_id = signed_in(info, "Sign in to choose a handle")
    await seen(info)
    profile = await db.users.set_handle(info.context.db, user_id, handle)
    return _viewer_record(info, profile)


async def user_by_id(info: Info, id: str) -> db.users.Profile | None:
    """A user's public profile by global id, for anyone (as `Post.author` shows it)."""
    user_id = parse_id(id, USER)
    return await user(info, user_id) if user_id else None


async def viewer_by_id(info: Info, id: str) -> ViewerRecord | None:
    """The viewer, when `id` is their own `Viewer` id; null for anyone else's."""
    user_id = parse_id(id, VIEWER)
    if user_id is None or user_id != info.context.viewer.user_id:
        return None
    return await viewer(info)


async def clock(interval_seconds: int, count: int) -> AsyncGenerator[datetime, None]:
    """Server time every `interval_seconds` (1-60), `count` times (1-1000)."""
    interval = min(max(interval_seconds, 1), 60)
    for _ in range(min(max(count, 1), 1000)):
        yield datetime.now(UTC)
        await asyncio.sleep(interval)
