"""Capacity: the one module that writes tier counters and hold states.

`ticketing.ticket_tiers.reserved_quantity` / `issued_quantity` and the rows of
`ticketing.ticket_holds` (created, resized, attached to an order, released, expired,
converted) are written here and nowhere else (tests/test_capacity_owner.py greps for
strays). Every function takes the open connection of the caller's transaction, so it
commits or rolls back with the business operation that called it (`reserve` is a
statement that is its own transaction); each change to a tier's counters is announced
with `db.notify.announce_tier` in that same transaction. (Longer than the other
modules on purpose: every write of capacity is here, so it is reviewed, and its locks
checked against the order below, in one place.)

One part of this module runs inside PostgreSQL: a buyer's hold (`reserve`) is the
server-side function `ticketing.reserve_hold` (with its helpers
`ticketing.expire_lapsed_holds` and `ticketing.announce_tier`), created by
`db/migrations/0010_reserve_hold_function.sql` (replaced by `0012_waitlist.sql`) and
called by `reserve` alone. It is
this module's SQL, kept beside the rows so that the whole hold (release of the tier's
lapsed holds, the conditional update, the hold's insert or resize, the announcement)
is one statement: one round trip, and the tier's row lock held for the microseconds
the function runs instead of across client round trips. A change to its rules is a
new migration that replaces the function.

The database arbitrates capacity. Taking seats is one conditional update::

    UPDATE ticketing.ticket_tiers SET reserved_quantity = reserved_quantity + $n
     WHERE id = $1 AND quantity - reserved_quantity - issued_quantity >= $n RETURNING ...

which cannot oversell under READ COMMITTED (the second writer re-checks the row after
the first commits), and the CHECK constraints on the table back it up. Zero rows means
sold out, but only after the tier's expired holds were released and the update tried
again, so an expired hold never blocks a buyer. A refusal that a read without locks
already proves (the tier had no room and none of its holds had lapsed) is answered
before any lock, so refusals of a sold-out tier never queue on its row.

Capacity freed goes to the waitlist first. Every path here that gives seats back (a
hold released, made smaller or expired, tickets refunded, drift repaired) and a
capacity raise (`db.tiers.update_tier`) calls `offer_freed` in the same transaction,
right after the seats came back: the one owner of "capacity freed", the server-side
function `ticketing.offer_freed_seats` (`db/migrations/0012_waitlist.sql`, also called
by `ticketing.reserve_hold` when it releases lapsed holds or shrinks a hold). It walks
the tier's waiting entries by join time and offers each entry whose quantity fits the
seats still free a hold of its own (the offer: a hold like any other, expiring after
the event's offer window), skipping, without moving it, an entry that does not fit.
The public rule, kept by the conditional update of `ticketing.reserve_hold`: a public
hold takes only seats the waiting entries do not need,
``quantity - reserved_quantity - issued_quantity - waitlist_demand``, where
`waitlist_demand` (on the tier's row, so the conditional update re-checks it) is the sum
of the waiting entries' quantities (an entry pending approval is not waiting, so it
asks for nothing); `wait_for_seats` adds to it and takes from it (`db.waitlist` joins
and leaves, `db.waitlist_approval` approvals and declines), `offer_freed_seats` takes
what it offered. So freed
seats never reach the public while an entry that fits is waiting, and seats left over
after the offers stay with the waitlist until a waiting group fits or leaves.

Lock order. Every transaction that touches tiers or holds takes row locks in this one
order, written here once::

    ticketing.orders                  (by primary key: checkout, completion, refunds)
      → ticketing.discount_codes      (by primary key: the orders' codes, `db.code_uses`)
        → ticketing.ticket_tiers      (by primary key)
          → ticketing.waitlist_entries  (of a locked tier only, by join time)
            → ticketing.ticket_holds    (by primary key)
              → ticketing.tickets       (by primary key)
                → ticketing.ticket_tokens

A transaction may skip a level, and may touch again a row it already holds, but never
goes back up to a level it passed. Waitlist entries are locked and written only by a
transaction that holds their tier's row lock (FOR UPDATE or FOR NO KEY UPDATE, which
conflict with each other), so their own locks are never waited for: a refund that
reaches its tickets and then offers the seats it freed to the tier's entries cannot
close a cycle. A discount code's redemption rows
(`ticketing.discount_redemptions`) are written only under their order's lock.
Implicit locks count: inserting a row that refers to a tier (a hold, an order item, a
ticket) takes FOR KEY SHARE on the tier through the foreign key, so a transaction
that will do so after locking holds locks those tiers first (checkout takes FOR KEY
SHARE on its tiers before its holds; a new hold is
inserted after the conditional update has locked its tier). FOR KEY SHARE does not
conflict with the plain UPDATE of a tier's counters, so checkout never queues behind
buyers, only behind the FOR UPDATE of a release, an expiry, a sweep, a drift repair or
a completion. `ticketing.reserve_hold` keeps the same order: the tier (by the
conditional update; FOR UPDATE when it resizes the buyer's own hold, as a release
does, or releases lapsed holds), then the hold. Reads take no lock; `events.events`
and `users.profiles` rows come last (foreign keys lock them; their own writers lock
nothing of ticketing after them). Whatever still collides (a serialization failure,
or a deadlock with code outside this order) is retried by `db.core.retry_transient`
around each transaction.

Errors: `TicketingError` with a `TicketingCode`, from `reserve` (SOLD_OUT carries
``available``: the seats the public may still take).
"""

