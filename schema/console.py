"""The producer console as the API shows it: registrations, sales summaries, export links.

Amounts are integers in the minor unit of their currency (cents), one figure per
currency: amounts in different currencies are never added together. Failures come
back as `OrderError` (EVENT_NOT_FOUND for an event the viewer does not manage,
NOT_ALLOWED for a viewer who is no organizer, INVALID_CURSOR, INVALID_INPUT).
"""

from __future__ import annotations

from datetime import date, datetime
from enum import Enum
from typing import Annotated

import strawberry
from strawberry.relay import PageInfo

import db.console
import db.order_queries
import db.pages
import db.settlement
from liventix.export_links import SignedLink
from resolvers.console_counter import CountsUpdate
from resolvers.ids import EVENT, ORDER, TIER
from schema.node import node_id
from schema.orders import Order, OrderError, OrderStatus


@strawberry.input(description="Narrows an event's registrations; null fields do not narrow.")
class RegistrationFilter:
    status: OrderStatus | None = strawberry.field(
        default=None,
        description="Only orders in this status; null: the paid ones (PAID, "
        "PARTIALLY_REFUNDED, REFUNDED).",
    )
    tier_id: strawberry.ID | None = strawberry.field(
        default=None, description="Only orders with tickets of this tier."
    )
    checked_in: bool | None = strawberry.field(
        default=None,
        description="True: orders with a ticket admitted at the door; false: none admitted.",
    )
    search: str | None = strawberry.field(
        default=None,
        description="Part of the buyer's name or email, in any case (at most 200 "
        "characters); the contact of anonymized orders is gone, their profile name stays.",
    )


@strawberry.type(description="An order of the event as its organizer sees it in the console.")
class Registration:
    order: Order = strawberry.field(
        description="The order: status, amounts, contact, items and tickets (each with "
        "its check-in time)."
    )
    buyer_name: str = strawberry.field(
        description="The buyer's profile name (may be empty; kept after anonymization)."
    )
    ticket_count: int = strawberry.field(description="How many tickets the order holds.")
    checked_in_count: int = strawberry.field(description="How many of them were admitted.")

    @classmethod
    def from_record(cls, record: db.console.RegistrationRecord) -> Registration:
        return cls(
            order=Order.from_record(record.order),
            buyer_name=record.buyer_name,
            ticket_count=record.ticket_count,
            checked_in_count=record.checked_in_count,
        )


@strawberry.type(description="A registration in a page, with its position.")
class RegistrationEdge:
    cursor: str = strawberry.field(
        description="Opaque position of this registration; pass it as `after` to continue."
    )
    node: Registration = strawberry.field(description="The registration.")


@strawberry.type(description="A page of an event's registrations, newest first (Relay).")
class RegistrationConnection:
    edges: list[RegistrationEdge] = strawberry.field(
        description="The registrations of this page; empty past the last page."
    )
    page_info: PageInfo = strawberry.field(
        description="Whether more pages follow (`hasPreviousPage` is always false), and "
        "`endCursor` to fetch the next one."
    )

    @classmethod
    def from_page(
        cls, page: db.order_queries.Page[db.console.RegistrationRecord]
    ) -> RegistrationConnection:
        edges = [
            RegistrationEdge(
                cursor=db.pages.encode_cursor(r.order.created_at, r.order.id),
                node=Registration.from_record(r),
            )
            for r in page.items
        ]
        info = PageInfo(
            has_next_page=page.has_next_page,
            has_previous_page=False,
            start_cursor=edges[0].cursor if edges else None,
            end_cursor=page.end_cursor,
        )
        return cls(edges=edges, page_info=info)


@strawberry.type(description="One currency's sales over a period or a day, in minor units.")
class SalesFigures:
    currency: str = strawberry.field(description="ISO 4217 code, lower case.")
    orders: int = strawberry.field(description="Orders sold (paid) in the period.")
    gross_cents: int = strawberry.field(
        description="What the sold orders' tickets cost before discounts."
    )
    discount_cents: int = strawberry.field(description="What discount codes took off them.")
    refund_cents: int = strawberry.field(
        description="Refunds written in the period, whenever their orders were sold."
    )
    net_cents: int = strawberry.field(
        description="`grossCents - discountCents - refundCents`, before fees."
    )
    fees_cents: int | None = strawberry.field(
        description="Payment fees; null: not known (the platform does not record them)."
    )

    @classmethod
    def from_record(cls, figures: db.console.SalesFigures) -> SalesFigures:
        return cls(
            currency=figures.currency,
            orders=figures.orders,
            gross_cents=figures.gross_cents,
            discount_cents=figures.discount_cents,
            refund_cents=figures.refund_cents,
            net_cents=figures.net_cents,
            fees_cents=figures.fees_cents,
        )


