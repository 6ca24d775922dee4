"""Root fields for orders, tickets, refunds and check-in."""

from __future__ import annotations

from typing import Annotated

import strawberry

import db.refund_rules
import resolvers.orders
from resolvers.context import Info
from resolvers.ids import TICKET
from schema.error_map import typed_error
from schema.inputs import enum_value_of
from schema.node import node_id
from schema.orders import (
    CheckInPayload,
    CheckInResult,
    CheckoutPayload,
    CheckoutResult,
    ContactInput,
    Order,
    OrderConnection,
    OrderError,
    OrdersResult,
    OrderStatus,
    RefundPayload,
    RefundPreview,
    RefundPreviewResult,
    RefundReason,
    RefundResult,
    TicketConnection,
)

First = Annotated[
    int,
    strawberry.argument(description="Page size, 1-100; outside that range the request is refused."),
]
After = Annotated[
    str | None,
    strawberry.argument(
        description="The `endCursor` of the previous page; null for the first page."
    ),
]
RefundOrderId = Annotated[
    strawberry.ID,
    strawberry.argument(description="The order to refund (paid or partially refunded)."),
]
AmountCents = Annotated[
    int | None,
    strawberry.argument(
        description="Give back this much money (minor units, at most what is still "
        "refundable), voiding no ticket. Not with `ticketIds`."
    ),
]
RefundTicketIds = Annotated[
    list[strawberry.ID] | None,
    strawberry.argument(
        description="Void these tickets of the order (not checked in) and give back their "
        "share of what was paid. Not with `amountCents`; with neither, the whole order."
    ),
]


def _preview(plan: db.refund_rules.RefundPlan) -> RefundPreview:
    refusal = plan.refusal
    return RefundPreview(
        amount_cents=0 if refusal else plan.amount_cents,
        voided_tickets=[] if refusal else [node_id(TICKET, t) for t in plan.ticket_ids],
        refundable_cents=plan.refundable_cents,
        remaining_cents=plan.remaining_cents,
        order_status=OrderStatus(plan.order_status) if plan.order_status else None,
        refusal=typed_error(OrderError, refusal) if refusal else None,  # type: ignore[arg-type]
    )


@strawberry.type
class OrdersQuery:
    @strawberry.field(description="The viewer's orders, newest first (signed-in users).")
    async def my_orders(
        self, info: Info, first: First = 20, after: After = None
    ) -> OrderConnection:
        return OrderConnection.from_page(await resolvers.orders.my_orders(info, first, after))

    @strawberry.field(
        description="The viewer's tickets, newest first, each with its QR payload "
        "(signed-in users)."
    )
    async def my_tickets(
        self, info: Info, first: First = 20, after: After = None
    ) -> TicketConnection:
        return TicketConnection.from_page(await resolvers.orders.my_tickets(info, first, after))

    @strawberry.field(
        description="An order, for its buyer, its event's organizer or an admin; null if "
        "unknown or not yours to see."
    )
    async def order(
        self,
        info: Info,
        id: Annotated[strawberry.ID, strawberry.argument(description="The order's id.")],
    ) -> Order | None:
        record = await resolvers.orders.order(info, id)
        return Order.from_record(record) if record else None

    @strawberry.field(description="An event's orders (its organizer or an admin), newest first.")
    async def event_orders(
        self,
        info: Info,
        event_id: Annotated[strawberry.ID, strawberry.argument(description="The event's id.")],
        first: First = 20,
        after: After = None,
        status: Annotated[
            OrderStatus | None,
            strawberry.argument(description="Only orders in this status; null: all."),
        ] = None,
    ) -> OrdersResult:
        page = await resolvers.orders.event_orders(
            info, event_id, first, after, enum_value_of(status) if status else None
        )
        return OrderConnection.from_page(page)

    @strawberry.field(
        description="What `refundOrder` would do with this amount or these tickets (the "
        "event's organizer or an admin): the same rule decides, nothing is written."
    )
    async def refund_preview(
        self,
        info: Info,
        order_id: RefundOrderId,
        amount_cents: AmountCents = None,
        ticket_ids: RefundTicketIds = None,
    ) -> RefundPreviewResult:
        plan = await resolvers.orders.refund_preview(
            info, order_id, amount_cents=amount_cents, ticket_ids=ticket_ids
        )
        return _preview(plan)


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
        self,
        info: Info,
        hold_ids: Annotated[
            list[strawberry.ID],
            strawberry.argument(description="The viewer's active holds, all of one event."),
        ],
        contact: Annotated[
            ContactInput, strawberry.argument(description="Who to contact about the order.")
        ],
        code: Annotated[
            str | None,
            strawberry.argument(
                description="A discount or comp code of the event, in any case; the server "
                "prices the order with it and shows it on the order. A total of zero is "
                "completed at once, without payment."
            ),
        ] = None,
    ) -> CheckoutResult:
        result = await resolvers.orders.checkout(info, hold_ids, contact.to_contact(), code)
        return CheckoutPayload.from_result(result)

    @strawberry.mutation(
        description="Refund an order (the event's organizer or an admin): money alone "
        "(`amountCents`), some tickets (`ticketIds`: voided, their seats back on sale, "
        "their share of what was paid given back) or, with neither, everything left. "
        "Never more than was paid. Retrying with the same `idempotencyKey` returns the "
        "first answer and refunds nothing twice; repeating a whole-order refund changes "
        "nothing. `refundPreview` shows what it would do."
    )
    async def refund_order(
        self,
        info: Info,
        order_id: RefundOrderId,
        reason: Annotated[
            RefundReason,
            strawberry.argument(
                description="Why: one of the reasons a person chooses (not LATE_PAYMENT or "
                "PAYMENT_PROVIDER)."
            ),
        ],
        amount_cents: AmountCents = None,
        ticket_ids: RefundTicketIds = None,
        note: Annotated[
            str | None,
            strawberry.argument(
                description="Free text, at most 500 characters; required with OTHER."
            ),
        ] = None,
        idempotency_key: Annotated[
            str | None,
            strawberry.argument(
                description="Your key for this refund (1-200 characters; required with "
                "`amountCents`): a retry with it returns the first refund."
            ),
        ] = None,
    ) -> RefundResult:
        outcome = await resolvers.orders.refund_order(
            info,
            order_id,
            amount_cents=amount_cents,
            ticket_ids=ticket_ids,
            reason=db.refund_rules.RefundReason(enum_value_of(reason)),
            note=note,
            idempotency_key=idempotency_key,
        )
        return RefundPayload.from_outcome(outcome)

    @strawberry.mutation(
        description="Scan a ticket's QR payload at the door (the event's organizer or admin)."
    )
    async def check_in(
        self,
        info: Info,
        token: Annotated[
            str, strawberry.argument(description="The scanned QR payload (`Ticket.qrPayload`).")
        ],
    ) -> CheckInResult:
        return CheckInPayload.from_scan(await resolvers.orders.check_in(info, token))
