"""Tiers, holds and live availability: auth checks, input → repository call → type."""

from __future__ import annotations

import uuid
from collections.abc import AsyncGenerator
from typing import Any

import strawberry

import db.events
import db.reservations
import db.tiers
from db.channels import Resync, TierMessage
from db.errors import DomainError
from liventix.context import Info
from resolvers.events import organizer_actor
from resolvers.ids import parse_id
from schema.errors import ClientError
from schema.ticketing import (
    AvailabilityReason,
    CreateTierInput,
    EventAvailability,
    Hold,
    HoldPayload,
    ReleaseHoldResult,
    ReserveTicketsResult,
    TicketingError,
    TicketingErrorCode,
    TicketTier,
    TierAvailability,
    TierPayload,
    TierResult,
    UpdateTierInput,
    availability_of,
)


async def _buyer(info: Info) -> uuid.UUID | TicketingError:
    """The signed-in viewer's id, with their profile row guaranteed to exist.

    Free after the viewer's first request to this process (`FirstSight`), and still
    sure for a WebSocket mutation that races the handshake's background first sight.
    """
    viewer = info.context.viewer
    if viewer.user_id is None:
        return TicketingError.of(TicketingErrorCode.UNAUTHENTICATED, "Sign in to buy tickets")
    await info.context.services.first_sight.see(viewer)
    return viewer.user_id


async def reserve_tickets(
    info: Info, tier_id: strawberry.ID, quantity: int
) -> ReserveTicketsResult:
    buyer = await _buyer(info)
    if isinstance(buyer, TicketingError):
        return buyer
    tier = parse_id(tier_id)
    if tier is None:
        return TicketingError.of(TicketingErrorCode.TIER_NOT_FOUND, "Tier not found", "tierId")
    try:
        hold = await db.reservations.reserve_tickets(
            info.context.db,
            buyer,
            tier,
            quantity,
            now=info.context.clock.now(),
            ttl_seconds=info.context.settings.hold_ttl_seconds,
        )
    except DomainError as error:
        return TicketingError.from_domain(error)
    return HoldPayload(hold=Hold.from_record(hold))


async def release_hold(info: Info, hold_id: strawberry.ID) -> ReleaseHoldResult:
    viewer = info.context.viewer
    if viewer.user_id is None:
        return TicketingError.of(TicketingErrorCode.UNAUTHENTICATED, "Sign in first")
    hold = parse_id(hold_id)
    if hold is None:
        return TicketingError.of(TicketingErrorCode.HOLD_NOT_FOUND, "Hold not found", "holdId")
    actor = db.events.Actor(user_id=viewer.user_id, is_admin=viewer.is_admin)
    try:
        record = await db.reservations.release_hold(
            info.context.db, actor, hold, info.context.clock.now()
        )
    except DomainError as error:
        return TicketingError.from_domain(error)
    return HoldPayload(hold=Hold.from_record(record))


async def my_holds(info: Info) -> list[Hold]:
    viewer = info.context.viewer
    if viewer.user_id is None:
        raise ClientError("Sign in first", "UNAUTHENTICATED")
    records = await db.reservations.active_holds(
        info.context.db, viewer.user_id, info.context.clock.now()
    )
    return [Hold.from_record(r) for r in records]


async def create_tier(info: Info, input: CreateTierInput) -> TierResult:
    actor = await organizer_actor(info)
    if isinstance(actor, TicketingError):
        return actor
    event_id = parse_id(input.event_id)
    if event_id is None:
        return TicketingError.of(TicketingErrorCode.EVENT_NOT_FOUND, "Event not found", "eventId")
    try:
        record = await db.tiers.create_tier(
            info.context.db,
            actor,
            event_id,
            name=input.name,
            price_cents=input.price_cents,
            quantity=input.quantity,
            now=info.context.clock.now(),
            currency=input.currency,
            max_per_order=input.max_per_order,
            sales_start_at=input.sales_start_at,
            sales_end_at=input.sales_end_at,
            status=input.status.value,
            sort_order=input.sort_order,
        )
    except DomainError as error:
        return TicketingError.from_domain(error)
    return TierPayload(tier=TicketTier.from_record(record))


