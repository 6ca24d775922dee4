"""Orders, tickets, refunds, check-in and operations health as the API shows them.

Every mutation returns a union of its payload and `OrderError`; clients switch on
`OrderError.code` (`schema.error_map` makes them). A ticket's `qrPayload` (the random
token the door scans) is shown to its owner only; an order's contact details to its
buyer, the event's organizer and admins, until the order is anonymized. Operations
views are in `schema.operations`.
"""

from __future__ import annotations

from datetime import datetime
from enum import Enum
from typing import Annotated, Any

import strawberry
from strawberry.relay import PageInfo

import db.checkin
import db.checkout
import db.order_queries
import db.order_records
import db.pages
import db.refunds
import resolvers.events
import resolvers.orders
from liventix.payments.flows import CheckoutResult as CheckoutRecord
from resolvers.context import Info
from resolvers.ids import EVENT, ORDER, TICKET, TIER
from schema.errors import UserError
from schema.events import Event
from schema.node import Node, node_id


@strawberry.enum(description="Where an order is; statuses only move forward.")
class OrderStatus(Enum):
    PENDING = strawberry.enum_value(
        "pending", description="Checked out, waiting for the payment to succeed."
    )
    PAID = strawberry.enum_value("paid", description="Paid (or free): its tickets are issued.")
    FAILED = strawberry.enum_value(
        "failed", description="The payment failed; `failureReason` says why."
    )
    EXPIRED = strawberry.enum_value(
        "expired", description="Its holds expired before the payment arrived."
    )
    CANCELED = strawberry.enum_value(
        "canceled",
        description="Replaced by a newer checkout of the same holds, or abandoned; "
        "`failureReason` says why.",
    )
    REFUNDED = strawberry.enum_value(
        "refunded", description="Fully refunded: every ticket is refunded."
    )
    PARTIALLY_REFUNDED = strawberry.enum_value(
        "partially_refunded",
        description="Some tickets refunded; the others still admit (`refundedCents`).",
    )


@strawberry.enum(description="ISSUED tickets admit; REFUNDED and VOID ones never do.")
class TicketStatus(Enum):
    ISSUED = strawberry.enum_value("issued", description="Valid: admits its holder once.")
    REFUNDED = strawberry.enum_value(
        "refunded", description="Refunded: its seat went back on sale."
    )
    VOID = strawberry.enum_value(
        "void", description="Invalidated other than by a refund: never admits."
    )


