"""Ticket tiers: the records, the organizer's writes, and which tiers a viewer sees listed.

A tier is an event's capacity at one price. Organizers create and edit tiers here; the
counters (`reserved_quantity`, `issued_quantity`) are never written here but only by
`db.holds`, which also writes the lock order every transaction follows.

Which tiers are listed is one rule, in both languages that need it: `tier_listed`
answers for a record, `tier_listed_sql` is the same rule as a SQL predicate
(tests/test_visibility.py checks they agree). Hidden tiers still sell; they are listed
only to those who manage the event (`db.events.manages_event`).

Errors: `TicketingError` with a `TicketingCode` (see `db.errors`); CAPACITY_BELOW_SOLD
carries ``minimum`` (the smallest quantity allowed now).
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg
from databases import Database

import db.holds
from db.channels import public_seats
from db.core import connection, retry_transient, transaction
from db.errors import TicketingCode, TicketingError
from db.events import Actor, lock_managed_event
from db.notify import announce_tier

MAX_TIER_QUANTITY = 1_000_000
MAX_PER_ORDER_LIMIT = 100
STATUSES = ("active", "hidden", "closed")

TIER_FIELDS = (
    "id",
    "event_id",
    "name",
    "price_cents",
    "currency",
    "quantity",
    "reserved_quantity",
    "issued_quantity",
    "max_per_order",
    "sales_start_at",
    "sales_end_at",
    "status",
    "sort_order",
    "created_at",
    "updated_at",
    "version",
    "waitlist_demand",
)
TIER_COLUMNS = ", ".join(TIER_FIELDS)
T_COLUMNS = ", ".join(f"t.{name}" for name in TIER_FIELDS)
TIER_EDITABLE = (
    "name",
    "price_cents",
    "currency",
    "quantity",
    "max_per_order",
    "sales_start_at",
    "sales_end_at",
    "status",
    "sort_order",
)
# The editable columns that may be cleared (set to NULL); an explicit null for any other
# is refused, never written (the column is NOT NULL).
TIER_CLEARABLE = ("sales_start_at", "sales_end_at")


@dataclass(frozen=True, slots=True)
class TierRecord:
    id: uuid.UUID
    event_id: uuid.UUID
    name: str
    price_cents: int
    currency: str
    quantity: int
    reserved_quantity: int
    issued_quantity: int
    max_per_order: int
    sales_start_at: datetime | None
    sales_end_at: datetime | None
    status: str
    sort_order: int
    created_at: datetime
    updated_at: datetime
    version: int  # bumped by every update; increases in commit order
    waitlist_demand: int = 0  # seats the tier's waiting line asks for (`db.holds`)

    @property
    def available(self) -> int:
        """Seats the public can hold now: the free seats the waiting line does not want
        (the rule `db.holds` enforces)."""
        return public_seats(
            self.quantity, self.reserved_quantity, self.issued_quantity, self.waitlist_demand
        )

    @classmethod
    def from_row(cls, row: asyncpg.Record) -> TierRecord:
        return cls(**{name: row[name] for name in TIER_FIELDS})


# --- who sees a tier listed ----------------------------------------------------------


def tier_listed(tier: TierRecord, *, manages: bool) -> bool:
    """Whether a viewer sees `tier` listed: any tier not hidden, every tier if they
    manage its event (`manages`, from `db.events.manages_event`).

    The same rule as `tier_listed_sql`.
    """
    return tier.status != "hidden" or manages


def tier_listed_sql(tier: str, *, manages: str) -> str:
    """`tier_listed` as a SQL predicate (never NULL) over the tiers row aliased `tier`;
    `manages` is a SQL boolean expression (e.g. a parameter ``$2``)."""
    return f"({tier}.status <> 'hidden' OR coalesce({manages}::boolean, false))"


# --- reads ---------------------------------------------------------------------------


async def tiers_for_events(
    database: Database, event_ids: list[uuid.UUID]
) -> list[list[TierRecord]]:
    """Each event's tiers in display order, all of them (a DataLoader batch: one query).

    Which of them a viewer sees listed is `tier_listed`'s decision.
    """
    async with connection(database) as conn:
        rows = await conn.fetch(
            f"""SELECT {TIER_COLUMNS} FROM ticketing.ticket_tiers
                 WHERE event_id = ANY($1::uuid[]) ORDER BY sort_order, created_at, id""",
            event_ids,
        )
    by_event: dict[uuid.UUID, list[TierRecord]] = {i: [] for i in event_ids}
    for row in rows:
        by_event[row["event_id"]].append(TierRecord.from_row(row))
    return [by_event[i] for i in event_ids]


async def get_tiers(database: Database, ids: list[uuid.UUID]) -> list[TierRecord | None]:
    """Tiers in the order of `ids` (a DataLoader batch, or a fresh read); whether a
    viewer sees one listed is `tier_listed`'s decision."""
    async with connection(database) as conn:
        rows = await conn.fetch(
            f"SELECT {TIER_COLUMNS} FROM ticketing.ticket_tiers WHERE id = ANY($1::uuid[])", ids
        )
    by_id = {row["id"]: TierRecord.from_row(row) for row in rows}
    return [by_id.get(i) for i in ids]


