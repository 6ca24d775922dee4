"""Ticket tiers and holds: capacity that is never oversold and never held by ghosts.

The database arbitrates capacity. Taking seats is one conditional update::

    UPDATE ticketing.ticket_tiers SET reserved_quantity = reserved_quantity + $n
     WHERE id = $1 AND quantity - reserved_quantity - issued_quantity >= $n RETURNING ...

which cannot oversell under READ COMMITTED (the second writer re-checks the row after
the first commits), and the CHECK constraints on the table back it up. Zero rows means
sold out, but only after this transaction has released the tier's expired holds and
tried again, so an expired hold never blocks a buyer.

Lock order. This module owns capacity, so the one order in which every transaction
that touches tiers or holds takes row locks is written here, once::

    ticketing.orders              (by primary key: checkout, completion, refunds)
      → ticketing.ticket_tiers    (by primary key)
        → ticketing.ticket_holds  (by primary key)
          → ticketing.tickets     (by primary key), then their ticket_tokens

A transaction may skip a level, and may touch again a row it already holds, but never
goes back up to a level it passed. Implicit locks count: inserting a row that refers
to a tier (a hold, an order item, a ticket) takes FOR KEY SHARE on the tier through the
foreign key, so a transaction that will do so after locking holds locks those tiers
first (checkout takes FOR KEY SHARE on its tiers before its holds; a new hold is
inserted after the conditional update has locked its tier). FOR KEY SHARE does not
conflict with the plain UPDATE of a tier's counters, so checkout never queues behind
buyers, only behind the FOR UPDATE of a release, an expiry, a sweep, a drift fix or a
completion. Reads take no lock; `events.events` and `users.profiles` rows come last
(foreign keys lock them; their own writers lock nothing of ticketing after them).
Whatever still collides (a serialization failure, or a deadlock with code outside this
order) is retried by `db.core.retry_transient` around each transaction.

Every change to a tier's counters is announced with `db.notify.announce_tier` inside
the transaction that makes it (delivered on commit).

Errors: `TicketingError` (a `DomainError`) with one of the codes in `CODES`; `SOLD_OUT`
carries ``available`` (what is still free) in its details.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

import asyncpg
from databases import Database

from db.core import connection, retry_transient, transaction
from db.errors import DomainError
from db.events import Actor
from db.notify import announce_tier

CODES = (
    "SOLD_OUT",
    "QUANTITY_INVALID",
    "MAX_PER_ORDER_EXCEEDED",
    "SALES_NOT_OPEN",
    "SALES_ENDED",
    "EVENT_NOT_PUBLISHED",
    "EVENT_NOT_FOUND",
    "EVENT_CANCELED",
    "TIER_NOT_FOUND",
    "HOLD_NOT_FOUND",
    "HOLD_IN_CHECKOUT",
    "CAPACITY_BELOW_SOLD",
    "NOT_ALLOWED",
    "UNAUTHENTICATED",
    "INVALID_INPUT",
    "CONFLICT",
)
MAX_TIER_QUANTITY = 1_000_000
MAX_PER_ORDER_LIMIT = 100
# Optimistic retries when a hold changed between our read and our write (rare: the
# same user racing themselves, or checkout/sweeper touching the hold meanwhile).
ATTEMPTS = 4


class TicketingError(DomainError):
    """An expected ticketing failure; `code` is one of `CODES`."""


class _Conflict(Exception):
    """The hold changed under us: roll back and start the operation again."""


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
)
TIER_COLUMNS = ", ".join(TIER_FIELDS)
T_COLUMNS = ", ".join(f"t.{name}" for name in TIER_FIELDS)
HOLD_FIELDS = (
    "id",
    "tier_id",
    "event_id",
    "user_id",
    "quantity",
    "status",
    "expires_at",
    "order_id",
    "created_at",
    "updated_at",
    "ended_at",
)
HOLD_COLUMNS = ", ".join(HOLD_FIELDS)
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

    @property
    def available(self) -> int:
        return self.quantity - self.reserved_quantity - self.issued_quantity

    @classmethod
    def from_row(cls, row: asyncpg.Record) -> TierRecord:
        return cls(**{name: row[name] for name in TIER_FIELDS})


@dataclass(frozen=True, slots=True)
class HoldRecord:
    id: uuid.UUID
    tier_id: uuid.UUID
    event_id: uuid.UUID
    user_id: uuid.UUID
    quantity: int
    status: str
    expires_at: datetime
    order_id: uuid.UUID | None
    created_at: datetime
    updated_at: datetime
    ended_at: datetime | None

    @classmethod
    def from_row(cls, row: asyncpg.Record) -> HoldRecord:
        return cls(**{name: row[name] for name in HOLD_FIELDS})


@dataclass(slots=True)
class SweepReport:
    expired_holds: int = 0
    freed_quantity: int = 0
    tiers: int = 0
    drift_fixed: int = 0
    errors: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "expired_holds": self.expired_holds,
            "freed_quantity": self.freed_quantity,
            "tiers": self.tiers,
            "drift_fixed": self.drift_fixed,
            "errors": self.errors,
        }


# --- reads -------------------------------------------------------------------------


async def get_tiers(database: Database, ids: list[uuid.UUID]) -> list[TierRecord | None]:
    """Tiers in the order of `ids` (a DataLoader batch: one query)."""
    async with connection(database) as conn:
        rows = await conn.fetch(
            f"SELECT {TIER_COLUMNS} FROM ticketing.ticket_tiers WHERE id = ANY($1::uuid[])", ids
        )
    by_id = {row["id"]: TierRecord.from_row(row) for row in rows}
    return [by_id.get(i) for i in ids]


async def tiers_for_events(
    database: Database, event_ids: list[uuid.UUID]
) -> list[list[TierRecord]]:
    """Each event's tiers in display order (a DataLoader batch: one query)."""
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


