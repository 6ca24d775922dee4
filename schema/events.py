"""Events as the API shows them: the `Event` type, its status, inputs and pages.

Other features reference `Event` lazily
(``Annotated["Event", strawberry.lazy("schema.events")]``) and build it with
`Event.from_record`; its organizer and tiers load through the request's DataLoaders, so
a page of N events costs one query for organizers and one for tiers.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import Enum
from typing import TYPE_CHECKING, Annotated

import strawberry
from strawberry.relay import PageInfo

import db.events
import db.tiers
from liventix.context import Info
from schema.users import User

if TYPE_CHECKING:
    from schema.ticketing import TicketTier


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
        profile = await info.context.loaders.profile(self.organizer_id)
        return User.from_profile(profile) if profile else None

    @strawberry.field(
        description="Ticket tiers in display order with live counters. Hidden tiers are "
        "listed only for the event's organizer and admins."
    )
    async def tiers(
        self, info: Info
    ) -> list[Annotated[TicketTier, strawberry.lazy("schema.ticketing")]]:
        from schema.ticketing import TicketTier

        records: list[db.tiers.TierRecord] = await info.context.loaders.get(
            db.tiers.tiers_for_events
        ).load(uuid.UUID(self.id))
        viewer = info.context.viewer
        manages = db.events.manages_event(self.organizer_id, viewer.user_id, viewer.is_admin)
        return [
            TicketTier.from_record(r) for r in records if db.tiers.tier_listed(r, manages=manages)
        ]


@strawberry.type
class EventEdge:
    cursor: str
    node: Event


@strawberry.type(description="A page of events (Relay connection).")
class EventConnection:
    edges: list[EventEdge]
    page_info: PageInfo


@strawberry.input(description="A new event; it starts as a draft.")
class CreateEventInput:
    title: str
    start_at: datetime = strawberry.field(description="With a UTC offset, e.g. 2030-05-01T20:00Z.")
    description: str = ""
    venue: str = ""
    end_at: datetime | None = None
    time_zone: str = "UTC"


@strawberry.input(description="Fields to change; omitted fields stay as they are.")
class UpdateEventInput:
    title: str | None = strawberry.UNSET
    description: str | None = strawberry.UNSET
    venue: str | None = strawberry.UNSET
    start_at: datetime | None = strawberry.UNSET
    end_at: datetime | None = strawberry.UNSET
    time_zone: str | None = strawberry.UNSET
