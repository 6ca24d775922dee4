"""Root fields for orders, tickets, refunds and check-in."""

from __future__ import annotations

import strawberry

import resolvers.orders
from resolvers.context import Info
from schema.orders import (
    CheckInPayload,
    CheckInResult,
    CheckoutPayload,
    CheckoutResult,
    ContactInput,
    Order,
    OrderConnection,
    OrdersResult,
    OrderStatus,
    RefundPayload,
    RefundResult,
    TicketConnection,
)


@strawberry.type
class OrdersQuery:
    @strawberry.field(description="The viewer's orders, newest first.")
    async def my_orders(
        self, info: Info, first: int = 20, after: str | None = None
    ) -> OrderConnection:
        return OrderConnection.from_page(await resolvers.orders.my_orders(info, first, after))

    @strawberry.field(description="The viewer's tickets, newest first, each with its QR payload.")
    async def my_tickets(
        self, info: Info, first: int = 20, after: str | None = None
    ) -> TicketConnection:
        return TicketConnection.from_page(await resolvers.orders.my_tickets(info, first, after))

    @strawberry.field(description="An order, for its buyer, its event's organizer or an admin.")
    async def order(self, info: Info, id: strawberry.ID) -> Order | None:
        record = await resolvers.orders.order(info, id)
        return Order.from_record(record) if record else None

    @strawberry.field(description="An event's orders (its organizer or an admin), newest first.")
    async def event_orders(
        self,
        info: Info,
        event_id: strawberry.ID,
        first: int = 20,
        after: str | None = None,
        status: OrderStatus | None = None,
    ) -> OrdersResult:
        page = await resolvers.orders.event_orders(
            info, event_id, first, after, status.value if status else None
        )
        return OrderConnection.from_page(page)


@strawberry.type
class OrdersMutation:
    @strawberry.mutation(
        description="Turn the viewer's holds (one event) into an order and a payment intent. "
        "Repeating it with the same holds, even concurrently, returns the same order and "
        "client secret; while that order is pending, a repeat with other contact details "
        "replaces the order's contact (the payment receipt still goes to the first email), "
        "and once it is paid a repeat returns it unchanged."
    )
    async def checkout(
        self, info: Info, hold_ids: list[strawberry.ID], contact: ContactInput
    ) -> CheckoutResult:
        result = await resolvers.orders.checkout(info, hold_ids, contact.to_contact())
        return CheckoutPayload.from_result(result)

    @strawberry.mutation(
        description="Refund an order, or some of its tickets (organizer or admin). "
        "Repeating a refund changes nothing."
    )
    async def refund_order(
        self,
        info: Info,
        order_id: strawberry.ID,
        ticket_ids: list[strawberry.ID] | None = None,
        reason: str = "",
    ) -> RefundResult:
        outcome = await resolvers.orders.refund_order(info, order_id, ticket_ids, reason)
        return RefundPayload.from_outcome(outcome)

    @strawberry.mutation(
        description="Scan a ticket's QR payload at the door (the event's organizer or admin)."
    )
    async def check_in(self, info: Info, token: str) -> CheckInResult:
        return CheckInPayload.from_scan(await resolvers.orders.check_in(info, token))