async def active_holds(database: Database, user_id: uuid.UUID, now: datetime) -> list[HoldRecord]:
    """The user's holds that still reserve capacity (active and not yet expired)."""
    async with connection(database) as conn:
        rows = await conn.fetch(
            f"""SELECT {HOLD_COLUMNS} FROM ticketing.ticket_holds
                 WHERE user_id = $1 AND status = 'active' AND expires_at > $2
                 ORDER BY expires_at, id""",
            user_id,
            now,
        )
    return [HoldRecord.from_row(row) for row in rows]


# --- tiers (organizer writes) ------------------------------------------------------

_CURRENCY = re.compile(r"^[a-z]{3}$")


def _validate_tier(fields: dict[str, Any]) -> None:
    """Raise INVALID_INPUT naming the first bad field, before any write."""

    def bad(message: str, name: str) -> TicketingError:
        return TicketingError(message, code="INVALID_INPUT", field=name)

    name = fields.get("name")
    if name is not None and not 1 <= len(name.strip()) <= 100:
        raise bad("Name must be 1 to 100 characters", "name")
    price = fields.get("price_cents")
    if price is not None and not 0 <= price <= 100_000_000:
        raise bad("Price must be between 0 and 1,000,000.00", "priceCents")
    currency = fields.get("currency")
    if currency is not None and not _CURRENCY.match(currency):
        raise bad("Currency must be a 3-letter ISO code, e.g. usd", "currency")
    quantity = fields.get("quantity")
    if quantity is not None and not 0 <= quantity <= MAX_TIER_QUANTITY:
        raise bad(f"Quantity must be between 0 and {MAX_TIER_QUANTITY}", "quantity")
    per_order = fields.get("max_per_order")
    if per_order is not None and not 1 <= per_order <= MAX_PER_ORDER_LIMIT:
        raise bad(f"Max per order must be between 1 and {MAX_PER_ORDER_LIMIT}", "maxPerOrder")
    status = fields.get("status")
    if status is not None and status not in ("active", "hidden", "closed"):
        raise bad(f"Unknown tier status '{status}'", "status")
    for key, gql in (("sales_start_at", "salesStartAt"), ("sales_end_at", "salesEndAt")):
        value = fields.get(key)
        if isinstance(value, datetime) and value.tzinfo is None:
            raise bad("Times must include a UTC offset", gql)
    start, end = fields.get("sales_start_at"), fields.get("sales_end_at")
    if start is not None and end is not None and end <= start:
        raise bad("Sales must end after they start", "salesEndAt")


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
        # Lock the event so it cannot be canceled or handed over while we add to it.
        event = await conn.fetchrow(
            "SELECT organizer_id, status FROM events.events WHERE id = $1 FOR UPDATE", event_id
        )
        if event is None:
            raise TicketingError("Event not found", code="EVENT_NOT_FOUND", field="eventId")
        if not actor.may_manage(event["organizer_id"]):
            raise TicketingError("Only the event's organizer may add tiers", code="NOT_ALLOWED")
        if event["status"] == "canceled":
            raise TicketingError("The event is canceled", code="EVENT_CANCELED")
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
    """
    unknown = set(changes) - set(TIER_EDITABLE)
    if unknown:
        raise ValueError(f"not editable: {sorted(unknown)}")
    for key in ("name", "price_cents", "currency", "quantity", "max_per_order", "status"):
        if key in changes and changes[key] is None:
            raise TicketingError(f"{key} cannot be empty", code="INVALID_INPUT", field=key)
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
            raise TicketingError("Tier not found", code="TIER_NOT_FOUND", field="tierId")
        if not actor.may_manage(row["organizer_id"]):
            raise TicketingError("Only the event's organizer may edit tiers", code="NOT_ALLOWED")
        tier = TierRecord.from_row(row)
        merged = {name: changes.get(name, getattr(tier, name)) for name in TIER_EDITABLE}
        _validate_tier(merged)
        taken = tier.reserved_quantity + tier.issued_quantity
        if merged["quantity"] < taken:
            freed = await _expire_tier_holds(conn, tier_id, now)
            if freed is not None:
                tier = TierRecord.from_row(freed)
                taken = tier.reserved_quantity + tier.issued_quantity
            if merged["quantity"] < taken:
                raise TicketingError(
                    f"Capacity cannot go below {taken}: {tier.issued_quantity} issued, "
                    f"{tier.reserved_quantity} reserved",
                    code="CAPACITY_BELOW_SOLD",
                    field="quantity",
                    minimum=taken,
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
    return TierRecord.from_row(updated)


# --- holds --------------------------------------------------------------------------

_TAKE = f"""UPDATE ticketing.ticket_tiers
               SET reserved_quantity = reserved_quantity + $2
             WHERE id = $1 AND quantity - reserved_quantity - issued_quantity >= $2
         RETURNING {TIER_COLUMNS}"""

_GIVE_BACK = f"""UPDATE ticketing.ticket_tiers
                    SET reserved_quantity = reserved_quantity - $2
                  WHERE id = $1
              RETURNING {TIER_COLUMNS}"""

_RETURN_SEATS = {
    counter: f"""UPDATE ticketing.ticket_tiers
                    SET {counter} = {counter} - $2, updated_at = $3
                  WHERE id = $1
              RETURNING id, event_id, quantity, reserved_quantity, issued_quantity, version"""
    for counter in ("reserved_quantity", "issued_quantity")
}


async def return_seats(
    conn: asyncpg.Connection,
    seats: Mapping[uuid.UUID, int],
    *,
    counter: Literal["reserved_quantity", "issued_quantity"],
    now: datetime,
) -> None:
    """Give `seats` (per tier) back from `counter`, in the caller's transaction.

    Tiers are updated in primary-key order, the order every writer locks them in, so
    two transactions returning seats of the same tiers never deadlock; each changed
    tier is announced to availability subscribers on commit.
    """
    for tier_id in sorted(seats):
        tier = await conn.fetchrow(_RETURN_SEATS[counter], tier_id, seats[tier_id], now)
        await announce_tier(conn, tier)


_EXPIRE_TIER = f"""WITH gone AS (
        UPDATE ticketing.ticket_holds
           SET status = 'expired', ended_at = $2, updated_at = $2
         WHERE tier_id = $1 AND status = 'active' AND expires_at <= $2
     RETURNING quantity
    ), freed AS (SELECT coalesce(sum(quantity), 0)::int AS n FROM gone)
    UPDATE ticketing.ticket_tiers t
       SET reserved_quantity = t.reserved_quantity - freed.n
      FROM freed
     WHERE t.id = $1 AND freed.n > 0
 RETURNING {T_COLUMNS}"""


async def _expire_tier_holds(
    conn: asyncpg.Connection, tier_id: uuid.UUID, now: datetime
) -> asyncpg.Record | None:
    """Release one tier's expired holds; returns the updated tier row if any were freed.

    Locks the tier first (lock order: tier, then holds), then expires and subtracts in
    one statement, and announces the freed capacity.
    """
    await conn.execute("SELECT 1 FROM ticketing.ticket_tiers WHERE id = $1 FOR UPDATE", tier_id)
    row: asyncpg.Record | None = await conn.fetchrow(_EXPIRE_TIER, tier_id, now)
    if row is not None:
        await announce_tier(conn, row)
    return row


_RESERVE_CONTEXT = f"""
SELECT {T_COLUMNS}, e.status AS event_status,
       h.id AS hold_id, h.quantity AS hold_quantity, h.order_id AS hold_order_id,
       h.expires_at AS hold_expires_at
  FROM ticketing.ticket_tiers t
  JOIN events.events e ON e.id = t.event_id
  LEFT JOIN ticketing.ticket_holds h
         ON h.tier_id = t.id AND h.user_id = $2 AND h.status = 'active'
 WHERE t.id = $1"""


def _check_on_sale(row: asyncpg.Record, quantity: int, now: datetime) -> None:
    if row["event_status"] != "published":
        raise TicketingError("The event is not on sale", code="EVENT_NOT_PUBLISHED")
    if row["status"] == "closed":
        raise TicketingError("Sales for this tier are closed", code="SALES_ENDED")
    if row["sales_start_at"] is not None and now < row["sales_start_at"]:
        raise TicketingError(
            "Sales have not opened yet", code="SALES_NOT_OPEN", opens_at=row["sales_start_at"]
        )
    if row["sales_end_at"] is not None and now >= row["sales_end_at"]:
        raise TicketingError("Sales have ended", code="SALES_ENDED")
    if quantity > row["max_per_order"]:
        raise TicketingError(
            f"At most {row['max_per_order']} per order",
            code="MAX_PER_ORDER_EXCEEDED",
            field="quantity",
            max_per_order=row["max_per_order"],
        )


_PROBE = """SELECT quantity - reserved_quantity - issued_quantity AS available,
                  EXISTS (SELECT 1 FROM ticketing.ticket_holds
                           WHERE tier_id = $1 AND status = 'active' AND expires_at <= $2)
                      AS ghosts
             FROM ticketing.ticket_tiers WHERE id = $1"""


@retry_transient
async def expire_tier_holds(database: Database, tier_id: uuid.UUID, now: datetime) -> None:
    """Release one tier's expired holds (and announce the freed seats), committed."""
    async with transaction(database) as conn:
        await _expire_tier_holds(conn, tier_id, now)


