"""Ticket tiers, holds and availability as the API shows them, with typed errors.

Every ticketing and event mutation returns a union of its success payload and
`TicketingError`; clients switch on `TicketingError.code`, never on the message
(`schema.error_map` makes them).
"""

from __future__ import annotations

from datetime import datetime
from enum import Enum
from typing import Annotated, Any

import strawberry

import db.holds
import db.tiers
from resolvers.availability import Availability, TierCounts
from resolvers.ticketing import TierDraft
from schema.errors import UserError
from schema.inputs import set_fields


@strawberry.enum(description="Why a ticketing or event operation did not happen.")
class TicketingErrorCode(Enum):
    SOLD_OUT = "SOLD_OUT"
    QUANTITY_INVALID = "QUANTITY_INVALID"
    MAX_PER_ORDER_EXCEEDED = "MAX_PER_ORDER_EXCEEDED"
    SALES_NOT_OPEN = "SALES_NOT_OPEN"
    SALES_ENDED = "SALES_ENDED"
    EVENT_NOT_PUBLISHED = "EVENT_NOT_PUBLISHED"
    EVENT_NOT_FOUND = "EVENT_NOT_FOUND"
    EVENT_CANCELED = "EVENT_CANCELED"
    TIER_NOT_FOUND = "TIER_NOT_FOUND"
    HOLD_NOT_FOUND = "HOLD_NOT_FOUND"
    HOLD_IN_CHECKOUT = "HOLD_IN_CHECKOUT"
    CAPACITY_BELOW_SOLD = "CAPACITY_BELOW_SOLD"
    NOT_ALLOWED = "NOT_ALLOWED"
    UNAUTHENTICATED = "UNAUTHENTICATED"
    INVALID_INPUT = "INVALID_INPUT"
    CONFLICT = "CONFLICT"


@strawberry.type(description="An expected ticketing failure.")
class TicketingError(UserError):
    code: TicketingErrorCode
    available: int | None = strawberry.field(
        default=None, description="With SOLD_OUT: how many tickets of the tier are still free."
    )
    minimum: int | None = strawberry.field(
        default=None,
        description="With CAPACITY_BELOW_SOLD: the smallest quantity allowed now.",
    )


@strawberry.enum(description="ACTIVE tiers sell; HIDDEN sell but are not listed; CLOSED don't.")
class TierStatus(Enum):
    ACTIVE = "active"
    HIDDEN = "hidden"
    CLOSED = "closed"


@strawberry.type(description="A ticket tier of an event with its live capacity counters.")
class TicketTier:
    id: strawberry.ID
    event_id: strawberry.ID
    name: str
    price_cents: int = strawberry.field(description="Price in the currency's minor unit.")
    currency: str = strawberry.field(description="ISO 4217, lower case (usd, eur).")
    quantity: int = strawberry.field(description="Capacity of the tier.")
    reserved: int = strawberry.field(description="Seats held by active holds.")
    issued: int = strawberry.field(description="Tickets issued.")
    available: int = strawberry.field(description="quantity - reserved - issued.")
    max_per_order: int
    sales_start_at: datetime | None
    sales_end_at: datetime | None
    status: TierStatus
    sort_order: int

    @classmethod
    def from_record(cls, record: db.tiers.TierRecord) -> TicketTier:
        return cls(
            id=strawberry.ID(str(record.id)),
            event_id=strawberry.ID(str(record.event_id)),
            name=record.name,
            price_cents=record.price_cents,
            currency=record.currency,
            quantity=record.quantity,
            reserved=record.reserved_quantity,
            issued=record.issued_quantity,
            available=record.available,
            max_per_order=record.max_per_order,
            sales_start_at=record.sales_start_at,
            sales_end_at=record.sales_end_at,
            status=TierStatus(record.status),
            sort_order=record.sort_order,
        )


@strawberry.enum
class HoldStatus(Enum):
    ACTIVE = "active"
    CONVERTED = "converted"
    RELEASED = "released"
    EXPIRED = "expired"