from __future__ import annotations

import uuid
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

import asyncpg
import orjson

from db import notification_triggers
from db.channels import NOTIFY_CHANNEL, TierMessage
from db.errors import TicketingCode, TicketingError
from db.notify import announce_tier, sent_by_sql

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
# What every counter write returns: the columns `announce_tier` publishes.
COUNTERS = "id, event_id, quantity, reserved_quantity, issued_quantity, version, waitlist_demand"
_T_COUNTERS = ", ".join(f"t.{name}" for name in COUNTERS.split(", "))


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


# --- a buyer's hold, in one statement -----------------------------------------------

_RESERVE = f"""SELECT r.outcome, r.seats_free, r.order_limit, r.sales_open_at, r.notices,
                      r.offers,
                      {", ".join(f"(r.hold).{name}" for name in HOLD_FIELDS)}
                 FROM ticketing.reserve_hold($1, $2, $3, $4, $5, $6) r"""


def sold_out(available: int) -> TicketingError:
    return TicketingError(
        f"Sold out: {max(available, 0)} left",
        code=TicketingCode.SOLD_OUT,
        field="quantity",
        available=max(available, 0),
    )


def _refusal(row: asyncpg.Record) -> TicketingError:
    """The typed error for an outcome of `ticketing.reserve_hold` other than 'held'."""
    outcome: str = row["outcome"]
    if outcome == "SOLD_OUT":
        return sold_out(row["seats_free"])
    if outcome == "TIER_NOT_FOUND":
        return TicketingError("Tier not found", code=TicketingCode.TIER_NOT_FOUND, field="tier_id")
    if outcome == "EVENT_NOT_PUBLISHED":
        return TicketingError("The event is not on sale", code=TicketingCode.EVENT_NOT_PUBLISHED)
    if outcome == "SALES_CLOSED":
        return TicketingError("Sales for this tier are closed", code=TicketingCode.SALES_ENDED)
    if outcome == "SALES_NOT_OPEN":
        return TicketingError(
            "Sales have not opened yet",
            code=TicketingCode.SALES_NOT_OPEN,
            opens_at=row["sales_open_at"],
        )
    if outcome == "SALES_ENDED":
        return TicketingError("Sales have ended", code=TicketingCode.SALES_ENDED)
    if outcome == "MAX_PER_ORDER_EXCEEDED":
        return TicketingError(
            f"At most {row['order_limit']} per order",
            code=TicketingCode.MAX_PER_ORDER_EXCEEDED,
            field="quantity",
            max_per_order=row["order_limit"],
        )
    if outcome == "HOLD_IN_CHECKOUT":
        return TicketingError(
            "This hold is in checkout; finish or cancel that order first",
            code=TicketingCode.HOLD_IN_CHECKOUT,
        )
    if outcome == "OFFER_HELD":
        return TicketingError(
            "You hold a waitlist offer for this tier: check it out, or leave the waitlist",
            code=TicketingCode.OFFER_HELD,
        )
    raise RuntimeError(f"ticketing.reserve_hold answered an unknown outcome {outcome!r}")