async def _take_after_expiring(
    conn: asyncpg.Connection,
    tier_id: uuid.UUID,
    delta: int,
    now: datetime,
    *,
    expired_already: bool = False,
) -> asyncpg.Record:
    """The conditional update found no room: release expired holds, try once more.

    The probe takes no lock, so a sold-out answer does not queue behind the buyers
    still being served. It is safe: no hold can newly become expired as of `now`
    (holds are created expiring in the future), so "no ghosts" stays true.
    """
    probe = await conn.fetchrow(_PROBE, tier_id, now)
    assert probe is not None
    available: int = probe["available"]
    if available >= delta:  # seats came back between the update and the probe
        tier: asyncpg.Record | None = await conn.fetchrow(_TAKE, tier_id, delta)
        if tier is not None:
            return tier
    if probe["ghosts"]:
        freed = await _expire_tier_holds(conn, tier_id, now)
        if freed is not None:
            tier = await conn.fetchrow(_TAKE, tier_id, delta)
            if tier is not None:
                return tier
            available = freed["quantity"] - freed["reserved_quantity"] - freed["issued_quantity"]
            raise _SoldOutAfterExpiring(available)
    if expired_already:
        raise _SoldOutAfterExpiring(available)
    raise _sold_out(available)


def _sold_out(available: int) -> TicketingError:
    return TicketingError(
        f"Sold out: {max(available, 0)} left",
        code="SOLD_OUT",
        field="quantity",
        available=max(available, 0),
    )


