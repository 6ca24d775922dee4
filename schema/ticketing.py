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
from resolvers.ids import EVENT, EVENT_AVAILABILITY, HOLD, ORDER, TIER, TIER_AVAILABILITY
from resolvers.ticketing import TierDraft
from schema.errors import UserError
from schema.inputs import enum_value_of, set_fields
from schema.node import Node, node_id


@strawberry.enum(description="Why a ticketing or event operation did not happen.")
class TicketingErrorCode(Enum):
    SOLD_OUT = strawberry.enum_value(
        "SOLD_OUT", description="Not enough tickets left; `available` says how many are."
    )
    QUANTITY_INVALID = strawberry.enum_value(
        "QUANTITY_INVALID", description="The quantity asked for is not a positive number."
    )
    MAX_PER_ORDER_EXCEEDED = strawberry.enum_value(
        "MAX_PER_ORDER_EXCEEDED", description="More than the tier's `maxPerOrder` at once."
    )
    SALES_NOT_OPEN = strawberry.enum_value(
        "SALES_NOT_OPEN", description="The tier's sales window has not started yet."
    )
    SALES_ENDED = strawberry.enum_value(
        "SALES_ENDED", description="The tier's sales window is over, or the tier is closed."
    )
    EVENT_NOT_PUBLISHED = strawberry.enum_value(
        "EVENT_NOT_PUBLISHED", description="The event is not on sale (a draft, or canceled)."
    )
    EVENT_NOT_FOUND = strawberry.enum_value(
        "EVENT_NOT_FOUND", description="No such event (or one the viewer may not see)."
    )
    EVENT_CANCELED = strawberry.enum_value(
        "EVENT_CANCELED", description="The event is canceled: it neither sells nor changes."
    )
    TIER_NOT_FOUND = strawberry.enum_value(
        "TIER_NOT_FOUND", description="No such tier (or one the viewer may not see)."
    )
    HOLD_NOT_FOUND = strawberry.enum_value(
        "HOLD_NOT_FOUND", description="No such hold among the viewer's."
    )
    HOLD_IN_CHECKOUT = strawberry.enum_value(
        "HOLD_IN_CHECKOUT",
        description="The viewer's hold on this tier is attached to an order already.",
    )
    CAPACITY_BELOW_SOLD = strawberry.enum_value(
        "CAPACITY_BELOW_SOLD",
        description="The new quantity is below reserved + issued; `minimum` is the floor.",
    )
    NOT_ALLOWED = strawberry.enum_value(
        "NOT_ALLOWED", description="Only the event's organizer (or an admin) may do this."
    )
    UNAUTHENTICATED = strawberry.enum_value(
        "UNAUTHENTICATED", description="Sign in first: no valid bearer token was sent."
    )
    INVALID_INPUT = strawberry.enum_value(
        "INVALID_INPUT", description="An input value is out of bounds; `field` names it."
    )
    CONFLICT = strawberry.enum_value(
        "CONFLICT", description="A concurrent change got in the way; retrying is safe."
    )
    CODE_NOT_FOUND = strawberry.enum_value(
        "CODE_NOT_FOUND", description="No such discount code among the events you manage."
    )
    CODE_TAKEN = strawberry.enum_value(
        "CODE_TAKEN", description="The event already has this discount code, in some case."
    )
    MAX_USES_BELOW_USES = strawberry.enum_value(
        "MAX_USES_BELOW_USES",
        description="A code's `maxUses` below the uses taken; `minimum` is the floor.",
    )
    NOT_SOLD_OUT = strawberry.enum_value(
        "NOT_SOLD_OUT",
        description="The tier still has the seats asked for: hold them instead of waiting; "
        "`available` says how many.",
    )
    ALREADY_WAITING = strawberry.enum_value(
        "ALREADY_WAITING",
        description="You are already on this tier's waitlist (waiting, or holding an offer).",
    )
    WAITLIST_ENTRY_NOT_FOUND = strawberry.enum_value(
        "WAITLIST_ENTRY_NOT_FOUND",
        description="No such waitlist entry of yours (or, to approve or decline, of your "
        "events); `field` names it.",
    )
    WAITLIST_ENTRY_CLOSED = strawberry.enum_value(
        "WAITLIST_ENTRY_CLOSED",
        description="The entry cannot take this decision: a declined or left entry is never "
        "approved; an entry that left or was offered seats is not declined. `field` names it.",
    )
    OFFER_HELD = strawberry.enum_value(
        "OFFER_HELD",
        description="You hold a waitlist offer for this tier: check it out as it is, or "
        "leave the waitlist to give it up.",
    )


