"""Root fields for tiers, holds and live availability."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import Annotated

import strawberry

import resolvers.availability
import resolvers.ticketing
from resolvers.context import Info
from schema.ticketing import (
    CreateTierInput,
    EventAvailability,
    Hold,
    HoldPayload,
    ReleaseHoldResult,
    ReserveTicketsResult,
    TicketTier,
    TierPayload,
    TierResult,
    UpdateTierInput,
)

EventId = Annotated[strawberry.ID, strawberry.argument(description="The event's id.")]


@strawberry.type
class TicketingQuery:
    @strawberry.field(
        description="An event's tiers with live quantity, reserved, issued and available, "
        "in display order (a fresh read). Hidden tiers only for the event's organizer and "
        "admins; empty for an unknown event or a draft you do not organize."
    )
    async def event_tiers(self, info: Info, event_id: EventId) -> list[TicketTier]:
        records = await resolvers.ticketing.event_tiers(info, event_id)
        return [TicketTier.from_record(r) for r in records]

    @strawberry.field(
        description="The viewer's active holds that have not expired yet (signed-in users)."
    )
    async def my_holds(self, info: Info) -> list[Hold]:
        return [Hold.from_record(r) for r in await resolvers.ticketing.my_holds(info)]


@strawberry.type
class TicketingMutation:
    @strawberry.mutation(description="Add a ticket tier to your event.")
    async def create_tier(
        self,
        info: Info,
        input: Annotated[
            CreateTierInput, strawberry.argument(description="The new tier's fields.")
        ],
    ) -> TierResult:
        record = await resolvers.ticketing.create_tier(info, input.to_draft())
        return TierPayload(tier=TicketTier.from_record(record))

    @strawberry.mutation(
        description="Edit a tier. Capacity may not go below reserved + issued "
        "(CAPACITY_BELOW_SOLD, with `minimum`)."
    )
    async def update_tier(
        self,
        info: Info,
        id: Annotated[strawberry.ID, strawberry.argument(description="The tier's id.")],
        input: Annotated[
            UpdateTierInput,
            strawberry.argument(description="The fields to change; omitted ones stay."),
        ],
    ) -> TierResult:
        record = await resolvers.ticketing.update_tier(info, id, input.changes())
        return TierPayload(tier=TicketTier.from_record(record))

    @strawberry.mutation(
        description="Hold `quantity` tickets of a tier for the viewer while they pay; the "
        "hold expires after the configured time (15 minutes by default). A viewer has at "
        "most one active hold per tier: asking again ADJUSTS that hold (the new quantity "
        "replaces the old one, and the expiry is refreshed) unless it is already attached "
        "to an order, which yields HOLD_IN_CHECKOUT. SOLD_OUT carries `available`."
    )
    async def reserve_tickets(
        self,
        info: Info,
        tier_id: Annotated[strawberry.ID, strawberry.argument(description="The tier to buy from.")],
        quantity: Annotated[
            int,
            strawberry.argument(
                description="How many tickets to hold: 1 to the tier's `maxPerOrder`."
            ),
        ],
    ) -> ReserveTicketsResult:
        hold = await resolvers.ticketing.reserve_tickets(info, tier_id, quantity)
        return HoldPayload(hold=Hold.from_record(hold))

    @strawberry.mutation(
        description="Give a hold's tickets back now. Releasing an already released or "
        "expired hold returns it unchanged."
    )
    async def release_hold(
        self,
        info: Info,
        hold_id: Annotated[
            strawberry.ID, strawberry.argument(description="One of the viewer's holds.")
        ],
    ) -> ReleaseHoldResult:
        hold = await resolvers.ticketing.release_hold(info, hold_id)
        return HoldPayload(hold=Hold.from_record(hold))


@strawberry.type
class TicketingSubscription:
    @strawberry.subscription(
        description="Live availability of an event's tiers: first the current state, then "
        "the state after every committed change."
    )
    async def tier_availability(
        self, info: Info, event_id: EventId
    ) -> AsyncGenerator[EventAvailability, None]:
        async for state in resolvers.availability.tier_availability(info, event_id):
            yield EventAvailability.from_record(state)