@strawberry.enum(description="Why an order, refund or check-in did not happen.")
class OrderErrorCode(Enum):
    HOLD_NOT_FOUND = strawberry.enum_value(
        "HOLD_NOT_FOUND", description="A hold is unknown or not the viewer's."
    )
    HOLD_EXPIRED = strawberry.enum_value(
        "HOLD_EXPIRED", description="A hold expired or was released: reserve again."
    )
    MIXED_EVENTS = strawberry.enum_value(
        "MIXED_EVENTS", description="The holds belong to more than one event."
    )
    MIXED_CURRENCIES = strawberry.enum_value(
        "MIXED_CURRENCIES", description="The holds' tiers are priced in different currencies."
    )
    CONTACT_INVALID = strawberry.enum_value(
        "CONTACT_INVALID", description="An email, name or phone is not valid; `field` says which."
    )
    PAYMENT_PROVIDER_ERROR = strawberry.enum_value(
        "PAYMENT_PROVIDER_ERROR",
        description="The payment provider failed; nothing was charged, retrying is safe.",
    )
    CONFLICT = strawberry.enum_value(
        "CONFLICT", description="A concurrent change got in the way; retrying is safe."
    )
    ORDER_NOT_FOUND = strawberry.enum_value(
        "ORDER_NOT_FOUND", description="No such order (or one the viewer may not see)."
    )
    NOT_REFUNDABLE = strawberry.enum_value(
        "NOT_REFUNDABLE",
        description="No longer returned: a refund of an unpaid order is ORDER_NOT_PAID.",
        deprecation_reason="Refunds answer ORDER_NOT_PAID.",
    )
    TICKET_NOT_FOUND = strawberry.enum_value(
        "TICKET_NOT_FOUND",
        description="No longer returned: a ticket of another order is TICKET_NOT_IN_ORDER.",
        deprecation_reason="Refunds answer TICKET_NOT_IN_ORDER.",
    )
    ORDER_NOT_PAID = strawberry.enum_value(
        "ORDER_NOT_PAID",
        description="The order was never paid (pending, failed, expired, canceled): "
        "nothing to refund.",
    )
    REFUND_EXCEEDS_PAID = strawberry.enum_value(
        "REFUND_EXCEEDS_PAID",
        description="More than is still refundable (paid less refunded); "
        "`refundableCents` says how much is.",
    )
    INVALID_AMOUNT = strawberry.enum_value(
        "INVALID_AMOUNT", description="A refund amount must be at least 1 (minor units)."
    )
    TICKET_NOT_IN_ORDER = strawberry.enum_value(
        "TICKET_NOT_IN_ORDER", description="A ticket id is not one of the order's tickets."
    )
    TICKET_ALREADY_VOIDED = strawberry.enum_value(
        "TICKET_ALREADY_VOIDED", description="A ticket was already refunded or voided."
    )
    TICKET_CHECKED_IN = strawberry.enum_value(
        "TICKET_CHECKED_IN",
        description="A ticket was checked in: its seat was used and cannot go back on "
        "sale. Refund money with `amountCents` instead.",
    )
    NOTE_REQUIRED = strawberry.enum_value(
        "NOTE_REQUIRED", description="The reason OTHER needs a `note` saying what it is."
    )
    IDEMPOTENCY_KEY_REUSED = strawberry.enum_value(
        "IDEMPOTENCY_KEY_REUSED",
        description="This idempotency key was used for a different refund of the order.",
    )
    TOKEN_NOT_FOUND = strawberry.enum_value(
        "TOKEN_NOT_FOUND", description="The scanned QR payload is no ticket's."
    )
    ALREADY_CHECKED_IN = strawberry.enum_value(
        "ALREADY_CHECKED_IN", description="Admitted before, at `checkedInAt`: refuse entry."
    )
    TICKET_REFUNDED = strawberry.enum_value(
        "TICKET_REFUNDED", description="The ticket was refunded: refuse entry."
    )
    TICKET_VOID = strawberry.enum_value(
        "TICKET_VOID", description="The ticket is void: refuse entry."
    )
    EVENT_NOT_FOUND = strawberry.enum_value("EVENT_NOT_FOUND", description="No such event.")
    INVALID_CURSOR = strawberry.enum_value(
        "INVALID_CURSOR", description="`after` is not a cursor this list returned."
    )
    NOT_ALLOWED = strawberry.enum_value(
        "NOT_ALLOWED", description="Only the event's organizer (or an admin) may do this."
    )
    UNAUTHENTICATED = strawberry.enum_value(
        "UNAUTHENTICATED", description="Sign in first: no valid bearer token was sent."
    )
    INVALID_INPUT = strawberry.enum_value(
        "INVALID_INPUT", description="An input value is malformed or out of bounds; see `field`."
    )
    CODE_NOT_FOUND = strawberry.enum_value(
        "CODE_NOT_FOUND", description="The event has no such discount code (in any case)."
    )
    CODE_EXPIRED = strawberry.enum_value(
        "CODE_EXPIRED",
        description="The discount code is switched off, or outside its validity window.",
    )
    CODE_EXHAUSTED = strawberry.enum_value(
        "CODE_EXHAUSTED",
        description="The discount code's uses are all taken, or the viewer's own limit is.",
    )
    CODE_NOT_APPLICABLE = strawberry.enum_value(
        "CODE_NOT_APPLICABLE",
        description="The discount code is for another tier, or in another currency.",
    )


