"""Root fields for events: reads, and organizers' writes."""

from __future__ import annotations

from typing import Annotated

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
from schema.inputs import enum_value_of

EventId = Annotated[strawberry.ID, strawberry.argument(description="The event's id.")]


@strawberry.type
class EventsQuery:
    @strawberry.field(
        description="An event by id; null if unknown, or a draft you do not organize."
    )
    async def event(self, info: Info, id: EventId) -> Event | None:
        record = await resolvers.events.event(info, id)
        return Event.from_record(record) if record else None

    @strawberry.field(
        description="Published events that are not over yet, soonest first. `first` "
        "(1-100, default 20) and `after` (an endCursor) paginate."
    )
    async def events(
        self,
        info: Info,
        first: Annotated[
            int,
            strawberry.argument(
                description="Page size, 1-100; outside that range the request is refused."
            ),
        ] = 20,
        after: Annotated[
            str | None,
            strawberry.argument(
                description="The `endCursor` of the previous page; null for the first page."
            ),
        ] = None,
    ) -> EventConnection:
        return EventConnection.from_slice(await resolvers.events.events(info, first, after))

    @strawberry.field(
        description="Events the viewer organizes (at most 500), any status, soonest first; "
        "empty for fans. Signed-in users only."
    )
    async def my_events(self, info: Info) -> list[Event]:
        return [Event.from_record(r) for r in await resolvers.events.my_events(info)]


@strawberry.type
class EventsMutation:
    @strawberry.mutation(description="Create a draft event (organizers, admins).")
    async def create_event(
        self,
        info: Info,
        input: Annotated[
            CreateEventInput, strawberry.argument(description="The new event's fields.")
        ],
    ) -> EventResult:
        record = await resolvers.events.create_event(info, input.to_draft())
        return EventPayload.from_record(record)

    @strawberry.mutation(description="Edit your event; omitted fields stay.")
    async def update_event(
        self,
        info: Info,
        id: EventId,
        input: Annotated[
            UpdateEventInput,
            strawberry.argument(description="The fields to change; omitted ones stay."),
        ],
    ) -> EventResult:
        record = await resolvers.events.update_event(info, id, input.changes())
        return EventPayload.from_record(record)

    @strawberry.mutation(description="Put your event on sale (status PUBLISHED).")
    async def publish_event(self, info: Info, id: EventId) -> EventResult:
        return EventPayload.from_record(await resolvers.events.publish_event(info, id))

    @strawberry.mutation(
        description="Publish, unpublish (DRAFT) or cancel your event; CANCELED is final."
    )
    async def set_event_status(
        self,
        info: Info,
        id: EventId,
        status: Annotated[EventStatus, strawberry.argument(description="The new status.")],
    ) -> EventResult:
        record = await resolvers.events.set_event_status(info, id, enum_value_of(status))
        return EventPayload.from_record(record)
