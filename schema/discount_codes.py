"""Discount and comp codes as the API shows them to the event's organizer.

A code's mutations return a union of `DiscountCodePayload` and `TicketingError` (the
error type of everything an organizer configures for sale); a buyer applies a code
with `checkout(code:)`, whose refusals are `OrderError` codes (CODE_NOT_FOUND,
CODE_EXPIRED, CODE_EXHAUSTED, CODE_NOT_APPLICABLE).
"""

from __future__ import annotations

from datetime import datetime
from enum import Enum
from typing import Annotated, Any

import strawberry

from db.discount_codes import CodeUsage
from resolvers.discount_codes import DiscountCodeDraft
from resolvers.ids import DISCOUNT_CODE, EVENT, TIER
from schema.inputs import enum_value_of, set_fields
from schema.node import Node, node_id
from schema.ticketing import TicketingError


@strawberry.enum(description="What a code takes off.")
class DiscountKind(Enum):
    PERCENT = strawberry.enum_value(
        "percent", description="`percentOff` percent of the eligible tickets, rounded down."
    )
    FIXED = strawberry.enum_value(
        "fixed",
        description="`amountOffCents` once per order, in the code's `currency` (which "
        "must be the tickets' currency); never more than the eligible tickets cost.",
    )
    COMP = strawberry.enum_value(
        "comp", description="The eligible tickets are free; a free order needs no payment."
    )


@strawberry.type(
    description="A discount or comp code of an event, with its uses and what it brought."
)
class DiscountCode(Node):
    event_id: strawberry.ID = strawberry.field(description="The event the code belongs to.")
    code: str = strawberry.field(description="The code as created; buyers may type it in any case.")
    kind: DiscountKind = strawberry.field(description="What the code takes off.")
    percent_off: int | None = strawberry.field(description="With PERCENT: 1-100.")
    amount_off_cents: int | None = strawberry.field(
        description="With FIXED: the amount off, in the currency's minor unit (cents)."
    )
    currency: str | None = strawberry.field(description="With FIXED: ISO 4217, lower case.")
    tier_id: strawberry.ID | None = strawberry.field(
        description="Only this tier's tickets are discounted; null: every tier of the event."
    )
    max_uses: int = strawberry.field(description="Most orders that may use the code.")
    per_user_limit: int | None = strawberry.field(
        description="Most orders one buyer may use it in; null: no limit per buyer."
    )
    starts_at: datetime | None = strawberry.field(description="Valid from; null: at once.")
    ends_at: datetime | None = strawberry.field(description="Valid until; null: no end.")
    enabled: bool = strawberry.field(description="False: refused at checkout (CODE_EXPIRED).")
    uses_paid: int = strawberry.field(description="Paid orders that used the code.")
    uses_reserved: int = strawberry.field(
        description="Pending orders holding a use until they are paid or end."
    )
    paid_orders: int = strawberry.field(
        description="Paid or partially refunded orders with the code (fully refunded "
        "ones give their use back)."
    )
    revenue_cents: int = strawberry.field(
        description="What those orders brought, net of refunds, in minor units."
    )
    discount_cents: int = strawberry.field(
        description="What the code took off those orders, in minor units."
    )
    created_at: datetime = strawberry.field(description="When the code was created.")

    @classmethod
    def from_usage(cls, usage: CodeUsage) -> DiscountCode:
        code = usage.code
        return cls(
            id=node_id(DISCOUNT_CODE, code.id),
            event_id=node_id(EVENT, code.event_id),
            code=code.code,
            kind=DiscountKind(code.kind),
            percent_off=code.percent_off,
            amount_off_cents=code.amount_off_cents,
            currency=code.currency,
            tier_id=node_id(TIER, code.tier_id) if code.tier_id else None,
            max_uses=code.max_uses,
            per_user_limit=code.per_user_limit,
            starts_at=code.starts_at,
            ends_at=code.ends_at,
            enabled=code.enabled,
            uses_paid=code.uses_paid,
            uses_reserved=code.uses_reserved,
            paid_orders=usage.paid_orders,
            revenue_cents=usage.revenue_cents,
            discount_cents=usage.discount_cents,
            created_at=code.created_at,
        )


