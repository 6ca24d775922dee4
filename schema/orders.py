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
from schema.errors import UserError
from schema.events import Event


@strawberry.enum(description="Where an order is; statuses only move forward.")
class OrderStatus(Enum):
    PENDING = "pending"
    PAID = "paid"
    FAILED = "failed"
    EXPIRED = "expired"
    CANCELED = "canceled"
    REFUNDED = "refunded"
    PARTIALLY_REFUNDED = "partially_refunded"


@strawberry.enum(description="ISSUED tickets admit; REFUNDED and VOID ones never do.")
class TicketStatus(Enum):
    ISSUED = "issued"
    REFUNDED = "refunded"
    VOID = "void"


@strawberry.enum(description="Why an order, refund or check-in did not happen.")
class OrderErrorCode(Enum):
    HOLD_NOT_FOUND = "HOLD_NOT_FOUND"
    HOLD_EXPIRED = "HOLD_EXPIRED"
    MIXED_EVENTS = "MIXED_EVENTS"
    MIXED_CURRENCIES = "MIXED_CURRENCIES"
    CONTACT_INVALID = "CONTACT_INVALID"
    PAYMENT_PROVIDER_ERROR = "PAYMENT_PROVIDER_ERROR"
    CONFLICT = "CONFLICT"
    ORDER_NOT_FOUND = "ORDER_NOT_FOUND"
    NOT_REFUNDABLE = "NOT_REFUNDABLE"
    TICKET_NOT_FOUND = "TICKET_NOT_FOUND"
    TOKEN_NOT_FOUND = "TOKEN_NOT_FOUND"
    ALREADY_CHECKED_IN = "ALREADY_CHECKED_IN"
    TICKET_REFUNDED = "TICKET_REFUNDED"
    TICKET_VOID = "TICKET_VOID"
    EVENT_NOT_FOUND = "EVENT_NOT_FOUND"
    INVALID_CURSOR = "INVALID_CURSOR"
    NOT_ALLOWED = "NOT_ALLOWED"
    UNAUTHENTICATED = "UNAUTHENTICATED"
    INVALID_INPUT = "INVALID_INPUT"


@strawberry.type(description="An expected failure of an order, refund or check-in.")
class OrderError(UserError):
    code: OrderErrorCode
    checked_in_at: datetime | None = strawberry.field(
        default=None, description="With ALREADY_CHECKED_IN: when the ticket was admitted."
    )


@strawberry.input(description="Who to contact about the order (receipt, changes).")
class ContactInput:
    email: str
    name: str
    phone: str | None = None

    def to_contact(self) -> db.checkout.Contact:
        return db.checkout.Contact(email=self.email, name=self.name, phone=self.phone)


@strawberry.type(description="The buyer's contact details for an order.")
class Contact:
    email: str | None
    name: str | None
    phone: str | None


@strawberry.type(description="A tier bought in an order, at the price charged.")
class OrderItem:
    tier_id: strawberry.ID
    tier_name: str
    quantity: int
    unit_price_cents: int


