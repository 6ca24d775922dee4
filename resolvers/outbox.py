"""The email outbox as users and admins see it: the next digest, dead-lettered emails."""

from __future__ import annotations

import db.digests
import db.outbox
from resolvers.access import admin_only, signed_in
from resolvers.context import Info

MAX_DEAD_EMAILS = 100


async def digest_preview(info: Info) -> db.digests.DigestPreview:
    """What the viewer's next digest would contain, read now."""
    user_id = signed_in(info, "Sign in to see your digest")
    ctx = info.context
    return await db.digests.digest_preview(ctx.db, user_id, ctx.clock.now())


async def dead_emails(info: Info, first: int = 20) -> list[db.outbox.DeadEmail]:
    """Dead-lettered emails, newest first: 1-`MAX_DEAD_EMAILS` (clamped); admins only."""
    admin_only(info)
    return await db.outbox.dead_emails(info.context.db, min(max(first, 1), MAX_DEAD_EMAILS))