@strawberry.enum(
    description="Why a refund was made. Stripe is told DUPLICATE, FRAUDULENT and "
    "REQUESTED_BY_CUSTOMER; the others stay with the refund (and its note)."
)
class RefundReason(Enum):
    REQUESTED_BY_CUSTOMER = strawberry.enum_value(
        "requested_by_customer", description="The buyer asked for their money back."
    )
    EVENT_CANCELED = strawberry.enum_value(
        "event_canceled", description="The event will not take place."
    )
    EVENT_CHANGED = strawberry.enum_value(
        "event_changed", description="The event moved (date, venue, line-up)."
    )
    DUPLICATE = strawberry.enum_value("duplicate", description="The buyer paid twice.")
    FRAUDULENT = strawberry.enum_value("fraudulent", description="The payment was fraudulent.")
    OTHER = strawberry.enum_value("other", description="Anything else: say what in `note`.")
    LATE_PAYMENT = strawberry.enum_value(
        "late_payment",
        description="Set by the platform, never chosen: the payment came after the seats "
        "(or the discount code's uses) were gone.",
    )
    PAYMENT_PROVIDER = strawberry.enum_value(
        "payment_provider",
        description="Set by the platform, never chosen: refunded at the payment provider.",
    )


@strawberry.type(description="An expected failure of an order, refund or check-in.")
class OrderError(UserError):
    code: OrderErrorCode = strawberry.field(
        description="What went wrong; switch on it, never on `message`."
    )
    checked_in_at: datetime | None = strawberry.field(
        default=None, description="With ALREADY_CHECKED_IN: when the ticket was admitted."
    )
    refundable_cents: int | None = strawberry.field(
        default=None,
        description="With REFUND_EXCEEDS_PAID: how much can still be refunded (minor units).",
    )


@strawberry.input(description="Who to contact about the order (receipt, changes).")
class ContactInput:
    email: str = strawberry.field(
        description="Where the receipt goes: a valid address, at most 320 characters."
    )
    name: str = strawberry.field(description="The buyer's name, 1-200 characters.")
    phone: str | None = strawberry.field(
        default=None,
        description="Optional phone number: an optional +, then 5-32 digits, spaces or ()-.",
    )

    def to_contact(self) -> db.checkout.Contact:
        return db.checkout.Contact(email=self.email, name=self.name, phone=self.phone)


@strawberry.type(description="The buyer's contact details for an order.")
class Contact:
    email: str | None = strawberry.field(description="Contact email (lower case).")
    name: str | None = strawberry.field(description="The buyer's name.")
    phone: str | None = strawberry.field(description="Phone number; null if none was given.")


@strawberry.type(description="A tier bought in an order, at the price charged.")
class OrderItem:
    tier_id: strawberry.ID = strawberry.field(description="The tier bought.")
    tier_name: str = strawberry.field(description="The tier's current name.")
    quantity: int = strawberry.field(description="How many tickets of the tier.")
    unit_price_cents: int = strawberry.field(
        description="Price charged per ticket, in the order currency's minor unit (cents)."
    )


@strawberry.type(description="A ticket: one admission to an event.")
class Ticket(Node):
    order_id: strawberry.ID = strawberry.field(description="The order that bought it.")
    tier_id: strawberry.ID = strawberry.field(description="Its tier.")
    status: TicketStatus = strawberry.field(description="Whether the ticket admits.")
    sequence_number: int = strawberry.field(description="1..n within its order and tier.")
    checked_in_at: datetime | None = strawberry.field(
        description="When its holder was admitted; null until then."
    )
    created_at: datetime = strawberry.field(description="When it was issued (the order was paid).")
    record: strawberry.Private[db.order_records.TicketRecord]

    @classmethod
    def from_record(cls, record: db.order_records.TicketRecord) -> Ticket:
        return cls(
            id=node_id(TICKET, record.id),
            order_id=node_id(ORDER, record.order_id),
            tier_id=node_id(TIER, record.tier_id),
            status=TicketStatus(record.status),
            sequence_number=record.sequence_number,
            checked_in_at=record.checked_in_at,
            created_at=record.created_at,
            record=record,
        )

    @strawberry.field(
        description="What the QR code encodes: a random token, never the ticket id. "
        "Shown to the ticket's owner only."
    )
    def qr_payload(self, info: Info) -> str | None:
        return resolvers.orders.qr_payload(info, self.record)

    @strawberry.field(
        description="The event the ticket admits to (visible to whoever sees the ticket)."
    )
    async def event(self, info: Info) -> Event | None:
        record = await resolvers.events.event_of(info, self.record.event_id)
        return Event.from_record(record) if record else None


