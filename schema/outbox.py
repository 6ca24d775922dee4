"""The email outbox as the API shows it: the viewer's next digest, dead emails (admins)."""

from __future__ import annotations

from datetime import datetime

import strawberry

import db.digests
import db.outbox
from resolvers.ids import NOTIFICATION, USER
from schema.node import node_id
from schema.notifications import DigestFrequency, Notification


@strawberry.type(
    description="What the viewer's next digest email would contain if it went out now: "
    "their unread notifications since the previous digest (at most one period back)."
)
class NotificationDigestPreview:
    frequency: DigestFrequency = strawberry.field(description="The viewer's digest setting.")
    period: str | None = strawberry.field(
        description="The digest's period in the viewer's zone, e.g. `daily:2026-11-30` or "
        "`weekly:2026-W48`; null when digests are off."
    )
    sends_at: datetime | None = strawberry.field(
        description="When it goes out: 08:00 in the viewer's zone (up to a minute late); "
        "null when digests are off."
    )
    total: int = strawberry.field(
        description="How many unread notifications it covers (it lists the newest 50)."
    )
    notifications: list[Notification] = strawberry.field(
        description="The notifications it lists, newest first; empty when digests are off."
    )

    @classmethod
    def from_record(cls, preview: db.digests.DigestPreview) -> NotificationDigestPreview:
        return cls(
            frequency=DigestFrequency(preview.frequency),
            period=preview.period,
            sends_at=preview.sends_at,
            total=preview.content.total,
            notifications=[Notification.from_record(n) for n in preview.content.notifications],
        )


@strawberry.type(description="An email the outbox gave up on (admins).")
class DeadEmail:
    outbox_id: int = strawberry.field(description="Its row in `notify.outbox`.")
    user_id: strawberry.ID = strawberry.field(description="The recipient `User`.")
    recipient: str | None = strawberry.field(
        description="The recipient's address now; null if they have none any more."
    )
    notification_id: strawberry.ID | None = strawberry.field(
        description="The `Notification` it was the email of; null for a digest."
    )
    category: str | None = strawberry.field(
        description="The notification's category (`order_paid`, ...); null for a digest."
    )
    title: str | None = strawberry.field(description="The notification's title; null for a digest.")
    digest_period: str | None = strawberry.field(
        description="The digest's period (`daily:2026-11-30`); null for a notification's email."
    )
    attempts: int = strawberry.field(description="How many times sending it failed.")
    reason: str | None = strawberry.field(
        description="Why it is dead: `failed N times`, or `refused by the mail server` "
        "(a 5xx for the recipient: retrying cannot help)."
    )
    last_error: str | None = strawberry.field(
        description="The last failure, e.g. the SMTP server's reply."
    )
    created_at: datetime = strawberry.field(description="When the email was queued.")
    died_at: datetime = strawberry.field(description="When its last attempt failed.")

    @classmethod
    def from_record(cls, dead: db.outbox.DeadEmail) -> DeadEmail:
        notification_id = dead.notification_id
        return cls(
            outbox_id=dead.id,
            user_id=node_id(USER, dead.user_id),
            recipient=dead.recipient,
            notification_id=node_id(NOTIFICATION, notification_id) if notification_id else None,
            category=dead.category,
            title=dead.title,
            digest_period=dead.digest_period,
            attempts=dead.attempts,
            reason=dead.reason,
            last_error=dead.last_error,
            created_at=dead.created_at,
            died_at=dead.died_at,
        )
