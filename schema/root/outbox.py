"""Root fields of the email outbox: the viewer's next digest, dead emails (admins)."""

from __future__ import annotations

from typing import Annotated

import strawberry

import resolvers.outbox
from resolvers.context import Info
from schema.outbox import DeadEmail, NotificationDigestPreview


@strawberry.type
class OutboxQuery:
    @strawberry.field(
        description="What the viewer's next digest email would contain if it went out now, "
        "and when it goes out (signed-in users)."
    )
    async def notification_digest_preview(self, info: Info) -> NotificationDigestPreview:
        return NotificationDigestPreview.from_record(await resolvers.outbox.digest_preview(info))

    @strawberry.field(
        description="Emails the outbox gave up on after its last retry, or that the mail "
        "server refused for good, newest first (admins)."
    )
    async def dead_emails(
        self,
        info: Info,
        first: Annotated[int, strawberry.argument(description="How many: 1-100 (clamped).")] = 20,
    ) -> list[DeadEmail]:
        return [DeadEmail.from_record(d) for d in await resolvers.outbox.dead_emails(info, first)]
