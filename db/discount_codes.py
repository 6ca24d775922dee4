"""Discount and comp codes: the records, the organizer's writes, pricing, and usage.

A code belongs to one event and is unique within it whatever its case (a unique index
on ``upper(code)``); buyers may type it in any case. It takes off a percentage
(PERCENT), a fixed amount in one currency (FIXED, once per order), or everything
(COMP), from the whole order or, when it names a tier, from that tier's tickets only.
Its uses (reserved by pending orders, paid) are written only by `db.code_uses`; this
module reads them. Who may manage a code is who manages its event
(`db.events.Actor.may_manage`), checked under the event's or the code's lock.

Errors: `TicketingError` for the organizer's writes (INVALID_INPUT, EVENT_NOT_FOUND,
NOT_ALLOWED, EVENT_CANCELED, TIER_NOT_FOUND, CODE_NOT_FOUND, CODE_TAKEN,
MAX_USES_BELOW_USES with ``minimum``); `OrderError(CODE_NOT_APPLICABLE)` from `discount`.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg
from databases import Database

from db.core import connection, retry_transient, transaction
from db.errors import OrderCode, OrderError, TicketingCode, TicketingError
from db.events import Actor, lock_managed_event

KINDS = ("percent", "fixed", "comp")
MAX_USES_LIMIT = 1_000_000
PER_USER_LIMIT = 1000
MAX_AMOUNT_CENTS = 100_000_000
_CODE = re.compile(r"^[A-Za-z0-9_-]{3,40}$")
_CURRENCY = re.compile(r"^[a-z]{3}$")

CODE_FIELDS = (
    "id",
    "event_id",
    "code",
    "kind",
    "percent_off",
    "amount_off_cents",
    "currency",
    "tier_id",
    "max_uses",
    "per_user_limit",
    "starts_at",
    "ends_at",
    "enabled",
    "uses_reserved",
    "uses_paid",
    "created_at",
    "updated_at",
)
CODE_COLUMNS = ", ".join(CODE_FIELDS)
C_COLUMNS = ", ".join(f"c.{name}" for name in CODE_FIELDS)
# What the organizer may change after creation; the others would reprice past orders.
CODE_EDITABLE = ("enabled", "starts_at", "ends_at", "max_uses", "per_user_limit")
CODE_CLEARABLE = ("starts_at", "ends_at", "per_user_limit")


@dataclass(frozen=True, slots=True)
class DiscountCodeRecord:
    id: uuid.UUID
    event_id: uuid.UUID
    code: str
    kind: str
    percent_off: int | None
    amount_off_cents: int | None
    currency: str | None
    tier_id: uuid.UUID | None
    max_uses: int
    per_user_limit: int | None
    starts_at: datetime | None
    ends_at: datetime | None
    enabled: bool
    uses_reserved: int
    uses_paid: int
    created_at: datetime
    updated_at: datetime

    @classmethod
    def from_row(cls, row: asyncpg.Record) -> DiscountCodeRecord:
        return cls(**{name: row[name] for name in CODE_FIELDS})


@dataclass(frozen=True, slots=True)
class CodeUsage:
    """A code with what it brought: its paid orders (refunded ones left out), their
    revenue net of partial refunds, and the discount they were given."""

    code: DiscountCodeRecord
    paid_orders: int
    revenue_cents: int
    discount_cents: int


@dataclass(frozen=True, slots=True)
class Line:
    """One tier of an order being priced: its price and how many tickets."""

    tier_id: uuid.UUID
    unit_price_cents: int
    quantity: int


# --- pricing --------------------------------------------------------------------------


def discount(code: DiscountCodeRecord, lines: list[Line], currency: str) -> int:
    """What `code` takes off an order of `lines` priced in `currency`, in minor units.

    Never more than the eligible subtotal (the lines of the code's tier, or all), so an
    order's total never goes below zero. PERCENT rounds down (the buyer never pays less
    than the percentage says); FIXED applies once per order. Raises
    `OrderError(CODE_NOT_APPLICABLE)` when the code names a tier the order does not
    buy, or is FIXED in another currency.
    """
    eligible = [line for line in lines if code.tier_id in (None, line.tier_id)]
    if not eligible:
        raise OrderError(
            "This code is not valid for these tickets",
            code=OrderCode.CODE_NOT_APPLICABLE,
            field="code",
        )
    subtotal = sum(line.unit_price_cents * line.quantity for line in eligible)
    if code.kind == "comp":
        return subtotal
    if code.kind == "percent":
        assert code.percent_off is not None
        return subtotal * code.percent_off // 100
    assert code.amount_off_cents is not None
    if code.currency != currency:
        raise OrderError(
            f"This code is in {(code.currency or '').upper()}, the tickets in {currency.upper()}",
            code=OrderCode.CODE_NOT_APPLICABLE,
            field="code",
        )
    return min(code.amount_off_cents, subtotal)


async def find_code(
    conn: asyncpg.Connection, event_id: uuid.UUID, text: str
) -> DiscountCodeRecord | None:
    """The event's code spelled `text` in any case (a read without lock)."""
    if not _CODE.match(text):
        return None
    row = await conn.fetchrow(
        f"""SELECT {CODE_COLUMNS} FROM ticketing.discount_codes
             WHERE event_id = $1 AND upper(code) = upper($2)""",
        event_id,
        text,
    )
    return DiscountCodeRecord.from_row(row) if row else None


