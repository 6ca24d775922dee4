"""Root fields for orders, tickets, refunds, check-in and operations health."""

from __future__ import annotations

import strawberry

from resolvers import orders
from schema.orders import (
    CheckInResult,
    CheckoutResult,
    EventHealth,
    EventReadiness,
    Order,
    OrderConnection,
    OrdersResult,
    ReconciliationReport,
    RefundResult,
    TicketConnection,
)


@strawberry.type
class OrdersQuery:
    my_orders: OrderConnection = strawberry.field(
        resolver=orders.my_orders, description="The viewer's orders, newest first."
    )
    my_tickets: TicketConnection = strawberry.field(
        resolver=orders.my_tickets,
        description="The viewer's tickets, newest first, each with its QR payload.",
    )
    order: Order | None = strawberry.field(
        resolver=orders.order,
        description="An order, for its buyer, its event's organizer or an admin.",
    )
    event_orders: OrdersResult = strawberry.field(
        resolver=orders.event_orders,
        description="An event's orders (its organizer or an admin), newest first.",
    )
    event_health: list[EventHealth] = strawberry.field(
        resolver=orders.event_health, description="Sales health per event (admins)."
    )
    event_readiness: list[EventReadiness] = strawberry.field(
        resolver=orders.event_readiness, description="Readiness of upcoming events (admins)."
    )
    reconciliation_reports: list[ReconciliationReport] = strawberry.field(
        resolver=orders.reconciliation_reports,
        description="Recent reconciliation runs and what they repaired (admins).",
    )


@strawberry.type
class OrdersMutation:
    checkout: CheckoutResult = strawberry.mutation(
        resolver=orders.checkout,
        description="Turn the viewer's holds (one event) into an order and a payment intent. "
        "Repeating it with the same holds, even concurrently, returns the same order and "
        "client secret; while that order is pending, a repeat with other contact details "
        "replaces the order's contact (the payment receipt still goes to the first email), "
        "and once it is paid a repeat returns it unchanged.",
    )
    refund_order: RefundResult = strawberry.mutation(
        resolver=orders.refund_order,
        description="Refund an order, or some of its tickets (organizer or admin). "
        "Repeating a refund changes nothing.",
    )
    check_in: CheckInResult = strawberry.mutation(
        resolver=orders.check_in,
        description="Scan a ticket's QR payload at the door (the event's organizer or admin).",
    )
