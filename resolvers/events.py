"""Event queries and organizer writes: auth checks, input → repository call → records."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import db.events
import db.pages
from db.errors import EventCode, EventError
from resolvers.access import organizer, signed_in
from resolvers.context import Info
from resolvers.errors import ClientCode, ClientError
from resolvers.ids import EVENT, parse_id

MAX_PAGE = 100


@dataclass(frozen=True, slots=True)
class EventDraft:
    """A new event as the client described it (it starts as a draft)."""

    title: str
    start_at: datetime
    description: str
    venue: str
    end_at: datetime | None
    time_zone: str


@dataclass(frozen=True, slots=True)
class EventSlice:
    """A page of events and whether one came before it."""

    page: db.events.EventPage
    has_previous: bool


def _event_id(id: str) -> uuid.UUID:
    event_id = parse_id(id, EVENT)
    if event_id is None:
        raise EventError("Event not found", code=EventCode.EVENT_NOT_FOUND, field="id")
    return event_id


async def event(info: Info, id: str) -> db.events.EventRecord | None:
    """An event by id: published/canceled ones for anyone, drafts for their organizer."""
    event_id = parse_id(id, EVENT)
    if event_id is None:
        return None
    record = await event_of(info, event_id)
    viewer = info.context.viewer
    if record is None or not db.events.event_visible(record, viewer.user_id, viewer.is_admin):
        return None
    return record


async def event_of(info: Info, event_id: uuid.UUID) -> db.events.EventRecord | None:
    """An event by id, whoever may see it (batched per request): the event of an order
    or ticket the viewer may see."""
    record: db.events.EventRecord | None = await info.context.loaders.get(
        db.events.get_events
    ).load(event_id)
    return record


def _keyset(cursor: str) -> tuple[datetime, uuid.UUID]:
    """The (start_at, id) after which a page starts; BAD_USER_INPUT if not a cursor."""
    keyset = db.pages.decode_cursor(cursor)
    if keyset is None:
        raise ClientError("Invalid cursor", ClientCode.BAD_USER_INPUT)
    return keyset


async def events(info: Info, first: int = 20, after: str | None = None) -> EventSlice:
    """Published events that are not over yet, soonest first (Relay pagination)."""
    if not 1 <= first <= MAX_PAGE:
        raise ClientError(f"first must be between 1 and {MAX_PAGE}", ClientCode.BAD_USER_INPUT)
    keyset = _keyset(after) if after else None
    page = await db.events.list_published(info.context.db, info.context.clock.now(), first, keyset)
    return EventSlice(page=page, has_previous=after is not None)


async def my_events(info: Info) -> list[db.events.EventRecord]:
    """The viewer's own events, any status (empty for fans)."""
    user_id = signed_in(info)
    return await db.events.list_by_organizer(info.context.db, user_id)


async def create_event(info: Info, draft: EventDraft) -> db.events.EventRecord:
    actor = await organizer(info)
    return await db.events.create_event(
        info.context.db,
        actor,
        title=draft.title,
        start_at=draft.start_at,
        description=draft.description,
        venue=draft.venue,
        end_at=draft.end_at,
        time_zone=draft.time_zone,
    )


async def update_event(info: Info, id: str, changes: dict[str, Any]) -> db.events.EventRecord:
    """Apply `changes` (the fields the client set, by `db.events.EDITABLE` name)."""
    actor = await organizer(info)
    event_id = _event_id(id)
    # In EDITABLE order (the first invalid field is the one reported); a name not in
    # EDITABLE stays in, for the repository to refuse.
    ordered = {name: changes[name] for name in db.events.EDITABLE if name in changes}
    return await db.events.update_event(
        info.context.db, actor, event_id, {**ordered, **changes}, info.context.clock.now()
    )


async def set_event_status(info: Info, id: str, status: str) -> db.events.EventRecord:
    actor = await organizer(info)
    event_id = _event_id(id)
    return await db.events.set_event_status(
        info.context.db, actor, event_id, status, info.context.clock.now()
    )


async def publish_event(info: Info, id: str) -> db.events.EventRecord:
    return await set_event_status(info, id, "published")