async def update_tier(info: Info, id: strawberry.ID, input: UpdateTierInput) -> TierResult:
    actor = await organizer_actor(info)
    if isinstance(actor, TicketingError):
        return actor
    tier_id = parse_id(id)
    if tier_id is None:
        return TicketingError.of(TicketingErrorCode.TIER_NOT_FOUND, "Tier not found", "id")
    changes: dict[str, Any] = {}
    for name in db.tiers.TIER_EDITABLE:
        value = getattr(input, name)
        if value is not strawberry.UNSET:
            changes[name] = value.value if name == "status" and value is not None else value
    try:
        record = await db.tiers.update_tier(
            info.context.db, actor, tier_id, changes, info.context.clock.now()
        )
    except DomainError as error:
        return TicketingError.from_domain(error)
    return TierPayload(tier=TicketTier.from_record(record))


async def _visible_event(info: Info, event_id: uuid.UUID) -> tuple[bool, bool]:
    """(visible, manages): drafts are visible only to their organizer and admins."""
    (record,) = await db.events.get_events(info.context.db, [event_id])
    if record is None:
        return False, False
    viewer = info.context.viewer
    manages = db.events.manages_event(record.organizer_id, viewer.user_id, viewer.is_admin)
    return db.events.event_visible(record, viewer.user_id, viewer.is_admin), manages


async def event_tiers(info: Info, event_id: strawberry.ID) -> list[TicketTier]:
    """An event's tiers with live counters (fresh read, not the request's cache)."""
    parsed = parse_id(event_id)
    if parsed is None:
        return []
    visible, manages = await _visible_event(info, parsed)
    if not visible:
        return []
    (records,) = await db.tiers.tiers_for_events(info.context.db, [parsed])
    return [TicketTier.from_record(r) for r in records if db.tiers.tier_listed(r, manages=manages)]


async def _snapshot(
    info: Info, event_id: uuid.UUID, manages: bool
) -> tuple[dict[str, TierAvailability], dict[str, int]]:
    """The tiers' availability and versions, read directly.

    Never through the DataLoader: a subscription's loaders live as long as the WebSocket
    and would serve stale counters.
    """
    (records,) = await db.tiers.tiers_for_events(info.context.db, [event_id])
    shown = [r for r in records if db.tiers.tier_listed(r, manages=manages)]
    return {str(r.id): availability_of(r) for r in shown}, {str(r.id): r.version for r in shown}


async def tier_availability(
    info: Info, event_id: strawberry.ID
) -> AsyncGenerator[EventAvailability, None]:
    """The current state of an event's tiers, then the state after every committed change.

    Subscribes before reading the snapshot, so a change committed in between is applied
    on top of it rather than lost. Change messages carry absolute counters (the UPDATE's
    RETURNING) and the tier's version, so applying one is idempotent, and one older than
    what the snapshot already shows (committed before the read, delivered after it) is
    skipped instead of briefly rolling the counters back.
    """
    parsed = parse_id(event_id)
    if parsed is None:
        raise ClientError("Event not found", "NOT_FOUND")
    visible, manages = await _visible_event(info, parsed)
    if not visible:
        raise ClientError("Event not found", "NOT_FOUND")
    gql_id = strawberry.ID(str(parsed))

    def emit(
        state: dict[str, TierAvailability], reason: AvailabilityReason, changed: str | None = None
    ) -> EventAvailability:
        return EventAvailability(
            event_id=gql_id,
            reason=reason,
            changed_tier_id=strawberry.ID(changed) if changed else None,
            tiers=list(state.values()),
        )

    async with info.context.services.hub.subscribe(TierMessage.channel_of(parsed)) as messages:
        state, versions = await _snapshot(info, parsed, manages)
        yield emit(state, AvailabilityReason.SNAPSHOT)
        async for received in messages:
            message = TierMessage.decode(received)
            if isinstance(message, Resync):
                state, versions = await _snapshot(info, parsed, manages)
                yield emit(state, AvailabilityReason.RESYNC)
                continue
            if message is None:
                continue
            tier_id = str(message.tier_id)
            if tier_id not in state:
                # A tier created (or un-hidden) since the snapshot: read it in full.
                state, versions = await _snapshot(info, parsed, manages)
                if tier_id not in state:
                    continue  # a hidden tier this viewer does not see
            elif message.version <= versions[tier_id]:
                continue  # already reflected in what this subscriber was sent
            else:
                versions[tier_id] = message.version
                state[tier_id] = TierAvailability(
                    tier_id=strawberry.ID(tier_id),
                    quantity=message.quantity,
                    reserved=message.reserved,
                    issued=message.issued,
                    available=message.available,
                )
            yield emit(state, AvailabilityReason.CHANGE, tier_id)
