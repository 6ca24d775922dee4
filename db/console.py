"""The producer console's reads: an event's registrations and its sales, for its managers.

A registration is an order that was paid (``paid``, ``partially_refunded`` or
``refunded``, `db.order_records.FINAL_STATUSES`) unless a status filter asks for another.
Lists are newest first, keyset-paginated on (created_at, id) with `db.pages` cursors, as
`db.order_queries` does; filters are SQL predicates, so a page is one index-ordered query.

Sales are integer minor units per currency, never summed across currencies. A sale
counts on the day it was paid (``coalesce(paid_at, created_at)``: an order refunded
before its payment was recorded has no ``paid_at``), a refund on the day its refund row
was written, both as dates in the event's time zone. Fees are not recorded anywhere in
the data, so they are reported as unknown (None).

Who may read is `db.events.Actor.may_manage` (the event's organizer or an admin);
anyone else gets EVENT_NOT_FOUND, as for `db.order_queries.list_event_orders`: another
organizer's sales are not theirs to learn about.

The live counts (`console_counts`) are the same figures over all time, read in one
snapshot: registrations are the sold orders the sales totals count, tickets those still
valid (``issued``), check-ins the tickets admitted at the door.

Everything here only reads. `registration_rows` streams an export through a server-side
cursor inside a read-only transaction, in chunks, so memory stays flat however many rows.

Errors: `OrderError` with EVENT_NOT_FOUND or INVALID_CURSOR.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncGenerator
from dataclasses import dataclass
from datetime import date, datetime

import asyncpg
from databases import Database

from db.core import connection
from db.errors import OrderCode, OrderError
from db.events import Actor
from db.order_queries import Page, keyset_page, keyset_since
from db.order_records import ALIASED_ORDER_COLUMNS, FINAL_STATUSES, OrderRecord

SOLD_STATUSES = sorted(FINAL_STATUSES)
EXPORT_CHUNK_ROWS = 1000
# When a sale counts: the payment, or (refunded before the payment was recorded) checkout.
_SOLD_AT = "coalesce(o.paid_at, o.created_at)"


@dataclass(frozen=True, slots=True)
class ManagedEvent:
    """The little of an event the console needs: its title and time zone."""

    id: uuid.UUID
    title: str
    time_zone: str


@dataclass(frozen=True, slots=True)
class RegistrationFilter:
    """Narrows a registrations list; None fields do not narrow."""

    status: str | None = None
    tier_id: uuid.UUID | None = None
    checked_in: bool | None = None
    """True: some ticket of the order was admitted; False: none was."""
    search: str | None = None
    """Case-insensitive part of the buyer's contact name or email, or profile name."""


@dataclass(frozen=True, slots=True)
class RegistrationRecord:
    order: OrderRecord
    buyer_name: str
    """The buyer's profile name (kept after the order's contact is anonymized)."""
    ticket_count: int
    checked_in_count: int


@dataclass(frozen=True, slots=True)
class SalesFigures:
    """One currency's money over a period or a day, in minor units."""

    currency: str
    orders: int
    gross_cents: int
    """What the sold orders' items cost before discounts."""
    discount_cents: int
    refund_cents: int
    fees_cents: int | None = None
    """Payment fees: not recorded by the platform, so unknown."""

    @property
    def net_cents(self) -> int:
        return self.gross_cents - self.discount_cents - self.refund_cents


@dataclass(frozen=True, slots=True)
class SalesDay:
    day: date
    """A calendar day in the event's time zone."""
    figures: SalesFigures


@dataclass(frozen=True, slots=True)
class TierSales:
    tier_id: uuid.UUID
    tier_name: str
    currency: str
    tickets: int
    gross_cents: int
    refunded_tickets: int


@dataclass(frozen=True, slots=True)
class ConsoleCounts:
    """An event's running figures, as the live console shows them."""

    registrations: int
    """Sold orders (`SOLD_STATUSES`), refunded ones included, as the sales count them."""
    tickets_issued: int
    """Tickets still valid (not refunded or void)."""
    tickets_checked_in: int
    """Tickets admitted at the door."""
    sales: list[SalesFigures]
    """Per currency, all time."""


