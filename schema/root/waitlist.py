"""Root fields for the waitlist of sold-out tiers."""

from __future__ import annotations

from typing import Annotated

import strawberry

import resolvers.waitlist
from resolvers.context import Info
from schema.waitlist import (
    TierWaitlistResult,
    WaitlistConnection,
    WaitlistEntriesPayload,
    WaitlistEntriesResult,
    WaitlistEntry,
    WaitlistEntryPayload,
    WaitlistEntryResult,
)

TierId = Annotated[strawberry.ID, strawberry.argument(description="The tier's id.")]
EntryIds = Annotated[
    list[strawberry.ID],
    strawberry.argument(description="Waitlist entries of your events, at most 100."),
]


@strawberry.type
class WaitlistQuery:
    @strawberry.field(
        description="The viewer's waitlist entries that have not left, newest first, each "
        "with its status, position while waiting, and offer while offered."
    )
    async def my_waitlist_entries(self, info: Info) -> list[WaitlistEntry]:
        return [WaitlistEntry.from_record(r) for r in await resolvers.waitlist.my_entries(info)]

    @strawberry.field(
        description="A tier's line by join time, with positions: for the event's organizer "
        "or an admin (TIER_NOT_FOUND for anyone else). Entries PENDING_APPROVAL are listed "
        "too (no position), to approve or decline."
    )
    async def tier_waitlist(
        self,
        info: Info,
        tier_id: TierId,
        first: Annotated[int, strawberry.argument(description="Page size, 1-100.")] = 20,
        after: Annotated[
            str | None,
            strawberry.argument(description="The `endCursor` of the previous page."),
        ] = None,
    ) -> TierWaitlistResult:
        page = await resolvers.waitlist.tier_line(info, tier_id, first, after)
        return WaitlistConnection.from_page(page)


@strawberry.type
class WaitlistMutation:
    @strawberry.mutation(
        description="Join a sold-out tier's waitlist for `quantity` seats (held together). "
        "When seats free up, the first entries in line that fit are offered them: the seats "
        "are held for you (a hold, for the event's offer window, an hour by default) and "
        "you are notified. NOT_SOLD_OUT (with `available`) while the seats can simply be "
        "held; ALREADY_WAITING if you are in this line already."
    )
    async def join_waitlist(
        self,
        info: Info,
        tier_id: TierId,
        quantity: Annotated[
            int, strawberry.argument(description="Seats wanted: 1 to the tier's `maxPerOrder`.")
        ],
    ) -> WaitlistEntryResult:
        record = await resolvers.waitlist.join_waitlist(info, tier_id, quantity)
        return WaitlistEntryPayload(entry=WaitlistEntry.from_record(record))

    @strawberry.mutation(
        description="Leave a waitlist. An offer you hold is given up: its seats pass to the "
        "next in line (HOLD_IN_CHECKOUT while it is in checkout). Leaving again returns the "
        "entry unchanged."
    )
    async def leave_waitlist(
        self,
        info: Info,
        entry_id: Annotated[
            strawberry.ID, strawberry.argument(description="One of your waitlist entries.")
        ],
    ) -> WaitlistEntryResult:
        record = await resolvers.waitlist.leave_waitlist(info, entry_id)
        return WaitlistEntryPayload(entry=WaitlistEntry.from_record(record))

    @strawberry.mutation(
        description="Approve waitlist entries of your events that are PENDING_APPROVAL: "
        "they join the line at their original join time, and free seats are offered at "
        "once. All or nothing; entries already in line are unchanged. "
        "WAITLIST_ENTRY_NOT_FOUND for an entry not of your events, WAITLIST_ENTRY_CLOSED "
        "for a declined or left one (`field` names it)."
    )
    async def approve_waitlist_entries(self, info: Info, ids: EntryIds) -> WaitlistEntriesResult:
        records = await resolvers.waitlist.approve_entries(info, list(ids))
        return WaitlistEntriesPayload(entries=[WaitlistEntry.from_record(r) for r in records])

    @strawberry.mutation(
        description="Decline waitlist entries of your events that are PENDING_APPROVAL or "
        "WAITING: they become DECLINED and are never offered seats. All or nothing; "
        "declined entries are unchanged. WAITLIST_ENTRY_NOT_FOUND for an entry not of your "
        "events, WAITLIST_ENTRY_CLOSED for one that left or was offered seats."
    )
    async def decline_waitlist_entries(self, info: Info, ids: EntryIds) -> WaitlistEntriesResult:
        records = await resolvers.waitlist.decline_entries(info, list(ids))
        return WaitlistEntriesPayload(entries=[WaitlistEntry.from_record(r) for r in records])