@strawberry.type(description="One day's sales in one currency.")
class SalesDay:
    date: date = strawberry.field(description="A calendar day in the event's time zone.")
    figures: SalesFigures = strawberry.field(description="That day's figures.")


@strawberry.type(description="A tier's tickets sold in the period.")
class TierSales:
    tier_id: strawberry.ID = strawberry.field(description="The tier.")
    tier_name: str = strawberry.field(description="The tier's current name.")
    currency: str = strawberry.field(description="The currency it was sold in.")
    tickets: int = strawberry.field(description="Tickets sold in the period.")
    gross_cents: int = strawberry.field(description="Their price before discounts.")
    refunded_tickets: int = strawberry.field(
        description="How many of those tickets have been refunded since."
    )


@strawberry.type(description="An event's sales over a period: per currency, tier and day.")
class SalesSummary:
    event_id: strawberry.ID = strawberry.field(description="The event.")
    time_zone: str = strawberry.field(description="The event's time zone: days are its days.")
    from_: datetime | None = strawberry.field(
        name="from", description="Start of the period (inclusive); null: unbounded."
    )
    to: datetime | None = strawberry.field(
        description="End of the period (exclusive); null: unbounded."
    )
    totals: list[SalesFigures] = strawberry.field(description="Per currency, the whole period.")
    tiers: list[TierSales] = strawberry.field(description="Per tier, in tier order.")
    days: list[SalesDay] = strawberry.field(
        description="Per day with sales or refunds and currency, oldest first."
    )

    @classmethod
    def from_record(cls, summary: db.console.SalesSummary) -> SalesSummary:
        return cls(
            event_id=node_id(EVENT, summary.event.id),
            time_zone=summary.event.time_zone,
            from_=summary.start,
            to=summary.end,
            totals=[SalesFigures.from_record(f) for f in summary.totals],
            tiers=[
                TierSales(
                    tier_id=node_id(TIER, t.tier_id),
                    tier_name=t.tier_name,
                    currency=t.currency,
                    tickets=t.tickets,
                    gross_cents=t.gross_cents,
                    refunded_tickets=t.refunded_tickets,
                )
                for t in summary.tiers
            ],
            days=[
                SalesDay(date=d.day, figures=SalesFigures.from_record(d.figures))
                for d in summary.days
            ],
        )


@strawberry.enum(description="Why live console counts were sent.")
class ConsoleCountsReason(Enum):
    SNAPSHOT = strawberry.enum_value(
        "snapshot", description="The first message: the counts when the subscription began."
    )
    CHANGE = strawberry.enum_value(
        "change",
        description="After orders were paid or refunded or tickets checked in (a burst of "
        "changes is sent as one message, at most about four a second).",
    )
    RESYNC = strawberry.enum_value(
        "resync",
        description="A fresh read after the server's listener reconnected; changes in "
        "between are included.",
    )


@strawberry.type(description="An event's running figures, live in the producer console.")
class ConsoleCounts:
    event_id: strawberry.ID = strawberry.field(description="The event.")
    reason: ConsoleCountsReason = strawberry.field(description="Why this message was sent.")
    registrations: int = strawberry.field(
        description="Orders sold (paid, partially refunded or refunded), as "
        "`eventRegistrations` lists them by default."
    )
    tickets_issued: int = strawberry.field(description="Tickets valid now (not refunded).")
    tickets_checked_in: int = strawberry.field(description="Tickets admitted at the door.")
    sales: list[SalesFigures] = strawberry.field(
        description="Per currency, all time: as `eventSalesSummary` without a period."
    )

    @classmethod
    def from_record(cls, update: CountsUpdate) -> ConsoleCounts:
        counts = update.counts
        return cls(
            event_id=node_id(EVENT, update.event_id),
            reason=ConsoleCountsReason(update.reason),
            registrations=counts.registrations,
            tickets_issued=counts.tickets_issued,
            tickets_checked_in=counts.tickets_checked_in,
            sales=[SalesFigures.from_record(f) for f in counts.sales],
        )


