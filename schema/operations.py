"""Operations views of sales for admins: health, readiness, reconciliation runs.

Built from the rows of the operations views (`db.ops_views`), whose column names are
the fields' names.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import strawberry
from strawberry.scalars import JSON

from resolvers.ids import EVENT, RECONCILIATION_REPORT
from schema.node import Node, node_id


@strawberry.type(description="Operations view of one event's sales (admins).")
class EventHealth:
    event_id: strawberry.ID = strawberry.field(description="The event.")
    title: str = strawberry.field(description="The event's title.")
    start_at: datetime = strawberry.field(description="When the event starts.")
    capacity: int = strawberry.field(description="Sum of its tiers' quantities.")
    sold: int = strawberry.field(description="Tickets issued, all tiers.")
    reserved: int = strawberry.field(description="Seats held by active holds, all tiers.")
    available: int = strawberry.field(description="capacity - reserved - sold.")
    ghost_reservations: int = strawberry.field(
        description="Seats of holds still active past their expiry (should be 0 after a sweep)."
    )
    paid_orders_without_tickets: int = strawberry.field(
        description="Paid orders with no tickets (must be 0)."
    )
    health_score: int = strawberry.field(
        description="0-100: 100 minus 50 for negative availability, 40 for paid orders "
        "without tickets, 10 for ghost reservations."
    )

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> EventHealth:
        fields = {k: row[k] for k in cls.__annotations__ if k != "event_id"}
        return cls(event_id=node_id(EVENT, row["event_id"]), **fields)


@strawberry.type(description="Whether an upcoming event is ready to sell and admit (admins).")
class EventReadiness:
    event_id: strawberry.ID = strawberry.field(description="The event (upcoming, not canceled).")
    title: str = strawberry.field(description="The event's title.")
    start_at: datetime = strawberry.field(description="When the event starts.")
    no_negative_availability: bool = strawberry.field(
        description="No tier has more reserved + issued than its quantity."
    )
    no_ghost_reservations: bool = strawberry.field(
        description="No hold is still active past its expiry."
    )
    no_paid_orders_without_tickets: bool = strawberry.field(
        description="Every paid order has its tickets."
    )
    has_tiers: bool = strawberry.field(description="The event has at least one tier.")
    overall_status: str = strawberry.field(
        description="`ready` when all four checks pass, else `not_ready`."
    )

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> EventReadiness:
        fields = {k: row[k] for k in cls.__annotations__ if k != "event_id"}
        return cls(event_id=node_id(EVENT, row["event_id"]), **fields)


@strawberry.type(description="One run of the reconciliation job and what it repaired.")
class ReconciliationReport(Node):
    status: str = strawberry.field(description="`running`, then `ok` or `failed`.")
    started_at: datetime = strawberry.field(description="When the run started.")
    finished_at: datetime | None = strawberry.field(
        description="When it finished; null while running (or if it died)."
    )
    items: int = strawberry.field(description="How many things the run repaired.")
    error: str | None = strawberry.field(description="Why the run failed; null if it did not.")
    report: JSON = strawberry.field(
        description="What was repaired, by kind (the job's report object)."
    )

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> ReconciliationReport:
        return cls(
            id=node_id(RECONCILIATION_REPORT, row["id"]),
            status=row["status"],
            started_at=row["started_at"],
            finished_at=row["finished_at"],
            items=row["items"],
            error=row["error"],
            report=row["report"],
        )
