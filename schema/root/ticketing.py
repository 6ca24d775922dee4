"""Root fields for tiers, holds and live availability."""

from __future__ import annotations

from collections.abc import AsyncGenerator

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


@strawberry.type
class TicketingQuery:
    @strawberry.field(
        description="An event's tiers with live quantity, reserved, issued and available."
    )
    async def event_tiers(self, info: Info, event_id: strawberry.ID) -> list[TicketTier]:
        records = await resolvers.ticketing.event_tiers(info, event_id)
        return [TicketTier.from_record(r) for r in records]

    @strawberry.field(description="The viewer's active holds that have not expired yet.")
    async def my_holds(self, info: Info) -> list[Hold]:
        return [Hold.from_record(r) for r in await resolvers.ticketing.my_holds(info)]


@strawberry.type
class TicketingMutation:
    @strawberry.mutation(description="Add a ticket tier to your event.")
    async def create_tier(self, info: Info, input: CreateTierInput) -> TierResult:
        record = await resolvers.ticketing.create_tier(info, input.to_draft())
        return TierPayload(tier=TicketTier.from_record(record))

    @strawberry.mutation(
        description="Edit a tier. Capacity may not go below reserved + issued "
        "(CAPACITY_BELOW_SOLD, with `minimum`)."
    )
    async def update_tier(
        self, info: Info, id: strawberry.ID, input: UpdateTierInput
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
        self, info: Info, tier_id: strawberry.ID, quantity: int
    ) -> ReserveTicketsResult:
        hold = await resolvers.ticketing.reserve_tickets(info, tier_id, quantity)
        return HoldPayload(hold=Hold.from_record(hold))

    @strawberry.mutation(
        description="Give a hold's tickets back now. Releasing an already released or "
        "expired hold returns it unchanged."
    )
    async def release_hold(self, info: Info, hold_id: strawberry.ID) -> ReleaseHoldResult:
        hold = await resolvers.ticketing.release_hold(info, hold_id)
        return HoldPayload(hold=Hold.from_record(hold))


@strawberry.type
class TicketingSubscription:
    @strawberry.subscription(
        description="Live availability of an event's tiers: first the current state, then "
        "the state after every committed change."
    )
    async def tier_availability(
        self, info: Info, event_id: strawberry.ID
    ) -> AsyncGenerator[EventAvailability, None]:
        async for state in resolvers.availability.tier_availability(info, event_id):
            yield EventAvailability.from_record(state)
