"""A discount code's uses: the one module that writes its counters and redemptions.

`ticketing.discount_codes.uses_reserved` / `uses_paid` and the rows of
`ticketing.discount_redemptions` are written here and nowhere else. Every function runs
in the caller's transaction, which already holds the row lock of the order concerned,
so it commits or rolls back with the business operation that called it.

The database arbitrates the limit, as it does capacity (`db.holds`). A checkout
reserves a use with one conditional update::

    UPDATE ticketing.discount_codes SET uses_reserved = uses_reserved + 1
     WHERE id = $1 AND enabled AND uses_paid + uses_reserved < max_uses
       AND <now within the code's window> RETURNING ...

which cannot over-redeem under READ COMMITTED (a second writer re-checks the row once
the first commits), and the CHECK ``discount_code_never_over_used`` backs it up. A use
moves with its order, one redemption row per order whose status says where it is:

    reserved ──► paid ──► released     (a full refund)
       │                     ▲
       └─────────────────────┘          (the order expired, failed or was canceled)

`pay_use` and `release_uses` act only on a redemption whose status has not moved yet,
so a webhook delivered twice counts nothing twice. A payment that arrives after its
order's use was released takes a use again, but only if the limit still allows it.

Lock order: a code's row comes right after the order rows in the one order written in
`db.holds` (orders → discount codes → tiers → holds → tickets → tokens), and several
codes are locked in primary-key order. A redemption row is only ever written by a
transaction holding its order's lock.

Errors: `OrderError` with CODE_EXPIRED or CODE_EXHAUSTED, from `reserve_use`.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Iterable
from datetime import datetime

import asyncpg

from db.errors import OrderCode, OrderError

# A code's window and switch as a SQL predicate over the codes row `c`, at time `$2`.
_REDEEMABLE = """c.enabled AND (c.starts_at IS NULL OR c.starts_at <= $2)
                 AND (c.ends_at IS NULL OR c.ends_at > $2)"""

_RESERVE = f"""UPDATE ticketing.discount_codes c
                  SET uses_reserved = c.uses_reserved + 1, updated_at = $2
                WHERE c.id = $1 AND {_REDEEMABLE}
                  AND c.uses_paid + c.uses_reserved < c.max_uses
            RETURNING c.per_user_limit"""


async def lock_codes(conn: asyncpg.Connection, code_ids: Iterable[uuid.UUID]) -> None:
    """Lock codes' rows in primary-key order, at their place in the lock order (right
    after the orders), before a transaction goes on to tiers and holds."""
    ids = sorted(set(code_ids))
    if ids:
        await conn.execute(
            """SELECT 1 FROM ticketing.discount_codes WHERE id = ANY($1::uuid[])
                ORDER BY id FOR NO KEY UPDATE""",
            ids,
        )


async def reserve_use(
    conn: asyncpg.Connection,
    *,
    code_id: uuid.UUID,
    order_id: uuid.UUID,
    user_id: uuid.UUID,
    now: datetime,
) -> None:
    """Reserve one use of the code for a new pending order, or raise.

    The conditional update decides (CODE_EXPIRED when the code is disabled or outside
    its window, CODE_EXHAUSTED when `max_uses` are taken); then the user's reserved and
    paid redemptions are counted against the per-user limit (CODE_EXHAUSTED too). The
    count runs after the update has locked the code's row, so it sees every redemption
    of this code committed before: two checkouts by one user cannot both pass it. Raise
    means the caller's transaction rolls back, the update with it.
    """
    row = await conn.fetchrow(_RESERVE, code_id, now)
    if row is None:
        raise await _refusal(conn, code_id, now)
    limit: int | None = row["per_user_limit"]
    if limit is not None:
        used: int = await conn.fetchval(
            """SELECT count(*) FROM ticketing.discount_redemptions
                WHERE code_id = $1 AND user_id = $2 AND status <> 'released'""",
            code_id,
            user_id,
        )
        if used >= limit:
            raise OrderError(
                f"You have already used this code {used} time(s), its limit per person",
                code=OrderCode.CODE_EXHAUSTED,
                field="code",
            )
    await conn.execute(
        """INSERT INTO ticketing.discount_redemptions
               (order_id, code_id, user_id, created_at, updated_at)
           VALUES ($1, $2, $3, $4, $4)""",
        order_id,
        code_id,
        user_id,
        now,
    )


async def _refusal(conn: asyncpg.Connection, code_id: uuid.UUID, now: datetime) -> OrderError:
    """Why the conditional update took no use: the code's state as it is now."""
    redeemable = await conn.fetchval(
        f"SELECT {_REDEEMABLE} FROM ticketing.discount_codes c WHERE c.id = $1", code_id, now
    )
    if not redeemable:
        return OrderError("This code is not valid now", code=OrderCode.CODE_EXPIRED, field="code")
    return OrderError("This code has been used up", code=OrderCode.CODE_EXHAUSTED, field="code")