class _SoldOutAfterExpiring(Exception):
    """Sold out even after releasing the tier's expired holds.

    Raising rolls the buyer's transaction back, releases included; `reserve_tickets`
    then releases them again in a transaction of their own, so a refused buyer never
    leaves ghost reservations behind for the sweeper.
    """

    def __init__(self, available: int) -> None:
        super().__init__(available)
        self.available = available


async def reserve_tickets(
    database: Database,
    user_id: uuid.UUID,
    tier_id: uuid.UUID,
    quantity: int,
    *,
    now: datetime,
    ttl_seconds: int,
) -> HoldRecord:
    """Hold `quantity` seats of a tier for the user until ``now + ttl_seconds``.

    One transaction. A user's existing active hold on the tier is adjusted to the new
    quantity (only the difference is taken or given back) and its expiry refreshed,
    unless it is already attached to an order (`HOLD_IN_CHECKOUT`). Raises
    `TicketingError` with SOLD_OUT (details: ``available``), QUANTITY_INVALID,
    MAX_PER_ORDER_EXCEEDED, SALES_NOT_OPEN, SALES_ENDED, EVENT_NOT_PUBLISHED or
    TIER_NOT_FOUND. The user's profile must exist.
    """
    if quantity < 1:
        raise TicketingError(
            "Quantity must be at least 1", code="QUANTITY_INVALID", field="quantity"
        )
    expires_at = now + timedelta(seconds=ttl_seconds)
    for _ in range(ATTEMPTS):
        try:
            return await _reserve_once(database, user_id, tier_id, quantity, now, expires_at)
        except _Conflict:
            continue
        except _SoldOutAfterExpiring as sold_out:
            await expire_tier_holds(database, tier_id, now)
            raise _sold_out(sold_out.available) from None
        except asyncpg.UniqueViolationError as exc:
            # The same user's concurrent request inserted the hold first: adjust it.
            if exc.constraint_name != "ticket_holds_one_active":
                raise
    raise TicketingError("The hold changed concurrently; try again", code="CONFLICT")