async def reserve(
    conn: asyncpg.Connection,
    *,
    tier_id: uuid.UUID,
    user_id: uuid.UUID,
    quantity: int,
    now: datetime,
    expires_at: datetime,
) -> HoldRecord | TicketingError:
    """Hold `quantity` (≥ 1) seats of the tier for the user until `expires_at`: the
    whole hold in one statement, `ticketing.reserve_hold` (see the migration for its
    steps). The user's active hold on the tier is resized (only the difference is
    taken or given back) and its expiry refreshed; otherwise a new hold is made.

    Run it as a statement of its own on a connection outside any transaction, so that
    it commits as it returns and the tier's row lock lasts only as long as the function
    runs; inside a transaction it is still correct, only the lock lasts until that
    transaction ends. Wrap it in `db.notify.recording`: the announcements it made are
    recorded for this process's subscribers, to be handed on once it has committed.

    Returns the hold, or the `TicketingError` to raise (SOLD_OUT with ``available``,
    TIER_NOT_FOUND, EVENT_NOT_PUBLISHED, SALES_NOT_OPEN with ``opens_at``, SALES_ENDED,
    MAX_PER_ORDER_EXCEEDED with ``max_per_order``, HOLD_IN_CHECKOUT, OFFER_HELD). The
    public takes only seats the waitlist does not need; seats the function freed (lapsed
    holds, a smaller hold) were offered to the waitlist in the same statement, and those
    offers are notified right after it, in a transaction of their own (the
    notification's dedupe key makes a repeat harmless). The error is
    returned, not raised, because a refusal may have committed the release of lapsed
    holds: the caller leaves `recording` normally, so those announcements are handed
    on, and then raises. A concurrent first hold by the same user raises
    `asyncpg.UniqueViolationError` (constraint ``ticket_holds_one_active``), having
    written nothing; running it again resizes that hold.
    """
    row = await conn.fetchrow(_RESERVE, tier_id, user_id, quantity, now, expires_at, NOTIFY_CHANNEL)
    assert row is not None
    for payload in row["notices"]:
        _sent_by_function(payload)
    if row["offers"]:
        async with conn.transaction():
            await notification_triggers.waitlist_offered(conn, row["offers"], now)
    if row["outcome"] != "held":
        return _refusal(row)
    return HoldRecord.from_row(row)


def _sent_by_function(payload: str) -> None:
    """Record a tier announcement a server-side function sent (`db.notify.sent_by_sql`)."""
    message = TierMessage.decode(orjson.loads(payload))
    if not isinstance(message, TierMessage):  # the function and db.channels disagree
        raise RuntimeError(f"a ticketing function announced {payload!r}")
    sent_by_sql(message)


# --- the waitlist: capacity freed is offered first --------------------------------------

_OFFER = "SELECT offered, notice FROM ticketing.offer_freed_seats($1, $2, $3)"


async def offer_freed(
    conn: asyncpg.Connection, tier_ids: Sequence[uuid.UUID], now: datetime
) -> list[uuid.UUID]:
    """Offer the tiers' free seats to their waitlists (`ticketing.offer_freed_seats`),
    in the caller's transaction: the one that freed them. Tiers in primary-key order;
    the entries offered are notified in the same transaction. Returns their ids.

    Call it after every change that can leave seats free while people wait: nothing
    can take them between the change and the offer, as both commit together.
    """
    offered: list[uuid.UUID] = []
    for tier_id in sorted(set(tier_ids)):
        row = await conn.fetchrow(_OFFER, tier_id, now, NOTIFY_CHANNEL)
        assert row is not None
        if row["notice"] is not None:
            _sent_by_function(row["notice"])
        offered.extend(row["offered"])
    if offered:
        await notification_triggers.waitlist_offered(conn, offered, now)
    return offered


async def wait_for_seats(
    conn: asyncpg.Connection, tier_id: uuid.UUID, seats: int, now: datetime
) -> asyncpg.Record:
    """Add `seats` (negative: take them) to what the tier's waiting entries ask for, the
    seats the public may not take; the caller holds the tier's row lock (`db.waitlist`)."""
    row: asyncpg.Record | None = await conn.fetchrow(
        f"""UPDATE ticketing.ticket_tiers
               SET waitlist_demand = waitlist_demand + $2, updated_at = $3
             WHERE id = $1 RETURNING {COUNTERS}""",
        tier_id,
        seats,
        now,
    )
    assert row is not None
    await announce_tier(conn, row)
    return row