@strawberry.type(description="One refund of an order: money back, and the tickets it voided.")
class Refund:
    amount_cents: int = strawberry.field(
        description="Money given back, in minor units; 0 when only free tickets were voided."
    )
    reason: RefundReason = strawberry.field(description="Why.")
    note: str | None = strawberry.field(
        description="Free text given with the reason; only the event's organizer and "
        "admins read it (null for the buyer)."
    )
    voided_tickets: list[strawberry.ID] = strawberry.field(
        description="The tickets this refund voided; empty for money alone."
    )
    settled: bool = strawberry.field(
        description="Whether the payment provider confirmed it (retried until it does)."
    )
    created_at: datetime = strawberry.field(description="When it was made.")

    @classmethod
    def from_record(cls, record: db.refunds.RefundRecord) -> Refund:
        assert record.created_at is not None
        return cls(
            amount_cents=record.amount_cents,
            reason=RefundReason(record.reason),
            note=record.note,
            voided_tickets=[node_id(TICKET, t) for t in record.ticket_ids],
            settled=record.settled,
            created_at=record.created_at,
        )


@strawberry.type(description="An order: the tickets of one event bought in one payment.")
class Order(Node):
    status: OrderStatus = strawberry.field(description="Where the order is.")
    total_cents: int = strawberry.field(
        description="Amount charged, in the currency's minor unit (cents): `subtotalCents` "
        "less `discountCents`; 0 for free orders."
    )
    subtotal_cents: int = strawberry.field(
        description="What the items cost before any discount, in minor units."
    )
    discount_cents: int = strawberry.field(
        description="What the discount code took off, in minor units; 0 without one."
    )
    discount_code: str | None = strawberry.field(
        description="The discount code applied at checkout; null if none."
    )
    refunded_cents: int = strawberry.field(
        description="Amount refunded so far, in minor units; at most `totalCents`."
    )
    currency: str = strawberry.field(description="ISO 4217 code, lower case (usd, eur).")
    created_at: datetime = strawberry.field(description="When checkout created the order.")
    paid_at: datetime | None = strawberry.field(
        description="When the payment succeeded; null while unpaid."
    )
    failure_reason: str | None = strawberry.field(
        description="Why the order failed or was canceled, for people; null otherwise."
    )
    refund_reason: str | None = strawberry.field(
        description="The reason of the latest refund, as a `RefundReason` value in lower "
        "case (older orders: free text); null if never refunded. See `refunds`."
    )
    record: strawberry.Private[db.order_records.OrderRecord]

    @classmethod
    def from_record(cls, record: db.order_records.OrderRecord) -> Order:
        return cls(
            id=node_id(ORDER, record.id),
            status=OrderStatus(record.status),
            total_cents=record.total_cents,
            subtotal_cents=record.subtotal_cents,
            discount_cents=record.discount_cents,
            discount_code=record.discount_code,
            refunded_cents=record.refunded_cents,
            currency=record.currency,
            created_at=record.created_at,
            paid_at=record.paid_at,
            failure_reason=record.failure_reason,
            refund_reason=record.refund_reason,
            record=record,
        )

    @strawberry.field(description="The event the order is for.")
    def event_id(self) -> strawberry.ID:
        return node_id(EVENT, self.record.event_id)

    @strawberry.field(description="The event the order is for.")
    async def event(self, info: Info) -> Event | None:
        record = await resolvers.events.event_of(info, self.record.event_id)
        return Event.from_record(record) if record else None

    @strawberry.field(
        description="The buyer's contact details, for the buyer, the event's organizer "
        "and admins. Null once anonymized (long after the event)."
    )
    def contact(self) -> Contact | None:
        if self.record.anonymized_at is not None:
            return None
        return Contact(
            email=self.record.contact_email,
            name=self.record.contact_name,
            phone=self.record.contact_phone,
        )

    @strawberry.field(description="What was bought: one line per tier.")
    async def items(self, info: Info) -> list[OrderItem]:
        records = await resolvers.orders.order_items(info, self.record.id)
        return [
            OrderItem(
                tier_id=node_id(TIER, r.tier_id),
                tier_name=r.tier_name,
                quantity=r.quantity,
                unit_price_cents=r.unit_price_cents,
            )
            for r in records
        ]

    @strawberry.field(
        description="The order's tickets, once paid (refunded and void ones included); "
        "empty before."
    )
    async def tickets(self, info: Info) -> list[Ticket]:
        records = await resolvers.orders.order_tickets(info, self.record.id)
        return [Ticket.from_record(r) for r in records]

    @strawberry.field(description="The order's refunds, oldest first; empty if none.")
    async def refunds(self, info: Info) -> list[Refund]:
        records = await resolvers.orders.order_refunds(info, self.record)
        return [Refund.from_record(r) for r in records]


