"""20 partial refunds of one order at once, over real HTTP, with a control.

A paid order of 10 tickets (25,000 cents); then 20 organizer requests, each its own
transaction on the real PostgreSQL through a running server (`server`), each asking
for 2,000 cents under its own idempotency key: more than a twentieth of the order, so
only 12 fit. Exactly 12 succeed, 8 are told REFUND_EXCEEDS_PAID, and what was refunded
(the order, the refund rows, the gateway) is 24,000, never more than was paid. The
control takes the guard away (the order row's lock and the conditional update in
`db.refunds`, and the CHECK constraint behind them) and shows the same harness catches
more refunded than was paid.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import asyncpg
import httpx
import pytest
from databases import Database

import db.ops_views
import db.refunds
from db.core import connection, transaction
from db.order_records import ORDER_COLUMNS, OrderRecord
from db.refund_rules import RefundPlan, RefundReason
from liventix.auth import Role, mint_token
from liventix.clock import FrozenClock
from liventix.settings import Settings
from tests.discount_support import CHECKOUT_WITH_CODE
from tests.orders_support import CONTACT, PRICE, add_event, add_user, assert_books_balanced, hold
from tests.support import GraphQLClient, gid
from tests.test_discount_race import pay

pytestmark = pytest.mark.slow

TICKETS = 10
REQUESTS = 20
ASK = 2000  # more than TICKETS * PRICE / REQUESTS
FIT = TICKETS * PRICE // ASK

REFUND = """
mutation ($order: ID!, $amount: Int!, $key: String!) {
  refundOrder(orderId: $order, amountCents: $amount, reason: REQUESTED_BY_CUSTOMER,
              idempotencyKey: $key) {
    __typename
    ... on RefundPayload { refund { amountCents } }
    ... on OrderError { code }
  }
}"""


async def race(
    server: Any, database: Database, clock: FrozenClock, settings: Settings
) -> tuple[uuid.UUID, list[dict[str, Any]]]:
    """A paid order of 10 tickets, then 20 refunds of 2,000 at once; the order and the
    answers."""
    organizer, buyer = await add_user(database, "organizer"), await add_user(database)
    _, tier_id, _ = await add_event(database, organizer, clock, quantity=TICKETS)
    held = await hold(database, clock, buyer, tier_id, TICKETS)
    limits = httpx.Limits(max_connections=REQUESTS, max_keepalive_connections=REQUESTS)
    async with httpx.AsyncClient(base_url=server.http_url, timeout=60, limits=limits) as http:
        client = GraphQLClient(http)
        buyer_token = mint_token(settings, buyer, Role.USER)
        bought = await client(CHECKOUT_WITH_CODE, {"holds": [str(held)], "contact": CONTACT},
                              token=buyer_token)  # fmt: skip
        await pay(client, settings, bought["checkout"])
        order_id = uuid.UUID(str(await _order_id(database)))
        organizer_token = mint_token(settings, organizer, Role.ORGANIZER)

        async def ask(n: int) -> dict[str, Any]:
            variables = {"order": gid("Order", order_id), "amount": ASK, "key": f"race-{n}"}
            response = await client.post(REFUND, variables, organizer_token)
            assert response.status_code == 200, response.text
            body: dict[str, Any] = response.json()
            assert not body.get("errors"), body["errors"]
            answer: dict[str, Any] = body["data"]["refundOrder"]
            return answer

        answers = await asyncio.gather(*(ask(n) for n in range(REQUESTS)))
    return order_id, list(answers)


async def _order_id(database: Database) -> uuid.UUID:
    async with connection(database) as conn:
        found: uuid.UUID = await conn.fetchval("SELECT id FROM ticketing.orders")
    return found


async def refunded(database: Database, order_id: uuid.UUID) -> tuple[int, int, int]:
    """(paid, refunded on the order, sum of its refund rows)."""
    async with connection(database) as conn:
        row = await conn.fetchrow(
            """SELECT o.total_cents, o.refunded_cents,
                      (SELECT coalesce(sum(amount_cents), 0) FROM ticketing.refunds r
                        WHERE r.order_id = o.id)::int AS rows
                 FROM ticketing.orders o WHERE o.id = $1""",
            order_id,
        )
    assert row is not None
    return row["total_cents"], row["refunded_cents"], row["rows"]


async def test_twenty_refunds_at_once_never_refund_more_than_was_paid(
    server: Any, database: Database, clock: FrozenClock, settings: Settings
) -> None:
    order_id, answers = await race(server, database, clock, settings)
    won = [a for a in answers if a["__typename"] == "RefundPayload"]
    refused = [a for a in answers if a["__typename"] == "OrderError"]
    assert len(won) == FIT and all(a["refund"]["amountCents"] == ASK for a in won)
    assert len(refused) == REQUESTS - FIT
    assert {a["code"] for a in refused} == {"REFUND_EXCEEDS_PAID"}
    assert await refunded(database, order_id) == (TICKETS * PRICE, FIT * ASK, FIT * ASK)
    await assert_books_balanced(database)
    assert (await db.ops_views.ticketing_health(database, clock.now())).failing_checks == 0


# --- control: the same harness with the guard taken away ------------------------------


async def unlocked_order(
    conn: asyncpg.Connection, order_id: uuid.UUID, actor_id: uuid.UUID, actor_is_admin: bool
) -> OrderRecord:
    """The classic bug: read the order without locking its row."""
    row = await conn.fetchrow(
        f"SELECT {ORDER_COLUMNS} FROM ticketing.orders WHERE id = $1", order_id
    )
    assert row is not None
    return OrderRecord.from_row(row)


async def unconditional_add(
    conn: asyncpg.Connection,
    order: OrderRecord,
    plan: RefundPlan,
    reason: RefundReason,
    now: Any,
) -> OrderRecord:
    """...then add the amount decided from that stale read, whatever is left now."""
    row = await conn.fetchrow(
        f"""UPDATE ticketing.orders SET refunded_cents = refunded_cents + $2, status = $3
             WHERE id = $1 RETURNING {ORDER_COLUMNS}""",
        order.id,
        plan.amount_cents,
        plan.order_status,
    )
    assert row is not None
    return OrderRecord.from_row(row)


async def test_control_without_the_guard_more_is_refunded_than_was_paid(
    server: Any,
    database: Database,
    clock: FrozenClock,
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async with transaction(database) as conn:
        checks = await conn.fetch(
            """SELECT conname FROM pg_constraint
                WHERE conrelid = 'ticketing.orders'::regclass AND contype = 'c'
                  AND pg_get_constraintdef(oid) LIKE '%refunded_cents <= total_cents%'"""
        )
        for check in checks:
            await conn.execute(f'ALTER TABLE ticketing.orders DROP CONSTRAINT "{check["conname"]}"')
    monkeypatch.setattr(db.refunds, "_lock_order", unlocked_order)
    monkeypatch.setattr(db.refunds, "_add_refunded", unconditional_add)
    order_id, answers = await race(server, database, clock, settings)
    won = [a for a in answers if a["__typename"] == "RefundPayload"]
    paid, on_order, in_rows = await refunded(database, order_id)
    assert len(won) > FIT
    assert on_order > paid and in_rows > paid