@dataclass(frozen=True, slots=True)
class SalesSummary:
    event: ManagedEvent
    start: datetime | None
    end: datetime | None
    totals: list[SalesFigures]
    tiers: list[TierSales]
    days: list[SalesDay]


async def managed_in(conn: asyncpg.Connection, event_id: uuid.UUID, actor: Actor) -> ManagedEvent:
    """`managed_event` on a connection the caller holds, to read more on it."""
    row = await conn.fetchrow(
        "SELECT id, title, time_zone, organizer_id FROM events.events WHERE id = $1", event_id
    )
    if row is None or not actor.may_manage(row["organizer_id"]):
        raise OrderError("Event not found", code=OrderCode.EVENT_NOT_FOUND, field="event_id")
    return ManagedEvent(id=row["id"], title=row["title"], time_zone=row["time_zone"])


async def managed_event(database: Database, event_id: uuid.UUID, actor: Actor) -> ManagedEvent:
    """The event if `actor` manages it; EVENT_NOT_FOUND otherwise (or if there is none)."""
    async with connection(database) as conn:
        return await managed_in(conn, event_id, actor)


def _like(search: str | None) -> str | None:
    """An ILIKE pattern matching `search` anywhere, its wildcards taken literally."""
    if not search or not search.strip():
        return None
    escaped = search.strip().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


# A ticket admitted at the door (over `ticketing.tickets t`).
_ADMITTED = "t.checked_in_at IS NOT NULL"
_CHECKED_IN = f"""EXISTS (SELECT 1 FROM ticketing.tickets t
                          WHERE t.order_id = o.id AND {_ADMITTED})"""
_REGISTRATIONS = f"""
SELECT {ALIASED_ORDER_COLUMNS}, p.display_name AS buyer_name,
       (SELECT count(*) FROM ticketing.tickets t WHERE t.order_id = o.id) AS ticket_count,
       (SELECT count(*) FROM ticketing.tickets t
         WHERE t.order_id = o.id AND {_ADMITTED}) AS checked_in_count
  FROM ticketing.orders o
  JOIN users.profiles p ON p.id = o.user_id
 WHERE o.event_id = $1 AND o.status = ANY($2::text[])
   AND ($3::uuid IS NULL OR EXISTS (SELECT 1 FROM ticketing.order_items i
                                     WHERE i.order_id = o.id AND i.tier_id = $3))
   AND ($4::boolean IS NULL OR {_CHECKED_IN} = $4)
   AND ($5::text IS NULL OR o.contact_email ILIKE $5 OR o.contact_name ILIKE $5
        OR p.display_name ILIKE $5)
   AND ($6::timestamptz IS NULL OR (o.created_at, o.id) < ($6, $7::uuid))
 ORDER BY o.created_at DESC, o.id DESC LIMIT $8"""


async def list_registrations(
    database: Database,
    *,
    event_id: uuid.UUID,
    actor: Actor,
    filter: RegistrationFilter,
    first: int,
    after: str | None,
) -> Page[RegistrationRecord]:
    """The event's registrations matching `filter`, newest first."""
    since = keyset_since(after)
    statuses = [filter.status] if filter.status else SOLD_STATUSES
    async with connection(database) as conn:
        await managed_in(conn, event_id, actor)
        rows = await conn.fetch(
            _REGISTRATIONS,
            event_id,
            statuses,
            filter.tier_id,
            filter.checked_in,
            _like(filter.search),
            *since,
            first + 1,
        )
    items = [
        RegistrationRecord(
            order=OrderRecord.from_row(row),
            buyer_name=row["buyer_name"],
            ticket_count=row["ticket_count"],
            checked_in_count=row["checked_in_count"],
        )
        for row in rows
    ]
    return keyset_page(items, first, lambda r: (r.order.created_at, r.order.id))


# -- sales ---------------------------------------------------------------------------

