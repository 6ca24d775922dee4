"""Notifications as the API shows them: the inbox, counts, preferences, live events.

Lanes, categories and channels mirror `db.notification_rules` (their one owner): each
enum here is built from it, so a category added there is an enum value here.
"""

from __future__ import annotations

from datetime import datetime
from enum import Enum
from typing import Annotated, cast

import strawberry
from strawberry.relay import PageInfo
from strawberry.scalars import JSON

import db.notifications
from db.errors import NotificationCode
from db.errors import NotificationError as NotificationDomainError
from db.notification_prefs import Change, Preferences
from db.notification_rules import LANES, Channel, Lane
from resolvers.ids import NOTIFICATION
from resolvers.inbox_live import InboxEvent
from resolvers.notifications import Counts, MarkOutcome, QuietHoursInput, quiet_hours
from schema.errors import UserError
from schema.inputs import enum_value_of, set_fields
from schema.node import Node, node_id


@strawberry.enum(description="Where a notification is shown; its category decides.")
class NotificationLane(Enum):
    PRIORITY = strawberry.enum_value(
        "priority",
        description="Orders, tickets, refunds, event changes, mentions, waitlist offers.",
    )
    SOCIAL = strawberry.enum_value("social", description="New posts in your events' feeds.")
    SYSTEM = strawberry.enum_value("system", description="Product updates, account alerts.")


@strawberry.enum(description="What a notification is about (its lane follows from it).")
class NotificationCategory(Enum):
    ORDER_PAID = strawberry.enum_value(
        "order_paid", description="Your payment was received and your tickets are ready."
    )
    ORDER_REFUNDED = strawberry.enum_value(
        "order_refunded", description="An organizer refunded (part of) your order."
    )
    LATE_PAYMENT_REFUNDED = strawberry.enum_value(
        "late_payment_refunded",
        description="Your payment came after the seats were gone: it was refunded.",
    )
    EVENT_CHANGED = strawberry.enum_value(
        "event_changed", description="An event you hold tickets for changed its time or place."
    )
    EVENT_CANCELED = strawberry.enum_value(
        "event_canceled", description="An event you hold tickets for was canceled."
    )
    MENTION = strawberry.enum_value("mention", description="A post mentioned your @handle.")
    WAITLIST_OFFER = strawberry.enum_value(
        "waitlist_offer",
        description="Seats freed for you from a tier's waitlist are held for you until the "
        "offer expires: check them out with the hold in `data.holdId`.",
    )
    NEW_POST = strawberry.enum_value(
        "new_post", description="A new post in the feed of an event you hold tickets for."
    )
    PRODUCT_UPDATE = strawberry.enum_value("product_update", description="News about the product.")
    ACCOUNT_ALERT = strawberry.enum_value(
        "account_alert", description="Something about your account that needs your attention."
    )


@strawberry.enum(description="A way to reach the user.")
class NotificationChannel(Enum):
    IN_APP = strawberry.enum_value("in_app", description="The inbox in the app.")
    EMAIL = strawberry.enum_value("email", description="Email (sent by the outbox job).")
    PUSH = strawberry.enum_value(
        "push", description="Push; recorded as skipped while no provider is set up."
    )
    SMS = strawberry.enum_value(
        "sms", description="SMS; recorded as skipped while no provider is set up."
    )


@strawberry.enum(description="How often unread notifications are summed up by email.")
class DigestFrequency(Enum):
    OFF = strawberry.enum_value("off", description="No digest.")
    DAILY = strawberry.enum_value("daily", description="Every day at 08:00 in your zone.")
    WEEKLY = strawberry.enum_value(
        "weekly", description="On `digestWeekday` at 08:00 in your zone."
    )


def lane_of(value: NotificationLane | None) -> Lane | None:
    return Lane(enum_value_of(value)) if value is not None else None


@strawberry.type(description="A notification in the viewer's inbox.")
class Notification(Node):
    category: NotificationCategory = strawberry.field(description="What it is about.")
    lane: NotificationLane = strawberry.field(description="Where it is shown.")
    title: str = strawberry.field(description="One line, at most 200 characters.")
    body: str = strawberry.field(description="More text, at most 2,000 characters; may be empty.")
    data: JSON = strawberry.field(
        description="What it refers to, for links: `orderId`, `eventId`, `postId` as present."
    )
    created_at: datetime = strawberry.field(description="When it was raised.")
    read_at: datetime | None = strawberry.field(
        description="When it was marked read; null if unread."
    )
    cursor: str = strawberry.field(description="Its position in the inbox: an `after`.")

    @classmethod
    def from_record(cls, record: db.notifications.NotificationRecord) -> Notification:
        return cls(
            id=node_id(NOTIFICATION, record.id),
            category=NotificationCategory(record.category),
            lane=NotificationLane(record.lane),
            title=record.title,
            body=record.body,
            data=cast(JSON, record.data),
            created_at=record.created_at,
            read_at=record.read_at,
            cursor=record.cursor,
        )