@strawberry.type(description="An expected ticketing failure.")
class TicketingError(UserError):
    code: TicketingErrorCode = strawberry.field(
        description="What went wrong; switch on it, never on `message`."
    )
    available: int | None = strawberry.field(
        default=None,
        description="With SOLD_OUT and NOT_SOLD_OUT: how many tickets of the tier the "
        "public may still hold (seats the waitlist needs are not counted).",
    )
    minimum: int | None = strawberry.field(
        default=None,
        description="With CAPACITY_BELOW_SOLD: the smallest quantity allowed now; with "
        "MAX_USES_BELOW_USES: the smallest `maxUses` allowed now.",
    )


@strawberry.enum(description="ACTIVE tiers sell; HIDDEN sell but are not listed; CLOSED don't.")
class TierStatus(Enum):
    ACTIVE = strawberry.enum_value("active", description="Listed and on sale.")
    HIDDEN = strawberry.enum_value(
        "hidden",
        description="On sale to whoever has its id, but listed only for the event's "
        "organizer and admins.",
    )
    CLOSED = strawberry.enum_value("closed", description="Not on sale.")


@strawberry.type(description="A ticket tier of an event with its live capacity counters.")
class TicketTier(Node):
    event_id: strawberry.ID = strawberry.field(description="The event the tier belongs to.")
    name: str = strawberry.field(description="Display name, 1-100 characters.")
    price_cents: int = strawberry.field(
        description="Price of one ticket in the currency's minor unit (cents), "
        "0-100,000,000; 0 is free."
    )
    currency: str = strawberry.field(description="ISO 4217, lower case (usd, eur).")
    quantity: int = strawberry.field(description="Capacity of the tier.")
    reserved: int = strawberry.field(description="Seats held by active holds.")
    issued: int = strawberry.field(description="Tickets issued.")
    available: int = strawberry.field(
        description="Seats the public can hold now: quantity - reserved - issued, less "
        "the seats the tier's waitlist waits for (never below 0)."
    )
    max_per_order: int = strawberry.field(
        description="Most tickets of this tier one hold may take, 1-100."
    )
    sales_start_at: datetime | None = strawberry.field(
        description="When sales open; null: open now."
    )
    sales_end_at: datetime | None = strawberry.field(
        description="When sales close, after `salesStartAt`; null: until closed by hand."
    )
    status: TierStatus = strawberry.field(description="Whether the tier sells and is listed.")
    sort_order: int = strawberry.field(
        description="Display position among the event's tiers, ascending."
    )

    @classmethod
    def from_record(cls, record: db.tiers.TierRecord) -> TicketTier:
        return cls(
            id=node_id(TIER, record.id),
            event_id=node_id(EVENT, record.event_id),
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


@strawberry.enum(description="Where a hold is in its life; only ACTIVE holds keep seats.")
class HoldStatus(Enum):
    ACTIVE = strawberry.enum_value(
        "active", description="Keeping its seats until `expiresAt` (or checkout)."
    )
    CONVERTED = strawberry.enum_value(
        "converted", description="Turned into tickets of a paid order."
    )
    RELEASED = strawberry.enum_value(
        "released", description="Given back: by the buyer, or when its order did not complete."
    )
    EXPIRED = strawberry.enum_value(
        "expired", description="Lapsed at `expiresAt`; its seats went back on sale."
    )


@strawberry.type(
    description="Seats reserved for the viewer while they pay; they lapse at expiresAt."
)
class Hold(Node):
    tier_id: strawberry.ID = strawberry.field(description="The tier whose seats are held.")
    event_id: strawberry.ID = strawberry.field(description="The tier's event.")
    quantity: int = strawberry.field(description="How many tickets are held, at least 1.")
    status: HoldStatus = strawberry.field(description="Where the hold is in its life.")
    expires_at: datetime = strawberry.field(
        description="When the seats go back on sale unless paid for (by default 15 "
        "minutes after the last reserve)."
    )
    order_id: strawberry.ID | None = strawberry.field(
        description="Set once checkout attached the hold to an order."
    )
    created_at: datetime = strawberry.field(description="When the hold was first made.")

    @classmethod
    def from_record(cls, record: db.holds.HoldRecord) -> Hold:
        return cls(
            id=node_id(HOLD, record.id),
            tier_id=node_id(TIER, record.tier_id),
            event_id=node_id(EVENT, record.event_id),
            quantity=record.quantity,
            status=HoldStatus(record.status),
            expires_at=record.expires_at,
            order_id=node_id(ORDER, record.order_id) if record.order_id else None,
            created_at=record.created_at,
        )


@strawberry.type(description="A hold after it was made, adjusted or released.")
class HoldPayload:
    hold: Hold = strawberry.field(description="The hold as it is now.")


@strawberry.type(description="A tier after it was created or edited.")
class TierPayload:
    tier: TicketTier = strawberry.field(description="The tier as it is now.")


ReserveTicketsResult = Annotated[
    HoldPayload | TicketingError,
    strawberry.union(
        "ReserveTicketsResult",
        description="The viewer's hold, or why no seats were held (switch on `code`).",
    ),
]
ReleaseHoldResult = Annotated[
    HoldPayload | TicketingError,
    strawberry.union(
        "ReleaseHoldResult",
        description="The released hold, or why it could not be released.",
    ),
]
TierResult = Annotated[
    TierPayload | TicketingError,
    strawberry.union("TierResult", description="The tier, or why it was not created or changed."),
]


@strawberry.input(description="A new tier; its capacity is `quantity`.")
class CreateTierInput:
    event_id: strawberry.ID = strawberry.field(description="The event (one you organize).")
    name: str = strawberry.field(description="Display name, 1-100 characters.")
    price_cents: int = strawberry.field(
        description="Price of one ticket in minor units (cents), 0-100,000,000; 0 is free."
    )
    quantity: int = strawberry.field(description="Capacity: tickets for sale, 0-1,000,000.")
    currency: str = strawberry.field(
        default="usd", description="ISO 4217 code, three lower-case letters (usd, eur)."
    )
    max_per_order: int = strawberry.field(
        default=10, description="Most tickets one hold may take, 1-100."
    )
    sales_start_at: datetime | None = strawberry.field(
        default=None, description="When sales open, with a UTC offset; null: at once."
    )
    sales_end_at: datetime | None = strawberry.field(
        default=None,
        description="When sales close, with a UTC offset, after `salesStartAt`; null: never.",
    )
    status: TierStatus = strawberry.field(
        default=TierStatus.ACTIVE, description="Whether the tier sells and is listed."
    )
    sort_order: int = strawberry.field(
        default=0, description="Display position among the event's tiers, ascending."
    )

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
            status=enum_value_of(self.status),
            sort_order=self.sort_order,
        )