async def get_code(conn: asyncpg.Connection, code_id: uuid.UUID) -> DiscountCodeRecord:
    """A code read in the caller's transaction (after `db.code_uses.lock_codes`)."""
    row = await conn.fetchrow(
        f"SELECT {CODE_COLUMNS} FROM ticketing.discount_codes WHERE id = $1", code_id
    )
    assert row is not None
    return DiscountCodeRecord.from_row(row)


# --- organizer writes -----------------------------------------------------------------


def _bad(message: str, field: str) -> TicketingError:
    return TicketingError(message, code=TicketingCode.INVALID_INPUT, field=field)


def _validate_limits(fields: Mapping[str, Any]) -> None:
    """INVALID_INPUT naming the first bad field among the editable ones."""
    max_uses = fields.get("max_uses")
    if max_uses is not None and not 0 <= max_uses <= MAX_USES_LIMIT:
        raise _bad(f"Max uses must be between 0 and {MAX_USES_LIMIT}", "max_uses")
    per_user = fields.get("per_user_limit")
    if per_user is not None and not 1 <= per_user <= PER_USER_LIMIT:
        raise _bad(f"Per-user limit must be between 1 and {PER_USER_LIMIT}", "per_user_limit")
    for key in ("starts_at", "ends_at"):
        value = fields.get(key)
        if isinstance(value, datetime) and value.tzinfo is None:
            raise _bad("Times must include a UTC offset", key)
    start, end = fields.get("starts_at"), fields.get("ends_at")
    if start is not None and end is not None and end <= start:
        raise _bad("A code must end after it starts", "ends_at")


def _validate_new(fields: Mapping[str, Any]) -> None:
    """INVALID_INPUT naming the first bad field of a new code, before any write."""
    if not _CODE.match(fields["code"]):
        raise _bad("A code is 3 to 40 letters, digits, '-' or '_'", "code")
    kind = fields["kind"]
    if kind not in KINDS:
        raise _bad(f"Unknown code kind '{kind}'", "kind")
    percent, amount = fields["percent_off"], fields["amount_off_cents"]
    if kind == "percent" and (percent is None or not 1 <= percent <= 100):
        raise _bad("A percent code takes 1 to 100 percent off", "percent_off")
    if kind != "percent" and percent is not None:
        raise _bad("Only a percent code has a percentage", "percent_off")
    if kind == "fixed" and (amount is None or not 1 <= amount <= MAX_AMOUNT_CENTS):
        raise _bad("A fixed code takes 0.01 to 1,000,000.00 off", "amount_off_cents")
    if kind != "fixed" and amount is not None:
        raise _bad("Only a fixed code has an amount", "amount_off_cents")
    currency = fields["currency"]
    if currency is not None and not _CURRENCY.match(currency):
        raise _bad("Currency must be a 3-letter ISO code, e.g. usd", "currency")
    if fields["max_uses"] < 1:
        raise _bad("A new code allows at least one use", "max_uses")
    _validate_limits(fields)