@strawberry.type(description="A page of the inbox, newest first (Relay connection).")
class NotificationConnection:
    edges: list[NotificationEdge] = strawberry.field(description="The notifications of this page.")
    page_info: PageInfo = strawberry.field(description="Whether more follow, and from where.")

    @classmethod
    def from_page(
        cls, page: db.notifications.NotificationPage, after: str | None
    ) -> NotificationConnection:
        edges = [
            NotificationEdge(cursor=r.cursor, node=Notification.from_record(r)) for r in page.items
        ]
        return cls(
            edges=edges,
            page_info=PageInfo(
                has_next_page=page.has_next_page,
                has_previous_page=after is not None,
                start_cursor=edges[0].cursor if edges else None,
                end_cursor=edges[-1].cursor if edges else None,
            ),
        )


@strawberry.type(description="A notification in a page of the inbox.")
class NotificationEdge:
    cursor: str = strawberry.field(description="Pass it as `after` to continue.")
    node: Notification = strawberry.field(description="The notification.")


@strawberry.type(description="Unread notifications of the viewer, per lane and in all.")
class NotificationCounts:
    priority: int = strawberry.field(description="Unread in the priority lane.")
    social: int = strawberry.field(description="Unread in the social lane.")
    system: int = strawberry.field(description="Unread in the system lane.")
    total: int = strawberry.field(description="Unread in all lanes.")

    @classmethod
    def from_counts(cls, counts: Counts) -> NotificationCounts:
        return cls(
            priority=counts.by_lane[Lane.PRIORITY],
            social=counts.by_lane[Lane.SOCIAL],
            system=counts.by_lane[Lane.SYSTEM],
            total=counts.total,
        )


@strawberry.type(description="The result of marking notifications read.")
class MarkNotificationsReadPayload:
    marked: list[strawberry.ID] = strawberry.field(
        description="The viewer's notifications now read (those already read included)."
    )
    not_found: list[strawberry.ID] = strawberry.field(
        description="Ids that name none of the viewer's notifications: nothing was changed."
    )
    counts: NotificationCounts = strawberry.field(description="The unread counts after.")

    @classmethod
    def from_outcome(cls, outcome: MarkOutcome) -> MarkNotificationsReadPayload:
        return cls(
            marked=[node_id(NOTIFICATION, i) for i in outcome.marked],
            not_found=[strawberry.ID(v) for v in outcome.not_found],
            counts=NotificationCounts.from_counts(outcome.counts),
        )


@strawberry.type(description="The result of marking a lane (or everything) read.")
class MarkAllNotificationsReadPayload:
    marked: int = strawberry.field(description="How many notifications this call marked read.")
    counts: NotificationCounts = strawberry.field(description="The unread counts after.")


@strawberry.type(description="Whether a channel carries a category.")
class NotificationSwitch:
    channel: NotificationChannel = strawberry.field(description="The channel.")
    category: NotificationCategory = strawberry.field(description="The category.")
    enabled: bool = strawberry.field(description="On or off (the default unless you set it).")


@strawberry.type(description="A daily quiet period, in the viewer's `timeZone`.")
class QuietHours:
    start: str = strawberry.field(description="HH:MM; deliveries beyond the inbox wait from here.")
    end: str = strawberry.field(
        description="HH:MM, may be before `start` (crossing midnight); deferred deliveries "
        "go out then."
    )


@strawberry.type(description="How, when and how often the viewer is notified.")
class NotificationPreferences:
    switches: list[NotificationSwitch] = strawberry.field(
        description="Every channel x category switch in effect (defaults included)."
    )
    quiet_hours: QuietHours | None = strawberry.field(
        description="When nothing but the inbox is delivered; null for none. Money "
        "notifications (payments, refunds) are never held back."
    )
    time_zone: str = strawberry.field(
        description="IANA zone for quiet hours, the cap's day and digests."
    )
    daily_cap: int | None = strawberry.field(
        description="At most this many notifications a day beyond the inbox (later ones stay "
        "in the inbox only; money ones always go out); null for no cap."
    )
    digest: DigestFrequency = strawberry.field(description="Email digest of unread notifications.")
    digest_weekday: int = strawberry.field(description="1 (Monday) to 7: the weekly digest's day.")

    @classmethod
    def from_preferences(cls, prefs: Preferences) -> NotificationPreferences:
        switches = [
            NotificationSwitch(
                channel=NotificationChannel(channel.value),
                category=NotificationCategory(category.value),
                enabled=prefs.enabled(channel, category),
            )
            for channel in Channel
            for category in LANES
        ]
        quiet = None
        if prefs.quiet_start is not None and prefs.quiet_end is not None:
            quiet = QuietHours(
                start=prefs.quiet_start.strftime("%H:%M"), end=prefs.quiet_end.strftime("%H:%M")
            )
        return cls(
            switches=switches,
            quiet_hours=quiet,
            time_zone=prefs.time_zone,
            daily_cap=prefs.daily_cap,
            digest=DigestFrequency(prefs.digest),
            digest_weekday=prefs.digest_weekday,
        )


