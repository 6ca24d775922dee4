"""Root fields of the operations views (admins)."""

from __future__ import annotations

import strawberry

import resolvers.operations
from resolvers.context import Info
from schema.operations import EventHealth, EventReadiness, ReconciliationReport


@strawberry.type
class OperationsQuery:
    @strawberry.field(description="Sales health per event (admins).")
    async def event_health(
        self, info: Info, event_id: strawberry.ID | None = None
    ) -> list[EventHealth]:
        rows = await resolvers.operations.event_health(info, event_id)
        return [EventHealth.from_row(r) for r in rows]

    @strawberry.field(description="Readiness of upcoming events (admins).")
    async def event_readiness(self, info: Info) -> list[EventReadiness]:
        rows = await resolvers.operations.event_readiness(info)
        return [EventReadiness.from_row(r) for r in rows]

    @strawberry.field(description="Recent reconciliation runs and what they repaired (admins).")
    async def reconciliation_reports(
        self, info: Info, limit: int = 20
    ) -> list[ReconciliationReport]:
        rows = await resolvers.operations.reconciliation_reports(info, limit)
        return [ReconciliationReport.from_row(r) for r in rows]
