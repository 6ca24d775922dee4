"""Root fields of the producer console (an event's organizer or an admin)."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from datetime import datetime
from typing import Annotated

import strawberry

import resolvers.console
from liventix.export_links import ExportKind
from resolvers.console_counter import CountsUpdate
from resolvers.context import Info
from schema.console import (
    ConsoleCounts,
    ConsoleCountsResult,
    ExportLink,
    ExportResult,
    RegistrationConnection,
    RegistrationFilter,
    RegistrationsResult,
    SalesSummary,
    SalesSummaryResult,
    Settlement,
    SettlementResult,
)
from schema.error_map import typed_stream
from schema.inputs import enum_value_of
from schema.orders import OrderError

EventId = Annotated[strawberry.ID, strawberry.argument(description="The event's id.")]
From = Annotated[
    datetime | None,
    strawberry.argument(name="from", description="Start of the period (inclusive); null: none."),
]
To = Annotated[
    datetime | None,
    strawberry.argument(description="End of the period (exclusive, after `from`); null: none."),
]


@strawberry.type
class ConsoleQuery:
    @strawberry.field(
        description="An event's registrations (its paid orders, unless `filter.status` "
        "says otherwise), newest first, with their tickets and check-in state: for the "
        "event's organizer or an admin."
    )
    async def event_registrations(
        self,
        info: Info,
        event_id: EventId,
        filter: Annotated[
            RegistrationFilter | None, strawberry.argument(description="Narrow the list.")
        ] = None,
        first: Annotated[
            int, strawberry.argument(description="Page size, 1-100 (INVALID_INPUT outside).")
        ] = 20,
        after: Annotated[
            str | None,
            strawberry.argument(description="The `endCursor` of the previous page."),
        ] = None,
    ) -> RegistrationsResult:
        f = filter or RegistrationFilter()
        page = await resolvers.console.registrations(
            info,
            event_id,
            status=enum_value_of(f.status) if f.status else None,
            tier_id=f.tier_id,
            checked_in=f.checked_in,
            search=f.search,
            first=first,
            after=after,
        )
        return RegistrationConnection.from_page(page)

    @strawberry.field(
        description="An event's sales in a period: gross, discounts, refunds, net and fees "
        "per currency, per tier and per day (days of the event's time zone): for the "
        "event's organizer or an admin."
    )
    async def event_sales_summary(
        self, info: Info, event_id: EventId, from_: From = None, to: To = None
    ) -> SalesSummaryResult:
        summary = await resolvers.console.sales_summary(info, event_id, from_, to)
        return SalesSummary.from_record(summary)

    @strawberry.field(
        description="An event's settlement: per currency what its sold orders should have "
        "collected, what recorded payments collected, what was refunded and what is "
        "pending, and each order where these disagree: for the event's organizer or an "
        "admin."
    )
    async def event_settlement(self, info: Info, event_id: EventId) -> SettlementResult:
        return Settlement.from_record(await resolvers.console.settlement(info, event_id))


@strawberry.type
class ConsoleMutation:
    @strawberry.mutation(
        description="A download link (valid 5 minutes) for the event's registrations as "
        "CSV, one line per order, streamed however many there are."
    )
    async def export_registrations_csv(self, info: Info, event_id: EventId) -> ExportResult:
        link = await resolvers.console.export_link(info, event_id, ExportKind.REGISTRATIONS)
        return ExportLink.from_link(link)

    @strawberry.mutation(
        description="A download link (valid 5 minutes) for the event's sales summary in a "
        "period as CSV: one line per currency total, per tier and per day."
    )
    async def export_sales_csv(
        self, info: Info, event_id: EventId, from_: From = None, to: To = None
    ) -> ExportResult:
        link = await resolvers.console.export_link(info, event_id, ExportKind.SALES, from_, to)
        return ExportLink.from_link(link)


@strawberry.type
class ConsoleSubscription:
    @strawberry.subscription(
        description="An event's running counts (registrations, tickets, check-ins, sales "
        "per currency): first the current ones, then after orders are paid or refunded "
        "and tickets checked in, at most about four a second: for the event's organizer "
        "or an admin (anyone else gets one `OrderError`, and the subscription ends)."
    )
    async def event_console_counts(
        self, info: Info, event_id: EventId
    ) -> AsyncGenerator[ConsoleCountsResult, None]:
        live = resolvers.console.live_counts(info, event_id)
        async for item in typed_stream(OrderError, live):
            yield ConsoleCounts.from_record(item) if isinstance(item, CountsUpdate) else item