# Sales (by payment day) and refunds (by refund day) of the event in [$3, $4), as days in
# the event's time zone $2, one row per currency and day.
_DAYS = f"""
WITH moves AS (
    SELECT o.currency, ({_SOLD_AT} AT TIME ZONE $2)::date AS day, 1 AS orders,
           o.total_cents + o.discount_cents AS gross, o.discount_cents AS discount, 0 AS refund
      FROM ticketing.orders o
     WHERE o.event_id = $1 AND o.status = ANY($5::text[])
       AND ($3::timestamptz IS NULL OR {_SOLD_AT} >= $3)
       AND ($4::timestamptz IS NULL OR {_SOLD_AT} < $4)
    UNION ALL
    SELECT o.currency, (r.created_at AT TIME ZONE $2)::date, 0, 0, 0, r.amount_cents
      FROM ticketing.refunds r
      JOIN ticketing.orders o ON o.id = r.order_id
     WHERE o.event_id = $1
       AND ($3::timestamptz IS NULL OR r.created_at >= $3)
       AND ($4::timestamptz IS NULL OR r.created_at < $4))
SELECT currency, day, sum(orders)::int AS orders, sum(gross)::bigint AS gross,
       sum(discount)::bigint AS discount, sum(refund)::bigint AS refund
  FROM moves GROUP BY currency, day ORDER BY currency, day"""

# Tickets sold per tier in the window (by the order's payment), and how many of those
# tickets were refunded since.
_TIERS = f"""
WITH sold AS (
    SELECT o.id, o.currency FROM ticketing.orders o
     WHERE o.event_id = $1 AND o.status = ANY($4::text[])
       AND ($2::timestamptz IS NULL OR {_SOLD_AT} >= $2)
       AND ($3::timestamptz IS NULL OR {_SOLD_AT} < $3))
SELECT t.id AS tier_id, t.name AS tier_name, s.currency,
       sum(i.quantity)::int AS tickets,
       sum(i.quantity::bigint * i.unit_price_cents)::bigint AS gross_cents,
       (SELECT count(*) FROM ticketing.tickets k JOIN sold s2 ON s2.id = k.order_id
         WHERE k.tier_id = t.id AND k.status = 'refunded')::int AS refunded_tickets
  FROM sold s
  JOIN ticketing.order_items i ON i.order_id = s.id
  JOIN ticketing.ticket_tiers t ON t.id = i.tier_id
 GROUP BY t.id, t.name, t.sort_order, s.currency
 ORDER BY t.sort_order, t.id, s.currency"""


def _totals(days: list[SalesDay]) -> list[SalesFigures]:
    """Each currency's figures over all `days` (the days are the one source of sums)."""
    by_currency: dict[str, SalesFigures] = {}
    for day in days:
        f = day.figures
        seen = by_currency.get(f.currency)
        if seen is not None:
            f = SalesFigures(
                currency=f.currency,
                orders=seen.orders + f.orders,
                gross_cents=seen.gross_cents + f.gross_cents,
                discount_cents=seen.discount_cents + f.discount_cents,
                refund_cents=seen.refund_cents + f.refund_cents,
            )
        by_currency[f.currency] = f
    return [by_currency[c] for c in sorted(by_currency)]


async def _sales_days(
    conn: asyncpg.Connection, event: ManagedEvent, start: datetime | None, end: datetime | None
) -> list[SalesDay]:
    rows = await conn.fetch(_DAYS, event.id, event.time_zone, start, end, SOLD_STATUSES)
    return [
        SalesDay(
            day=r["day"],
            figures=SalesFigures(
                currency=r["currency"],
                orders=r["orders"],
                gross_cents=r["gross"],
                discount_cents=r["discount"],
                refund_cents=r["refund"],
            ),
        )
        for r in rows
    ]


