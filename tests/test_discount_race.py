"""200 buyers race to check out with one code of 50 uses, over real HTTP, with a control.

Every buyer holds a ticket first (there are seats for all), then all check out at once
with the same code against a running server (`server`), each request its own
transaction on the real PostgreSQL; then every order that got through is paid by a
signed webhook, all at once too. Exactly 50 orders carry the code, and the code has
exactly 50 paid uses. The control swaps the guarded use (the row lock and the
conditional update in `db.code_uses`) for a naive read-then-write, with the CHECK
constraint dropped, and shows the same harness catches the code used more than 50
times.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime
from typing import Any

import httpx
import pytest
from databases import Database

import db.code_uses
import db.discount_codes
import db.ops_views
from db.core import transaction
from db.discount_codes import CodeDraft
from db.errors import OrderCode, OrderError
from db.events import Actor
from liventix.auth import Role, mint_token
from liventix.clock import FrozenClock
from liventix.settings import Settings
from liventix.signed_events import build_event, send_event
from tests.discount_support import CHECKOUT_WITH_CODE, assert_uses_balanced, uses
from tests.orders_support import CONTACT, add_event, add_user, assert_books_balanced, hold
from tests.support import GraphQLClient, key_of

pytestmark = pytest.mark.slow

BUYERS = 200
MAX_USES = 50


async def race(
    server: Any, database: Database, clock: FrozenClock, settings: Settings
) -> tuple[uuid.UUID, list[dict[str, Any]]]:
    """Set up the event, the code and 200 buyers' holds; check out all at once with the
    code; pay every order that got through, all at once. The code and the answers."""
    organizer = await add_user(database, "organizer")
    event_id, tier_id, _ = await add_event(database, organizer, clock, quantity=BUYERS)
    code = await db.discount_codes.create_code(
        database,
        Actor(organizer),
        event_id,
        CodeDraft(code="FLASH50", kind="percent", percent_off=50, max_uses=MAX_USES),
        clock.now(),
    )
    buyers = [await add_user(database) for _ in range(BUYERS)]
    holds = [await hold(database, clock, buyer, tier_id, 1) for buyer in buyers]
    limits = httpx.Limits(max_connections=BUYERS, max_keepalive_connections=BUYERS)
    async with httpx.AsyncClient(base_url=server.http_url, timeout=60, limits=limits) as http:
        client = GraphQLClient(http)

        async def buy(buyer: uuid.UUID, held: uuid.UUID) -> dict[str, Any]:
            variables = {"holds": [str(held)], "contact": CONTACT, "code": "flash50"}
            response = await client.post(
                CHECKOUT_WITH_CODE, variables, mint_token(settings, buyer, Role.USER)
            )
            assert response.status_code == 200, response.text
            body: dict[str, Any] = response.json()
            assert not body.get("errors"), body["errors"]
            answer: dict[str, Any] = body["data"]["checkout"]
            return answer

        answers = await asyncio.gather(*(buy(b, h) for b, h in zip(buyers, holds, strict=True)))
    # A fresh client: the server may close a keep-alive connection left idle by a slow
    # checkout just as it is reused, which is not what this test is about.
    paid = [a for a in answers if a["__typename"] == "CheckoutPayload"]
    async with httpx.AsyncClient(base_url=server.http_url, timeout=60, limits=limits) as http:
        await asyncio.gather(*(pay(GraphQLClient(http), settings, a) for a in paid))
    return code.id, list(answers)


async def pay(client: GraphQLClient, settings: Settings, answer: dict[str, Any]) -> None:
    """A signed `payment_intent.succeeded` for a checkout's order, as Stripe sends it."""
    order = answer["order"]
    event = build_event(
        "payment_intent.succeeded",
        order_id=str(key_of(order["id"])),
        payment_intent_id=answer["paymentIntentId"],
        amount_cents=order["totalCents"],
    )
    response = await send_event(
        client.http, "/webhooks/stripe", event, settings.stripe_webhook_secret
    )
    assert response.status_code == 200, response.text


async def paid_with_code(database: Database, code_id: uuid.UUID) -> int:
    async with transaction(database) as conn:
        count: int = await conn.fetchval(
            """SELECT count(*) FROM ticketing.orders
                WHERE discount_code_id = $1 AND status = 'paid'""",
            code_id,
        )
    return count


async def test_two_hundred_buyers_one_code_of_fifty_uses(
    server: Any, database: Database, clock: FrozenClock, settings: Settings
) -> None:
    """Exactly 50 checkouts get the code, 150 are told CODE_EXHAUSTED, none fails
    otherwise; once paid, the code has exactly 50 paid uses and 50 paid orders."""
    code_id, answers = await race(server, database, clock, settings)
    won = [a for a in answers if a["__typename"] == "CheckoutPayload"]
    refused = [a for a in answers if a["__typename"] == "OrderError"]
    assert len(won) == MAX_USES
    assert len(refused) == BUYERS - MAX_USES
    assert {a["code"] for a in refused} == {"CODE_EXHAUSTED"}
    assert all(a["order"]["discountCents"] == 1250 for a in won)
    assert await uses(database, code_id) == (MAX_USES, 0)
    assert await paid_with_code(database, code_id) == MAX_USES
    await assert_books_balanced(database)
    assert (await db.ops_views.ticketing_health(database, clock.now())).failing_checks == 0
    await assert_uses_balanced(database)


# --- control: the same harness with the guard taken away ------------------------------


async def unguarded_reserve_use(
    conn: Any, *, code_id: uuid.UUID, order_id: uuid.UUID, user_id: uuid.UUID, now: datetime
) -> None:
    """The classic bug: read the uses left, decide in Python, then add one regardless."""
    row = await conn.fetchrow(
        "SELECT max_uses - uses_paid - uses_reserved AS left FROM ticketing.discount_codes "
        "WHERE id = $1",
        code_id,
    )
    if row["left"] < 1:
        raise OrderError("Used up", code=OrderCode.CODE_EXHAUSTED, field="code")
    await conn.execute(
        "UPDATE ticketing.discount_codes SET uses_reserved = uses_reserved + 1 WHERE id = $1",
        code_id,
    )
    await conn.execute(
        """INSERT INTO ticketing.discount_redemptions (order_id, code_id, user_id)
           VALUES ($1, $2, $3)""",
        order_id,
        code_id,
        user_id,
    )


async def no_lock(conn: Any, code_ids: Any) -> None:
    """The code's row lock taken away too (it alone would serialize the naive check)."""


async def test_control_without_the_guard_the_code_is_used_more_than_allowed(
    server: Any,
    database: Database,
    clock: FrozenClock,
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async with transaction(database) as conn:
        await conn.execute(
            "ALTER TABLE ticketing.discount_codes DROP CONSTRAINT discount_code_never_over_used"
        )
    monkeypatch.setattr(db.code_uses, "reserve_use", unguarded_reserve_use)
    monkeypatch.setattr(db.code_uses, "lock_codes", no_lock)
    code_id, answers = await race(server, database, clock, settings)
    won = [a for a in answers if a["__typename"] == "CheckoutPayload"]
    paid, reserved = await uses(database, code_id)
    assert len(won) > MAX_USES
    assert paid > MAX_USES and reserved == 0
    assert await paid_with_code(database, code_id) == paid
