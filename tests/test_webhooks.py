"""The Stripe webhook: signatures, exactly-once effects, out-of-order delivery."""

from __future__ import annotations

import asyncio
import hashlib
import time
import uuid
from collections.abc import Callable
from typing import Any

import httpx
import orjson
import pytest
from databases import Database

from liventix.clock import FrozenClock
from liventix.settings import Settings
from liventix.signed_events import build_event, send_event, sign, trigger
from liventix.webhooks import MalformedEvent, parse_event
from tests.conftest import ServerThread
from tests.orders_support import (
    World,
    assert_books_balanced,
    count,
    order_row,
    paid_order,
    pending_order,
    tier_counts,
    webhook,
    world,
)
from tests.support import GraphQLClient, key_of

__all__ = ["world"]


async def test_bad_signatures_get_400_and_change_nothing(
    client: GraphQLClient,
    database: Database,
    world: World,
    clock: FrozenClock,
    settings: Settings,
) -> None:
    order = await pending_order(client, database, world, clock, 2)
    event = build_event(
        "payment_intent.succeeded",
        order_id=order["id"],
        payment_intent_id=order["paymentIntentId"],
        amount_cents=order["totalCents"],
    )
    body = orjson.dumps(event)
    secret = settings.stripe_webhook_secret
    tampered = body.replace(b'"succeeded"', b'"succeeded" ', 1)
    cases = {
        "tampered body": (tampered, {"Stripe-Signature": sign(body, secret)}),
        "wrong secret": (body, {"Stripe-Signature": sign(body, "whsec_someone_else")}),
        "missing header": (body, {}),
        "too old": (
            body,
            {"Stripe-Signature": sign(body, secret, timestamp=int(time.time()) - 3600)},
        ),
        "garbage header": (body, {"Stripe-Signature": "t=abc,v1=zz"}),
    }
    for name, (payload, headers) in cases.items():
        response = await client.http.post("/webhooks/stripe", content=payload, headers=headers)
        assert response.status_code == 400, name
    assert await count(database, "SELECT count(*) FROM ticketing.stripe_events") == 0
    assert (await order_row(database, order["id"]))["status"] == "pending"
    assert await count(database, "SELECT count(*) FROM ticketing.tickets") == 0
    # The control: the same event, correctly signed, is accepted.
    assert (await webhook(client, settings, "payment_intent.succeeded", order))["result"] == "paid"


async def test_five_concurrent_deliveries_make_one_set_of_tickets(
    server: ServerThread,
    database: Database,
    world: World,
    clock: FrozenClock,
    settings: Settings,
) -> None:
    async with httpx.AsyncClient(base_url=server.http_url, timeout=20) as http:
        client = GraphQLClient(http)
        order = await pending_order(client, database, world, clock, 3)
        event = build_event(
            "payment_intent.succeeded",
            order_id=order["id"],
            payment_intent_id=order["paymentIntentId"],
            amount_cents=order["totalCents"],
        )
        secret = settings.stripe_webhook_secret
        same = await asyncio.gather(
            *(send_event(http, "/webhooks/stripe", event, secret) for _ in range(5))
        )
        # Stripe may also send distinct events for the same payment: still one completion.
        others = await asyncio.gather(
            *(
                send_event(http, "/webhooks/stripe", {**event, "id": f"evt_{i}"}, secret)
                for i in range(5)
            )
        )
    results = sorted(r.json()["result"] for r in same)
    assert all(r.status_code == 200 for r in [*same, *others])
    assert results == ["duplicate"] * 4 + ["paid"]
    assert {r.json()["result"] for r in others} == {"unchanged"}
    assert await count(database, "SELECT count(*) FROM ticketing.tickets") == 3
    assert await count(database, "SELECT count(*) FROM ticketing.ticket_tokens") == 3
    assert (
        await count(database, "SELECT count(*) FROM ticketing.stripe_events WHERE result = 'paid'")
        == 1
    )
    assert await tier_counts(database, world.tier_id) == (10, 0, 3)
    await assert_books_balanced(database)


async def test_failure_after_success_leaves_the_order_paid(
    client: GraphQLClient,
    database: Database,
    world: World,
    clock: FrozenClock,
    settings: Settings,
) -> None:
    order = await pending_order(client, database, world, clock, 2)
    assert (await webhook(client, settings, "payment_intent.succeeded", order))["result"] == "paid"
    failed = await webhook(client, settings, "payment_intent.payment_failed", order)
    assert failed["result"] == "unchanged"
    assert (await order_row(database, order["id"]))["status"] == "paid"
    await assert_books_balanced(database)


