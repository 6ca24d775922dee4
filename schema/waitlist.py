"""The waitlist of a sold-out tier as the API shows it: a person's entries, and a tier's
line for its organizer.

Mutations return a union of `WaitlistEntryPayload` and `TicketingError` (the error type
of everything about seats). An offer is a `Hold`: checked out with `checkout` like any
other hold, until `offerExpiresAt`.
"""

from __future__ import annotations

from datetime import datetime
from enum import Enum
from typing import Annotated

import strawberry
from strawberry.relay import PageInfo

import db.waitlist
import resolvers.ticketing
from resolvers.context import Info
from resolvers.ids import EVENT, HOLD, TIER, USER, WAITLIST_ENTRY
from schema.node import Node, node_id
from schema.ticketing import Hold, TicketingError


@strawberry.enum(description="Where a waitlist entry is.")
class WaitlistEntryStatus(Enum):
    PENDING_APPROVAL = strawberry.enum_value(
        "pending_approval",
        description="Asked to join a waitlist that needs the organizer's approval: not in "
        "line yet (no position, no offers) until approved.",
    )
    WAITING = strawberry.enum_value(
        "waiting", description="In line; `position` 1 is offered the next seats that fit."
    )
    OFFERED = strawberry.enum_value(
        "offered",
        description="Seats are held for you (`offerHold`) until `offerExpiresAt`: check "
        "them out before then or they pass to the next in line.",
    )
    PURCHASED = strawberry.enum_value("purchased", description="The offer became tickets.")
    EXPIRED = strawberry.enum_value(
        "expired", description="The offer lapsed; its seats passed to the next in line."
    )
    LEFT = strawberry.enum_value("left", description="Taken out of the line (or offer given up).")
    DECLINED = strawberry.enum_value(
        "declined", description="The organizer declined the entry; it will not be offered seats."
    )


@strawberry.type(description="A place in a sold-out tier's waitlist.")
class WaitlistEntry(Node):
    tier_id: strawberry.ID = strawberry.field(description="The tier waited for.")
    event_id: strawberry.ID = strawberry.field(description="The tier's event.")
    user_id: strawberry.ID = strawberry.field(description="Who is waiting.")
    quantity: int = strawberry.field(description="How many seats are wanted, together.")
    status: WaitlistEntryStatus = strawberry.field(description="Where the entry is.")
    position: int | None = strawberry.field(
        description="While WAITING: the place in line, 1 first. A group that does not fit "
        "the seats freed is skipped and keeps its place."
    )
    joined_at: datetime = strawberry.field(description="When the entry joined (its place).")
    offered_at: datetime | None = strawberry.field(description="When seats were offered.")
    offer_expires_at: datetime | None = strawberry.field(
        description="While OFFERED: when the held seats pass to the next in line."
    )
    hold_id: strawberry.ID | None = strawberry.field(
        description="The offer's hold (pass it to `checkout`), once offered."
    )

    @strawberry.field(description="The offer's hold, once offered (only for its holder).")
    async def offer_hold(self, info: Info) -> Hold | None:
        if self.hold_id is None:
            return None
        record = await resolvers.ticketing.hold(info, self.hold_id)
        return Hold.from_record(record) if record else None

    @classmethod
    def from_record(cls, record: db.waitlist.WaitlistEntryRecord) -> WaitlistEntry:
        return cls(
            id=node_id(WAITLIST_ENTRY, record.id),
            tier_id=node_id(TIER, record.tier_id),
            event_id=node_id(EVENT, record.event_id),
            user_id=node_id(USER, record.user_id),
            quantity=record.quantity,
            status=WaitlistEntryStatus(record.status),
            position=record.position,
            joined_at=record.joined_at,
            offered_at=record.offered_at,
            offer_expires_at=record.offer_expires_at,
            hold_id=node_id(HOLD, record.hold_id) if record.hold_id else None,
        )


@strawberry.type(description="A waitlist entry after joining or leaving.")
class WaitlistEntryPayload:
    entry: WaitlistEntry = strawberry.field(description="The entry as it is now.")


@strawberry.type(description="Waitlist entries after the organizer approved or declined them.")
class WaitlistEntriesPayload:
    entries: list[WaitlistEntry] = strawberry.field(
        description="The entries as they are now, in the order asked (each id once), with "
        "their status and, while waiting, position."
    )


@strawberry.type(description="One entry of a tier's line.")
class WaitlistEdge:
    cursor: str = strawberry.field(
        description="Opaque position of this entry; pass it as `after` to continue."
    )
    node: WaitlistEntry = strawberry.field(description="The entry.")


@strawberry.type(
    description="A page of a tier's line by join time: entries pending approval, waiting "
    "or holding an active offer (Relay connection)."
)
class WaitlistConnection:
    edges: list[WaitlistEdge] = strawberry.field(description="The entries of this page.")
    page_info: PageInfo = strawberry.field(
        description="Whether more pages follow, and `endCursor` to fetch the next one."
    )

    @classmethod
    def from_page(cls, page: db.waitlist.WaitlistPage) -> WaitlistConnection:
        edges = [
            WaitlistEdge(cursor=e.cursor, node=WaitlistEntry.from_record(e)) for e in page.entries
        ]
        return cls(
            edges=edges,
            page_info=PageInfo(
                has_next_page=page.has_next_page,
                has_previous_page=False,
                start_cursor=edges[0].cursor if edges else None,
                end_cursor=edges[-1].cursor if edges else None,
            ),
        )


WaitlistEntryResult = Annotated[
    WaitlistEntryPayload | TicketingError,
    strawberry.union(
        "WaitlistEntryResult", description="The entry, or why not (switch on `code`)."
    ),
]

WaitlistEntriesResult = Annotated[
    WaitlistEntriesPayload | TicketingError,
    strawberry.union(
        "WaitlistEntriesResult", description="The entries, or why none changed (switch on `code`)."
    ),
]

TierWaitlistResult = Annotated[
    WaitlistConnection | TicketingError,
    strawberry.union("TierWaitlistResult", description="A page of the tier's line, or why not."),
]
