"""Settlement: expected, collected, refunded and pending per currency, figures computed
by hand on a small scenario; each kind of difference appears when the books are broken
in SQL; and only the event's managers may read it."""

from __future__ import annotations

import uuid
from typing import Any

from databases import Database

from db.core import transaction
from liventix.auth import Role
from liventix.clock import FrozenClock
from tests.console_support import SETTLEMENT, add_sale, add_tier
from tests.orders_support import (
    PRICE,
    REFUND,
    World,
    add_user,
    assert_books_balanced,
    paid_order,
    pending_order,
    world,
)
from tests.support import GraphQLClient, gid, key_of

__all__ = ["world"]


def figures(
    currency: str,
    expected: int,
    collected: int,
    refunded: int = 0,
    unsettled: int = 0,
    pending: int = 0,
) -> dict[str, Any]:
    return {
        "currency": currency,
        "expectedCents": expected,
        "collectedCents": collected,
        "refundedCents": refunded,
        "unsettledRefundCents": unsettled,
        "pendingCents": pending,
    }


async def settlement(
    client: GraphQLClient, world: World, token: str | None = None
) -> dict[str, Any]:
    data = await client(
        SETTLEMENT, {"event": gid("Event", world.event_id)}, token=token or world.organizer_token
    )
    result: dict[str, Any] = data["eventSettlement"]
    return result


async def record_payment(database: Database, order_id: uuid.UUID, amount: int) -> None:
    """A successful payment recorded for the order, as the webhook records one."""
    async with transaction(database) as conn:
        await conn.execute(
            """INSERT INTO ticketing.stripe_events (id, type, processed_at, result, order_id,
                                                    amount_cents)
               VALUES ($1, 'payment_intent.succeeded', now(), 'paid', $2, $3)""",
            f"evt_{uuid.uuid4().hex}",
            order_id,
            amount,
        )


async def scenario(
    client: GraphQLClient, database: Database, world: World, clock: FrozenClock
) -> dict[str, Any]:
    """usd: A paid (2 tickets), B paid then refunded (1), C pending (1); eur: D paid
    (1 ticket at 1200), written in SQL with its recorded payment."""
    a = await paid_order(client, database, world, clock, 2)
    b = await paid_order(client, database, world, clock, 1)
    refunded = await client(REFUND, {"order": b["id"]}, token=world.organizer_token)
    assert refunded["refundOrder"]["__typename"] == "RefundPayload", refunded
    c = await pending_order(client, database, world, clock, 1)
    euro = await add_tier(database, world.event_id, "Euro", 1200, "eur")
    d = await add_sale(
        database,
        event_id=world.event_id,
        user_id=world.buyer,
        tier_id=euro,
        quantity=1,
        paid_at=clock.now(),
    )
    await record_payment(database, d, 1200)
    return {"a": key_of(a["id"]), "b": key_of(b["id"]), "c": key_of(c["id"]), "d": d}


async def test_settlement_figures_by_hand(
    client: GraphQLClient, database: Database, world: World, clock: FrozenClock
) -> None:
    """Expected 3 x 2500 (A and B: a refund does not undo a sale), all of it collected,
    B's 2500 refunded and confirmed, C's 2500 pending; eur apart; no differences."""
    await scenario(client, database, world, clock)
    result = await settlement(client, world)
    assert result["__typename"] == "Settlement", result
    assert result["totals"] == [
        figures("eur", 1200, 1200),
        figures("usd", 3 * PRICE, 3 * PRICE, refunded=PRICE, pending=PRICE),
    ]
    assert result["differences"] == [] and result["moreDifferences"] is False
    await assert_books_balanced(database)


async def test_each_kind_of_difference_when_the_books_are_broken(
    client: GraphQLClient, database: Database, world: World, clock: FrozenClock
) -> None:
    """A's payment record lost, B's recorded payment short and its refund unconfirmed,
    a payment recorded for pending C: each order listed with its kind and amounts."""
    orders = await scenario(client, database, world, clock)
    async with transaction(database) as conn:
        await conn.execute(
            "UPDATE ticketing.stripe_events SET order_id = NULL WHERE order_id = $1", orders["a"]
        )
        await conn.execute(
            "UPDATE ticketing.stripe_events SET amount_cents = 2000 WHERE order_id = $1",
            orders["b"],
        )
        await conn.execute(
            "UPDATE ticketing.refunds SET stripe_refund_id = NULL WHERE order_id = $1",
            orders["b"],
        )
    await record_payment(database, orders["c"], PRICE)
    result = await settlement(client, world)
    assert result["totals"][1] == figures(
        "usd", 3 * PRICE, 2000 + PRICE, refunded=0, unsettled=PRICE, pending=PRICE
    )
    found = [(key_of(d["orderId"]), d["kind"]) for d in result["differences"]]
    assert sorted(found) == sorted(
        [
            (orders["a"], "PAID_WITHOUT_PAYMENT"),
            (orders["b"], "AMOUNT_MISMATCH"),
            (orders["b"], "REFUND_NOT_SETTLED"),
            (orders["c"], "PAYMENT_WITHOUT_SALE"),
        ]
    )
    by_kind = {d["kind"]: d for d in result["differences"]}
    assert by_kind["PAID_WITHOUT_PAYMENT"] == {
        "orderId": gid("Order", orders["a"]),
        "kind": "PAID_WITHOUT_PAYMENT",
        "currency": "usd",
        "status": "PAID",
        "expectedCents": 2 * PRICE,
        "collectedCents": 0,
        "unsettledRefundCents": 0,
    }
    assert by_kind["AMOUNT_MISMATCH"]["expectedCents"] == PRICE
    assert by_kind["AMOUNT_MISMATCH"]["collectedCents"] == 2000
    assert by_kind["REFUND_NOT_SETTLED"]["unsettledRefundCents"] == PRICE
    assert by_kind["PAYMENT_WITHOUT_SALE"]["status"] == "PENDING"
    assert by_kind["PAYMENT_WITHOUT_SALE"]["expectedCents"] == 0
    assert by_kind["PAYMENT_WITHOUT_SALE"]["collectedCents"] == PRICE
    await assert_books_balanced(database)


async def test_only_the_events_managers_read_its_settlement(
    client: GraphQLClient, database: Database, world: World
) -> None:
    """Another organizer gets EVENT_NOT_FOUND, a fan NOT_ALLOWED, the anonymous
    UNAUTHENTICATED; an admin reads it."""
    other = world.token(await add_user(database, "organizer"), Role.ORGANIZER)
    admin = world.token(await add_user(database, "admin"), Role.ADMIN)
    for token, code in (
        (other, "EVENT_NOT_FOUND"),
        (world.buyer_token, "NOT_ALLOWED"),
        (None, "UNAUTHENTICATED"),
    ):
        data = await client(SETTLEMENT, {"event": gid("Event", world.event_id)}, token=token)
        assert data["eventSettlement"]["code"] == code
    result = await settlement(client, world, token=admin)
    assert result["__typename"] == "Settlement" and result["totals"] == []
