"""Events: organizer-owned, readable by anyone once published.

Every write checks ownership inside its own transaction (the row is locked first), so a
concurrent ownership change or status change can never be skipped over. Listing is
keyset-paginated on ``(start_at, id)``: stable under inserts, one index range scan.

Who may see an event is one rule, written here once in both languages that need it:
`event_visible` answers for a record, `event_visible_sql` is the same rule as a SQL
predicate (tests/test_visibility.py checks they agree). Who manages an event (its
organizer, or an admin) is `manages_event`.

Errors: `EventError` with an `EventCode` (see `db.errors`).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import asyncpg
from databases import Database

from db import notification_triggers
from db.channels import FeedMessage
from db.core import connection, transaction
from db.errors import EventCode, EventError, TicketingCode, TicketingError
from db.notify import publish

STATUSES = ("draft", "published", "canceled")
# Allowed status changes; canceled is final (tickets may already be refunded).
TRANSITIONS: dict[str, frozenset[str]] = {
    "draft": frozenset({"draft", "published", "canceled"}),
    "published": frozenset({"published", "draft", "canceled"}),
    "canceled": frozenset({"canceled"}),
}


@dataclass(frozen=True, slots=True)
class EventRecord:
    id: uuid.UUID
    organizer_id: uuid.UUID
    title: str
    description: str
    venue: str
    start_at: datetime
    end_at: datetime | None
    time_zone: str
    status: str
    created_at: datetime
    updated_at: datetime
    waitlist_approval: str = "automatic"
    waitlist_offer_minutes: int = 60

    @classmethod
    def from_row(cls, row: asyncpg.Record) -> EventRecord:
        return cls(**{name: row[name] for name in _FIELDS})


_FIELDS = (
    "id",
    "organizer_id",
    "title",
    "description",
    "venue",
    "start_at",
    "end_at",
    "time_zone",
    "status",
    "created_at",
    "updated_at",
    "waitlist_approval",
    "waitlist_offer_minutes",
)
COLUMNS = ", ".join(_FIELDS)
EDITABLE = (
    "title",
    "description",
    "venue",
    "start_at",
    "end_at",
    "time_zone",
    "waitlist_approval",
    "waitlist_offer_minutes",
)
# How a waitlist takes people in (`db.waitlist`): at once, or after the organizer's
# approval. The bounds of the offer window a waitlist offer holds its seats for.
WAITLIST_APPROVALS = ("automatic", "manual")
OFFER_MINUTES_MIN, OFFER_MINUTES_MAX = 5, 10080
# The editable columns that may be cleared (set to NULL); an explicit null for any other
# is refused, never written (the column is NOT NULL).
CLEARABLE = ("end_at",)


@dataclass(frozen=True, slots=True)
class Actor:
    """Who performs a write: organizers act on their own events, admins on any."""

    user_id: uuid.UUID
    is_admin: bool = False

    def may_manage(self, organizer_id: uuid.UUID) -> bool:
        return manages_event(organizer_id, self.user_id, self.is_admin)


def manages_event(organizer_id: uuid.UUID, viewer_id: uuid.UUID | None, is_admin: bool) -> bool:
    """The event's organizer and admins manage it (see its drafts, its hidden tiers)."""
    return is_admin or (viewer_id is not None and viewer_id == organizer_id)


def event_visible(event: EventRecord, viewer_id: uuid.UUID | None, is_admin: bool) -> bool:
    """Published and canceled events are public; a draft is for those who manage it.

    The same rule as `event_visible_sql`.
    """
    return event.status != "draft" or manages_event(event.organizer_id, viewer_id, is_admin)


def event_visible_sql(event: str, *, viewer_id: str, is_admin: str) -> str:
    """`event_visible` as a SQL predicate (never NULL) over the events row aliased `event`.

    `viewer_id` and `is_admin` are the SQL expressions (e.g. parameters ``$4``) of the
    viewer's id (a uuid, NULL when anonymous) and admin flag (a boolean).
    """
    return (
        f"({event}.status <> 'draft' OR {is_admin}::boolean"
        f" OR coalesce({event}.organizer_id = {viewer_id}::uuid, false))"
    )


@dataclass(frozen=True, slots=True)
class EventPage:
    events: list[EventRecord]
    has_next_page: bool


async def get_events(database: Database, ids: list[uuid.UUID]) -> list[EventRecord | None]:
    """Events in the order of `ids`, any status (a DataLoader batch: one query).

    Visibility (drafts only for their organizer) is the caller's decision.
    """
    async with connection(database) as conn:
        rows = await conn.fetch(
            f"SELECT {COLUMNS} FROM events.events WHERE id = ANY($1::uuid[])", ids
        )
    by_id = {row["id"]: EventRecord.from_row(row) for row in rows}
    return [by_id.get(i) for i in ids]