# --- giving back seats ----------------------------------------------------------------

_GIVE_BACK = f"""UPDATE ticketing.ticket_tiers
                    SET reserved_quantity = reserved_quantity - $2
                  WHERE id = $1
              RETURNING {COUNTERS}"""

_RETURN_SEATS = {
    counter: f"""UPDATE ticketing.ticket_tiers
                    SET {counter} = {counter} - $2, updated_at = $3
                  WHERE id = $1
              RETURNING {COUNTERS}"""
    for counter in ("reserved_quantity", "issued_quantity")
}


async def give_back(
    conn: asyncpg.Connection, tier_id: uuid.UUID, seats: int, now: datetime
) -> None:
    """Un-reserve `seats` of the tier (a hold shrank or was released); the waitlist is
    offered them first."""
    tier = await conn.fetchrow(_GIVE_BACK, tier_id, seats)
    await announce_tier(conn, tier)
    await offer_freed(conn, [tier_id], now)


async def return_seats(
    conn: asyncpg.Connection,
    seats: Mapping[uuid.UUID, int],
    *,
    counter: Literal["reserved_quantity", "issued_quantity"],
    now: datetime,
) -> None:
    """Give `seats` (per tier) back from `counter`: released holds or refunded tickets;
    the waitlists are offered them first (`offer_freed`).

    Tiers are updated in primary-key order, the order every writer locks them in, so
    two transactions returning seats of the same tiers never deadlock.
    """
    for tier_id in sorted(seats):
        tier = await conn.fetchrow(_RETURN_SEATS[counter], tier_id, seats[tier_id], now)
        await announce_tier(conn, tier)
    await offer_freed(conn, list(seats), now)


async def give_back_voided_seats(
    conn: asyncpg.Connection, seats: Mapping[uuid.UUID, int], *, now: datetime
) -> None:
    """Seats of tickets a refund voided go back on sale (`seats` per tier).

    The one place where voided tickets free capacity: `issued_quantity` comes down,
    each tier's new availability is announced and the seats are offered to the tiers'
    waitlists (`return_seats`), in the caller's transaction (so only on commit), for
    every refund path.
    """
    await return_seats(conn, seats, counter="issued_quantity", now=now)


