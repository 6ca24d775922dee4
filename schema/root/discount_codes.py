"""Root fields for an event's discount and comp codes (its organizer or an admin)."""

from __future__ import annotations

from typing import Annotated

import strawberry

import resolvers.discount_codes
from resolvers.context import Info
from schema.discount_codes import (
    CreateDiscountCodeInput,
    DiscountCode,
    DiscountCodeList,
    DiscountCodePayload,
    DiscountCodeResult,
    DiscountCodesResult,
    UpdateDiscountCodeInput,
)

EventId = Annotated[strawberry.ID, strawberry.argument(description="The event's id.")]


@strawberry.type
class DiscountCodesQuery:
    @strawberry.field(
        description="An event's discount and comp codes, newest first, each with its uses "
        "(paid, reserved) and the revenue of its paid orders: for the event's organizer "
        "or an admin."
    )
    async def event_discount_codes(self, info: Info, event_id: EventId) -> DiscountCodesResult:
        usages = await resolvers.discount_codes.event_codes(info, event_id)
        return DiscountCodeList(codes=[DiscountCode.from_usage(u) for u in usages])


@strawberry.type
class DiscountCodesMutation:
    @strawberry.mutation(
        description="Add a discount or comp code to your event. CODE_TAKEN if the event "
        "has it already, in any case."
    )
    async def create_discount_code(
        self,
        info: Info,
        event_id: EventId,
        input: Annotated[CreateDiscountCodeInput, strawberry.argument(description="The new code.")],
    ) -> DiscountCodeResult:
        usage = await resolvers.discount_codes.create_code(info, event_id, input.to_draft())
        return DiscountCodePayload(discount_code=DiscountCode.from_usage(usage))

    @strawberry.mutation(
        description="Switch a code on or off, move its window, change its limits. "
        "`maxUses` may not go below the uses taken (MAX_USES_BELOW_USES, with `minimum`)."
    )
    async def update_discount_code(
        self,
        info: Info,
        id: Annotated[strawberry.ID, strawberry.argument(description="The code's id.")],
        input: Annotated[
            UpdateDiscountCodeInput,
            strawberry.argument(description="The fields to change; omitted ones stay."),
        ],
    ) -> DiscountCodeResult:
        usage = await resolvers.discount_codes.update_code(info, id, input.changes())
        return DiscountCodePayload(discount_code=DiscountCode.from_usage(usage))