@strawberry.type(description="A code after it was created or changed.")
class DiscountCodePayload:
    discount_code: DiscountCode = strawberry.field(description="The code as it is now.")


@strawberry.type(description="An event's codes, newest first.")
class DiscountCodeList:
    codes: list[DiscountCode] = strawberry.field(
        description="Every code of the event, with uses and revenue."
    )


DiscountCodeResult = Annotated[
    DiscountCodePayload | TicketingError,
    strawberry.union(
        "DiscountCodeResult", description="The code, or why it was not created or changed."
    ),
]
DiscountCodesResult = Annotated[
    DiscountCodeList | TicketingError,
    strawberry.union("DiscountCodesResult", description="An event's codes, or why not."),
]


@strawberry.input(description="A new code of an event.")
class CreateDiscountCodeInput:
    code: str = strawberry.field(
        description="3-40 letters, digits, '-' or '_'; unique in the event whatever its case."
    )
    kind: DiscountKind = strawberry.field(description="What the code takes off.")
    max_uses: int = strawberry.field(description="Most orders that may use it, 1-1,000,000.")
    percent_off: int | None = strawberry.field(
        default=None, description="With PERCENT (and only then): 1-100."
    )
    amount_off_cents: int | None = strawberry.field(
        default=None,
        description="With FIXED (and only then): 1-100,000,000 minor units, once per order.",
    )
    currency: str | None = strawberry.field(
        default=None,
        description="With FIXED: ISO 4217, lower case; by default the tier's (or usd).",
    )
    tier_id: strawberry.ID | None = strawberry.field(
        default=None, description="Discount only this tier's tickets; null: every tier."
    )
    per_user_limit: int | None = strawberry.field(
        default=None, description="Most orders per buyer, 1-1,000; null: no limit."
    )
    starts_at: datetime | None = strawberry.field(
        default=None, description="Valid from, with a UTC offset; null: at once."
    )
    ends_at: datetime | None = strawberry.field(
        default=None, description="Valid until, with a UTC offset; null: no end."
    )
    enabled: bool = strawberry.field(default=True, description="False: created switched off.")

    def to_draft(self) -> DiscountCodeDraft:
        return DiscountCodeDraft(
            code=self.code,
            kind=enum_value_of(self.kind),
            max_uses=self.max_uses,
            percent_off=self.percent_off,
            amount_off_cents=self.amount_off_cents,
            currency=self.currency,
            tier_id=self.tier_id,
            per_user_limit=self.per_user_limit,
            starts_at=self.starts_at,
            ends_at=self.ends_at,
            enabled=self.enabled,
        )


@strawberry.input(
    description="Fields to change; omitted fields stay. What a code takes off never "
    "changes (past orders keep their price): disable it and create another."
)
class UpdateDiscountCodeInput:
    enabled: bool | None = strawberry.field(
        default=strawberry.UNSET, description="Switch the code on or off."
    )
    starts_at: datetime | None = strawberry.field(
        default=strawberry.UNSET, description="New start; null: valid at once."
    )
    ends_at: datetime | None = strawberry.field(
        default=strawberry.UNSET, description="New end; null: no end."
    )
    max_uses: int | None = strawberry.field(
        default=strawberry.UNSET,
        description="New limit, at most 1,000,000 and at least the uses taken (paid and "
        "reserved): MAX_USES_BELOW_USES otherwise.",
    )
    per_user_limit: int | None = strawberry.field(
        default=strawberry.UNSET, description="New limit per buyer; null: none."
    )

    def changes(self) -> dict[str, Any]:
        """The fields the client set (null included), by name."""
        return set_fields(self)