async def sales_summary(
    database: Database,
    *,
    event_id: uuid.UUID,
    actor: Actor,
    start: datetime | None,
    end: datetime | None,
) -> SalesSummary:
    """The event's sales in [`start`, `end`) (None: unbounded): per currency, per tier
    and per day in the event's time zone."""
    async with connection(database) as conn:
        event = await managed_in(conn, event_id, actor)
        days = await _sales_days(conn, event, start, end)
        tier_rows = await conn.fetch(_TIERS, event_id, start, end, SOLD_STATUSES)
    tiers = [TierSales(**dict(r)) for r in tier_rows]
    return SalesSummary(event, start, end, _totals(days), tiers, days)


# -- live counts ---------------------------------------------------------------------

_TICKET_COUNTS = f"""
SELECT count(*) FILTER (WHERE t.status = 'issued')::int AS issued,
       count(*) FILTER (WHERE {_ADMITTED})::int AS checked_in
  FROM ticketing.tickets t WHERE t.event_id = $1"""


async def console_counts(database: Database, event: ManagedEvent) -> ConsoleCounts:
    """The event's running counts, all read in one snapshot (a repeatable-read,
    read-only transaction), so registrations, tickets and sales agree with each other.

    Access is the caller's to check first (`managed_event`): a live subscription checks
    once, then recomputes on every change.
    """
    async with (
        connection(database) as conn,
        conn.transaction(isolation="repeatable_read", readonly=True),
    ):
        days = await _sales_days(conn, event, None, None)
        tickets = await conn.fetchrow(_TICKET_COUNTS, event.id)
    assert tickets is not None
    sales = _totals(days)
    return ConsoleCounts(
        registrations=sum(f.orders for f in sales),
        tickets_issued=tickets["issued"],
        tickets_checked_in=tickets["checked_in"],
        sales=sales,
    )


# -- export --------------------------------------------------------------------------

EXPORT_COLUMNS = (
    "order_id",
    "created_at",
    "paid_at",
    "status",
    "buyer_name",
    "contact_name",
    "contact_email",
    "contact_phone",
    "tiers",
    "tickets",
    "checked_in",
    "currency",
    "subtotal_cents",
    "discount_cents",
    "discount_code",
    "total_cents",
    "refunded_cents",
)
_EXPORT = """
SELECT o.id AS order_id, o.created_at, o.paid_at, o.status, p.display_name AS buyer_name,
       o.contact_name, o.contact_email, o.contact_phone,
       (SELECT string_agg(t.name || ' x' || i.quantity, '; ' ORDER BY t.sort_order, t.id)
          FROM ticketing.order_items i JOIN ticketing.ticket_tiers t ON t.id = i.tier_id
         WHERE i.order_id = o.id) AS tiers,
       (SELECT count(*) FROM ticketing.tickets k WHERE k.order_id = o.id) AS tickets,
       (SELECT count(*) FROM ticketing.tickets k
         WHERE k.order_id = o.id AND k.checked_in_at IS NOT NULL) AS checked_in,
       o.currency, o.total_cents + o.discount_cents AS subtotal_cents, o.discount_cents,
       o.discount_code, o.total_cents, o.refunded_cents
  FROM ticketing.orders o
  JOIN users.profiles p ON p.id = o.user_id
 WHERE o.event_id = $1 AND o.status = ANY($2::text[])
 ORDER BY o.created_at, o.id"""


async def registration_rows(
    database: Database, event_id: uuid.UUID, *, chunk_rows: int = EXPORT_CHUNK_ROWS
) -> AsyncGenerator[list[asyncpg.Record], None]:
    """The event's registrations, oldest first, `chunk_rows` at a time (columns
    `EXPORT_COLUMNS`), read through a server-side cursor.

    One read-only transaction spans the whole iteration (a cursor lives only inside a
    transaction), so the export is one consistent snapshot. The caller must iterate it
    to the end or `aclose()` it in the task that iterated it: `databases` binds the
    connection to that task. Access is the caller's to check first (`managed_event`).
    """
    async with (
        connection(database) as conn,
        conn.transaction(isolation="repeatable_read", readonly=True),
    ):
        cursor = await conn.cursor(_EXPORT, event_id, SOLD_STATUSES)
        while rows := await cursor.fetch(chunk_rows):
            yield rows
