"""Discount and comp codes: the organizer's writes and reads, auth checks, input → call.

Who may manage an event's codes is who manages the event: `resolvers.access.organizer`
refuses anyone who is not an organizer or admin, and `db.discount_codes` checks the
event's organizer under lock. Buyers apply a code at checkout (`resolvers.orders`).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import db.discount_codes
from db.discount_codes import CodeDraft, CodeUsage
from db.errors import TicketingCode, TicketingError
from resolvers.access import actor, organizer, signed_in
from resolvers.context import Info
from resolvers.ids import DISCOUNT_CODE, EVENT, TIER, parse_id


@dataclass(frozen=True, slots=True)
class DiscountCodeDraft:
    """A new code as the client described it, ids still global."""

    code: str
    kind: str
    max_uses: int
    percent_off: int | None
    amount_off_cents: int | None
    currency: str | None
    tier_id: str | None
    per_user_limit: int | None
    starts_at: datetime | None
    ends_at: datetime | None
    enabled: bool


def _parsed(id: str, type_name: str, code: TicketingCode, field: str) -> uuid.UUID:
    parsed = parse_id(id, type_name)
    if parsed is None:
        raise TicketingError("Not found", code=code, field=field)
    return parsed


async def create_code(info: Info, event_id: str, draft: DiscountCodeDraft) -> CodeUsage:
    """Add a code to the viewer's event; a new code has no uses nor revenue yet."""
    owner = await organizer(info)
    event = _parsed(event_id, EVENT, TicketingCode.EVENT_NOT_FOUND, "event_id")
    tier = None
    if draft.tier_id is not None:
        tier = _parsed(draft.tier_id, TIER, TicketingCode.TIER_NOT_FOUND, "tier_id")
    record = await db.discount_codes.create_code(
        info.context.db,
        owner,
        event,
        CodeDraft(
            code=draft.code,
            kind=draft.kind,
            max_uses=draft.max_uses,
            percent_off=draft.percent_off,
            amount_off_cents=draft.amount_off_cents,
            currency=draft.currency,
            tier_id=tier,
            per_user_limit=draft.per_user_limit,
            starts_at=draft.starts_at,
            ends_at=draft.ends_at,
            enabled=draft.enabled,
        ),
        info.context.clock.now(),
    )
    return CodeUsage(code=record, paid_orders=0, revenue_cents=0, discount_cents=0)


async def update_code(info: Info, id: str, changes: dict[str, Any]) -> CodeUsage:
    """Apply `changes` (by `db.discount_codes.CODE_EDITABLE` name); the code as it is now."""
    owner = await organizer(info)
    code_id = _parsed(id, DISCOUNT_CODE, TicketingCode.CODE_NOT_FOUND, "id")
    ordered = {k: changes[k] for k in db.discount_codes.CODE_EDITABLE if k in changes}
    await db.discount_codes.update_code(
        info.context.db, owner, code_id, {**ordered, **changes}, info.context.clock.now()
    )
    usage = await db.discount_codes.code_usage(info.context.db, owner, code_id)
    assert usage is not None  # the update just checked the viewer manages it
    return usage


async def event_codes(info: Info, event_id: str) -> list[CodeUsage]:
    """An event's codes with uses and revenue, for its organizer or an admin."""
    owner = await organizer(info)
    event = _parsed(event_id, EVENT, TicketingCode.EVENT_NOT_FOUND, "event_id")
    return await db.discount_codes.event_codes(info.context.db, owner, event)


async def discount_code(info: Info, id: str) -> CodeUsage | None:
    """A code by id, for whoever manages its event; null for anyone else."""
    user_id = signed_in(info)
    code_id = parse_id(id, DISCOUNT_CODE)
    if code_id is None:
        return None
    return await db.discount_codes.code_usage(info.context.db, actor(info, user_id), code_id)
