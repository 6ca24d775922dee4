"""Tiers and holds: auth checks, input → repository call → records.

Live availability is in `resolvers.availability`.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import db.events
import db.holds
import db.reservations
import db.tiers
from db.errors import TicketingCode, TicketingError
from resolvers.access import actor, organizer, seen, signed_in
from resolvers.context import Info
from resolvers.ids import EVENT, HOLD, TIER, parse_id


@dataclass(frozen=True, slots=True)
class TierDraft:
    """A new tier as the client described it; its capacity is `quantity`."""

    event_id: str
    name: str
    price_cents: int
    quantity: int
    currency: str
    max_per_order: int
    sales_start_at: datetime | None
    sales_end_at: datetime | None
    status: str
    sort_order: int


def _parsed(id: str, type_name: str, code: TicketingCode, message: str, field: str) -> uuid.UUID:
    """The UUID of a client-supplied id of `type_name`; the typed `code` (…_NOT_FOUND)
    if not one."""
    parsed = parse_id(id, type_name)
    if parsed is None:
        raise TicketingError(message, code=code, field=field)
    return parsed


async def reserve_tickets(info: Info, tier_id: str, quantity: int) -> db.holds.HoldRecord:
    buyer = signed_in(info, "Sign in to buy tickets")
    await seen(info)
    tier = _parsed(tier_id, TIER, TicketingCode.TIER_NOT_FOUND, "Tier not found", "tier_id")
    return await db.reservations.reserve_tickets(
        info.context.db,
        buyer,
        tier,
        quantity,
        now=info.context.clock.now(),
        ttl_seconds=info.context.settings.hold_ttl_seconds,
    )


async def release_hold(info: Info, hold_id: str) -> db.holds.HoldRecord:
    user_id = signed_in(info)
    hold = _parsed(hold_id, HOLD, TicketingCode.HOLD_NOT_FOUND, "Hold not found", "hold_id")
    return await db.reservations.release_hold(
        info.context.db, actor(info, user_id), hold, info.context.clock.now()
    )


async def my_holds(info: Info) -> list[db.holds.HoldRecord]:
    user_id = signed_in(info)
    return await db.reservations.active_holds(info.context.db, user_id, info.context.clock.now())


async def create_tier(info: Info, draft: TierDraft) -> db.tiers.TierRecord:
    owner = await organizer(info)
    event_id = _parsed(
        draft.event_id, EVENT, TicketingCode.EVENT_NOT_FOUND, "Event not found", "event_id"
    )
    return await db.tiers.create_tier(
        info.context.db,
        owner,
        event_id,
        name=draft.name,
        price_cents=draft.price_cents,
        quantity=draft.quantity,
        now=info.context.clock.now(),
        currency=draft.currency,
        max_per_order=draft.max_per_order,
        sales_start_at=draft.sales_start_at,
        sales_end_at=draft.sales_end_at,
        status=draft.status,
        sort_order=draft.sort_order,
    )


async def update_tier(info: Info, id: str, changes: dict[str, Any]) -> db.tiers.TierRecord:
    """Apply `changes` (the fields the client set, by `db.tiers.TIER_EDITABLE` name)."""
    owner = await organizer(info)
    tier_id = _parsed(id, TIER, TicketingCode.TIER_NOT_FOUND, "Tier not found", "id")
    # In TIER_EDITABLE order (the first invalid field is the one reported); a name not
    # in it stays in, for the repository to refuse.
    ordered = {name: changes[name] for name in db.tiers.TIER_EDITABLE if name in changes}
    return await db.tiers.update_tier(
        info.context.db, owner, tier_id, {**ordered, **changes}, info.context.clock.now()
    )


async def tier(info: Info, id: str) -> db.tiers.TierRecord | None:
    """A tier by id, with live counters (a fresh read), if its event is visible to the
    viewer; a hidden tier too, since whoever has its id may buy from it."""
    tier_id = parse_id(id, TIER)
    return await visible_tier(info, tier_id) if tier_id else None


async def visible_tier(info: Info, tier_id: uuid.UUID) -> db.tiers.TierRecord | None:
    """The tier, if its event is visible to the viewer (see `tier`)."""
    (record,) = await db.tiers.get_tiers(info.context.db, [tier_id])
    if record is None:
        return None
    visible, _ = await visible_event(info, record.event_id)
    return record if visible else None


async def hold(info: Info, id: str) -> db.holds.HoldRecord | None:
    """One of the viewer's holds, in any status; null for anyone else's."""
    user_id = signed_in(info)
    hold_id = parse_id(id, HOLD)
    if hold_id is None:
        return None
    (record,) = await db.reservations.get_holds(info.context.db, [hold_id])
    return record if record is not None and record.user_id == user_id else None


async def visible_event(info: Info, event_id: uuid.UUID) -> tuple[bool, bool]:
    """(visible, manages): drafts are visible only to their organizer and admins."""
    (record,) = await db.events.get_events(info.context.db, [event_id])
    if record is None:
        return False, False
    viewer = info.context.viewer
    manages = db.events.manages_event(record.organizer_id, viewer.user_id, viewer.is_admin)
    return db.events.event_visible(record, viewer.user_id, viewer.is_admin), manages


async def event_tiers(info: Info, event_id: str) -> list[db.tiers.TierRecord]:
    """An event's tiers with live counters (fresh read, not the request's cache)."""
    parsed = parse_id(event_id, EVENT)
    if parsed is None:
        return []
    visible, manages = await visible_event(info, parsed)
    if not visible:
        return []
    (records,) = await db.tiers.tiers_for_events(info.context.db, [parsed])
    return [r for r in records if db.tiers.tier_listed(r, manages=manages)]


async def listed_tiers(
    info: Info, event_id: uuid.UUID, organizer_id: uuid.UUID
) -> list[db.tiers.TierRecord]:
    """The tiers of an event shown in a page of events (batched per request). Hidden
    tiers are listed only for the event's organizer and admins."""
    records: list[db.tiers.TierRecord] = await info.context.loaders.get(
        db.tiers.tiers_for_events
    ).load(event_id)
    viewer = info.context.viewer
    manages = db.events.manages_event(organizer_id, viewer.user_id, viewer.is_admin)
    return [r for r in records if db.tiers.tier_listed(r, manages=manages)]
