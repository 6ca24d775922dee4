"""Root fields for the viewer's notifications: the inbox, preferences, the live inbox."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import Annotated

import strawberry

import resolvers.inbox_live
import resolvers.notifications
from resolvers.context import Info
from schema.notifications import (
    MarkAllNotificationsReadPayload,
    MarkNotificationsReadPayload,
    NotificationConnection,
    NotificationCounts,
    NotificationEvent,
    NotificationLane,
    NotificationPreferences,
    NotificationPreferencesPayload,
    UpdateNotificationPreferencesInput,
    UpdateNotificationPreferencesResult,
    lane_of,
)

Lane = Annotated[
    NotificationLane | None,
    strawberry.argument(description="Only this lane; null for every lane."),
]


@strawberry.type
class NotificationsQuery:
    @strawberry.field(
        description="The viewer's notifications, newest first (signed-in users). `first` "
        "1-100, `after` an endCursor."
    )
    async def notifications(
        self,
        info: Info,
        lane: Lane = None,
        unread_only: Annotated[
            bool, strawberry.argument(description="Only those not yet read.")
        ] = False,
        first: Annotated[int, strawberry.argument(description="Page size, 1-100.")] = 20,
        after: Annotated[
            str | None,
            strawberry.argument(description="The `endCursor` of the previous page."),
        ] = None,
    ) -> NotificationConnection:
        page = await resolvers.notifications.notifications(
            info, lane_of(lane), unread_only, first, after
        )
        return NotificationConnection.from_page(page, after)

    @strawberry.field(description="The viewer's unread notifications per lane and in all.")
    async def notification_counts(self, info: Info) -> NotificationCounts:
        return NotificationCounts.from_counts(await resolvers.notifications.counts(info))

    @strawberry.field(description="How, when and how often the viewer is notified.")
    async def notification_preferences(self, info: Info) -> NotificationPreferences:
        prefs = await resolvers.notifications.preferences(info)
        return NotificationPreferences.from_preferences(prefs)


@strawberry.type
class NotificationsMutation:
    @strawberry.mutation(
        description="Mark some of the viewer's notifications read. Ids that are not the "
        "viewer's come back in `notFound`, unchanged."
    )
    async def mark_notifications_read(
        self,
        info: Info,
        ids: Annotated[
            list[strawberry.ID], strawberry.argument(description="Notification ids, 1-500.")
        ],
    ) -> MarkNotificationsReadPayload:
        outcome = await resolvers.notifications.mark_read(info, list(ids))
        return MarkNotificationsReadPayload.from_outcome(outcome)

    @strawberry.mutation(description="Mark all of the viewer's notifications read (of a lane).")
    async def mark_all_notifications_read(
        self, info: Info, lane: Lane = None
    ) -> MarkAllNotificationsReadPayload:
        marked, counts = await resolvers.notifications.mark_all_read(info, lane_of(lane))
        return MarkAllNotificationsReadPayload(
            marked=marked, counts=NotificationCounts.from_counts(counts)
        )

    @strawberry.mutation(
        description="Change the viewer's notification preferences by deep merge: what the "
        "input leaves out stays. A refused value changes nothing (INVALID_PREFERENCES)."
    )
    async def update_notification_preferences(
        self,
        info: Info,
        input: Annotated[
            UpdateNotificationPreferencesInput,
            strawberry.argument(description="The preferences to change."),
        ],
    ) -> UpdateNotificationPreferencesResult:
        prefs = await resolvers.notifications.update_preferences(info, input.to_change())
        return NotificationPreferencesPayload(
            preferences=NotificationPreferences.from_preferences(prefs)
        )


@strawberry.type
class NotificationsSubscription:
    @strawberry.subscription(
        description="The viewer's inbox live: the counts first, then each new notification "
        "with the counts after it, and the counts after notifications are marked read (in "
        "any tab or process). Only committed changes are sent."
    )
    async def notification_events(self, info: Info) -> AsyncGenerator[NotificationEvent, None]:
        async for event in resolvers.inbox_live.inbox_events(info):
            yield NotificationEvent.from_event(event)