@strawberry.type(description="A ticket: one admission to an event.")
class Ticket:
    id: strawberry.ID
    order_id: strawberry.ID
    tier_id: strawberry.ID
    status: TicketStatus
    sequence_number: int = strawberry.field(description="1..n within its order and tier.")
    checked_in_at: datetime | None
    created_at: datetime
    record: strawberry.Private[db.order_records.TicketRecord]

    @classmethod
    def from_record(cls, record: db.order_records.TicketRecord) -> Ticket:
        return cls(
            id=strawberry.ID(str(record.id)),
            order_id=strawberry.ID(str(record.order_id)),
            tier_id=strawberry.ID(str(record.tier_id)),
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

    @strawberry.field
    async def event(self, info: Info) -> Event | None:
        record = await resolvers.events.event_of(info, self.record.event_id)
        return Event.from_record(record) if record else None


@strawberry.type(description="An order: the tickets of one event bought in one payment.")
class Order:
    id: strawberry.ID
    status: OrderStatus
    total_cents: int
    refunded_cents: int
    currency: str
    created_at: datetime
    paid_at: datetime | None
    failure_reason: str | None
    refund_reason: str | None
    record: strawberry.Private[db.order_records.OrderRecord]

    @classmethod
    def from_record(cls, record: db.order_records.OrderRecord) -> Order:
        return cls(
            id=strawberry.ID(str(record.id)),
            status=OrderStatus(record.status),
            total_cents=record.total_cents,
            refunded_cents=record.refunded_cents,
            currency=record.currency,
            created_at=record.created_at,
            paid_at=record.paid_at,
            failure_reason=record.failure_reason,
            refund_reason=record.refund_reason,
            record=record,
        )

    @strawberry.field
    def event_id(self) -> strawberry.ID:
        return strawberry.ID(str(self.record.event_id))

    @strawberry.field
    async def event(self, info: Info) -> Event | None:
        record = await resolvers.events.event_of(info, self.record.event_id)
        return Event.from_record(record) if record else None

    @strawberry.field(description="Null once anonymized (long after the event).")
    def contact(self) -> Contact | None:
        if self.record.anonymized_at is not None:
            return None
        return Contact(
            email=self.record.contact_email,
            name=self.record.contact_name,
            phone=self.record.contact_phone,
        )

    @strawberry.field
    async def items(self, info: Info) -> list[OrderItem]:
        records = await resolvers.orders.order_items(info, self.record.id)
        return [
            OrderItem(
                tier_id=strawberry.ID(str(r.tier_id)),
                tier_name=r.tier_name,
                quantity=r.quantity,
                unit_price_cents=r.unit_price_cents,
            )
            for r in records
        ]

    @strawberry.field
    async def tickets(self, info: Info) -> list[Ticket]:
        records = await resolvers.orders.order_tickets(info, self.record.id)
        return [Ticket.from_record(r) for r in records]


@strawberry.type
class OrderEdge:
    cursor: str
    node: Order


@strawberry.type(description="A page of orders, newest first (Relay connection).")
class OrderConnection:
    edges: list[OrderEdge]
    page_info: PageInfo

    @classmethod
    def from_page(
        cls, page: db.order_queries.Page[db.order_records.OrderRecord]
    ) -> OrderConnection:
        edges = [
            OrderEdge(cursor=db.pages.encode_cursor(o.created_at, o.id), node=Order.from_record(o))
            for o in page.items
        ]
        return cls(edges=edges, page_info=_page_info(page, edges))


@strawberry.type
class TicketEdge:
    cursor: str
    node: Ticket


@strawberry.type(description="A page of tickets, newest first (Relay connection).")
class TicketConnection:
    edges: list[TicketEdge]
    page_info: PageInfo

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
    order: Order
    client_secret: str | None = strawberry.field(
        description="Confirm the payment with this (Stripe.js); null for free orders."
    )
    payment_intent_id: str | None

    @classmethod
    def from_result(cls, result: CheckoutRecord) -> CheckoutPayload:
        order = result.checkout.order
        return cls(
            order=Order.from_record(order),
            client_secret=result.client_secret,
            payment_intent_id=order.stripe_payment_intent_id,
        )


@strawberry.type(description="The order after a refund; `refundedTickets` empty on a repeat.")
class RefundPayload:
    order: Order
    refunded_tickets: list[strawberry.ID]

    @classmethod
    def from_outcome(cls, outcome: db.refunds.RefundOutcome) -> RefundPayload:
        return cls(
            order=Order.from_record(outcome.order),
            refunded_tickets=[strawberry.ID(str(t)) for t in outcome.refunded_ticket_ids],
        )


@strawberry.type(description="The holder was admitted now.")
class CheckInPayload:
    ticket: Ticket
    scan_count: int

    @classmethod
    def from_scan(cls, scan: db.checkin.CheckIn) -> CheckInPayload:
        return cls(ticket=Ticket.from_record(scan.ticket), scan_count=scan.scan_count)


CheckoutResult = Annotated[CheckoutPayload | OrderError, strawberry.union("CheckoutResult")]
RefundResult = Annotated[RefundPayload | OrderError, strawberry.union("RefundResult")]
CheckInResult = Annotated[CheckInPayload | OrderError, strawberry.union("CheckInResult")]
OrdersResult = Annotated[OrderConnection | OrderError, strawberry.union("EventOrdersResult")]