async def test_failure_then_success_pays(
    client: GraphQLClient,
    database: Database,
    world: World,
    clock: FrozenClock,
    settings: Settings,
) -> None:
    """A declined card keeps the holds; the buyer's second card succeeds on the same intent."""
    order = await pending_order(client, database, world, clock, 2)
    failed = await webhook(client, settings, "payment_intent.payment_failed", order)
    assert failed["result"] == "failed"
    row = await order_row(database, order["id"])
    assert row["status"] == "failed" and row["failure_reason"] == "Your card was declined."
    assert await tier_counts(database, world.tier_id) == (10, 2, 0)  # holds kept
    assert (await webhook(client, settings, "payment_intent.succeeded", order))["result"] == "paid"
    assert await tier_counts(database, world.tier_id) == (10, 0, 2)
    await assert_books_balanced(database)


async def test_refund_before_success_is_final(
    client: GraphQLClient,
    database: Database,
    world: World,
    clock: FrozenClock,
    settings: Settings,
) -> None:
    order = await pending_order(client, database, world, clock, 2)
    refunded = await webhook(client, settings, "charge.refunded", order)
    assert refunded["result"] == "refunded"
    assert await tier_counts(database, world.tier_id) == (10, 0, 0)  # holds released
    late = await webhook(client, settings, "payment_intent.succeeded", order)
    assert late["result"] == "unchanged"
    row = await order_row(database, order["id"])
    assert row["status"] == "refunded" and row["refunded_cents"] == row["total_cents"]
    assert await count(database, "SELECT count(*) FROM ticketing.tickets") == 0
    await assert_books_balanced(database)


async def test_refund_made_at_stripe_refunds_the_tickets(
    client: GraphQLClient,
    database: Database,
    world: World,
    clock: FrozenClock,
    settings: Settings,
) -> None:
    order = await pending_order(client, database, world, clock, 2)
    await webhook(client, settings, "payment_intent.succeeded", order)
    answer = await webhook(client, settings, "refund.created", order)
    assert answer["result"] == "refunded"
    assert await tier_counts(database, world.tier_id) == (10, 0, 0)
    assert (
        await count(database, "SELECT count(*) FROM ticketing.tickets WHERE status = 'refunded'")
        == 2
    )
    assert (
        await count(
            database, "SELECT count(*) FROM ticketing.refunds WHERE stripe_refund_id IS NULL"
        )
        == 0
    )  # nothing left for the gateway: Stripe already refunded
    await assert_books_balanced(database)


async def test_unknown_orders_and_events_are_acknowledged(
    client: GraphQLClient, settings: Settings
) -> None:
    stray = {"id": str(uuid.uuid4()), "totalCents": 100, "paymentIntentId": "pi_unknown"}
    assert (await webhook(client, settings, "payment_intent.succeeded", stray))[
        "result"
    ] == "unknown_order"
    assert (await webhook(client, settings, "customer.created", stray))["result"] in (
        "ignored",
        "unknown_order",
    )


async def test_the_cli_trigger_walks_an_order_to_paid_on_a_running_server(
    server: ServerThread,
    database: Database,
    world: World,
    clock: FrozenClock,
    settings: Settings,
) -> None:
    """What `liventix webhook payment_intent.succeeded --order <id>` does."""
    async with httpx.AsyncClient(base_url=server.http_url, timeout=20) as http:
        order = await pending_order(GraphQLClient(http), database, world, clock, 2)
    url = f"{server.http_url}/webhooks/stripe"
    response = await trigger(settings, "payment_intent.succeeded", key_of(order["id"]), url)
    assert response.status_code == 200 and response.json()["result"] == "paid"
    assert (await order_row(database, order["id"]))["status"] == "paid"
    await assert_books_balanced(database)


def _refund_event(order: dict[str, Any], event_id: str) -> dict[str, Any]:
    return build_event(
        "charge.refunded",
        order_id=order["id"],
        payment_intent_id=order["paymentIntentId"],
        amount_cents=order["totalCents"],
        event_id=event_id,
    )


def _object(event: dict[str, Any]) -> dict[str, Any]:
    found: dict[str, Any] = event["data"]["object"]
    return found