@strawberry.input(description="Turn one channel x category switch on or off.")
class NotificationSwitchInput:
    channel: NotificationChannel = strawberry.field(description="The channel.")
    category: NotificationCategory = strawberry.field(description="The category.")
    enabled: bool = strawberry.field(description="On or off.")


@strawberry.input(description="A daily quiet period, times as HH:MM (00:00-23:59).")
class QuietHoursInputType:
    start: str = strawberry.field(description="When quiet begins, e.g. 23:00.")
    end: str = strawberry.field(description="When it ends, e.g. 07:00 (may cross midnight).")


@strawberry.input(
    description="What to change; everything left out stays as it is (a deep merge: "
    "switches merge one by one)."
)
class UpdateNotificationPreferencesInput:
    switches: list[NotificationSwitchInput] | None = strawberry.field(
        default=strawberry.UNSET, description="Switches to set; the others stay."
    )
    quiet_hours: QuietHoursInputType | None = strawberry.field(
        default=strawberry.UNSET, description="New quiet hours; null removes them."
    )
    time_zone: str | None = strawberry.field(
        default=strawberry.UNSET, description="An IANA time zone, e.g. America/New_York."
    )
    daily_cap: int | None = strawberry.field(
        default=strawberry.UNSET, description="1-1000; null removes the cap."
    )
    digest: DigestFrequency | None = strawberry.field(
        default=strawberry.UNSET, description="Digest frequency."
    )
    digest_weekday: int | None = strawberry.field(
        default=strawberry.UNSET, description="1 (Monday) to 7 (Sunday)."
    )

    def to_change(self) -> Change:
        """The deep-merge change (quiet hours validated: a typed error naming the field)."""
        given = set_fields(self)
        switches: dict[str, dict[str, bool]] = {}
        for item in given.get("switches") or ():
            channel = enum_value_of(item.channel)
            switches.setdefault(channel, {})[enum_value_of(item.category)] = item.enabled
        values: dict[str, object] = {"switches": switches}
        if "quiet_hours" in given:
            value = given["quiet_hours"]
            values["quiet"] = quiet_hours(
                QuietHoursInput(value.start, value.end) if value is not None else None
            )
        for name in ("time_zone", "digest", "digest_weekday"):
            if name in given and given[name] is None:
                raise NotificationDomainError(
                    f"{name} cannot be null", code=NotificationCode.INVALID_PREFERENCES, field=name
                )
        if "daily_cap" in given:
            values["daily_cap"] = given["daily_cap"]
        for name in ("time_zone", "digest_weekday"):
            if name in given:
                values[name] = given[name]
        if "digest" in given:
            values["digest"] = enum_value_of(given["digest"])
        return Change(**values)  # type: ignore[arg-type]


@strawberry.enum(description="Why a notification operation failed.")
class NotificationErrorCode(Enum):
    UNAUTHENTICATED = strawberry.enum_value(
        "UNAUTHENTICATED", description="Sign in first: no valid bearer token was sent."
    )
    INVALID_PREFERENCES = strawberry.enum_value(
        "INVALID_PREFERENCES",
        description="A preference was refused (see `field`): nothing was changed.",
    )
    NOT_FOUND = strawberry.enum_value("NOT_FOUND", description="No such notification of yours.")
    INVALID_INPUT = strawberry.enum_value(
        "INVALID_INPUT", description="The input was refused for a reason no other code names."
    )


@strawberry.type(description="A notification operation was refused; nothing changed.")
class NotificationError(UserError):
    code: NotificationErrorCode = strawberry.field(
        description="What went wrong; switch on it, never on `message`."
    )


@strawberry.type(description="The viewer's preferences after the update.")
class NotificationPreferencesPayload:
    preferences: NotificationPreferences = strawberry.field(description="Every preference now.")


UpdateNotificationPreferencesResult = Annotated[
    NotificationPreferencesPayload | NotificationError,
    strawberry.union(
        "UpdateNotificationPreferencesResult",
        description="The preferences after the update, or why it was refused.",
    ),
]


@strawberry.enum(description="Why a live inbox message was sent.")
class NotificationEventReason(Enum):
    SNAPSHOT = strawberry.enum_value("snapshot", description="The first message: the counts now.")
    NEW = strawberry.enum_value("new", description="A new notification (in `notification`).")
    READ = strawberry.enum_value("read", description="Notifications were marked read somewhere.")
    RESYNC = strawberry.enum_value(
        "resync", description="The server may have missed changes: refetch the inbox."
    )


@strawberry.type(description="A change of the viewer's inbox, after it committed.")
class NotificationEvent:
    reason: NotificationEventReason = strawberry.field(description="Why it was sent.")
    notification: Notification | None = strawberry.field(
        description="With NEW: the notification; null otherwise."
    )
    counts: NotificationCounts = strawberry.field(description="The unread counts now.")

    @classmethod
    def from_event(cls, event: InboxEvent) -> NotificationEvent:
        return cls(
            reason=NotificationEventReason(event.reason),
            notification=Notification.from_record(event.notification)
            if event.notification
            else None,
            counts=NotificationCounts.from_counts(event.counts),
        )
