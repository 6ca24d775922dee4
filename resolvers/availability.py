"""Live availability of an event's tiers: a snapshot, then every committed change."""

from __future__ import annotations

import uuid
from collections.abc import AsyncGenerator
from dataclasses import dataclass

import db.tiers
from db.channels import Resync, TierMessage
from resolvers.context import Info
from resolvers.errors import ClientCode, ClientError
from resolvers.ids import EVENT, EVENT_AVAILABILITY, TIER_AVAILABILITY, parse_id
from resolvers.ticketing import visible_event, visible_tier


@dataclass(frozen=True, slots=True)
class TierCounts:
    """One tier's counters at a point in time."""

    tier_id: uuid.UUID
    quantity: int
    reserved: int
    issued: int
    available: int

    @classmethod
    def of(cls, record: db.tiers.TierRecord) -> TierCounts:
        return cls(
            tier_id=record.id,
            quantity=record.quantity,
            reserved=record.reserved_quantity,
            issued=record.issued_quantity,
            available=record.available,
        )


@dataclass(frozen=True, slots=True)
class Availability:
    """The state of every listed tier of an event, and why it is sent: ``snapshot``
    (the first), ``change`` (of `changed_tier_id`) or ``resync`` (a fresh read)."""

    event_id: uuid.UUID
    reason: str
    changed_tier_id: uuid.UUID | None
    tiers: list[TierCounts]


async def _snapshot(
    info: Info, event_id: uuid.UUID, manages: bool
) -> tuple[dict[uuid.UUID, TierCounts], dict[uuid.UUID, int]]:
    """The tiers' availability and versions, read directly.

    Never through the DataLoader: a subscription's loaders live as long as the WebSocket
    and would serve stale counters.
    """
    (records,) = await db.tiers.tiers_for_events(info.context.db, [event_id])
    shown = [r for r in records if db.tiers.tier_listed(r, manages=manages)]
    return {r.id: TierCounts.of(r) for r in shown}, {r.id: r.version for r in shown}


async def event_availability(info: Info, id: str) -> Availability | None:
    """An event's availability now (as the subscription's SNAPSHOT), by its global id;
    null when the event is not visible to the viewer."""
    event_id = parse_id(id, EVENT_AVAILABILITY)
    if event_id is None:
        return None
    visible, manages = await visible_event(info, event_id)
    if not visible:
        return None
    state, _ = await _snapshot(info, event_id, manages)
    return Availability(
        event_id=event_id, reason="snapshot", changed_tier_id=None, tiers=list(state.values())
    )


async def tier_counts(info: Info, id: str) -> TierCounts | None:
    """One tier's counters now, by its availability's global id, for whoever may see
    the tier (`resolvers.ticketing.visible_tier`)."""
    tier_id = parse_id(id, TIER_AVAILABILITY)
    if tier_id is None:
        return None
    record = await visible_tier(info, tier_id)
    return TierCounts.of(record) if record else None


async def tier_availability(info: Info, event_id: str) -> AsyncGenerator[Availability, None]:
    """The current state of an event's tiers, then the state after every committed change.

    Subscribes before reading the snapshot, so a change committed in between is applied
    on top of it rather than lost. Change messages carry absolute counters (the UPDATE's
    RETURNING) and the tier's version, so applying one is idempotent, and one older than
    what the snapshot already shows (committed before the read, delivered after it) is
    skipped instead of briefly rolling the counters back.
    """
    parsed = parse_id(event_id, EVENT)
    if parsed is None:
        raise ClientError("Event not found", ClientCode.NOT_FOUND)
    visible, manages = await visible_event(info, parsed)
    if not visible:
        raise ClientError("Event not found", ClientCode.NOT_FOUND)

    def emit(
        state: dict[uuid.UUID, TierCounts], reason: str, changed: uuid.UUID | None = None
    ) -> Availability:
        return Availability(
            event_id=parsed, reason=reason, changed_tier_id=changed, tiers=list(state.values())
        )

    async with info.context.services.hub.subscribe(TierMessage.channel_of(parsed)) as messages:
        state, versions = await _snapshot(info, parsed, manages)
        yield emit(state, "snapshot")
        async for received in messages:
            message = TierMessage.decode(received)
            if isinstance(message, Resync):
                state, versions = await _snapshot(info, parsed, manages)
                yield emit(state, "resync")
                continue
            if message is None:
                continue
            tier_id = message.tier_id
            if tier_id not in state:
                # A tier created (or un-hidden) since the snapshot: read it in full.
                state, versions = await _snapshot(info, parsed, manages)
                if tier_id not in state:
                    continue  # a hidden tier this viewer does not see
            elif message.version <= versions[tier_id]:
                continue  # already reflected in what this subscriber was sent
            else:
                versions[tier_id] = message.version
                state[tier_id] = TierCounts(
                    tier_id=tier_id,
                    quantity=message.quantity,
                    reserved=message.reserved,
                    issued=message.issued,
                    available=message.available,
                )
            yield emit(state, "change", tier_id)