# Each breaks one field we read in a full refund of the paid order; `True` when the
# event has no usable id of its own, so it is recorded under the body's hash.
MALFORMED: dict[str, tuple[Callable[[dict[str, Any]], object], bool]] = {
    "amount not a number": (lambda e: _object(e).update(amount_refunded="abc"), False),
    "amount a boolean": (lambda e: _object(e).update(amount_refunded=True), False),
    "amount negative": (lambda e: _object(e).update(amount_refunded=-5), False),
    "amount a float": (lambda e: _object(e).update(amount_refunded=25.5), False),
    "object a list": (lambda e: e["data"].update(object=[_object(e)]), False),
    "data missing": (lambda e: e.pop("data"), False),
    "type missing": (lambda e: e.pop("type"), False),
    "type a number": (lambda e: e.update(type=7), False),
    "metadata a string": (lambda e: _object(e).update(metadata="order"), False),
    "order id a number": (lambda e: _object(e).update(metadata={"order_id": 5}), False),
    "intent id an object": (lambda e: _object(e).update(payment_intent={"id": "pi"}), False),
    "id an int": (lambda e: e.update(id=42), True),
    "id missing": (lambda e: e.pop("id"), True),
    "id with a NUL byte": (lambda e: e.update(id="evt_\x00"), True),
    "id too long": (lambda e: e.update(id="evt_" + "x" * 5000), True),
}


async def test_signed_malformed_events_are_400_recorded_once_and_change_nothing(
    client: GraphQLClient,
    database: Database,
    world: World,
    clock: FrozenClock,
    settings: Settings,
) -> None:
    """A correctly signed body we cannot read is refused (Stripe retries, a person
    looks), recorded once as rejected however often it comes, and touches no order."""
    order = await paid_order(client, database, world, clock, 2)
    before = await order_row(database, order["id"])
    bodies = {}
    for index, (name, (corrupt, synthetic)) in enumerate(MALFORMED.items()):
        event = _refund_event(order, f"evt_malformed_{index}")
        corrupt(event)
        body = orjson.dumps(event)
        bodies[name] = (
            body,
            f"rejected:{hashlib.sha256(body).hexdigest()}"
            if synthetic
            else f"evt_malformed_{index}",
        )
    bodies["not JSON"] = (b"{not json", f"rejected:{hashlib.sha256(b'{not json').hexdigest()}")
    bodies["not an object"] = (b"[1, 2]", f"rejected:{hashlib.sha256(b'[1, 2]').hexdigest()}")

    secret = settings.stripe_webhook_secret
    for name, (body, recorded_id) in bodies.items():
        for _ in range(2):  # Stripe redelivers what it did not get a 2xx for
            response = await client.http.post(
                "/webhooks/stripe",
                content=body,
                headers={"Stripe-Signature": sign(body, secret)},
            )
            assert response.status_code == 400, (name, response.text)
            assert response.json()["error"] == "malformed event", name
        rows = await count(
            database,
            """SELECT count(*) FROM ticketing.stripe_events
                WHERE id = $1 AND result LIKE 'rejected:%' AND processed_at IS NOT NULL""",
            recorded_id,
        )
        assert rows == 1, name

    assert (
        await count(database, "SELECT count(*) FROM ticketing.stripe_events") == len(bodies) + 1
    )  # + the success that paid the order
    assert await order_row(database, order["id"]) == before
    assert (
        await count(database, "SELECT count(*) FROM ticketing.tickets WHERE status = 'issued'") == 2
    )
    assert await count(database, "SELECT count(*) FROM ticketing.refunds") == 0
    assert await tier_counts(database, world.tier_id) == (10, 0, 2)
    await assert_books_balanced(database)
    # The control: the well-formed refund is applied.
    assert (await webhook(client, settings, "charge.refunded", order))["result"] == "refunded"


def test_the_parser_names_the_malformed_field() -> None:
    event = _refund_event(
        {"id": str(uuid.uuid4()), "paymentIntentId": "pi_1", "totalCents": 1}, "evt_1"
    )
    _object(event)["amount_refunded"] = "abc"
    with pytest.raises(MalformedEvent) as caught:
        parse_event(event)
    assert "data.object.amount_refunded" in caught.value.reason
    assert (caught.value.event_id, caught.value.event_type) == ("evt_1", "charge.refunded")
