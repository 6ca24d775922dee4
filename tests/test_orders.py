"""Checkout, completion, refunds, check-in and privacy, mostly through GraphQL over HTTP."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable

from databases import Database
from starlette.applications import Starlette

import db.sweeper
from db.core import connection
from liventix.auth import Role
from liventix.clock import FrozenClock
from liventix.settings import Settings
from tests.orders_support import (
    CHECK_IN,
    MY_TICKETS,
    PRICE,
    REFUND,
    World,
    add_event,
    add_user,
    assert_books_balanced,
    checkout,
    count,
    gateway,
    hold,
    order_of,
    order_row,
    paid_order,
    pending_order,
    tier_counts,
    webhook,
    world,
)
from tests.support import GraphQLClient, gid, key_of

__all__ = ["world"]  # the fixture, re-exported for pytest

RESERVE = """
mutation ($tier: ID!, $qty: Int!) {
  reserveTickets(tierId: $tier, quantity: $qty) {
    __typename
    ... on HoldPayload { hold { id } }
  }
}"""


async def test_purchase_end_to_end_over_http(
    client: GraphQLClient, database: Database, world: World, settings: Settings
) -> None:
    """Hold → checkout → signed webhook → tickets with unique tokens → check-in."""
    held = await client(RESERVE, {"tier": str(world.tier_id), "qty": 3}, token=world.buyer_token)
    hold_id = key_of(held["reserveTickets"]["hold"]["id"])
    result = await checkout(client, world.buyer_token, [hold_id])
    assert result["__typename"] == "CheckoutPayload", result
    order = order_of(result)
    assert order["status"] == "PENDING" and order["totalCents"] == 3 * PRICE
    assert result["clientSecret"].startswith(result["paymentIntentId"])
    assert result["paymentIntentId"].startswith("pi_local_")
    assert await tier_counts(database, world.tier_id) == (10, 3, 0)

    answer = await webhook(client, settings, "payment_intent.succeeded", order)
    assert answer["result"] == "paid"
    assert await tier_counts(database, world.tier_id) == (10, 0, 3)

    tickets = [
        e["node"] for e in (await client(MY_TICKETS, token=world.buyer_token))["myTickets"]["edges"]
    ]
    assert len(tickets) == 3
    assert sorted(t["sequenceNumber"] for t in tickets) == [1, 2, 3]
    tokens = {t["qrPayload"] for t in tickets}
    assert len(tokens) == 3 and all(len(t) >= 32 for t in tokens)
    assert not any(t["id"] in tok for t in tickets for tok in tokens)

    token = tickets[0]["qrPayload"]
    first = (await client(CHECK_IN, {"token": token}, token=world.organizer_token))["checkIn"]
    assert first["__typename"] == "CheckInPayload" and first["scanCount"] == 1
    again = (await client(CHECK_IN, {"token": token}, token=world.organizer_token))["checkIn"]
    assert again["code"] == "ALREADY_CHECKED_IN"
    assert again["checkedInAt"] == first["ticket"]["checkedInAt"]
    unknown = (await client(CHECK_IN, {"token": "x" * 32}, token=world.organizer_token))["checkIn"]
    assert unknown["code"] == "TOKEN_NOT_FOUND"
    assert (
        await count(
            database, "SELECT scan_count FROM ticketing.ticket_tokens WHERE token = $1", token
        )
        == 2
    )
    await assert_books_balanced(database)


async def test_checkout_refuses_bad_input_and_changes_nothing(
    client: GraphQLClient, database: Database, world: World, clock: FrozenClock
) -> None:
    mine = await hold(database, clock, world.buyer, world.tier_id, 1)
    other_user = await add_user(database)
    theirs = await hold(database, clock, other_user, world.tier_id, 1)
    _, other_tier, _ = await add_event(database, world.organizer, clock)
    elsewhere = await hold(database, clock, world.buyer, other_tier, 1)

    async def code(holds: list[uuid.UUID], contact: dict[str, str] | None = None) -> str:
        result = await checkout(client, world.buyer_token, holds, contact)
        return str(result.get("code"))

    assert await code([theirs]) == "HOLD_NOT_FOUND"
    assert await code([uuid.uuid4()]) == "HOLD_NOT_FOUND"
    assert await code([mine, elsewhere]) == "MIXED_EVENTS"
    assert await code([mine], {"email": "not-an-email", "name": "Sam"}) == "CONTACT_INVALID"
    assert await code([mine], {"email": "a@b.co", "name": "  "}) == "CONTACT_INVALID"
    assert await count(database, "SELECT count(*) FROM ticketing.orders") == 0
    clock.advance(901)
    assert await code([mine]) == "HOLD_EXPIRED"
    assert await count(database, "SELECT count(*) FROM ticketing.orders") == 0


async def test_double_submit_returns_the_same_order_and_intent(
    client: GraphQLClient, database: Database, world: World, clock: FrozenClock, app: Starlette
) -> None:
    held = await hold(database, clock, world.buyer, world.tier_id, 2)
    first = await checkout(client, world.buyer_token, [held])
    second = await checkout(client, world.buyer_token, [held])
    assert first["order"]["id"] == second["order"]["id"]
    assert first["paymentIntentId"] == second["paymentIntentId"]
    keys = {c["key"] for c in gateway(app).calls}
    assert keys == {f"order-{key_of(first['order']['id'])}"}


async def test_concurrent_repeats_of_a_checkout_share_one_order(
    client: GraphQLClient, database: Database, world: World, clock: FrozenClock, app: Starlette
) -> None:
    """Six simultaneous checkouts of one hold: one pending order, one intent, no CONFLICT."""
    held = await hold(database, clock, world.buyer, world.tier_id, 2)
    results = await asyncio.gather(*(checkout(client, world.buyer_token, [held]) for _ in range(6)))
    assert {r["__typename"] for r in results} == {"CheckoutPayload"}, results
    assert len({r["order"]["id"] for r in results}) == 1
    assert len({r["clientSecret"] for r in results}) == 1 and results[0]["clientSecret"]
    assert len({r["paymentIntentId"] for r in results}) == 1
    assert await count(database, "SELECT count(*) FROM ticketing.orders") == 1
    assert (
        await count(database, "SELECT count(*) FROM ticketing.orders WHERE status = 'pending'") == 1
    )
    assert {c["key"] for c in gateway(app).calls} == {f"order-{key_of(results[0]['order']['id'])}"}
    assert await tier_counts(database, world.tier_id) == (10, 2, 0)
    await assert_books_balanced(database)


async def test_concurrent_repeats_of_a_free_checkout_share_one_paid_order(
    client: GraphQLClient, database: Database, world: World, clock: FrozenClock
) -> None:
    """A free order completes once; repeats, even after completion, return that order."""
    held = await hold(database, clock, world.buyer, world.free_tier_id, 2)
    results = await asyncio.gather(*(checkout(client, world.buyer_token, [held]) for _ in range(4)))
    assert {r["__typename"] for r in results} == {"CheckoutPayload"}, results
    assert len({r["order"]["id"] for r in results}) == 1
    assert {r["order"]["status"] for r in results} == {"PAID"}
    later = await checkout(client, world.buyer_token, [held])
    assert later["order"]["id"] == results[0]["order"]["id"] and len(later["order"]["tickets"]) == 2
    assert await count(database, "SELECT count(*) FROM ticketing.tickets") == 2
    assert await tier_counts(database, world.free_tier_id) == (5, 0, 2)
    await assert_books_balanced(database)


async def test_repeat_checkout_with_new_contact_updates_the_pending_order(
    client: GraphQLClient,
    database: Database,
    world: World,
    clock: FrozenClock,
    app: Starlette,
    settings: Settings,
) -> None:
    """The documented choice: a pending order takes the repeat's contact details.

    The payment intent is asked for with the first checkout's receipt email again, so
    Stripe sees the same parameters under the same idempotency key. Once paid, the
    order keeps its contact and a repeat just returns it.
    """
    held = await hold(database, clock, world.buyer, world.tier_id, 1)
    first = await checkout(client, world.buyer_token, [held])
    fixed = {"email": "Sam.Fan@Example.org", "name": "  Samantha   Fan "}
    again = await checkout(client, world.buyer_token, [held], fixed)
    assert again["__typename"] == "CheckoutPayload", again
    assert again["order"]["id"] == first["order"]["id"]
    assert again["clientSecret"] == first["clientSecret"]
    row = await order_row(database, first["order"]["id"])
    assert (row["contact_email"], row["contact_name"], row["contact_phone"]) == (
        "sam.fan@example.org",
        "Samantha Fan",
        None,
    )
    intents = [c for c in gateway(app).calls if c["op"] == "create_intent"]
    assert [c["receipt_email"] for c in intents] == ["sam@example.com", "sam@example.com"]

    await webhook(client, settings, "payment_intent.succeeded", order_of(first))
    late = await checkout(client, world.buyer_token, [held], {"email": "x@y.co", "name": "X"})
    assert late["order"]["id"] == first["order"]["id"] and late["order"]["status"] == "PAID"
    assert late["clientSecret"] is None
    assert (await order_row(database, first["order"]["id"]))["contact_email"] == (
        "sam.fan@example.org"
    )
    await assert_books_balanced(database)


async def test_provider_failure_leaves_nothing_half_created(
    client: GraphQLClient, database: Database, world: World, clock: FrozenClock, app: Starlette
) -> None:
    held = await hold(database, clock, world.buyer, world.tier_id, 2)
    gateway(app).fail_next = True
    failed = await checkout(client, world.buyer_token, [held])
    assert failed["code"] == "PAYMENT_PROVIDER_ERROR"
    async with connection(database) as conn:
        order = await conn.fetchrow("SELECT status, stripe_payment_intent_id FROM ticketing.orders")
        h = await conn.fetchrow("SELECT status, order_id FROM ticketing.ticket_holds")
    assert order["status"] == "canceled" and order["stripe_payment_intent_id"] is None
    assert h["status"] == "active" and h["order_id"] is None  # the buyer may retry at once
    retried = await checkout(client, world.buyer_token, [held])
    assert retried["order"]["status"] == "PENDING"
    await assert_books_balanced(database)


async def test_free_order_completes_without_payment(
    client: GraphQLClient, database: Database, world: World, clock: FrozenClock, app: Starlette
) -> None:
    held = await hold(database, clock, world.buyer, world.free_tier_id, 2)
    result = await checkout(client, world.buyer_token, [held])
    assert result["order"]["status"] == "PAID" and result["clientSecret"] is None
    assert len(result["order"]["tickets"]) == 2
    assert gateway(app).calls == []
    assert await tier_counts(database, world.free_tier_id) == (5, 0, 2)
    await assert_books_balanced(database)


async def test_late_payment_with_capacity_left_issues_tickets(
    client: GraphQLClient,
    database: Database,
    world: World,
    clock: FrozenClock,
    settings: Settings,
) -> None:
    order = await pending_order(client, database, world, clock, 2)
    clock.advance(901)
    await db.sweeper.sweep_expired_holds(database, clock.now())
    assert await tier_counts(database, world.tier_id) == (10, 0, 0)
    answer = await webhook(client, settings, "payment_intent.succeeded", order)
    assert answer["result"] == "paid"
    assert await tier_counts(database, world.tier_id) == (10, 0, 2)
    await assert_books_balanced(database)


async def test_late_payment_without_capacity_refunds_automatically(
    client: GraphQLClient,
    database: Database,
    clock: FrozenClock,
    settings: Settings,
    app: Starlette,
    token: Callable[..., str],
) -> None:
    organizer = await add_user(database, "organizer")
    buyer, rival = await add_user(database), await add_user(database)
    _, tier_id, _ = await add_event(database, organizer, clock, quantity=2)
    late = await checkout(
        client,
        token(Role.USER, buyer),
        [await hold(database, clock, buyer, tier_id, 2)],
    )
    clock.advance(901)  # the buyer's hold lapses; a rival buys the last two seats
    rival_result = await checkout(
        client, token(Role.USER, rival), [await hold(database, clock, rival, tier_id, 2)]
    )
    rival_order = order_of(rival_result)
    assert (await webhook(client, settings, "payment_intent.succeeded", rival_order))[
        "result"
    ] == "paid"

    events: list[str] = []

    def collect(*args: object) -> None:
        events.append(str(args[-1]))

    async with connection(database) as listener:
        await listener.add_listener("liventix", collect)
        try:
            order = order_of(late)
            answer = await webhook(client, settings, "payment_intent.succeeded", order)
            await listener.fetchval("SELECT 1")  # let the notification arrive
        finally:
            await listener.remove_listener("liventix", collect)
    assert answer["result"] == "refunded_late"
    row = await order_row(database, order["id"])
    assert row["status"] == "refunded" and row["refund_reason"] == "sold_out_after_hold_expired"
    assert row["refunded_cents"] == row["total_cents"] == 2 * PRICE
    assert await tier_counts(database, tier_id) == (2, 0, 2)  # never oversold
    refunds = gateway(app).refunds()
    assert [(r["payment_intent"], r["amount"]) for r in refunds] == [
        (late["paymentIntentId"], 2 * PRICE)
    ]
    assert any(f"user:{buyer}" in e and "order_refunded" in e for e in events), events
    # The buyer is told why, in their inbox.
    told = await client(
        "{ notifications { edges { node { category title body data } } } }",
        token=token(Role.USER, buyer),
    )
    (note,) = [e["node"] for e in told["notifications"]["edges"]]
    assert note["category"] == "LATE_PAYMENT_REFUNDED"
    assert "sold out" in note["body"]
    assert note["data"]["reason"] == "sold_out_after_hold_expired"
    # The same event again: nothing more happens.
    again = await webhook(client, settings, "payment_intent.succeeded", order)
    assert again["result"] in ("unchanged", "duplicate")
    assert len(gateway(app).refunds()) == 1
    await assert_books_balanced(database)


async def test_refund_twice_refunds_once_and_returns_capacity_once(
    client: GraphQLClient,
    database: Database,
    world: World,
    clock: FrozenClock,
    settings: Settings,
    app: Starlette,
) -> None:
    order = await paid_order(client, database, world, clock, 3)
    assert await tier_counts(database, world.tier_id) == (10, 0, 3)
    tickets = [
        e["node"] for e in (await client(MY_TICKETS, token=world.buyer_token))["myTickets"]["edges"]
    ]

    one = (
        await client(
            REFUND,
            {"order": order["id"], "tickets": [tickets[0]["id"]]},
            token=world.organizer_token,
        )
    )["refundOrder"]
    assert one["order"] == {
        "status": "PARTIALLY_REFUNDED",
        "refundedCents": PRICE,
        "totalCents": 3 * PRICE,
    }
    assert await tier_counts(database, world.tier_id) == (10, 0, 2)

    full = (await client(REFUND, {"order": order["id"]}, token=world.organizer_token))[
        "refundOrder"
    ]
    assert len(full["refundedTickets"]) == 2 and full["order"]["status"] == "REFUNDED"
    again = (await client(REFUND, {"order": order["id"]}, token=world.organizer_token))[
        "refundOrder"
    ]
    assert again["refundedTickets"] == [] and again["order"]["refundedCents"] == 3 * PRICE
    assert await tier_counts(database, world.tier_id) == (10, 0, 0)
    assert sorted(r["amount"] for r in gateway(app).refunds()) == [PRICE, 2 * PRICE]
    assert (
        await count(
            database, "SELECT count(*) FROM ticketing.refunds WHERE stripe_refund_id IS NULL"
        )
        == 0
    )

    refused = (
        await client(CHECK_IN, {"token": tickets[0]["qrPayload"]}, token=world.organizer_token)
    )["checkIn"]
    assert refused["code"] == "TICKET_REFUNDED"
    # Stripe echoes our own refund back: nothing changes.
    echo = await webhook(client, settings, "charge.refunded", order)
    assert echo["result"] == "unchanged"
    await assert_books_balanced(database)


async def test_users_and_organizers_see_only_their_own(
    client: GraphQLClient,
    database: Database,
    world: World,
    clock: FrozenClock,
) -> None:
    order = await paid_order(client, database, world, clock, 1)
    stranger = world.token(await add_user(database))
    rival_organizer = world.token(await add_user(database, "organizer"), Role.ORGANIZER)
    order_q = "query ($id: ID!) { order(id: $id) { id contact { email } tickets { qrPayload } } }"
    event_orders = """query ($e: ID!) { eventOrders(eventId: $e) {
        __typename ... on OrderConnection { edges { node { id contact { email } } } }
        ... on OrderError { code } } }"""

    assert (await client(order_q, {"id": order["id"]}, token=stranger))["order"] is None
    assert (await client(MY_TICKETS, token=stranger))["myTickets"]["edges"] == []
    assert (await client("{ myOrders { edges { node { id } } } }", token=stranger))["myOrders"][
        "edges"
    ] == []
    assert (await client(order_q, {"id": order["id"]}, token=rival_organizer))["order"] is None
    refused = await client(event_orders, {"e": str(world.event_id)}, token=rival_organizer)
    assert refused["eventOrders"] == {"__typename": "OrderError", "code": "EVENT_NOT_FOUND"}
    refund = (await client(REFUND, {"order": order["id"]}, token=rival_organizer))["refundOrder"]
    assert refund["code"] == "ORDER_NOT_FOUND"
    tickets = (await client(MY_TICKETS, token=world.buyer_token))["myTickets"]["edges"]
    scan = (
        await client(CHECK_IN, {"token": tickets[0]["node"]["qrPayload"]}, token=rival_organizer)
    )["checkIn"]
    assert scan["code"] == "NOT_ALLOWED"

    mine = (await client(order_q, {"id": order["id"]}, token=world.buyer_token))["order"]
    assert mine["contact"]["email"] == "sam@example.com" and mine["tickets"][0]["qrPayload"]
    seen = (await client(order_q, {"id": order["id"]}, token=world.organizer_token))["order"]
    assert seen["tickets"][0]["qrPayload"] is None  # the door scans it; organizers don't get it
    listed = await client(event_orders, {"e": str(world.event_id)}, token=world.organizer_token)
    assert [e["node"]["id"] for e in listed["eventOrders"]["edges"]] == [order["id"]]
    assert await count(database, "SELECT count(*) FROM ticketing.refunds") == 0
    await assert_books_balanced(database)


async def test_event_orders_paginate_with_cursors(
    client: GraphQLClient,
    database: Database,
    world: World,
    clock: FrozenClock,
) -> None:
    for _ in range(5):
        buyer = await add_user(database)
        await checkout(
            client,
            world.token(buyer),
            [await hold(database, clock, buyer, world.tier_id, 1)],
        )
        clock.advance(1)
    page_q = """query ($e: ID!, $after: String) {
      eventOrders(eventId: $e, first: 2, after: $after, status: PENDING) {
        ... on OrderConnection { edges { node { id } } pageInfo { hasNextPage endCursor } } } }"""
    seen: list[str] = []
    after = None
    for _ in range(3):
        data = (
            await client(
                page_q, {"e": str(world.event_id), "after": after}, token=world.organizer_token
            )
        )["eventOrders"]
        seen += [e["node"]["id"] for e in data["edges"]]
        after = data["pageInfo"]["endCursor"]
        if not data["pageInfo"]["hasNextPage"]:
            break
    assert len(seen) == 5 == len(set(seen))
    async with connection(database) as conn:
        newest_first = [
            gid("Order", r["id"])
            for r in await conn.fetch(
                "SELECT id FROM ticketing.orders ORDER BY created_at DESC, id DESC"
            )
        ]
    assert seen == newest_first
