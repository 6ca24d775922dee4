"""The order and ticket records every order module shares, and the rules they all keep.

`db.checkout`, `db.completion`, `db.payment_events`, `db.refunds`, `db.privacy`,
`db.checkin` and `db.order_queries` read and write these rows. The order row is the
arbiter: each write locks it (``SELECT ... FOR UPDATE``) before it looks at its status,
and statuses only move forward::

    pending ──► paid ──► partially_refunded ──► refunded
      │  ▲         └──────────────────────────────▲
      ▼  │ (a failed payment may still succeed)   │ (refunded before success)
    failed / canceled / expired ────────────────────┘

so a webhook delivered twice, concurrently or out of order finds the order already
moved and changes nothing. Row locks follow the order written in `db.holds` (orders,
tiers, holds, tickets, tokens).

Errors raised by the order modules: `OrderError` with an `OrderCode` (see `db.errors`).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

import asyncpg

FINAL_STATUSES = frozenset({"paid", "partially_refunded", "refunded"})
REOPENABLE_STATUSES = frozenset({"pending", "failed", "canceled", "expired"})


@dataclass(frozen=True, slots=True)
class OrderRecord:
    id: uuid.UUID
    event_id: uuid.UUID
    user_id: uuid.UUID
    status: str
    stripe_payment_intent_id: str | None
    contact_email: str | None
    contact_name: str | None
    contact_phone: str | None
    total_cents: int
    refunded_cents: int
    currency: str
    failure_reason: str | None
    refund_reason: str | None
    created_at: datetime
    paid_at: datetime | None
    anonymized_at: datetime | None
    # The discount code applied at checkout (its id and text as typed then), and what
    # it took off: `total_cents` is the items' sum less `discount_cents`.
    discount_code_id: uuid.UUID | None
    discount_code: str | None
    discount_cents: int

    @property
    def subtotal_cents(self) -> int:
        """The items' sum before the discount."""
        return self.total_cents + self.discount_cents

    @classmethod
    def from_row(cls, row: asyncpg.Record) -> OrderRecord:
        return cls(**{name: row[name] for name in _ORDER_FIELDS})


_ORDER_FIELDS = tuple(OrderRecord.__dataclass_fields__)
ORDER_COLUMNS = ", ".join(_ORDER_FIELDS)
# ORDER_COLUMNS qualified by the alias `o`, for queries that join the order to other tables.
ALIASED_ORDER_COLUMNS = ", ".join(f"o.{name}" for name in _ORDER_FIELDS)


@dataclass(frozen=True, slots=True)
class OrderItemRecord:
    order_id: uuid.UUID
    tier_id: uuid.UUID
    tier_name: str
    quantity: int
    unit_price_cents: int


@dataclass(frozen=True, slots=True)
class TicketRecord:
    id: uuid.UUID
    order_id: uuid.UUID
    event_id: uuid.UUID
    tier_id: uuid.UUID
    owner_user_id: uuid.UUID
    status: str
    sequence_number: int
    checked_in_at: datetime | None
    created_at: datetime
    token: str

    @classmethod
    def from_row(cls, row: asyncpg.Record) -> TicketRecord:
        return cls(**{name: row[name] for name in _TICKET_FIELDS})


_TICKET_FIELDS = tuple(TicketRecord.__dataclass_fields__)
# Tickets with their QR token; callers append the WHERE and ORDER BY clauses.
TICKET_SELECT = """SELECT t.id, t.order_id, t.event_id, t.tier_id, t.owner_user_id, t.status,
                           t.sequence_number, t.checked_in_at, t.created_at, k.token
                      FROM ticketing.tickets t
                      JOIN ticketing.ticket_tokens k ON k.ticket_id = t.id"""


async def tickets_of(conn: asyncpg.Connection, order_id: uuid.UUID) -> list[TicketRecord]:
    """The order's tickets with their tokens, in the caller's transaction."""
    rows = await conn.fetch(
        f"{TICKET_SELECT} WHERE t.order_id = $1 ORDER BY t.tier_id, t.sequence_number",
        order_id,
    )
    return [TicketRecord.from_row(r) for r in rows]