@strawberry.input(
    description="Fields to change; omitted fields stay. `quantity` may not go below "
    "reserved + issued (CAPACITY_BELOW_SOLD)."
)
class UpdateTierInput:
    name: str | None = strawberry.field(
        default=strawberry.UNSET, description="New name, 1-100 characters."
    )
    price_cents: int | None = strawberry.field(
        default=strawberry.UNSET,
        description="New price in minor units (cents), 0-100,000,000; holds and orders "
        "made before keep their price.",
    )
    currency: str | None = strawberry.field(
        default=strawberry.UNSET, description="New ISO 4217 code, lower case."
    )
    quantity: int | None = strawberry.field(
        default=strawberry.UNSET,
        description="New capacity, at most 1,000,000 and at least reserved + issued.",
    )
    max_per_order: int | None = strawberry.field(
        default=strawberry.UNSET, description="New per-hold limit, 1-100."
    )
    sales_start_at: datetime | None = strawberry.field(
        default=strawberry.UNSET, description="New sales opening; null: open now."
    )
    sales_end_at: datetime | None = strawberry.field(
        default=strawberry.UNSET, description="New sales close; null: no end."
    )
    status: TierStatus | None = strawberry.field(
        default=strawberry.UNSET, description="New status."
    )
    sort_order: int | None = strawberry.field(
        default=strawberry.UNSET, description="New display position."
    )

    def changes(self) -> dict[str, Any]:
        """The fields the client set (null included), by name; a status as its value."""
        changes = set_fields(self)
        if isinstance(changes.get("status"), TierStatus):
            changes["status"] = enum_value_of(changes["status"])
        return changes