# --- organizer writes ----------------------------------------------------------------

_CURRENCY = re.compile(r"^[a-z]{3}$")


def _validate_tier(fields: dict[str, Any]) -> None:
    """Raise INVALID_INPUT naming the first bad field, before any write."""

    def bad(message: str, name: str) -> TicketingError:
        return TicketingError(message, code=TicketingCode.INVALID_INPUT, field=name)

    name = fields.get("name")
    if name is not None and not 1 <= len(name.strip()) <= 100:
        raise bad("Name must be 1 to 100 characters", "name")
    price = fields.get("price_cents")
    if price is not None and not 0 <= price <= 100_000_000:
        raise bad("Price must be between 0 and 1,000,000.00", "price_cents")
    currency = fields.get("currency")
    if currency is not None and not _CURRENCY.match(currency):
        raise bad("Currency must be a 3-letter ISO code, e.g. usd", "currency")
    quantity = fields.get("quantity")
    if quantity is not None and not 0 <= quantity <= MAX_TIER_QUANTITY:
        raise bad(f"Quantity must be between 0 and {MAX_TIER_QUANTITY}", "quantity")
    per_order = fields.get("max_per_order")
    if per_order is not None and not 1 <= per_order <= MAX_PER_ORDER_LIMIT:
        raise bad(f"Max per order must be between 1 and {MAX_PER_ORDER_LIMIT}", "max_per_order")
    status = fields.get("status")
    if status is not None and status not in STATUSES:
        raise bad(f"Unknown tier status '{status}'", "status")
    for key in ("sales_start_at", "sales_end_at"):
        value = fields.get(key)
        if isinstance(value, datetime) and value.tzinfo is None:
            raise bad("Times must include a UTC offset", key)
    start, end = fields.get("sales_start_at"), fields.get("sales_end_at")
    if start is not None and end is not None and end <= start:
        raise bad("Sales must end after they start", "sales_end_at")


@retry_transient
async def create_tier(
    database: Database,
    actor: Actor,
    event_id: uuid.UUID,
    *,
    name: str,
    price_cents: int,
    quantity: int,
    now: datetime,
    currency: str = "usd",
    max_per_order: int = 10,
    sales_start_at: datetime | None = None,
    sales_end_at: datetime | None = None,
    status: str = "active",
    sort_order: int = 0,
) -> TierRecord:
    """Add a tier to an event the actor manages (not a canceled one)."""
    fields: dict[str, Any] = {
        "name": name.strip(),
        "price_cents": price_cents,
        "currency": currency.lower(),
        "quantity": quantity,
        "max_per_order": max_per_order,
        "sales_start_at": sales_start_at,
        "sales_end_at": sales_end_at,
        "status": status,
        "sort_order": sort_order,
    }
    _validate_tier(fields)
    async with transaction(database) as conn:
        # The event locked, so it cannot be canceled or handed over while we add to it.
        await lock_managed_event(conn, actor, event_id, action="add tiers")
        row = await conn.fetchrow(
            f"""INSERT INTO ticketing.ticket_tiers
                    (event_id, {", ".join(TIER_EDITABLE)}, created_at, updated_at)
                VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $11)
                RETURNING {TIER_COLUMNS}""",
            event_id,
            *(fields[name] for name in TIER_EDITABLE),
            now,
        )
        assert row is not None
        await announce_tier(conn, row)
    return TierRecord.from_row(row)


