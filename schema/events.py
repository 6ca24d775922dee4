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
from resolvers.ids import EVENT
from schema.inputs import enum_value_of, set_fields
from schema.node import Node, node_id
from schema.ticketing import TicketingError, TicketTier
from schema.users import User


@strawberry.enum(description="Where an event is in its life: only published events are public.")
class EventStatus(Enum):
    DRAFT = strawberry.enum_value(
        "draft", description="Being prepared: visible to its organizer and admins only."
    )
    PUBLISHED = strawberry.enum_value(
        "published", description="Public and on sale (within each tier's sales window)."
    )
    CANCELED = strawberry.enum_value(
        "canceled", description="Called off: still visible, sells nothing; final."
    )


@strawberry.enum(description="How an event's waitlists take people in.")
class WaitlistApproval(Enum):
    AUTOMATIC = strawberry.enum_value(
        "automatic", description="A fan who joins is in line at once (the default)."
    )
    MANUAL = strawberry.enum_value(
        "manual",
        description="A fan who joins is PENDING_APPROVAL, not in line (holds nothing back "
        "from the public, is offered nothing) until the organizer approves the entry "
        "(`approveWaitlistEntries`: in line by join time) or declines it. Switching back "
        "to AUTOMATIC leaves pending entries pending: the organizer still decides them.",
    )


@strawberry.type(description="An event, owned by an organizer, with its ticket tiers.")
class Event(Node):
    title: str = strawberry.field(description="Title, 1-200 characters.")
    description: str = strawberry.field(
        description="Free text, at most 10,000 characters; empty if none."
    )
    venue: str = strawberry.field(description="Where it happens, at most 300 characters.")
    start_at: datetime = strawberry.field(
        description="When it starts (an instant, ISO 8601 with offset); show it in `timeZone`."
    )
    end_at: datetime | None = strawberry.field(
        description="When it ends, never before `startAt`; null if not given."
    )
    time_zone: str = strawberry.field(
        description="IANA time zone of the venue, e.g. Europe/Berlin."
    )
    status: EventStatus = strawberry.field(description="Draft, published or canceled.")
    created_at: datetime = strawberry.field(description="When the event was created.")
    updated_at: datetime = strawberry.field(
        description="When the event itself last changed (not its tiers or sales)."
    )
    waitlist_approval: WaitlistApproval = strawberry.field(
        description="Whether joining a waitlist of this event needs the organizer's approval."
    )
    waitlist_offer_minutes: int = strawberry.field(
        description="How long a waitlist offer holds its seats, in minutes (60 by default)."
    )
    key: strawberry.Private[uuid.UUID]
    organizer_id: strawberry.Private[uuid.UUID]

    @classmethod
    def from_record(cls, record: db.events.EventRecord) -> Event:
        return cls(
            id=node_id(EVENT, record.id),
            key=record.id,
            title=record.title,
            description=record.description,
            venue=record.venue,
            start_at=record.start_at,
            end_at=record.end_at,
            time_zone=record.time_zone,
            status=EventStatus(record.status),
            created_at=record.created_at,
            updated_at=record.updated_at,
            waitlist_approval=WaitlistApproval(record.waitlist_approval),
            waitlist_offer_minutes=record.waitlist_offer_minutes,
            organizer_id=record.organizer_id,
        )

    @strawberry.field(
        description="The organizer who owns the event; null only if their profile is gone."
    )
    async def organizer(self, info: Info) -> User | None:
        profile = await resolvers.users.user(info, self.organizer_id)
        return User.from_profile(profile) if profile else None

    @strawberry.field(
        description="Ticket tiers in display order with live counters. Hidden tiers are "
        "listed only for the event's organizer and admins."
    )
    async def tiers(self, info: Info) -> list[TicketTier]:
        records = await resolvers.ticketing.listed_tiers(info, self.key, self.organizer_id)
        return [TicketTier.from_record(r) for r in records]


@strawberry.type(description="An event in a page of events, with its position.")
class EventEdge:
    cursor: str = strawberry.field(
        description="Opaque position of this event; pass it as `after` to continue."
    )
    node: Event = strawberry.field(description="The event.")


@strawberry.type(description="A page of events (Relay connection).")
class EventConnection:
    edges: list[EventEdge] = strawberry.field(
        description="The events of this page, in order; empty past the last page."
    )
    page_info: PageInfo = strawberry.field(
        description="Whether more pages follow, and the cursor to fetch the next one."
    )

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
    title: str = strawberry.field(description="Title, 1-200 characters.")
    start_at: datetime = strawberry.field(description="With a UTC offset, e.g. 2030-05-01T20:00Z.")
    description: str = strawberry.field(
        default="", description="Free text, at most 10,000 characters."
    )
    venue: str = strawberry.field(default="", description="At most 300 characters.")
    end_at: datetime | None = strawberry.field(
        default=None, description="With a UTC offset; not before `startAt`. Null: not given."
    )
    time_zone: str = strawberry.field(
        default="UTC", description="IANA time zone of the venue, e.g. Europe/Berlin."
    )

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
    title: str | None = strawberry.field(
        default=strawberry.UNSET, description="New title, 1-200 characters."
    )
    description: str | None = strawberry.field(
        default=strawberry.UNSET, description="New description, at most 10,000 characters."
    )
    venue: str | None = strawberry.field(
        default=strawberry.UNSET, description="New venue, at most 300 characters."
    )
    start_at: datetime | None = strawberry.field(
        default=strawberry.UNSET, description="New start, with a UTC offset."
    )
    end_at: datetime | None = strawberry.field(
        default=strawberry.UNSET,
        description="New end, with a UTC offset; null removes the end time.",
    )
    time_zone: str | None = strawberry.field(
        default=strawberry.UNSET, description="New IANA time zone, e.g. Europe/Berlin."
    )
    waitlist_approval: WaitlistApproval | None = strawberry.field(
        default=strawberry.UNSET,
        description="AUTOMATIC or MANUAL: whether joining a waitlist needs your approval.",
    )
    waitlist_offer_minutes: int | None = strawberry.field(
        default=strawberry.UNSET,
        description="How long a waitlist offer holds its seats: 5 to 10080 minutes (a "
        "week). Applies to offers made from now on.",
    )

    def changes(self) -> dict[str, Any]:
        """The fields the client set (null included), by name; enums as their values."""
        changes = set_fields(self)
        if isinstance(changes.get("waitlist_approval"), WaitlistApproval):
            changes["waitlist_approval"] = enum_value_of(changes["waitlist_approval"])
        return changes


@strawberry.type(description="The event after a successful create, edit or status change.")
class EventPayload:
    event: Event = strawberry.field(description="The event as it is now.")

    @classmethod
    def from_record(cls, record: db.events.EventRecord) -> EventPayload:
        return cls(event=Event.from_record(record))


EventResult = Annotated[
    EventPayload | TicketingError,
    strawberry.union(
        "EventResult",
        description="The event, or why the operation did not happen (switch on `code`).",
    ),
]
