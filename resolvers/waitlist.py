"""The waitlist: auth checks, input → repository call → records (`db.waitlist`)."""

from __future__ import annotations

import uuid

import db.waitlist
import db.waitlist_approval
from db.errors import TicketingCode, TicketingError
from resolvers.access import actor, organizer, seen, signed_in
from resolvers.context import Info
from resolvers.ids import TIER, WAITLIST_ENTRY, parse_id


async def join_waitlist(info: Info, tier_id: str, quantity: int) -> db.waitlist.WaitlistEntryRecord:
    user_id = signed_in(info, "Sign in to join a waitlist")
    await seen(info)
    tier = parse_id(tier_id, TIER)
    if tier is None:
        raise TicketingError("Tier not found", code=TicketingCode.TIER_NOT_FOUND, field="tier_id")
    return await db.waitlist.join_waitlist(
        info.context.db, user_id, tier, quantity, info.context.clock.now()
    )


async def leave_waitlist(info: Info, entry_id: str) -> db.waitlist.WaitlistEntryRecord:
    user_id = signed_in(info)
    entry = parse_id(entry_id, WAITLIST_ENTRY)
    if entry is None:
        raise TicketingError(
            "Waitlist entry not found",
            code=TicketingCode.WAITLIST_ENTRY_NOT_FOUND,
            field="entry_id",
        )
    return await db.waitlist.leave_waitlist(
        info.context.db, actor(info, user_id), entry, info.context.clock.now()
    )


async def my_entries(info: Info) -> list[db.waitlist.WaitlistEntryRecord]:
    user_id = signed_in(info)
    return await db.waitlist.my_entries(info.context.db, user_id, info.context.clock.now())


async def entry(info: Info, id: str) -> db.waitlist.WaitlistEntryRecord | None:
    """One of the viewer's entries; null for anyone else's (admins see all)."""
    viewer = info.context.viewer
    entry_id = parse_id(id, WAITLIST_ENTRY)
    if entry_id is None or viewer.user_id is None:
        return None
    (record,) = await db.waitlist.get_entries(info.context.db, [entry_id], info.context.clock.now())
    if record is None or not (viewer.is_admin or record.user_id == viewer.user_id):
        return None
    return record


async def tier_line(
    info: Info, tier_id: str, first: int, after: str | None
) -> db.waitlist.WaitlistPage:
    owner = await organizer(info)
    tier = parse_id(tier_id, TIER)
    if tier is None:
        raise TicketingError("Tier not found", code=TicketingCode.TIER_NOT_FOUND, field="tier_id")
    return await db.waitlist.tier_line(
        info.context.db, owner, tier, info.context.clock.now(), first=first, after=after
    )


def _entry_ids(ids: list[str]) -> list[uuid.UUID]:
    """The entries' keys; WAITLIST_ENTRY_NOT_FOUND naming the first id that is not one."""
    keys = []
    for index, raw in enumerate(ids):
        key = parse_id(raw, WAITLIST_ENTRY)
        if key is None:
            raise TicketingError(
                "Waitlist entry not found",
                code=TicketingCode.WAITLIST_ENTRY_NOT_FOUND,
                field=f"ids[{index}]",
            )
        keys.append(key)
    return keys


async def approve_entries(info: Info, ids: list[str]) -> list[db.waitlist.WaitlistEntryRecord]:
    owner = await organizer(info)
    return await db.waitlist_approval.approve_entries(
        info.context.db, owner, _entry_ids(ids), info.context.clock.now()
    )


async def decline_entries(info: Info, ids: list[str]) -> list[db.waitlist.WaitlistEntryRecord]:
    owner = await organizer(info)
    return await db.waitlist_approval.decline_entries(
        info.context.db, owner, _entry_ids(ids), info.context.clock.now()
    )
