"""The read side of orders and tickets: DataLoader batches and keyset-paginated lists.

Nothing here writes or locks; each function reads on one pooled connection, opened here.
Lists are newest first, keyset-paginated on (created_at, id) with `db.pages` cursors.

Errors: `OrderError` with INVALID_CURSOR or EVENT_NOT_FOUND.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, TypeVar

from databases import Database

from db.core import connection
from db.errors import OrderCode, OrderError
from db.order_records import (
    ORDER_COLUMNS,
    TICKET_SELECT,
    OrderItemRecord,
    OrderRecord,
    TicketRecord,
)
from db.pages import decode_cursor, encode_cursor

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    items: list[T]
    has_next_page: bool
    end_cursor: str | None


def _since(after: str | None) -> tuple[datetime | None, uuid.UUID | None]:
    """The keyset query arguments for `after` (both None on the first page).

    Raise `OrderError(INVALID_CURSOR)` for anything not made by `encode_cursor`.
    """
    if not after:
        return None, None
    since = decode_cursor(after)
    if since is None:
        raise OrderError("Invalid cursor", code=OrderCode.INVALID_CURSOR, field="after")
    return since


def _page(items: list[T], first: int, key: Any) -> Page[T]:
    has_next = len(items) > first
    items = items[:first]
    end = encode_cursor(*key(items[-1])) if items else None
    return Page(items=items, has_next_page=has_next, end_cursor=end)


# For the other keyset lists of the order read side (`db.console`).
keyset_since = _since
keyset_page = _page


async def get_orders(database: Database, ids: list[uuid.UUID]) -> list[OrderRecord | None]:
    """Orders in the order of `ids` (a DataLoader batch); visibility is the caller's."""
    async with connection(database) as conn:
        rows = await conn.fetch(
            f"SELECT {ORDER_COLUMNS} FROM ticketing.orders WHERE id = ANY($1::uuid[])", ids
        )
    by_id = {row["id"]: OrderRecord.from_row(row) for row in rows}
    return [by_id.get(i) for i in ids]


async def get_order_items(
    database: Database, order_ids: list[uuid.UUID]
) -> list[list[OrderItemRecord]]:
    """Each order's items with their tier's name (a DataLoader batch)."""
    async with connection(database) as conn:
        rows = await conn.fetch(
            """SELECT i.order_id, i.tier_id, t.name AS tier_name, i.quantity, i.unit_price_cents
                 FROM ticketing.order_items i
                 JOIN ticketing.ticket_tiers t ON t.id = i.tier_id
                WHERE i.order_id = ANY($1::uuid[]) ORDER BY t.sort_order, t.id""",
            order_ids,
        )
    grouped: dict[uuid.UUID, list[OrderItemRecord]] = defaultdict(list)
    for row in rows:
        grouped[row["order_id"]].append(OrderItemRecord(**dict(row)))
    return [grouped.get(i, []) for i in order_ids]


async def get_order_tickets(
    database: Database, order_ids: list[uuid.UUID]
) -> list[list[TicketRecord]]:
    """Each order's tickets (a DataLoader batch)."""
    async with connection(database) as conn:
        rows = await conn.fetch(
            f"""{TICKET_SELECT} WHERE t.order_id = ANY($1::uuid[])
                ORDER BY t.tier_id, t.sequence_number""",
            order_ids,
        )
    grouped: dict[uuid.UUID, list[TicketRecord]] = defaultdict(list)
    for row in rows:
        grouped[row["order_id"]].append(TicketRecord.from_row(row))
    return [grouped.get(i, []) for i in order_ids]


async def get_tickets(database: Database, ids: list[uuid.UUID]) -> list[TicketRecord | None]:
    """Tickets in the order of `ids` (a DataLoader batch); visibility is the caller's."""
    async with connection(database) as conn:
        rows = await conn.fetch(f"{TICKET_SELECT} WHERE t.id = ANY($1::uuid[])", ids)
    by_id = {row["id"]: TicketRecord.from_row(row) for row in rows}
    return [by_id.get(i) for i in ids]


async def list_user_orders(
    database: Database, user_id: uuid.UUID, *, first: int, after: str | None
) -> Page[OrderRecord]:
    """The user's own orders, newest first (keyset on created_at, id)."""
    since = _since(after)
    async with connection(database) as conn:
        rows = await conn.fetch(
            f"""SELECT {ORDER_COLUMNS} FROM ticketing.orders
                 WHERE user_id = $1
                   AND ($2::timestamptz IS NULL OR (created_at, id) < ($2, $3::uuid))
                 ORDER BY created_at DESC, id DESC LIMIT $4""",
            user_id,
            *since,
            first + 1,
        )
    return _page([OrderRecord.from_row(r) for r in rows], first, lambda o: (o.created_at, o.id))


async def list_event_orders(
    database: Database,
    *,
    event_id: uuid.UUID,
    actor_id: uuid.UUID,
    actor_is_admin: bool,
    first: int,
    after: str | None,
    status: str | None,
) -> Page[OrderRecord]:
    """An event's orders for its organizer (or an admin), newest first.

    Anyone else gets EVENT_NOT_FOUND: another organizer's sales are not theirs to see.
    """
    since = _since(after)
    async with connection(database) as conn:
        organizer = await conn.fetchval(
            "SELECT organizer_id FROM events.events WHERE id = $1", event_id
        )
        if organizer is None or not (actor_is_admin or organizer == actor_id):
            raise OrderError("Event not found", code=OrderCode.EVENT_NOT_FOUND, field="event_id")
        rows = await conn.fetch(
            f"""SELECT {ORDER_COLUMNS} FROM ticketing.orders
                 WHERE event_id = $1 AND ($2::text IS NULL OR status = $2)
                   AND ($3::timestamptz IS NULL OR (created_at, id) < ($3, $4::uuid))
                 ORDER BY created_at DESC, id DESC LIMIT $5""",
            event_id,
            status,
            *since,
            first + 1,
        )
    return _page([OrderRecord.from_row(r) for r in rows], first, lambda o: (o.created_at, o.id))


async def list_user_tickets(
    database: Database, user_id: uuid.UUID, *, first: int, after: str | None
) -> Page[TicketRecord]:
    """The tickets the user owns, newest first."""
    since = _since(after)
    async with connection(database) as conn:
        rows = await conn.fetch(
            f"""{TICKET_SELECT}
                 WHERE t.owner_user_id = $1
                   AND ($2::timestamptz IS NULL OR (t.created_at, t.id) < ($2, $3::uuid))
                 ORDER BY t.created_at DESC, t.id DESC LIMIT $4""",
            user_id,
            *since,
            first + 1,
        )
    return _page([TicketRecord.from_row(r) for r in rows], first, lambda t: (t.created_at, t.id))


async def event_organizer(database: Database, event_id: uuid.UUID) -> uuid.UUID | None:
    async with connection(database) as conn:
        organizer: uuid.UUID | None = await conn.fetchval(
            "SELECT organizer_id FROM events.events WHERE id = $1", event_id
        )
    return organizer