@strawberry.type(
    description="Seats reserved for the viewer while they pay; they lapse at expiresAt."
)
class Hold:
    id: strawberry.ID
    tier_id: strawberry.ID
    event_id: strawberry.ID
    quantity: int
    status: HoldStatus
    expires_at: datetime
    order_id: strawberry.ID | None = strawberry.field(
        description="Set once checkout attached the hold to an order."
    )
    created_at: datetime

    @classmethod
    def from_record(cls, record: db.holds.HoldRecord) -> Hold:
        return cls(
            id=strawberry.ID(str(record.id)),
            tier_id=strawberry.ID(str(record.tier_id)),
            event_id=strawberry.ID(str(record.event_id)),
            quantity=record.quantity,
            status=HoldStatus(record.status),
            expires_at=record.expires_at,
            order_id=strawberry.ID(str(record.order_id)) if record.order_id else None,
            created_at=record.created_at,
        )


@strawberry.type
class HoldPayload:
    hold: Hold


@strawberry.type
class TierPayload:
    tier: TicketTier


ReserveTicketsResult = Annotated[
    HoldPayload | TicketingError, strawberry.union("ReserveTicketsResult")
]
ReleaseHoldResult = Annotated[HoldPayload | TicketingError, strawberry.union("ReleaseHoldResult")]
TierResult = Annotated[TierPayload | TicketingError, strawberry.union("TierResult")]


@strawberry.input(description="A new tier; its capacity is `quantity`.")
class CreateTierInput:
    event_id: strawberry.ID
    name: str
    price_cents: int
    quantity: int
    currency: str = "usd"
    max_per_order: int = 10
    sales_start_at: datetime | None = None
    sales_end_at: datetime | None = None
    status: TierStatus = TierStatus.ACTIVE
    sort_order: int = 0

    def to_draft(self) -> TierDraft:
        return TierDraft(
            event_id=self.event_id,
            name=self.name,
            price_cents=self.price_cents,
            quantity=self.quantity,
            currency=self.currency,
            max_per_order=self.max_per_order,
            sales_start_at=self.sales_start_at,
            sales_end_at=self.sales_end_at,
            status=self.status.value,
            sort_order=self.sort_order,
        )


@strawberry.input(
    description="Fields to change; omitted fields stay. `quantity` may not go below "
    "reserved + issued (CAPACITY_BELOW_SOLD)."
)
class UpdateTierInput:
    name: str | None = strawberry.UNSET
    price_cents: int | None = strawberry.UNSET
    currency: str | None = strawberry.UNSET
    quantity: int | None = strawberry.UNSET
    max_per_order: int | None = strawberry.UNSET
    sales_start_at: datetime | None = strawberry.UNSET
    sales_end_at: datetime | None = strawberry.UNSET
    status: TierStatus | None = strawberry.UNSET
    sort_order: int | None = strawberry.UNSET

    def changes(self) -> dict[str, Any]:
        """The fields the client set (null included), by name; a status as its value."""
        changes = set_fields(self)
        if isinstance(changes.get("status"), TierStatus):
            changes["status"] = changes["status"].value
        return changes


@strawberry.type(description="One tier's counters at a point in time.")
class TierAvailability:
    tier_id: strawberry.ID
    quantity: int
    reserved: int
    issued: int
    available: int

    @classmethod
    def from_counts(cls, counts: TierCounts) -> TierAvailability:
        return cls(
            tier_id=strawberry.ID(str(counts.tier_id)),
            quantity=counts.quantity,
            reserved=counts.reserved,
            issued=counts.issued,
            available=counts.available,
        )


@strawberry.enum
class AvailabilityReason(Enum):
    SNAPSHOT = "snapshot"
    CHANGE = "change"
    RESYNC = "resync"


@strawberry.type(
    description="The state of every tier of an event. The first message (SNAPSHOT) is "
    "the current state; each later one follows a committed change (CHANGE, naming the "
    "tier) or a reconnect of the server's listener (RESYNC, a fresh read)."
)
class EventAvailability:
    event_id: strawberry.ID
    reason: AvailabilityReason
    changed_tier_id: strawberry.ID | None
    tiers: list[TierAvailability]

    @classmethod
    def from_record(cls, record: Availability) -> EventAvailability:
        changed = record.changed_tier_id
        return cls(
            event_id=strawberry.ID(str(record.event_id)),
            reason=AvailabilityReason(record.reason),
            changed_tier_id=strawberry.ID(str(changed)) if changed else None,
            tiers=[TierAvailability.from_counts(t) for t in record.tiers],
        )
