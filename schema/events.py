"""Events as the API shows them: the `Event` type, its status, inputs, pages and payloads.

Other features build `Event` with `Event.from_record`; its organizer and tiers load
through the request's DataLoaders (`resolvers.users.user`, `resolvers.ticketing.
listed_tiers`), so a page of N events costs one query for organizers and one for tiers.
Event mutations fail with the ticketing feature's `TicketingError`.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import Enum
from typing import Annotated, Any

import strawberry
from strawberry.relay import PageInfo

import db.events
import db.pages
import resolvers.ticketing
import resolvers.users
from resolvers.context import Info
from resolvers.events import EventDraft, EventSlice
from schema.inputs import set_fields
from schema.ticketing import TicketingError, TicketTier
from schema.users import User


@strawberry.enum(description="Where an event is in its life: only published events are public.")
class EventStatus(Enum):
    DRAFT = "draft"
    PUBLISHED = "published"
    CANCELED = "canceled"


@strawberry.type(description="An event, owned by an organizer, with its ticket tiers.")
class Event:
    id: strawberry.ID
    title: str
    description: str
    venue: str
    start_at: datetime
    end_at: datetime | None
    time_zone: str = strawberry.field(
        description="IANA time zone of the venue, e.g. Europe/Berlin."
    )
    status: EventStatus
    created_at: datetime
    updated_at: datetime
    organizer_id: strawberry.Private[uuid.UUID]

    @classmethod
    def from_record(cls, record: db.events.EventRecord) -> Event:
        return cls(
            id=strawberry.ID(str(record.id)),
            title=record.title,
            description=record.description,
            venue=record.venue,
            start_at=record.start_at,
            end_at=record.end_at,
            time_zone=record.time_zone,
            status=EventStatus(record.status),
            created_at=record.created_at,
            updated_at=record.updated_at,
            organizer_id=record.organizer_id,
        )

    @strawberry.field(description="The organizer who owns the event.")
    async def organizer(self, info: Info) -> User | None:
        profile = await resolvers.users.user(info, self.organizer_id)
        return User.from_profile(profile) if profile else None

    @strawberry.field(
        description="Ticket tiers in display order with live counters. Hidden tiers are "
        "listed only for the event's organizer and admins."
    )
    async def tiers(self, info: Info) -> list[TicketTier]:
        records = await resolvers.ticketing.listed_tiers(
            info, uuid.UUID(self.id), self.organizer_id
        )
        return [TicketTier.from_record(r) for r in records]


@strawberry.type
class EventEdge:
    cursor: str
    node: Event


@strawberry.type(description="A page of events (Relay connection).")
class EventConnection:
    edges: list[EventEdge]
    page_info: PageInfo

    @classmethod
    def from_slice(cls, events: EventSlice) -> EventConnection:
        edges = [
            EventEdge(cursor=db.pages.encode_cursor(r.start_at, r.id), node=Event.from_record(r))
            for r in events.page.events
        ]
        return cls(
            edges=edges,
            page_info=PageInfo(
                has_next_page=events.page.has_next_page,
                has_previous_page=events.has_previous,
                start_cursor=edges[0].cursor if edges else None,
                end_cursor=edges[-1].cursor if edges else None,
            ),
        )


@strawberry.input(description="A new event; it starts as a draft.")
class CreateEventInput:
    title: str
    start_at: datetime = strawberry.field(description="With a UTC offset, e.g. 2030-05-01T20:00Z.")
    description: str = ""
    venue: str = ""
    end_at: datetime | None = None
    time_zone: str = "UTC"

    def to_draft(self) -> EventDraft:
        return EventDraft(
            title=self.title,
            start_at=self.start_at,
            description=self.description,
            venue=self.venue,
            end_at=self.end_at,
            time_zone=self.time_zone,
        )


@strawberry.input(description="Fields to change; omitted fields stay as they are.")
class UpdateEventInput:
    title: str | None = strawberry.UNSET
    description: str | None = strawberry.UNSET
    venue: str | None = strawberry.UNSET
    start_at: datetime | None = strawberry.UNSET
    end_at: datetime | None = strawberry.UNSET
    time_zone: str | None = strawberry.UNSET

    def changes(self) -> dict[str, Any]:
        """The fields the client set (null included), by name."""
        return set_fields(self)


@strawberry.type
class EventPayload:
    event: Event

    @classmethod
    def from_record(cls, record: db.events.EventRecord) -> EventPayload:
        return cls(event=Event.from_record(record))


EventResult = Annotated[EventPayload | TicketingError, strawberry.union("EventResult")]