@retry_transient
async def _reserve_once(
    database: Database,
    user_id: uuid.UUID,
    tier_id: uuid.UUID,
    quantity: int,
    now: datetime,
    expires_at: datetime,
) -> HoldRecord:
    async with transaction(database) as conn:
        context = await conn.fetchrow(_RESERVE_CONTEXT, tier_id, user_id)
        if context is None:
            raise TicketingError("Tier not found", code="TIER_NOT_FOUND", field="tierId")
        _check_on_sale(context, quantity, now)
        hold_id: uuid.UUID | None = context["hold_id"]
        held = 0
        lapsed = False
        if hold_id is not None:
            if context["hold_order_id"] is not None:
                raise TicketingError(
                    "This hold is in checkout; finish or cancel that order first",
                    code="HOLD_IN_CHECKOUT",
                )
            if context["hold_expires_at"] <= now:
                # The user's own hold lapsed: retire it like the sweeper would, start anew.
                await _expire_tier_holds(conn, tier_id, now)
                hold_id = None
                lapsed = True
            else:
                held = context["hold_quantity"]
        delta = quantity - held
        # The tier first (lock order), by the conditional update itself: a buyer waits
        # for the tier only while another transaction holds it.
        tier: asyncpg.Record | None = None
        if delta > 0:
            tier = await conn.fetchrow(_TAKE, tier_id, delta)
            if tier is None:
                tier = await _take_after_expiring(conn, tier_id, delta, now, expired_already=lapsed)
        elif delta < 0:
            tier = await conn.fetchrow(_GIVE_BACK, tier_id, -delta)
        row: asyncpg.Record | None
        if hold_id is None:
            row = await conn.fetchrow(
                f"""INSERT INTO ticketing.ticket_holds
                        (tier_id, event_id, user_id, quantity, expires_at, created_at, updated_at)
                    VALUES ($1, $2, $3, $4, $5, $6, $6)
                    RETURNING {HOLD_COLUMNS}""",
                tier_id,
                context["event_id"],
                user_id,
                quantity,
                expires_at,
                now,
            )
        else:
            row = await conn.fetchrow(
                f"""UPDATE ticketing.ticket_holds
                       SET quantity = $2, expires_at = $3, updated_at = $4
                     WHERE id = $1 AND status = 'active' AND order_id IS NULL
                       AND quantity = $5
                 RETURNING {HOLD_COLUMNS}""",
                hold_id,
                quantity,
                expires_at,
                now,
                held,
            )
            if row is None:
                raise _Conflict
        if tier is not None:
            await announce_tier(conn, tier)
    assert row is not None
    return HoldRecord.from_row(row)


