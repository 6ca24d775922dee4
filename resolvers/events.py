"""Event queries and organizer writes: auth checks, input → repository call → type."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import strawberry
from strawberry.relay import PageInfo

import db.events
import db.pages
from db.errors import DomainError
from liventix.auth import Role
from liventix.context import Info
from resolvers.ids import parse_id
from schema.errors import ClientError
from schema.events import (
    CreateEventInput,
    Event,
    EventConnection,
    EventEdge,
    EventStatus,
    UpdateEventInput,
)
from schema.ticketing import EventPayload, EventResult, TicketingError, TicketingErrorCode

MAX_PAGE = 100


async def organizer_actor(info: Info) -> db.events.Actor | TicketingError:
    """The viewer as an organizer/admin (profile ensured), or the typed refusal."""
    viewer = info.context.viewer
    if viewer.user_id is None:
        return TicketingError.of(TicketingErrorCode.UNAUTHENTICATED, "Sign in first")
    if viewer.role not in (Role.ORGANIZER, Role.ADMIN):
        return TicketingError.of(
            TicketingErrorCode.NOT_ALLOWED, "Only organizers may manage events"
        )
    await info.context.services.first_sight.see(viewer)
    return db.events.Actor(user_id=viewer.user_id, is_admin=viewer.is_admin)


async def event(info: Info, id: strawberry.ID) -> Event | None:
    """An event by id: published/canceled ones for anyone, drafts for their organizer."""
    event_id = parse_id(id)
    if event_id is None:
        return None
    record = await info.context.loaders.get(db.events.get_events).load(event_id)
    viewer = info.context.viewer
    if record is None or not db.events.event_visible(record, viewer.user_id, viewer.is_admin):
        return None
    return Event.from_record(record)


def _keyset(cursor: str) -> tuple[datetime, uuid.UUID]:
    """The (start_at, id) after which a page starts; BAD_USER_INPUT if not a cursor."""
    keyset = db.pages.decode_cursor(cursor)
    if keyset is None:
        raise ClientError("Invalid cursor", "BAD_USER_INPUT")
    return keyset


async def events(info: Info, first: int = 20, after: str | None = None) -> EventConnection:
    """Published events that are not over yet, soonest first (Relay pagination)."""
    if not 1 <= first <= MAX_PAGE:
        raise ClientError(f"first must be between 1 and {MAX_PAGE}", "BAD_USER_INPUT")
    keyset = _keyset(after) if after else None
    page = await db.events.list_published(info.context.db, info.context.clock.now(), first, keyset)
    edges = [
        EventEdge(cursor=db.pages.encode_cursor(r.start_at, r.id), node=Event.from_record(r))
        for r in page.events
    ]
    return EventConnection(
        edges=edges,
        page_info=PageInfo(
            has_next_page=page.has_next_page,
            has_previous_page=after is not None,
            start_cursor=edges[0].cursor if edges else None,
            end_cursor=edges[-1].cursor if edges else None,
        ),
    )


async def my_events(info: Info) -> list[Event]:
    """The viewer's own events, any status (empty for fans)."""
    viewer = info.context.viewer
    if viewer.user_id is None:
        raise ClientError("Sign in first", "UNAUTHENTICATED")
    records = await db.events.list_by_organizer(info.context.db, viewer.user_id)
    return [Event.from_record(r) for r in records]


async def create_event(info: Info, input: CreateEventInput) -> EventResult:
    actor = await organizer_actor(info)
    if isinstance(actor, TicketingError):
        return actor
    try:
        record = await db.events.create_event(
            info.context.db,
            actor,
            title=input.title,
            start_at=input.start_at,
            description=input.description,
            venue=input.venue,
            end_at=input.end_at,
            time_zone=input.time_zone,
        )
    except DomainError as error:
        return TicketingError.from_domain(error)
    return EventPayload(event=Event.from_record(record))


async def update_event(info: Info, id: strawberry.ID, input: UpdateEventInput) -> EventResult:
    actor = await organizer_actor(info)
    if isinstance(actor, TicketingError):
        return actor
    event_id = parse_id(id)
    if event_id is None:
        return TicketingError.of(TicketingErrorCode.EVENT_NOT_FOUND, "Event not found", "id")
    changes: dict[str, Any] = {
        name: getattr(input, name)
        for name in db.events.EDITABLE
        if getattr(input, name) is not strawberry.UNSET
    }
    try:
        record = await db.events.update_event(
            info.context.db, actor, event_id, changes, info.context.clock.now()
        )
    except DomainError as error:
        return TicketingError.from_domain(error)
    return EventPayload(event=Event.from_record(record))


async def set_event_status(info: Info, id: strawberry.ID, status: EventStatus) -> EventResult:
    actor = await organizer_actor(info)
    if isinstance(actor, TicketingError):
        return actor
    event_id = parse_id(id)
    if event_id is None:
        return TicketingError.of(TicketingErrorCode.EVENT_NOT_FOUND, "Event not found", "id")
    try:
        record = await db.events.set_event_status(
            info.context.db, actor, event_id, status.value, info.context.clock.now()
        )
    except DomainError as error:
        return TicketingError.from_domain(error)
    return EventPayload(event=Event.from_record(record))


async def publish_event(info: Info, id: strawberry.ID) -> EventResult:
    return await set_event_status(info, id, EventStatus.PUBLISHED)