@strawberry.type(description="One currency's settlement, in minor units.")
class SettlementFigures:
    currency: str = strawberry.field(description="ISO 4217 code, lower case.")
    expected_cents: int = strawberry.field(
        description="What the sold orders (paid, partially refunded, refunded) should "
        "have collected: their totals."
    )
    collected_cents: int = strawberry.field(
        description="What the payment provider's recorded successful payments collected."
    )
    refunded_cents: int = strawberry.field(description="Refunds the provider confirmed.")
    unsettled_refund_cents: int = strawberry.field(
        description="Refunds recorded, still to be confirmed by the provider (pending)."
    )
    pending_cents: int = strawberry.field(
        description="Totals of orders still waiting for their payment (pending)."
    )

    @classmethod
    def from_record(cls, figures: db.settlement.SettlementFigures) -> SettlementFigures:
        return cls(
            currency=figures.currency,
            expected_cents=figures.expected_cents,
            collected_cents=figures.collected_cents,
            refunded_cents=figures.refunded_cents,
            unsettled_refund_cents=figures.unsettled_refund_cents,
            pending_cents=figures.pending_cents,
        )


@strawberry.enum(description="How an order's expected and collected money disagree.")
class SettlementDifferenceKind(Enum):
    PAID_WITHOUT_PAYMENT = strawberry.enum_value(
        "paid_without_payment",
        description="Sold with a total, but no successful payment is recorded for it.",
    )
    PAYMENT_WITHOUT_SALE = strawberry.enum_value(
        "payment_without_sale",
        description="A successful payment is recorded for an order that is not sold.",
    )
    AMOUNT_MISMATCH = strawberry.enum_value(
        "amount_mismatch", description="Sold and paid, but the amounts differ."
    )
    REFUND_NOT_SETTLED = strawberry.enum_value(
        "refund_not_settled",
        description="A refund is recorded but the provider has not confirmed it yet.",
    )


@strawberry.type(description="An order whose expected and collected money disagree.")
class SettlementDifference:
    order_id: strawberry.ID = strawberry.field(description="The order.")
    kind: SettlementDifferenceKind = strawberry.field(description="How they disagree.")
    currency: str = strawberry.field(description="The order's currency.")
    status: OrderStatus = strawberry.field(description="The order's status.")
    expected_cents: int = strawberry.field(
        description="What it should have collected (its total if sold, else 0)."
    )
    collected_cents: int = strawberry.field(description="What its recorded payment collected.")
    unsettled_refund_cents: int = strawberry.field(
        description="Its refunds still to be confirmed by the provider."
    )

    @classmethod
    def from_record(cls, d: db.settlement.SettlementDifference) -> SettlementDifference:
        return cls(
            order_id=node_id(ORDER, d.order_id),
            kind=SettlementDifferenceKind(d.kind),
            currency=d.currency,
            status=OrderStatus(d.status),
            expected_cents=d.expected_cents,
            collected_cents=d.collected_cents,
            unsettled_refund_cents=d.unsettled_refund_cents,
        )


@strawberry.type(
    description="An event's settlement: expected vs collected vs refunded vs pending, per "
    "currency, and the orders where they disagree."
)
class Settlement:
    event_id: strawberry.ID = strawberry.field(description="The event.")
    totals: list[SettlementFigures] = strawberry.field(description="Per currency.")
    differences: list[SettlementDifference] = strawberry.field(
        description="Per order and kind, oldest order first; empty when the books agree "
        "(at most 500: see `moreDifferences`)."
    )
    more_differences: bool = strawberry.field(
        description="True when more differences exist than are listed."
    )

    @classmethod
    def from_record(cls, record: db.settlement.Settlement) -> Settlement:
        return cls(
            event_id=node_id(EVENT, record.event.id),
            totals=[SettlementFigures.from_record(f) for f in record.totals],
            differences=[SettlementDifference.from_record(d) for d in record.differences],
            more_differences=record.more_differences,
        )


@strawberry.type(description="A short-lived download link for a CSV export.")
class ExportLink:
    url: str = strawberry.field(
        description="GET it (no header needed) before `expiresAt` for the CSV file; it "
        "works for the user who asked, while they manage the event."
    )
    expires_at: datetime = strawberry.field(description="When the link stops working.")

    @classmethod
    def from_link(cls, link: SignedLink) -> ExportLink:
        return cls(url=link.url, expires_at=link.expires_at)


RegistrationsResult = Annotated[
    RegistrationConnection | OrderError,
    strawberry.union(
        "EventRegistrationsResult", description="A page of registrations, or why not."
    ),
]
SalesSummaryResult = Annotated[
    SalesSummary | OrderError,
    strawberry.union("EventSalesSummaryResult", description="The sales summary, or why not."),
]
ConsoleCountsResult = Annotated[
    ConsoleCounts | OrderError,
    strawberry.union(
        "EventConsoleCountsResult",
        description="Live counts, or why not (then the subscription ends).",
    ),
]
SettlementResult = Annotated[
    Settlement | OrderError,
    strawberry.union("EventSettlementResult", description="The settlement, or why not."),
]
ExportResult = Annotated[
    ExportLink | OrderError,
    strawberry.union("ExportResult", description="The download link, or why not."),
]