async def pay_use(conn: asyncpg.Connection, order_id: uuid.UUID, now: datetime) -> bool:
    """The order is being paid: its reserved use becomes a paid one. True when done (or
    nothing to do: no code, or already paid).

    A use released meanwhile (the order expired or failed before the payment came) is
    taken again only if the code's limit still allows it, whatever its window or switch
    (the buyer was granted it at checkout); False, writing nothing, when it does not:
    the caller refunds the order instead of letting the code go over its limit.
    """
    redemption = await conn.fetchrow(
        """SELECT code_id, status FROM ticketing.discount_redemptions
            WHERE order_id = $1 FOR UPDATE""",
        order_id,
    )
    if redemption is None or redemption["status"] == "paid":
        return True
    code_id = redemption["code_id"]
    if redemption["status"] == "reserved":
        await conn.execute(
            """UPDATE ticketing.discount_codes
                  SET uses_reserved = uses_reserved - 1, uses_paid = uses_paid + 1,
                      updated_at = $2
                WHERE id = $1""",
            code_id,
            now,
        )
    elif not await _take_again(conn, code_id, order_id, now):
        return False
    await conn.execute(
        """UPDATE ticketing.discount_redemptions SET status = 'paid', updated_at = $2
            WHERE order_id = $1""",
        order_id,
        now,
    )
    return True


async def _take_again(
    conn: asyncpg.Connection, code_id: uuid.UUID, order_id: uuid.UUID, now: datetime
) -> bool:
    """A paid use for an order whose use was released, within the limits, or False."""
    code = await conn.fetchrow(
        """SELECT per_user_limit FROM ticketing.discount_codes WHERE id = $1
            FOR NO KEY UPDATE""",
        code_id,
    )
    assert code is not None
    if code["per_user_limit"] is not None:
        used: int = await conn.fetchval(
            """SELECT count(*) FROM ticketing.discount_redemptions r
                WHERE r.code_id = $1 AND r.status <> 'released'
                  AND r.user_id = (SELECT user_id FROM ticketing.discount_redemptions
                                    WHERE order_id = $2)""",
            code_id,
            order_id,
        )
        if used >= code["per_user_limit"]:
            return False
    taken = await conn.fetchval(
        """UPDATE ticketing.discount_codes SET uses_paid = uses_paid + 1, updated_at = $2
            WHERE id = $1 AND uses_paid + uses_reserved < max_uses RETURNING id""",
        code_id,
        now,
    )
    return taken is not None


async def release_uses(
    conn: asyncpg.Connection, order_ids: Iterable[uuid.UUID], now: datetime
) -> None:
    """Give back the uses of orders that ended without keeping them (expired, failed,
    canceled, fully refunded). Idempotent: a released redemption is left as it is.

    The caller holds the orders' locks; the codes are updated in primary-key order.
    """
    ids = list(order_ids)
    if not ids:
        return
    rows = await conn.fetch(
        """UPDATE ticketing.discount_redemptions r
              SET status = 'released', updated_at = $2
             FROM (SELECT order_id, status FROM ticketing.discount_redemptions
                    WHERE order_id = ANY($1::uuid[]) AND status <> 'released'
                    FOR UPDATE) was
            WHERE r.order_id = was.order_id
        RETURNING r.code_id, was.status AS was""",
        ids,
        now,
    )
    reserved = Counter(r["code_id"] for r in rows if r["was"] == "reserved")
    paid = Counter(r["code_id"] for r in rows if r["was"] == "paid")
    for code_id in sorted(set(reserved) | set(paid)):
        await conn.execute(
            """UPDATE ticketing.discount_codes
                  SET uses_reserved = uses_reserved - $2, uses_paid = uses_paid - $3,
                      updated_at = $4
                WHERE id = $1""",
            code_id,
            reserved[code_id],
            paid[code_id],
            now,
        )