@strawberry.type(description="An order in a page of orders, with its position.")
class OrderEdge:
    cursor: str = strawberry.field(
        description="Opaque position of this order; pass it as `after` to continue."
    )
    node: Order = strawberry.field(description="The order.")


@strawberry.type(description="A page of orders, newest first (Relay connection).")
class OrderConnection:
    edges: list[OrderEdge] = strawberry.field(
        description="The orders of this page, newest first; empty past the last page."
    )
    page_info: PageInfo = strawberry.field(
        description="Whether more pages follow (`hasPreviousPage` is always false), and "
        "`endCursor` to fetch the next one."
    )

    @classmethod
    def from_page(
        cls, page: db.order_queries.Page[db.order_records.OrderRecord]
    ) -> OrderConnection:
        edges = [
            OrderEdge(cursor=db.pages.encode_cursor(o.created_at, o.id), node=Order.from_record(o))
            for o in page.items
        ]
        return cls(edges=edges, page_info=_page_info(page, edges))


@strawberry.type(description="A ticket in a page of tickets, with its position.")
class TicketEdge:
    cursor: str = strawberry.field(
        description="Opaque position of this ticket; pass it as `after` to continue."
    )
    node: Ticket = strawberry.field(description="The ticket.")


@strawberry.type(description="A page of tickets, newest first (Relay connection).")
class TicketConnection:
    edges: list[TicketEdge] = strawberry.field(
        description="The tickets of this page, newest first; empty past the last page."
    )
    page_info: PageInfo = strawberry.field(
        description="Whether more pages follow (`hasPreviousPage` is always false), and "
        "`endCursor` to fetch the next one."
    )

    @classmethod
    def from_page(
        cls, page: db.order_queries.Page[db.order_records.TicketRecord]
    ) -> TicketConnection:
        edges = [
            TicketEdge(
                cursor=db.pages.encode_cursor(t.created_at, t.id),
                node=Ticket.from_record(t),
            )
            for t in page.items
        ]
        return cls(edges=edges, page_info=_page_info(page, edges))


def _page_info(page: db.order_queries.Page[Any], edges: list[Any]) -> PageInfo:
    return PageInfo(
        has_next_page=page.has_next_page,
        has_previous_page=False,
        start_cursor=edges[0].cursor if edges else None,
        end_cursor=page.end_cursor,
    )