@strawberry.type(description="One tier's counters at a point in time.")
class TierAvailability(Node):
    tier_id: strawberry.ID = strawberry.field(description="The tier.")
    quantity: int = strawberry.field(description="Capacity of the tier.")
    reserved: int = strawberry.field(description="Seats held by active holds.")
    issued: int = strawberry.field(description="Tickets issued.")
    available: int = strawberry.field(
        description="What a buyer may still hold: quantity - reserved - issued, less the "
        "seats the tier's waitlist waits for (never below 0)."
    )

    @classmethod
    def from_counts(cls, counts: TierCounts) -> TierAvailability:
        return cls(
            id=node_id(TIER_AVAILABILITY, counts.tier_id),
            tier_id=node_id(TIER, counts.tier_id),
            quantity=counts.quantity,
            reserved=counts.reserved,
            issued=counts.issued,
            available=counts.available,
        )


@strawberry.enum(description="Why an availability message was sent.")
class AvailabilityReason(Enum):
    SNAPSHOT = strawberry.enum_value(
        "snapshot", description="The first message: the state when the subscription began."
    )
    CHANGE = strawberry.enum_value(
        "change", description="A committed change of one tier (`changedTierId`)."
    )
    RESYNC = strawberry.enum_value(
        "resync",
        description="A fresh read after the server's listener reconnected; changes in "
        "between are included.",
    )


@strawberry.type(
    description="The state of every tier of an event. The first message (SNAPSHOT) is "
    "the current state; each later one follows a committed change (CHANGE, naming the "
    "tier) or a reconnect of the server's listener (RESYNC, a fresh read)."
)
class EventAvailability(Node):
    event_id: strawberry.ID = strawberry.field(description="The event.")
    reason: AvailabilityReason = strawberry.field(description="Why this message was sent.")
    changed_tier_id: strawberry.ID | None = strawberry.field(
        description="With CHANGE: the tier that changed; null otherwise."
    )
    tiers: list[TierAvailability] = strawberry.field(
        description="Every tier of the event the subscriber may see, in display order."
    )

    @classmethod
    def from_record(cls, record: Availability) -> EventAvailability:
        changed = record.changed_tier_id
        return cls(
            id=node_id(EVENT_AVAILABILITY, record.event_id),
            event_id=node_id(EVENT, record.event_id),
            reason=AvailabilityReason(record.reason),
            changed_tier_id=node_id(TIER, changed) if changed else None,
            tiers=[TierAvailability.from_counts(t) for t in record.tiers],
        )