# --- expiry ---------------------------------------------------------------------------

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
 RETURNING {_T_COUNTERS}"""

_EXPIRE_BATCH = f"""WITH gone AS (
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
 RETURNING {_T_COUNTERS}, freed.n AS freed, freed.holds AS holds"""


async def expire_tier_holds(
    conn: asyncpg.Connection, tier_id: uuid.UUID, now: datetime
) -> asyncpg.Record | None:
    """Expire one tier's lapsed holds; the tier's counters if any seats were freed.

    Locks the tier first (tier, then holds), then expires and subtracts in one
    statement. It does not offer the freed seats: its caller (`db.tiers.update_tier`,
    which may be cutting capacity) calls `offer_freed` once the tier is final.
    """
    await conn.execute("SELECT 1 FROM ticketing.ticket_tiers WHERE id = $1 FOR UPDATE", tier_id)
    row: asyncpg.Record | None = await conn.fetchrow(_EXPIRE_TIER, tier_id, now)
    if row is not None:
        await announce_tier(conn, row)
    return row


async def expire_tiers_holds(
    conn: asyncpg.Connection, tier_ids: list[uuid.UUID], now: datetime
) -> list[asyncpg.Record]:
    """Expire the lapsed holds of several tiers (the sweeper's batch), tiers locked first
    in primary-key order, and offer the freed seats to their waitlists; one row per tier
    that freed seats, with ``freed`` and ``holds`` (the counters before the offers)."""
    await conn.execute(
        """SELECT 1 FROM ticketing.ticket_tiers WHERE id = ANY($1::uuid[])
            ORDER BY id FOR UPDATE""",
        tier_ids,
    )
    rows: list[asyncpg.Record] = await conn.fetch(_EXPIRE_BATCH, tier_ids, now)
    for row in sorted(rows, key=lambda r: r["id"]):
        await announce_tier(conn, row)
    await offer_freed(conn, [row["id"] for row in rows], now)
    return rows


# --- hold rows ------------------------------------------------------------------------


async def release_unattached(
    conn: asyncpg.Connection, hold: HoldRecord, now: datetime
) -> HoldRecord | None:
    """Release an active hold not attached to an order and give its seats back.

    Locks the tier, then the hold; None (nothing written) if a checkout attached the
    hold, or anything else changed it, meanwhile.
    """
    await conn.execute(
        "SELECT 1 FROM ticketing.ticket_tiers WHERE id = $1 FOR UPDATE", hold.tier_id
    )
    row = await conn.fetchrow(
        f"""UPDATE ticketing.ticket_holds
               SET status = 'released', ended_at = $2, updated_at = $2
             WHERE id = $1 AND status = 'active' AND order_id IS NULL
         RETURNING {HOLD_COLUMNS}""",
        hold.id,
        now,
    )
    if row is None:
        return None
    await give_back(conn, hold.tier_id, row["quantity"], now)
    return HoldRecord.from_row(row)


async def release_holds(
    conn: asyncpg.Connection, holds: Sequence[asyncpg.Record], now: datetime
) -> None:
    """End locked holds and give their seats back (tiers in primary-key order), to the
    waitlists first. The holds end before the offers, so their buyers may be offered."""
    per_tier: Counter[uuid.UUID] = Counter()
    for hold in holds:
        per_tier[hold["tier_id"]] += hold["quantity"]
    if holds:
        await conn.execute(
            """UPDATE ticketing.ticket_holds
                  SET status = 'released', ended_at = $2, updated_at = $2
                WHERE id = ANY($1::uuid[])""",
            [h["id"] for h in holds],
            now,
        )
    await return_seats(conn, per_tier, counter="reserved_quantity", now=now)


async def attach_holds(
    conn: asyncpg.Connection, hold_ids: list[uuid.UUID], order_id: uuid.UUID, now: datetime
) -> None:
    """Point locked holds at the order checking them out (they stay active, reserved)."""
    await conn.execute(
        """UPDATE ticketing.ticket_holds SET order_id = $2, updated_at = $3
            WHERE id = ANY($1::uuid[])""",
        hold_ids,
        order_id,
        now,
    )


async def detach_holds(conn: asyncpg.Connection, order_ids: list[uuid.UUID], now: datetime) -> None:
    """Let the orders' active holds go (the orders were canceled): they stay reserved
    and reusable until they expire."""
    await conn.execute(
        """UPDATE ticketing.ticket_holds SET order_id = NULL, updated_at = $2
            WHERE order_id = ANY($1::uuid[]) AND status = 'active'""",
        order_ids,
        now,
    )


async def issue_from_holds(
    conn: asyncpg.Connection,
    items: Sequence[asyncpg.Record],
    tiers: Mapping[uuid.UUID, asyncpg.Record],
    holds: Sequence[asyncpg.Record],
    now: datetime,
) -> bool:
    """Turn an order's holds into issued seats: reserved → issued, holds converted.

    `items` are the order's (tier_id, quantity), `tiers` its tiers' counters and `holds`
    its active holds, all locked by the caller (order, tiers, holds). Seats no longer
    held (a hold expired before the payment came) are taken from free capacity. Returns
    False, writing nothing, when a tier has not enough free seats for that.
    """
    held: dict[uuid.UUID, int] = defaultdict(int)
    for hold in holds:
        held[hold["tier_id"]] += hold["quantity"]
    extra = {item["tier_id"]: max(item["quantity"] - held[item["tier_id"]], 0) for item in items}
    for tier_id, need in extra.items():
        tier = tiers[tier_id]
        if need and tier["quantity"] - tier["reserved_quantity"] - tier["issued_quantity"] < need:
            return False
    for item in items:
        tier_id = item["tier_id"]
        updated = await conn.fetchrow(
            f"""UPDATE ticketing.ticket_tiers
                  SET reserved_quantity = reserved_quantity - $2,
                      issued_quantity = issued_quantity + $3, updated_at = $5
                WHERE id = $1 AND quantity - reserved_quantity - issued_quantity >= $4
                RETURNING {COUNTERS}""",
            tier_id,
            held[tier_id],
            item["quantity"],
            extra[tier_id],
            now,
        )
        if updated is None:  # cannot happen: the tier is locked and was checked above
            raise RuntimeError(f"tier {tier_id} lost capacity while locked")
        await announce_tier(conn, updated)
    if holds:
        await conn.execute(
            """UPDATE ticketing.ticket_holds
                  SET status = 'converted', ended_at = $2, updated_at = $2
                WHERE id = ANY($1::uuid[])""",
            [h["id"] for h in holds],
            now,
        )
    return True


# --- drift: counters that disagree with the rows they count --------------------------

_COUNTS = """
    SELECT tt.id, tt.reserved_quantity, tt.issued_quantity,
           coalesce((SELECT sum(h.quantity) FROM ticketing.ticket_holds h
                      WHERE h.tier_id = tt.id AND h.status = 'active'), 0)::int AS held,
           (SELECT count(*) FROM ticketing.tickets t
             WHERE t.tier_id = tt.id AND t.status = 'issued')::int AS issued
      FROM ticketing.ticket_tiers tt"""

_RESERVED_DRIFT = """
SELECT t.id FROM ticketing.ticket_tiers t
  LEFT JOIN (SELECT tier_id, sum(quantity)::int AS held FROM ticketing.ticket_holds
              WHERE status = 'active' GROUP BY tier_id) h ON h.tier_id = t.id
 WHERE t.reserved_quantity <> coalesce(h.held, 0)
 ORDER BY t.id"""

_ANY_DRIFT = f"""
SELECT id FROM ({_COUNTS}) c
 WHERE c.reserved_quantity <> c.held OR c.issued_quantity <> c.issued
 ORDER BY id"""


@dataclass(frozen=True, slots=True)
class DriftRepair:
    """One drifted tier: its counters (reserved, issued) before and as recounted.

    `error` names the CHECK constraint the true counts break (more held and issued than
    the tier's capacity: a person must decide); the tier was then left as it was.
    """

    tier_id: uuid.UUID
    reserved: tuple[int, int]
    issued: tuple[int, int]
    error: str | None = None


async def drifted_tiers(conn: asyncpg.Connection, *, issued: bool) -> list[uuid.UUID]:
    """Tiers whose `reserved_quantity` is not the sum of their active holds (and, with
    `issued`, whose `issued_quantity` is not the count of their issued tickets).

    A read without locks, for candidates only: `repair_drift` recounts under lock.
    """
    rows = await conn.fetch(_ANY_DRIFT if issued else _RESERVED_DRIFT)
    return [row["id"] for row in rows]


async def repair_drift(
    conn: asyncpg.Connection, tier_ids: list[uuid.UUID], now: datetime
) -> list[DriftRepair]:
    """Recount the tiers' counters from their rows under lock and correct those that
    drifted: reserved = sum of active holds, issued = count of issued tickets.

    Tiers are locked in primary-key order first, so a purchase that committed in
    between is counted, never "corrected" away. Each tier is fixed in a savepoint: one
    whose true counts break a CHECK constraint is reported (`DriftRepair.error`) and
    left as it was, without undoing the others.
    """
    await conn.execute(
        """SELECT 1 FROM ticketing.ticket_tiers WHERE id = ANY($1::uuid[])
            ORDER BY id FOR UPDATE""",
        tier_ids,
    )
    rows = await conn.fetch(f"{_COUNTS} WHERE tt.id = ANY($1::uuid[]) ORDER BY tt.id", tier_ids)
    repairs: list[DriftRepair] = []
    for row in rows:
        if row["reserved_quantity"] == row["held"] and row["issued_quantity"] == row["issued"]:
            continue
        error = None
        try:
            async with conn.transaction():  # a savepoint
                tier = await conn.fetchrow(
                    f"""UPDATE ticketing.ticket_tiers
                          SET reserved_quantity = $2, issued_quantity = $3, updated_at = $4
                        WHERE id = $1 RETURNING {COUNTERS}""",
                    row["id"],
                    row["held"],
                    row["issued"],
                    now,
                )
                await announce_tier(conn, tier)
            if row["held"] < row["reserved_quantity"]:  # seats came back: waitlist first
                await offer_freed(conn, [row["id"]], now)
        except asyncpg.CheckViolationError as exc:
            error = exc.constraint_name or "check_violation"
        repairs.append(
            DriftRepair(
                tier_id=row["id"],
                reserved=(row["reserved_quantity"], row["held"]),
                issued=(row["issued_quantity"], row["issued"]),
                error=error,
            )
        )
    return repairs
