"""Root fields for events, tiers, holds and live availability."""

from __future__ import annotations

from collections.abc import AsyncGenerator

import strawberry

from liventix.context import Info
from resolvers import events as event_resolvers
from resolvers import ticketing as tier_resolvers
from schema.events import Event, EventConnection
from schema.ticketing import (
    EventAvailability,
    EventResult,
    Hold,
    ReleaseHoldResult,
    ReserveTicketsResult,
    TicketTier,
    TierResult,
)


@strawberry.type
class TicketingQuery:
    event: Event | None = strawberry.field(
        resolver=event_resolvers.event,
        description="An event by id; null if unknown, or a draft you do not organize.",
    )
    events: EventConnection = strawberry.field(
        resolver=event_resolvers.events,
        description="Published events that are not over yet, soonest first. `first` "
        "(1-100, default 20) and `after` (an endCursor) paginate.",
    )
    my_events: list[Event] = strawberry.field(
        resolver=event_resolvers.my_events, description="Events the viewer organizes, any status."
    )
    event_tiers: list[TicketTier] = strawberry.field(
        resolver=tier_resolvers.event_tiers,
        description="An event's tiers with live quantity, reserved, issued and available.",
    )
    my_holds: list[Hold] = strawberry.field(
        resolver=tier_resolvers.my_holds,
        description="The viewer's active holds that have not expired yet.",
    )


@strawberry.type
class TicketingMutation:
    create_event: EventResult = strawberry.mutation(
        resolver=event_resolvers.create_event,
        description="Create a draft event (organizers, admins).",
    )
    update_event: EventResult = strawberry.mutation(
        resolver=event_resolvers.update_event, description="Edit your event; omitted fields stay."
    )
    publish_event: EventResult = strawberry.mutation(
        resolver=event_resolvers.publish_event,
        description="Put your event on sale (status PUBLISHED).",
    )
    set_event_status: EventResult = strawberry.mutation(
        resolver=event_resolvers.set_event_status,
        description="Publish, unpublish (DRAFT) or cancel your event; CANCELED is final.",
    )
    create_tier: TierResult = strawberry.mutation(
        resolver=tier_resolvers.create_tier, description="Add a ticket tier to your event."
    )
    update_tier: TierResult = strawberry.mutation(
        resolver=tier_resolvers.update_tier,
        description="Edit a tier. Capacity may not go below reserved + issued "
        "(CAPACITY_BELOW_SOLD, with `minimum`).",
    )
    reserve_tickets: ReserveTicketsResult = strawberry.mutation(
        resolver=tier_resolvers.reserve_tickets,
        description="Hold `quantity` tickets of a tier for the viewer while they pay; the "
        "hold expires after the configured time (15 minutes by default). A viewer has at "
        "most one active hold per tier: asking again ADJUSTS that hold (the new quantity "
        "replaces the old one, and the expiry is refreshed) unless it is already attached "
        "to an order, which yields HOLD_IN_CHECKOUT. SOLD_OUT carries `available`.",
    )
    release_hold: ReleaseHoldResult = strawberry.mutation(
        resolver=tier_resolvers.release_hold,
        description="Give a hold's tickets back now. Releasing an already released or "
        "expired hold returns it unchanged.",
    )


@strawberry.type
class TicketingSubscription:
    @strawberry.subscription(
        description="Live availability of an event's tiers: first the current state, then "
        "the state after every committed change."
    )
    async def tier_availability(
        self, info: Info, event_id: strawberry.ID
    ) -> AsyncGenerator[EventAvailability, None]:
        async for state in tier_resolvers.tier_availability(info, event_id):
            yield state