def validate_fields(fields: dict[str, Any]) -> None:
    """Raise `EventError(INVALID_INPUT)` naming the first bad field (before any write)."""
    title = fields.get("title")
    if title is not None and not 1 <= len(title.strip()) <= 200:
        raise EventError(
            "Title must be 1 to 200 characters", code=EventCode.INVALID_INPUT, field="title"
        )
    if len(fields.get("description") or "") > 10000:
        raise EventError(
            "Description must be at most 10000 characters",
            code=EventCode.INVALID_INPUT,
            field="description",
        )
    if len(fields.get("venue") or "") > 300:
        raise EventError(
            "Venue must be at most 300 characters", code=EventCode.INVALID_INPUT, field="venue"
        )
    zone = fields.get("time_zone")
    if zone is not None:
        try:
            ZoneInfo(zone)
        except (ZoneInfoNotFoundError, ValueError):
            raise EventError(
                f"Unknown time zone '{zone}'", code=EventCode.INVALID_INPUT, field="time_zone"
            ) from None
    for name in ("start_at", "end_at"):
        value = fields.get(name)
        if isinstance(value, datetime) and value.tzinfo is None:
            raise EventError(
                "Times must include a UTC offset",
                code=EventCode.INVALID_INPUT,
                field=name,
            )
    _validate_waitlist_settings(fields)


def _validate_waitlist_settings(fields: dict[str, Any]) -> None:
    """The waitlist's settings: a known approval mode, an offer window of 5 minutes to a
    week (short enough that a lapsed offer passes on the same day, long enough to pay)."""
    approval = fields.get("waitlist_approval")
    if approval is not None and approval not in WAITLIST_APPROVALS:
        raise EventError(
            f"Unknown waitlist approval '{approval}'",
            code=EventCode.INVALID_INPUT,
            field="waitlist_approval",
        )
    minutes = fields.get("waitlist_offer_minutes")
    if minutes is not None and not OFFER_MINUTES_MIN <= minutes <= OFFER_MINUTES_MAX:
        raise EventError(
            f"The offer window must be {OFFER_MINUTES_MIN} to {OFFER_MINUTES_MAX} minutes",
            code=EventCode.INVALID_INPUT,
            field="waitlist_offer_minutes",
        )


def _check_window(start_at: datetime, end_at: datetime | None) -> None:
    if end_at is not None and end_at < start_at:
        raise EventError(
            "The event cannot end before it starts", code=EventCode.INVALID_INPUT, field="end_at"
        )


async def create_event(
    database: Database,
    actor: Actor,
    *,
    title: str,
    start_at: datetime,
    description: str = "",
    venue: str = "",
    end_at: datetime | None = None,
    time_zone: str = "UTC",
) -> EventRecord:
    """Insert a draft event owned by `actor` (whose profile must exist)."""
    fields = {
        "title": title,
        "description": description,
        "venue": venue,
        "start_at": start_at,
        "end_at": end_at,
        "time_zone": time_zone,
    }
    validate_fields(fields)
    _check_window(start_at, end_at)
    async with transaction(database) as conn:
        row = await conn.fetchrow(
            f"""INSERT INTO events.events
                    (organizer_id, title, description, venue, start_at, end_at, time_zone)
                VALUES ($1, $2, $3, $4, $5, $6, $7)
                RETURNING {COLUMNS}""",
            actor.user_id,
            title.strip(),
            description,
            venue,
            start_at,
            end_at,
            time_zone,
        )
    assert row is not None
    return EventRecord.from_row(row)


async def _lock_owned(conn: asyncpg.Connection, actor: Actor, event_id: uuid.UUID) -> EventRecord:
    row = await conn.fetchrow(
        f"SELECT {COLUMNS} FROM events.events WHERE id = $1 FOR UPDATE", event_id
    )
    if row is None:
        raise EventError("Event not found", code=EventCode.EVENT_NOT_FOUND, field="event_id")
    event = EventRecord.from_row(row)
    if not actor.may_manage(event.organizer_id):
        # Same answer as a missing event for a stranger's draft would leak nothing more.
        raise EventError("Only the event's organizer may change it", code=EventCode.NOT_ALLOWED)
    return event


async def lock_managed_event(
    conn: asyncpg.Connection, actor: Actor, event_id: uuid.UUID, *, action: str
) -> None:
    """Lock the event for a change to what it sells (tiers, discount codes), so it
    cannot be canceled meanwhile; refuse (`TicketingError`) unless it exists, `actor`
    manages it and it is not canceled. `action` completes "Only the event's organizer
    may ..."."""
    event = await conn.fetchrow(
        "SELECT organizer_id, status FROM events.events WHERE id = $1 FOR UPDATE", event_id
    )
    if event is None:
        raise TicketingError(
            "Event not found", code=TicketingCode.EVENT_NOT_FOUND, field="event_id"
        )
    if not actor.may_manage(event["organizer_id"]):
        raise TicketingError(
            f"Only the event's organizer may {action}", code=TicketingCode.NOT_ALLOWED
        )
    if event["status"] == "canceled":
        raise TicketingError("The event is canceled", code=TicketingCode.EVENT_CANCELED)


