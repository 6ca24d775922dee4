"""Orders, tickets, refunds, check-in and operations health as the API shows them.

Every mutation returns a union of its payload and `OrderError`; clients switch on
`OrderError.code`. A ticket's `qrPayload` (the random token the door scans) is shown to
its owner only; an order's contact details to its buyer, the event's organizer and
admins, until the order is anonymized.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import Enum
from typing import TYPE_CHECKING, Annotated, Any

import strawberry
from strawberry.relay import PageInfo
from strawberry.scalars import JSON

import db.events
import db.order_queries
import db.order_records
import db.pages
from db.errors import DomainError
from liventix.context import Info
from schema.errors import UserError, domain_code, graphql_field

if TYPE_CHECKING:
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

    @classmethod
    def from_domain(cls, error: DomainError) -> OrderError:
        return cls(
            code=domain_code(OrderErrorCode, error),
            message=error.message,
            field=graphql_field(error.field),
        )

    @classmethod
    def of(cls, code: OrderErrorCode, message: str, field: str | None = None) -> OrderError:
        return cls(code=code, message=message, field=field)


@strawberry.input(description="Who to contact about the order (receipt, changes).")
class ContactInput:
    email: str
    name: str
    phone: str | None = None


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


async def _event(info: Info, event_id: uuid.UUID) -> Event | None:
    from schema.events import Event

    record: db.events.EventRecord | None = await info.context.loaders.get(
        db.events.get_events
    ).load(event_id)
    return Event.from_record(record) if record else None


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
        if info.context.viewer.user_id != self.record.owner_user_id:
            return None
        return self.record.token

    @strawberry.field
    async def event(self, info: Info) -> Annotated[Event, strawberry.lazy("schema.events")] | None:
        return await _event(info, self.record.event_id)


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
    async def event(self, info: Info) -> Annotated[Event, strawberry.lazy("schema.events")] | None:
        return await _event(info, self.record.event_id)

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
        records: list[db.order_records.OrderItemRecord] = await info.context.loaders.get(
            db.order_queries.get_order_items
        ).load(self.record.id)
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
        records: list[db.order_records.TicketRecord] = await info.context.loaders.get(
            db.order_queries.get_order_tickets
        ).load(self.record.id)
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


@strawberry.type(description="The order after a refund; `refundedTickets` empty on a repeat.")
class RefundPayload:
    order: Order
    refunded_tickets: list[strawberry.ID]


@strawberry.type(description="The holder was admitted now.")
class CheckInPayload:
    ticket: Ticket
    scan_count: int


CheckoutResult = Annotated[CheckoutPayload | OrderError, strawberry.union("CheckoutResult")]
RefundResult = Annotated[RefundPayload | OrderError, strawberry.union("RefundResult")]
CheckInResult = Annotated[CheckInPayload | OrderError, strawberry.union("CheckInResult")]
OrdersResult = Annotated[OrderConnection | OrderError, strawberry.union("EventOrdersResult")]


@strawberry.type(description="Operations view of one event's sales (admins).")
class EventHealth:
    event_id: strawberry.ID
    title: str
    start_at: datetime
    capacity: int
    sold: int
    reserved: int
    available: int
    ghost_reservations: int
    paid_orders_without_tickets: int
    health_score: int

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> EventHealth:
        fields = {k: row[k] for k in cls.__annotations__ if k != "event_id"}
        return cls(event_id=strawberry.ID(str(row["event_id"])), **fields)


@strawberry.type(description="Whether an upcoming event is ready to sell and admit (admins).")
class EventReadiness:
    event_id: strawberry.ID
    title: str
    start_at: datetime
    no_negative_availability: bool
    no_ghost_reservations: bool
    no_paid_orders_without_tickets: bool
    has_tiers: bool
    overall_status: str

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> EventReadiness:
        fields = {k: row[k] for k in cls.__annotations__ if k != "event_id"}
        return cls(event_id=strawberry.ID(str(row["event_id"])), **fields)


@strawberry.type(description="One run of the reconciliation job and what it repaired.")
class ReconciliationReport:
    id: strawberry.ID
    status: str
    started_at: datetime
    finished_at: datetime | None
    items: int
    error: str | None
    report: JSON

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> ReconciliationReport:
        return cls(
            id=strawberry.ID(str(row["id"])),
            status=row["status"],
            started_at=row["started_at"],
            finished_at=row["finished_at"],
            items=row["items"],
            error=row["error"],
            report=row["report"],
        )