@dataclass(frozen=True, slots=True)
class CodeDraft:
    """A new code as the organizer described it (see `create_code`)."""

    code: str
    kind: str
    max_uses: int
    percent_off: int | None = None
    amount_off_cents: int | None = None
    currency: str | None = None
    tier_id: uuid.UUID | None = None
    per_user_limit: int | None = None
    starts_at: datetime | None = None
    ends_at: datetime | None = None
    enabled: bool = True


@retry_transient
async def create_code(
    database: Database, actor: Actor, event_id: uuid.UUID, draft: CodeDraft, now: datetime
) -> DiscountCodeRecord:
    """Add a code to an event the actor manages (not a canceled one).

    A FIXED code is in `currency`, by default its tier's (or usd). The event's row is
    locked first, so two codes of the same spelling cannot both pass the CODE_TAKEN
    check. Raises `TicketingError` (see the module docstring).
    """
    fields: dict[str, Any] = {
        "code": draft.code.strip(),
        "kind": draft.kind,
        "percent_off": draft.percent_off,
        "amount_off_cents": draft.amount_off_cents,
        "currency": draft.currency.lower() if draft.currency else None,
        "tier_id": draft.tier_id,
        "max_uses": draft.max_uses,
        "per_user_limit": draft.per_user_limit,
        "starts_at": draft.starts_at,
        "ends_at": draft.ends_at,
        "enabled": draft.enabled,
    }
    _validate_new(fields)
    async with transaction(database) as conn:
        await lock_managed_event(conn, actor, event_id, action="manage its codes")
        fields["currency"] = await _code_currency(conn, event_id, fields)
        taken = await conn.fetchval(
            """SELECT 1 FROM ticketing.discount_codes
                WHERE event_id = $1 AND upper(code) = upper($2)""",
            event_id,
            fields["code"],
        )
        if taken:
            raise TicketingError(
                "This event already has that code", code=TicketingCode.CODE_TAKEN, field="code"
            )
        names = ", ".join(fields)
        values = ", ".join(f"${i}" for i in range(2, len(fields) + 2))
        row = await conn.fetchrow(
            f"""INSERT INTO ticketing.discount_codes
                    (event_id, {names}, created_at, updated_at)
                VALUES ($1, {values}, ${len(fields) + 2}, ${len(fields) + 2})
                RETURNING {CODE_COLUMNS}""",
            event_id,
            *fields.values(),
            now,
        )
    assert row is not None
    return DiscountCodeRecord.from_row(row)


async def _code_currency(
    conn: asyncpg.Connection, event_id: uuid.UUID, fields: Mapping[str, Any]
) -> str | None:
    """The currency a new code is stored with: a FIXED code's (its tier's by default),
    none for the others. TIER_NOT_FOUND for a tier of another event."""
    tier_currency = None
    if fields["tier_id"] is not None:
        tier_currency = await conn.fetchval(
            "SELECT currency FROM ticketing.ticket_tiers WHERE id = $1 AND event_id = $2",
            fields["tier_id"],
            event_id,
        )
        if tier_currency is None:
            raise TicketingError(
                "Tier not found", code=TicketingCode.TIER_NOT_FOUND, field="tier_id"
            )
    if fields["kind"] != "fixed":
        return None
    currency: str = fields["currency"] or tier_currency or "usd"
    if tier_currency is not None and currency != tier_currency:
        raise _bad(f"The tier is priced in {tier_currency.upper()}", "currency")
    return currency