@strawberry.type(description="A pending order and what the client needs to pay it.")
class CheckoutPayload:
    order: Order = strawberry.field(
        description="The order: PENDING until paid, or already PAID for a free order or "
        "a repeat after payment."
    )
    client_secret: str | None = strawberry.field(
        description="Confirm the payment with this (Stripe.js); null for free orders."
    )
    payment_intent_id: str | None = strawberry.field(
        description="The Stripe PaymentIntent id; null for free orders."
    )

    @classmethod
    def from_result(cls, result: CheckoutRecord) -> CheckoutPayload:
        order = result.checkout.order
        return cls(
            order=Order.from_record(order),
            client_secret=result.client_secret,
            payment_intent_id=order.stripe_payment_intent_id,
        )


@strawberry.type(
    description="The order after a refund; a repeat of a whole-order refund that found "
    "nothing left has `refund` null, a retry under the same `idempotencyKey` returns the "
    "first answer with `replayed` true."
)
class RefundPayload:
    order: Order = strawberry.field(
        description="The order after the refund (status, `refundedCents`, `refunds`)."
    )
    refunded_tickets: list[strawberry.ID] = strawberry.field(
        description="The tickets this refund voided; empty for money alone or a no-op."
    )
    refund: Refund | None = strawberry.field(
        description="The refund made (or found again by its idempotency key); null when "
        "there was nothing left to refund."
    )
    replayed: bool = strawberry.field(
        description="True when the idempotency key named a refund made before: nothing "
        "new was refunded."
    )

    @classmethod
    def from_outcome(cls, outcome: db.refunds.RefundOutcome) -> RefundPayload:
        return cls(
            order=Order.from_record(outcome.order),
            refunded_tickets=[node_id(TICKET, t) for t in outcome.refunded_ticket_ids],
            refund=Refund.from_record(outcome.refund) if outcome.refund else None,
            replayed=outcome.replayed,
        )


@strawberry.type(
    description="What `refundOrder` would do now with the same order and amount or "
    "tickets, decided by the same rule; nothing is written."
)
class RefundPreview:
    amount_cents: int = strawberry.field(
        description="Money that would be given back (0 when refused)."
    )
    voided_tickets: list[strawberry.ID] = strawberry.field(
        description="Tickets that would be voided (their seats go back on sale)."
    )
    refundable_cents: int = strawberry.field(
        description="What can be refunded now: paid less already refunded."
    )
    remaining_cents: int = strawberry.field(
        description="What could still be refunded after this refund."
    )
    order_status: OrderStatus | None = strawberry.field(
        description="The order's status after this refund; null when refused."
    )
    refusal: OrderError | None = strawberry.field(
        description="Why `refundOrder` would refuse it (its code), or null if it would go through."
    )


@strawberry.type(description="The holder was admitted now.")
class CheckInPayload:
    ticket: Ticket = strawberry.field(description="The admitted ticket, now checked in.")
    scan_count: int = strawberry.field(
        description="How many times this QR code has been scanned, this scan included."
    )

    @classmethod
    def from_scan(cls, scan: db.checkin.CheckIn) -> CheckInPayload:
        return cls(ticket=Ticket.from_record(scan.ticket), scan_count=scan.scan_count)


CheckoutResult = Annotated[
    CheckoutPayload | OrderError,
    strawberry.union(
        "CheckoutResult", description="The order to pay, or why checkout did not happen."
    ),
]
RefundResult = Annotated[
    RefundPayload | OrderError,
    strawberry.union("RefundResult", description="The refunded order, or why not."),
]
RefundPreviewResult = Annotated[
    RefundPreview | OrderError,
    strawberry.union(
        "RefundPreviewResult",
        description="What a refund would do, or why the order cannot be previewed "
        "(not found, not yours, bad input).",
    ),
]
CheckInResult = Annotated[
    CheckInPayload | OrderError,
    strawberry.union(
        "CheckInResult",
        description="Admitted, or refused with a code (ALREADY_CHECKED_IN, "
        "TICKET_REFUNDED, TICKET_VOID, TOKEN_NOT_FOUND, ...).",
    ),
]
OrdersResult = Annotated[
    OrderConnection | OrderError,
    strawberry.union("EventOrdersResult", description="A page of the event's orders, or why not."),
]