async def release_hold(
    database: Database, actor: Actor, hold_id: uuid.UUID, now: datetime
) -> HoldRecord:
    """Give a hold's seats back. Idempotent for holds already released or expired.

    Raises HOLD_NOT_FOUND (also for another user's hold) or HOLD_IN_CHECKOUT.
    """
    for _ in range(ATTEMPTS):
        try:
            return await _release_once(database, actor, hold_id, now)
        except _Conflict:
            continue
    raise TicketingError("The hold changed concurrently; try again", code="CONFLICT")


@retry_transient
async def _release_once(
    database: Database, actor: Actor, hold_id: uuid.UUID, now: datetime
) -> HoldRecord:
    async with transaction(database) as conn:
        found = await conn.fetchrow(
            f"SELECT {HOLD_COLUMNS} FROM ticketing.ticket_holds WHERE id = $1", hold_id
        )
        if found is None or not (actor.is_admin or found["user_id"] == actor.user_id):
            raise TicketingError("Hold not found", code="HOLD_NOT_FOUND", field="holdId")
        hold = HoldRecord.from_row(found)
        if hold.status in ("released", "expired"):
            return hold
        if hold.status == "converted":
            raise TicketingError("This hold became tickets", code="HOLD_NOT_FOUND")
        if hold.order_id is not None:
            raise TicketingError(
                "This hold is in checkout; cancel that order instead", code="HOLD_IN_CHECKOUT"
            )
        # Lock order: the tier, then the hold; a checkout that got the hold meanwhile
        # makes the update below match nothing, and the retry reports HOLD_IN_CHECKOUT.
        await conn.execute(
            "SELECT 1 FROM ticketing.ticket_tiers WHERE id = $1 FOR UPDATE", hold.tier_id
        )
        row = await conn.fetchrow(
            f"""UPDATE ticketing.ticket_holds
                   SET status = 'released', ended_at = $2, updated_at = $2
                 WHERE id = $1 AND status = 'active' AND order_id IS NULL
             RETURNING {HOLD_COLUMNS}""",
            hold_id,
            now,
        )
        if row is None:
            raise _Conflict
        tier = await conn.fetchrow(_GIVE_BACK, hold.tier_id, row["quantity"])
        await announce_tier(conn, tier)
    return HoldRecord.from_row(row)


# --- sweeper ------------------------------------------------------------------------

_SWEEP_BATCH = f"""WITH gone AS (
        UPDATE ticketing.ticket_holds
           SET status = 'expired', ended_at = $2, updated_at = $2
         WHERE tier_id = ANY($1::uuid[]) AND status = 'active' AND expires_at <= $2
     RETURNING tier_id, quantity
    ), freed AS (
        SELECT tier_id, sum(quantity)::int AS n, count(*)::int AS holds
          FROM gone GROUP BY tier_id
    )
    UPDATE ticketing.ticket_tiers t
       SET reserved_quantity = t.reserved_quantity - freed.n
      FROM freed
     WHERE t.id = freed.tier_id
 RETURNING {T_COLUMNS}, freed.n AS freed, freed.holds AS holds"""