async def _announce_event_change(conn: asyncpg.Connection, event_id: uuid.UUID) -> None:
    """Feed pages embed the event (title, status): cached copies must drop on commit."""
    await publish(conn, FeedMessage(event_id, "event"))


def _noticeable(before: EventRecord, after: asyncpg.Record) -> bool:
    """Whether an edit changes what a ticket holder relies on: when, where, what."""
    return any(
        getattr(before, name) != after[name]
        for name in ("title", "venue", "start_at", "end_at", "time_zone")
    )


async def update_event(
    database: Database, actor: Actor, event_id: uuid.UUID, changes: dict[str, Any], now: datetime
) -> EventRecord:
    """Apply `changes` (a subset of EDITABLE) to an event the actor manages.

    A new offer window applies to offers made from now on; offers already made keep
    the expiry they were given. Switching the waitlist from manual to automatic
    approval leaves pending entries pending (`db.waitlist`): the organizer still
    approves or declines them.
    """
    unknown = set(changes) - set(EDITABLE)
    if unknown:
        raise ValueError(f"not editable: {sorted(unknown)}")
    validate_fields(changes)
    async with transaction(database) as conn:
        event = await _lock_owned(conn, actor, event_id)
        if event.status == "canceled":
            raise EventError("A canceled event cannot be edited", code=EventCode.EVENT_CANCELED)
        if changes.get("title") is not None:
            changes = {**changes, "title": changes["title"].strip()}
        for name in EDITABLE:
            if name in changes and changes[name] is None and name not in CLEARABLE:
                raise EventError(
                    f"{name} cannot be empty", code=EventCode.INVALID_INPUT, field=name
                )
        merged = {name: changes.get(name, getattr(event, name)) for name in EDITABLE}
        _check_window(merged["start_at"], merged["end_at"])
        row = await conn.fetchrow(
            f"""UPDATE events.events
                   SET title = $2, description = $3, venue = $4, start_at = $5,
                       end_at = $6, time_zone = $7, waitlist_approval = $8,
                       waitlist_offer_minutes = $9, updated_at = $10
                 WHERE id = $1 RETURNING {COLUMNS}""",
            event_id,
            *(merged[name] for name in EDITABLE),
            now,
        )
        await _announce_event_change(conn, event_id)
        if row is not None and _noticeable(event, row):
            await notification_triggers.event_changed(
                conn, event_id=event_id, title=row["title"], canceled=False, now=now
            )
    assert row is not None
    return EventRecord.from_row(row)


async def set_event_status(
    database: Database, actor: Actor, event_id: uuid.UUID, status: str, now: datetime
) -> EventRecord:
    """Publish, unpublish or cancel an event; canceled is final."""
    if status not in STATUSES:
        raise EventError(f"Unknown status '{status}'", code=EventCode.INVALID_INPUT, field="status")
    async with transaction(database) as conn:
        event = await _lock_owned(conn, actor, event_id)
        if status not in TRANSITIONS[event.status]:
            raise EventError(
                f"A {event.status} event cannot become {status}",
                code=EventCode.EVENT_CANCELED,
                field="status",
            )
        row = await conn.fetchrow(
            f"""UPDATE events.events SET status = $2, updated_at = $3
                 WHERE id = $1 RETURNING {COLUMNS}""",
            event_id,
            status,
            now,
        )
        await _announce_event_change(conn, event_id)
        if status == "canceled":
            await notification_triggers.event_changed(
                conn, event_id=event_id, title=event.title, canceled=True, now=now
            )
    assert row is not None
    return EventRecord.from_row(row)


async def list_published(
    database: Database,
    now: datetime,
    first: int,
    after: tuple[datetime, uuid.UUID] | None = None,
) -> EventPage:
    """Published events not yet over, soonest first, `first` after the keyset `after`.

    An event counts as upcoming until it ends (or, without an end, until it starts).
    """
    async with connection(database) as conn:
        rows = await conn.fetch(
            f"""SELECT {COLUMNS} FROM events.events
                 WHERE status = 'published'
                   AND coalesce(end_at, start_at) >= $1
                   AND ($2::timestamptz IS NULL OR (start_at, id) > ($2, $3::uuid))
                 ORDER BY start_at, id
                 LIMIT $4""",
            now,
            after[0] if after else None,
            after[1] if after else None,
            first + 1,
        )
    events = [EventRecord.from_row(row) for row in rows[:first]]
    return EventPage(events=events, has_next_page=len(rows) > first)


async def list_by_organizer(database: Database, organizer_id: uuid.UUID) -> list[EventRecord]:
    """Every event the organizer owns, any status, soonest first."""
    async with connection(database) as conn:
        rows = await conn.fetch(
            f"""SELECT {COLUMNS} FROM events.events WHERE organizer_id = $1
                 ORDER BY start_at, id LIMIT 500""",
            organizer_id,
        )
    return [EventRecord.from_row(row) for row in rows]