@retry_transient
async def update_tier(
    database: Database, actor: Actor, tier_id: uuid.UUID, changes: dict[str, Any], now: datetime
) -> TierRecord:
    """Edit a tier; capacity never goes below what is reserved plus issued.

    Expired holds are released first (a ghost reservation must not block a capacity
    cut either); then `CAPACITY_BELOW_SOLD` carries the minimum allowed in ``minimum``.
    Seats left free by the edit (capacity raised, lapsed holds released) are offered to
    the tier's waitlist in the same transaction (`db.holds.offer_freed`).
    Lock order (`db.holds`): the tier, then its waitlist entries and holds.
    """
    unknown = set(changes) - set(TIER_EDITABLE)
    if unknown:
        raise ValueError(f"not editable: {sorted(unknown)}")
    for key in TIER_EDITABLE:
        if key in changes and changes[key] is None and key not in TIER_CLEARABLE:
            raise TicketingError(
                f"{key} cannot be empty", code=TicketingCode.INVALID_INPUT, field=key
            )
    if changes.get("currency") is not None:
        changes = {**changes, "currency": changes["currency"].lower()}
    if changes.get("name") is not None:
        changes = {**changes, "name": changes["name"].strip()}
    _validate_tier(changes)
    async with transaction(database) as conn:
        row = await conn.fetchrow(
            f"""SELECT {T_COLUMNS}, e.organizer_id
                  FROM ticketing.ticket_tiers t JOIN events.events e ON e.id = t.event_id
                 WHERE t.id = $1 FOR UPDATE OF t""",
            tier_id,
        )
        if row is None:
            raise TicketingError(
                "Tier not found", code=TicketingCode.TIER_NOT_FOUND, field="tier_id"
            )
        if not actor.may_manage(row["organizer_id"]):
            raise TicketingError(
                "Only the event's organizer may edit tiers", code=TicketingCode.NOT_ALLOWED
            )
        tier = TierRecord.from_row(row)
        merged = {name: changes.get(name, getattr(tier, name)) for name in TIER_EDITABLE}
        _validate_tier(merged)
        reserved, issued = tier.reserved_quantity, tier.issued_quantity
        if merged["quantity"] < reserved + issued:
            freed = await db.holds.expire_tier_holds(conn, tier_id, now)
            if freed is not None:
                reserved, issued = freed["reserved_quantity"], freed["issued_quantity"]
            if merged["quantity"] < reserved + issued:
                raise TicketingError(
                    f"Capacity cannot go below {reserved + issued}: {issued} issued, "
                    f"{reserved} reserved",
                    code=TicketingCode.CAPACITY_BELOW_SOLD,
                    field="quantity",
                    minimum=reserved + issued,
                )
        updated = await conn.fetchrow(
            f"""UPDATE ticketing.ticket_tiers
                   SET name = $2, price_cents = $3, currency = $4, quantity = $5,
                       max_per_order = $6, sales_start_at = $7, sales_end_at = $8,
                       status = $9, sort_order = $10, updated_at = $11
                 WHERE id = $1 RETURNING {TIER_COLUMNS}""",
            tier_id,
            *(merged[name] for name in TIER_EDITABLE),
            now,
        )
        assert updated is not None
        await announce_tier(conn, updated)
        if await db.holds.offer_freed(conn, [tier_id], now):
            updated = await conn.fetchrow(
                f"SELECT {TIER_COLUMNS} FROM ticketing.ticket_tiers WHERE id = $1", tier_id
            )
            assert updated is not None
    return TierRecord.from_row(updated)