_DRIFTED = """
SELECT t.id FROM ticketing.ticket_tiers t
  LEFT JOIN (SELECT tier_id, sum(quantity)::int AS held FROM ticketing.ticket_holds
              WHERE status = 'active' GROUP BY tier_id) h ON h.tier_id = t.id
 WHERE t.reserved_quantity <> coalesce(h.held, 0)
 ORDER BY t.id"""

_FIX_DRIFT = f"""
UPDATE ticketing.ticket_tiers t
   SET reserved_quantity = coalesce(
        (SELECT sum(quantity) FROM ticketing.ticket_holds h
          WHERE h.tier_id = t.id AND h.status = 'active'), 0)
 WHERE t.id = $1
   AND t.reserved_quantity <> coalesce(
        (SELECT sum(quantity) FROM ticketing.ticket_holds h
          WHERE h.tier_id = t.id AND h.status = 'active'), 0)
RETURNING {T_COLUMNS}"""


async def sweep_expired_holds(
    database: Database, now: datetime, *, batch_size: int = 100
) -> SweepReport:
    """Expire every hold whose time is up and give its seats back; then fix drift.

    Tiers are processed in batches, one transaction per batch, locking the batch's
    tiers in primary-key order before touching their holds. Afterwards any tier whose
    `reserved_quantity` differs from the sum of its active holds (drift left by a bug
    or a manual edit) is recomputed, so after a sweep reserved == sum of active,
    unexpired holds.
    """
    report = SweepReport()
    while True:
        async with connection(database) as conn:
            tier_ids = await conn.fetch(
                """SELECT DISTINCT tier_id FROM ticketing.ticket_holds
                    WHERE status = 'active' AND expires_at <= $1
                    ORDER BY tier_id LIMIT $2""",
                now,
                batch_size,
            )
        if not tier_ids:
            break
        ids = [r["tier_id"] for r in tier_ids]
        rows = await _sweep_batch(database, ids, now)
        report.tiers += len(rows)
        report.expired_holds += sum(r["holds"] for r in rows)
        report.freed_quantity += sum(r["freed"] for r in rows)
        if len(ids) < batch_size:
            break
    await _fix_drift(database, report)
    return report


@retry_transient
async def _sweep_batch(
    database: Database, tier_ids: list[uuid.UUID], now: datetime
) -> list[asyncpg.Record]:
    """Expire one batch of tiers' lapsed holds in one transaction (tiers locked first)."""
    async with transaction(database) as conn:
        await conn.execute(
            """SELECT 1 FROM ticketing.ticket_tiers WHERE id = ANY($1::uuid[])
                ORDER BY id FOR UPDATE""",
            tier_ids,
        )
        rows: list[asyncpg.Record] = await conn.fetch(_SWEEP_BATCH, tier_ids, now)
        for row in sorted(rows, key=lambda r: r["id"]):
            await announce_tier(conn, row)
    return rows


async def _fix_drift(database: Database, report: SweepReport) -> None:
    async with connection(database) as conn:
        drifted = [r["id"] for r in await conn.fetch(_DRIFTED)]
    for tier_id in drifted:  # rare: one short transaction per tier
        try:
            if await _fix_tier_drift(database, tier_id):
                report.drift_fixed += 1
        except asyncpg.CheckViolationError as exc:
            # Active holds plus issued exceed capacity: needs a human, not a guess.
            report.errors.append(f"tier {tier_id}: {exc.constraint_name}")


@retry_transient
async def _fix_tier_drift(database: Database, tier_id: uuid.UUID) -> bool:
    """Recount one tier's reserved seats under its lock; True if it had drifted."""
    async with transaction(database) as conn:
        await conn.execute("SELECT 1 FROM ticketing.ticket_tiers WHERE id = $1 FOR UPDATE", tier_id)
        row = await conn.fetchrow(_FIX_DRIFT, tier_id)
        if row is not None:
            await announce_tier(conn, row)
    return row is not None