@retry_transient
async def update_code(
    database: Database,
    actor: Actor,
    code_id: uuid.UUID,
    changes: Mapping[str, Any],
    now: datetime,
) -> DiscountCodeRecord:
    """Switch a code on or off, move its window, change its limits.

    `max_uses` may not go below the uses taken (paid and reserved): MAX_USES_BELOW_USES
    with ``minimum``. The code's row is locked, so no checkout takes a use between the
    check and the write. Raises `TicketingError` (see the module docstring).
    """
    unknown = set(changes) - set(CODE_EDITABLE)
    if unknown:
        raise ValueError(f"not editable: {sorted(unknown)}")
    for key in CODE_EDITABLE:
        if key in changes and changes[key] is None and key not in CODE_CLEARABLE:
            raise _bad(f"{key} cannot be empty", key)
    _validate_limits(changes)
    async with transaction(database) as conn:
        row = await conn.fetchrow(
            f"""SELECT {C_COLUMNS}, e.organizer_id
                  FROM ticketing.discount_codes c JOIN events.events e ON e.id = c.event_id
                 WHERE c.id = $1 FOR NO KEY UPDATE OF c""",
            code_id,
        )
        if row is None or not actor.may_manage(row["organizer_id"]):
            raise TicketingError("Code not found", code=TicketingCode.CODE_NOT_FOUND, field="id")
        code = DiscountCodeRecord.from_row(row)
        merged = {name: changes.get(name, getattr(code, name)) for name in CODE_EDITABLE}
        _validate_limits(merged)
        used = code.uses_paid + code.uses_reserved
        if merged["max_uses"] < used:
            raise TicketingError(
                f"Max uses cannot go below the {used} uses taken",
                code=TicketingCode.MAX_USES_BELOW_USES,
                field="max_uses",
                minimum=used,
            )
        updated = await conn.fetchrow(
            f"""UPDATE ticketing.discount_codes
                   SET enabled = $2, starts_at = $3, ends_at = $4, max_uses = $5,
                       per_user_limit = $6, updated_at = $7
                 WHERE id = $1 RETURNING {CODE_COLUMNS}""",
            code_id,
            *(merged[name] for name in CODE_EDITABLE),
            now,
        )
    assert updated is not None
    return DiscountCodeRecord.from_row(updated)


# --- reads ----------------------------------------------------------------------------

_USAGE = f"""SELECT {C_COLUMNS}, e.organizer_id,
                    count(o.id)::int AS paid_orders,
                    coalesce(sum(o.total_cents - o.refunded_cents), 0)::bigint AS revenue,
                    coalesce(sum(o.discount_cents), 0)::bigint AS given
               FROM ticketing.discount_codes c
               JOIN events.events e ON e.id = c.event_id
               LEFT JOIN ticketing.orders o
                 ON o.discount_code_id = c.id AND o.status IN ('paid', 'partially_refunded')"""


def _usage(row: asyncpg.Record) -> CodeUsage:
    return CodeUsage(
        code=DiscountCodeRecord.from_row(row),
        paid_orders=row["paid_orders"],
        revenue_cents=row["revenue"],
        discount_cents=row["given"],
    )


async def event_codes(database: Database, actor: Actor, event_id: uuid.UUID) -> list[CodeUsage]:
    """An event's codes, newest first, with their uses and revenue: for those who manage
    the event (EVENT_NOT_FOUND for others, as for an unknown event)."""
    async with connection(database) as conn:
        organizer = await conn.fetchval(
            "SELECT organizer_id FROM events.events WHERE id = $1", event_id
        )
        if organizer is None or not actor.may_manage(organizer):
            raise TicketingError(
                "Event not found", code=TicketingCode.EVENT_NOT_FOUND, field="event_id"
            )
        rows = await conn.fetch(
            f"""{_USAGE} WHERE c.event_id = $1
                 GROUP BY c.id, e.organizer_id ORDER BY c.created_at DESC, c.id""",
            event_id,
        )
    return [_usage(row) for row in rows]


async def code_usage(database: Database, actor: Actor, code_id: uuid.UUID) -> CodeUsage | None:
    """One code with its uses and revenue, if the actor manages its event; else None."""
    async with connection(database) as conn:
        row = await conn.fetchrow(
            f"{_USAGE} WHERE c.id = $1 GROUP BY c.id, e.organizer_id", code_id
        )
    if row is None or not actor.may_manage(row["organizer_id"]):
        return None
    return _usage(row)
