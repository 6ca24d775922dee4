"""Root fields of the operations views (admins)."""

from __future__ import annotations

from typing import Annotated

import strawberry

import resolvers.operations
from resolvers.context import Info
from schema.operations import EventHealth, EventReadiness, ReconciliationReport


@strawberry.type
class OperationsQuery:
    @strawberry.field(description="Sales health per event, from `ticketing.event_health` (admins).")
    async def event_health(
        self,
        info: Info,
        event_id: Annotated[
            strawberry.ID | None,
            strawberry.argument(description="Only this event; null: every event."),
        ] = None,
    ) -> list[EventHealth]:
        rows = await resolvers.operations.event_health(info, event_id)
        return [EventHealth.from_row(r) for r in rows]

    @strawberry.field(
        description="Readiness of upcoming, not canceled events, from "
        "`ticketing.event_readiness` (admins)."
    )
    async def event_readiness(self, info: Info) -> list[EventReadiness]:
        rows = await resolvers.operations.event_readiness(info)
        return [EventReadiness.from_row(r) for r in rows]

    @strawberry.field(description="Recent reconciliation runs and what they repaired (admins).")
    async def reconciliation_reports(
        self,
        info: Info,
        limit: Annotated[
            int,
            strawberry.argument(description="How many runs, newest first: 1-100 (clamped)."),
        ] = 20,
    ) -> list[ReconciliationReport]:
        rows = await resolvers.operations.reconciliation_reports(info, limit)
        return [ReconciliationReport.from_row(r) for r in rows]
