"""Root fields for events: reads, and organizers' writes."""

from __future__ import annotations

import strawberry

import resolvers.events
from resolvers.context import Info
from schema.events import (
    CreateEventInput,
    Event,
    EventConnection,
    EventPayload,
    EventResult,
    EventStatus,
    UpdateEventInput,
)


@strawberry.type
class EventsQuery:
    @strawberry.field(
        description="An event by id; null if unknown, or a draft you do not organize."
    )
    async def event(self, info: Info, id: strawberry.ID) -> Event | None:
        record = await resolvers.events.event(info, id)
        return Event.from_record(record) if record else None

    @strawberry.field(
        description="Published events that are not over yet, soonest first. `first` "
        "(1-100, default 20) and `after` (an endCursor) paginate."
    )
    async def events(
        self, info: Info, first: int = 20, after: str | None = None
    ) -> EventConnection:
        return EventConnection.from_slice(await resolvers.events.events(info, first, after))

    @strawberry.field(description="Events the viewer organizes, any status.")
    async def my_events(self, info: Info) -> list[Event]:
        return [Event.from_record(r) for r in await resolvers.events.my_events(info)]


@strawberry.type
class EventsMutation:
    @strawberry.mutation(description="Create a draft event (organizers, admins).")
    async def create_event(self, info: Info, input: CreateEventInput) -> EventResult:
        record = await resolvers.events.create_event(info, input.to_draft())
        return EventPayload.from_record(record)

    @strawberry.mutation(description="Edit your event; omitted fields stay.")
    async def update_event(
        self, info: Info, id: strawberry.ID, input: UpdateEventInput
    ) -> EventResult:
        record = await resolvers.events.update_event(info, id, input.changes())
        return EventPayload.from_record(record)

    @strawberry.mutation(description="Put your event on sale (status PUBLISHED).")
    async def publish_event(self, info: Info, id: strawberry.ID) -> EventResult:
        return EventPayload.from_record(await resolvers.events.publish_event(info, id))

    @strawberry.mutation(
        description="Publish, unpublish (DRAFT) or cancel your event; CANCELED is final."
    )
    async def set_event_status(
        self, info: Info, id: strawberry.ID, status: EventStatus
    ) -> EventResult:
        record = await resolvers.events.set_event_status(info, id, status.value)
        return EventPayload.from_record(record)
