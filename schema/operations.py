"""Operations views of sales for admins: health, readiness, reconciliation runs.

Built from the rows of the operations views (`db.ops_views`), whose column names are
the fields' names.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import strawberry
from strawberry.scalars import JSON


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
