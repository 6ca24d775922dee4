"""Stripe events the webhook refused: recorded once, read back for reconciliation.

A correctly signed event whose body we cannot read (a field of the wrong type, a
negative amount) is answered 400, so Stripe retries it for days and then gives up;
nothing else would tell a person. It is recorded in the same table as every other
Stripe event (`ticketing.stripe_events`, whose key makes each id appear once), with
a result of ``rejected: <reason>`` and no effect on any order.

Events that are read and applied are recorded by `db.orders.process_payment_event`,
in the transaction that applies them; this module never touches those rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from databases import Database

from db.core import connection

REJECTED_PREFIX = "rejected: "


@dataclass(frozen=True, slots=True)
class RejectedEvent:
    """One refused event: its (possibly synthetic) id, type and why it was refused."""

    id: str
    type: str
    received_at: datetime
    reason: str

    def to_report(self) -> dict[str, Any]:
        """JSON-ready, for the reconciliation report."""
        return {
            "id": self.id,
            "type": self.type,
            "received_at": self.received_at.isoformat(),
            "reason": self.reason,
        }


@dataclass(frozen=True, slots=True)
class RejectedSummary:
    """How many events were ever refused, and the latest few (newest first)."""

    count: int
    latest: list[RejectedEvent]

    def to_report(self) -> dict[str, Any]:
        return {"count": self.count, "latest": [event.to_report() for event in self.latest]}


async def record_rejected(
    database: Database, event_id: str, event_type: str, reason: str, *, now: datetime
) -> bool:
    """Record a refused event under `event_id`; True if this is its first record.

    ON CONFLICT DO NOTHING: a redelivery of the same body is recorded once, and an id
    already processed normally keeps its record (the refusal changes nothing). One
    statement, so it is its own transaction.
    """
    async with connection(database) as conn:
        inserted = await conn.fetchval(
            """INSERT INTO ticketing.stripe_events (id, type, received_at, processed_at, result)
               VALUES ($1, $2, $3, $3, $4)
               ON CONFLICT (id) DO NOTHING RETURNING id""",
            event_id,
            event_type,
            now,
            REJECTED_PREFIX + reason,
        )
    return inserted is not None


async def rejected_summary(database: Database, *, latest: int) -> RejectedSummary:
    """The number of refused events and the `latest` most recent ones.

    A scan of the event log: it runs once per reconciliation, not on a request path.
    """
    pattern = REJECTED_PREFIX + "%"
    async with connection(database) as conn:
        total: int = await conn.fetchval(
            "SELECT count(*) FROM ticketing.stripe_events WHERE result LIKE $1", pattern
        )
        rows = await conn.fetch(
            """SELECT id, type, received_at, result FROM ticketing.stripe_events
                WHERE result LIKE $1 ORDER BY received_at DESC, id DESC LIMIT $2""",
            pattern,
            latest,
        )
    events = [
        RejectedEvent(
            id=row["id"],
            type=row["type"],
            received_at=row["received_at"],
            reason=row["result"].removeprefix(REJECTED_PREFIX),
        )
        for row in rows
    ]
    return RejectedSummary(count=total, latest=events)
