"""Root fields of Relay global object identification: `node(id:)` and `nodes(ids:)`.

An id names its type (`resolvers.ids`), and each type is read back through the same
resolver as its own field (`event(id:)`, `order(id:)`, `post(id:)`, ...), so a node is
seen by exactly who may see it there: null for others, and the same error as that field
where it has one (an anonymous viewer asking for an order is asked to sign in).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Annotated

import strawberry

import resolvers.availability
import resolvers.discount_codes
import resolvers.events
import resolvers.feed
import resolvers.ids
import resolvers.notifications
import resolvers.operations
import resolvers.orders
import resolvers.ticketing
import resolvers.users
import resolvers.waitlist
from resolvers.context import Info
from resolvers.errors import ClientCode, ClientError
from schema.discount_codes import DiscountCode
from schema.events import Event
from schema.feed import Post
from schema.node import Node
from schema.notifications import Notification
from schema.operations import ReconciliationReport
from schema.orders import Order, Ticket
from schema.ticketing import EventAvailability, Hold, TicketTier, TierAvailability
from schema.users import User, Viewer
from schema.waitlist import WaitlistEntry

MAX_NODES = 100


async def _event(info: Info, id: str) -> Node | None:
    record = await resolvers.events.event(info, id)
    return Event.from_record(record) if record else None


async def _post(info: Info, id: str) -> Node | None:
    row = await resolvers.feed.post(info, id)
    return Post.from_row(row) if row else None


async def _order(info: Info, id: str) -> Node | None:
    record = await resolvers.orders.order(info, id)
    return Order.from_record(record) if record else None


async def _ticket(info: Info, id: str) -> Node | None:
    record = await resolvers.orders.ticket(info, id)
    return Ticket.from_record(record) if record else None


async def _tier(info: Info, id: str) -> Node | None:
    record = await resolvers.ticketing.tier(info, id)
    return TicketTier.from_record(record) if record else None


async def _hold(info: Info, id: str) -> Node | None:
    record = await resolvers.ticketing.hold(info, id)
    return Hold.from_record(record) if record else None


async def _tier_availability(info: Info, id: str) -> Node | None:
    counts = await resolvers.availability.tier_counts(info, id)
    return TierAvailability.from_counts(counts) if counts else None


async def _event_availability(info: Info, id: str) -> Node | None:
    record = await resolvers.availability.event_availability(info, id)
    return EventAvailability.from_record(record) if record else None


async def _discount_code(info: Info, id: str) -> Node | None:
    usage = await resolvers.discount_codes.discount_code(info, id)
    return DiscountCode.from_usage(usage) if usage else None


async def _waitlist_entry(info: Info, id: str) -> Node | None:
    record = await resolvers.waitlist.entry(info, id)
    return WaitlistEntry.from_record(record) if record else None


async def _user(info: Info, id: str) -> Node | None:
    profile = await resolvers.users.user_by_id(info, id)
    return User.from_profile(profile) if profile else None


async def _viewer(info: Info, id: str) -> Node | None:
    record = await resolvers.users.viewer_by_id(info, id)
    return Viewer.from_record(record) if record else None


async def _notification(info: Info, id: str) -> Node | None:
    record = await resolvers.notifications.notification(info, id)
    return Notification.from_record(record) if record else None


async def _reconciliation_report(info: Info, id: str) -> Node | None:
    row = await resolvers.operations.reconciliation_report(info, id)
    return ReconciliationReport.from_row(row) if row else None


READERS: dict[str, Callable[[Info, str], Awaitable[Node | None]]] = {
    resolvers.ids.DISCOUNT_CODE: _discount_code,
    resolvers.ids.EVENT: _event,
    resolvers.ids.EVENT_AVAILABILITY: _event_availability,
    resolvers.ids.HOLD: _hold,
    resolvers.ids.NOTIFICATION: _notification,
    resolvers.ids.ORDER: _order,
    resolvers.ids.POST: _post,
    resolvers.ids.RECONCILIATION_REPORT: _reconciliation_report,
    resolvers.ids.TICKET: _ticket,
    resolvers.ids.TIER: _tier,
    resolvers.ids.TIER_AVAILABILITY: _tier_availability,
    resolvers.ids.USER: _user,
    resolvers.ids.VIEWER: _viewer,
    resolvers.ids.WAITLIST_ENTRY: _waitlist_entry,
}


async def _node(info: Info, id: str) -> Node | None:
    decoded = resolvers.ids.decode_global_id(id)
    read = READERS.get(decoded[0]) if decoded else None
    return await read(info, id) if read else None


@strawberry.type
class NodeQuery:
    @strawberry.field(
        description="The object with this global id, read as its own field reads it (null "
        "if unknown or not yours to see). A normalized cache finds it under the same entry."
    )
    async def node(
        self,
        info: Info,
        id: Annotated[strawberry.ID, strawberry.argument(description="A global id.")],
    ) -> Node | None:
        return await _node(info, id)

    @strawberry.field(
        description=f"The objects with these global ids, in the same order (null for each "
        f"unknown or not yours to see); at most {MAX_NODES} ids."
    )
    async def nodes(
        self,
        info: Info,
        ids: Annotated[
            list[strawberry.ID],
            strawberry.argument(description=f"Global ids, at most {MAX_NODES}."),
        ],
    ) -> list[Node | None]:
        if len(ids) > MAX_NODES:
            raise ClientError(f"At most {MAX_NODES} ids", ClientCode.BAD_USER_INPUT)
        return list(await asyncio.gather(*(_node(info, id) for id in ids)))
