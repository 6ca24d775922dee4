"""Partial refunds with reasons, through GraphQL over HTTP: money alone, tickets, the
preview against the real outcome, every refusal, retries under a client key, discounted
orders, and Stripe's echo of our refunds.

After each scenario the alert queries and every ticketing health figure are 0, and the
discount codes' counters equal their redemptions (`balanced`).
"""

from __future__ import annotations

from typing import Any

import orjson
from databases import Database
from starlette.applications import Starlette

import db.ops_views
from db.channels import TierMessage
from db.core import connection
from liventix.clock import FrozenClock
from liventix.settings import Settings
from tests.discount_support import assert_uses_balanced, checkout_with, new_code, uses
from tests.orders_support import (
    CHECK_IN,
    PRICE,
    World,
    add_user,
    assert_books_balanced,
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

__all__ = ["world"]

REFUND_FIELDS = """
    __typename
    ... on RefundPayload {
      refundedTickets replayed
      refund { amountCents reason note voidedTickets settled }
      order { status refundedCents totalCents refundReason
              refunds { amountCents reason note voidedTickets settled } }
    }
    ... on OrderError { code message field refundableCents }"""

REFUND = f"""
mutation ($order: ID!, $amount: Int, $tickets: [ID!], $reason: RefundReason!,
          $note: String, $key: String) {{
  refundOrder(orderId: $order, amountCents: $amount, ticketIds: $tickets, reason: $reason,
              note: $note, idempotencyKey: $key) {{ {REFUND_FIELDS} }}
}}"""

PREVIEW = """
query ($order: ID!, $amount: Int, $tickets: [ID!]) {
  refundPreview(orderId: $order, amountCents: $amount, ticketIds: $tickets) {
    __typename
    ... on RefundPreview {
      amountCents voidedTickets refundableCents remainingCents orderStatus
      refusal { code field refundableCents }
    }
    ... on OrderError { code message }
  }
}"""

TICKETS = "query ($id: ID!) { order(id: $id) { tickets { id status } } }"


async def balanced(database: Database, clock: FrozenClock) -> None:
    """The alert queries and every ticketing health figure are 0; the codes balance."""
    await assert_books_balanced(database)
    assert (await db.ops_views.ticketing_health(database, clock.now())).failing_checks == 0
    await assert_uses_balanced(database)


async def refund(
    client: GraphQLClient,
    world: World,
    order: dict[str, Any],
    *,
    reason: str = "REQUESTED_BY_CUSTOMER",
    token: str | None = None,
    **args: Any,
) -> dict[str, Any]:
    """`refundOrder` of `order` as the organizer; `args`: amount, tickets, note, key."""
    variables = {"order": order["id"], "reason": reason, **args}
    data = await client(REFUND, variables, token=token or world.organizer_token)
    result: dict[str, Any] = data["refundOrder"]
    return result


async def preview(
    client: GraphQLClient, world: World, order: dict[str, Any], **args: Any
) -> dict[str, Any]:
    data = await client(PREVIEW, {"order": order["id"], **args}, token=world.organizer_token)
    result: dict[str, Any] = data["refundPreview"]
    return result


async def ticket_ids(client: GraphQLClient, world: World, order: dict[str, Any]) -> list[str]:
    data = await client(TICKETS, {"id": order["id"]}, token=world.organizer_token)
    return [t["id"] for t in data["order"]["tickets"]]


async def ticket_statuses(client: GraphQLClient, world: World, order: dict[str, Any]) -> list[str]:
    data = await client(TICKETS, {"id": order["id"]}, token=world.organizer_token)
    return [t["status"] for t in data["order"]["tickets"]]


# --- money alone ------------------------------------------------------------------------


async def test_an_amount_refunds_money_only_once_per_key_and_tells_stripe_why(
    client: GraphQLClient, database: Database, world: World, clock: FrozenClock, app: Starlette
) -> None:
    """No ticket is voided, no seat freed; the gateway gets the refund row's key and
    Stripe's reason; a retry with the same key returns the first refund, refunds nothing
    more; the same key for another amount is refused. The buyer sees the reason, not
    the organizer's note."""
    order = await paid_order(client, database, world, clock, 3)
    done = await refund(client, world, order, amount=1000, key="goodwill-1",
                        reason="DUPLICATE", note="charged twice at the door")  # fmt: skip
    assert done["refundedTickets"] == [] and done["replayed"] is False
    assert done["refund"] == {"amountCents": 1000, "reason": "DUPLICATE",
                              "note": "charged twice at the door", "voidedTickets": [],
                              "settled": True}  # fmt: skip
    assert done["order"]["status"] == "PARTIALLY_REFUNDED"
    assert done["order"]["refundedCents"] == 1000 and done["order"]["refundReason"] == "duplicate"
    assert done["order"]["refunds"] == [done["refund"]]
    assert await ticket_statuses(client, world, order) == ["ISSUED"] * 3
    assert await tier_counts(database, world.tier_id) == (10, 0, 3)
    (call,) = gateway(app).refunds()
    async with connection(database) as conn:
        refund_id = await conn.fetchval("SELECT id FROM ticketing.refunds")
    assert call["amount"] == 1000 and call["reason"] == "duplicate"
    assert call["key"] == f"order-{key_of(order['id'])}-refund-{refund_id}"
    assert call["metadata"]["liventix_refund_id"] == str(refund_id)

    again = await refund(client, world, order, amount=1000, key="goodwill-1", reason="DUPLICATE")
    assert again["replayed"] is True and again["refund"] == done["refund"]
    assert again["order"]["refundedCents"] == 1000
    other = await refund(client, world, order, amount=500, key="goodwill-1")
    assert (other["code"], other["field"]) == ("IDEMPOTENCY_KEY_REUSED", "idempotencyKey")
    assert len(gateway(app).refunds()) == 1
    assert await count(database, "SELECT count(*) FROM ticketing.refunds") == 1
    query = "query ($id: ID!) { order(id: $id) { refunds { reason note } } }"
    for token, note in ((world.buyer_token, None), (world.organizer_token, done["refund"]["note"])):
        seen = await client(query, {"id": order["id"]}, token=token)
        assert seen["order"]["refunds"] == [{"reason": "DUPLICATE", "note": note}]
    await balanced(database, clock)


# --- tickets ------------------------------------------------------------------------


async def test_tickets_are_voided_their_seats_freed_and_announced_as_previewed(
    client: GraphQLClient, database: Database, world: World, clock: FrozenClock, app: Starlette
) -> None:
    """The preview says what the refund then does, exactly; only the named tickets are
    voided, their seats are back in `eventTiers`, and the tier's change was announced."""
    order = await paid_order(client, database, world, clock, 3)
    tickets = await ticket_ids(client, world, order)
    chosen = tickets[:2]
    seen = await preview(client, world, order, tickets=chosen)
    assert seen == {
        "__typename": "RefundPreview",
        "amountCents": 2 * PRICE,
        "voidedTickets": chosen,
        "refundableCents": 3 * PRICE,
        "remainingCents": PRICE,
        "orderStatus": "PARTIALLY_REFUNDED",
        "refusal": None,
    }
    assert await tier_counts(database, world.tier_id) == (10, 0, 3), "a preview writes nothing"

    messages: list[TierMessage] = []

    def collect(*args: object) -> None:
        message = TierMessage.decode(orjson.loads(str(args[-1])))
        if isinstance(message, TierMessage):
            messages.append(message)

    async with connection(database) as listener:
        await listener.add_listener("liventix", collect)
        try:
            done = await refund(client, world, order, tickets=chosen, reason="EVENT_CHANGED")
            await listener.fetchval("SELECT 1")  # let the notification arrive
        finally:
            await listener.remove_listener("liventix", collect)
    assert done["refundedTickets"] == chosen
    assert done["refund"]["amountCents"] == seen["amountCents"]
    assert done["refund"]["voidedTickets"] == seen["voidedTickets"]
    assert done["order"]["status"] == seen["orderStatus"]
    assert done["order"]["totalCents"] - done["order"]["refundedCents"] == seen["remainingCents"]
    statuses = dict(zip(tickets, await ticket_statuses(client, world, order), strict=True))
    assert statuses == {tickets[0]: "REFUNDED", tickets[1]: "REFUNDED", tickets[2]: "ISSUED"}
    assert await tier_counts(database, world.tier_id) == (10, 0, 1)
    assert [(m.tier_id, m.issued, m.available) for m in messages] == [(world.tier_id, 1, 9)]
    listed = await client(
        "query ($e: ID!) { eventTiers(eventId: $e) { id available } }",
        {"e": gid("Event", world.event_id)},
    )
    available = {t["id"]: t["available"] for t in listed["eventTiers"]}
    assert available[gid("TicketTier", world.tier_id)] == 9
    assert [r["amount"] for r in gateway(app).refunds()] == [2 * PRICE]
    await balanced(database, clock)


async def test_a_free_ticket_is_voided_with_a_refund_of_nothing_to_settle(
    client: GraphQLClient, database: Database, world: World, clock: FrozenClock, app: Starlette
) -> None:
    held = await hold(database, clock, world.buyer, world.free_tier_id, 2)
    order = order_of(await checkout_with(client, world.buyer_token, [held], None))
    assert order["status"] == "PAID"
    (first, _) = await ticket_ids(client, world, order)
    done = await refund(client, world, order, tickets=[first], reason="EVENT_CANCELED")
    assert done["refund"]["amountCents"] == 0 and done["refund"]["settled"] is True
    assert await tier_counts(database, world.free_tier_id) == (5, 0, 1)
    assert gateway(app).refunds() == []
    await balanced(database, clock)


# --- refusals -----------------------------------------------------------------------


async def test_each_refusal_has_its_code_the_preview_agrees_and_nothing_changes(
    client: GraphQLClient, database: Database, world: World, clock: FrozenClock, app: Starlette
) -> None:
    order = await paid_order(client, database, world, clock, 2)
    first, second = await ticket_ids(client, world, order)
    other = await paid_order(client, database, world, clock, 1)
    (foreign,) = await ticket_ids(client, world, other)
    await refund(client, world, other, tickets=[foreign])
    scanned = (await client("query ($id: ID!) { order(id: $id) { tickets { qrPayload } } }",
                            {"id": order["id"]}, token=world.buyer_token))  # fmt: skip
    token = scanned["order"]["tickets"][1]["qrPayload"]
    checked = await client(CHECK_IN, {"token": token}, token=world.organizer_token)
    assert checked["checkIn"]["__typename"] == "CheckInPayload"
    pending = await pending_order(client, database, world, clock, 1)
    before = await order_row(database, order["id"])
    refunds_before = await count(database, "SELECT count(*) FROM ticketing.refunds")

    cases: list[tuple[dict[str, Any], dict[str, Any], str, str]] = [
        (pending, {"amount": 100, "key": "k1"}, "ORDER_NOT_PAID", "orderId"),
        (order, {"amount": 0, "key": "k2"}, "INVALID_AMOUNT", "amountCents"),
        (order, {"amount": 2 * PRICE + 1, "key": "k3"}, "REFUND_EXCEEDS_PAID", "amountCents"),
        (order, {"tickets": [foreign]}, "TICKET_NOT_IN_ORDER", "ticketIds"),
        (other, {"tickets": [foreign]}, "TICKET_ALREADY_VOIDED", "ticketIds"),
        (order, {"tickets": [first, second]}, "TICKET_CHECKED_IN", "ticketIds"),
        (order, {}, "TICKET_CHECKED_IN", "ticketIds"),
    ]
    for target, args, code, field in cases:
        refused = await refund(client, world, target, **args)
        assert (refused["code"], refused["field"]) == (code, field), (args, refused)
        shown = await preview(
            client, world, target, **{k: v for k, v in args.items() if k != "key"}
        )
        assert shown["refusal"]["code"] == code and shown["amountCents"] == 0, (args, shown)
    exceeded = await refund(client, world, order, amount=2 * PRICE + 1, key="k3")
    assert exceeded["refundableCents"] == 2 * PRICE

    inputs: list[tuple[dict[str, Any], str, str]] = [
        ({"reason": "OTHER", "tickets": [first]}, "NOTE_REQUIRED", "note"),
        ({"reason": "OTHER", "note": "  ", "tickets": [first]}, "NOTE_REQUIRED", "note"),
        ({"amount": 100, "tickets": [first], "key": "k4"}, "INVALID_INPUT", "amountCents"),
        ({"amount": 100}, "INVALID_INPUT", "idempotencyKey"),
        ({"tickets": []}, "INVALID_INPUT", "ticketIds"),
        ({"reason": "LATE_PAYMENT", "tickets": [first]}, "INVALID_INPUT", "reason"),
        ({"note": "x" * 501, "tickets": [first]}, "INVALID_INPUT", "note"),
        ({"amount": 100, "key": "k" * 201}, "INVALID_INPUT", "idempotencyKey"),
    ]
    for args, code, field in inputs:
        refused = await refund(client, world, order, **args)
        assert (refused["code"], refused["field"]) == (code, field), (args, refused)
    stranger = world.token(await add_user(database, "organizer"))
    hidden = await refund(client, world, order, amount=100, key="k5", token=stranger)
    assert hidden["code"] == "ORDER_NOT_FOUND"

    assert await order_row(database, order["id"]) == before
    assert await count(database, "SELECT count(*) FROM ticketing.refunds") == refunds_before
    assert await tier_counts(database, world.tier_id) == (10, 1, 2)  # the pending hold
    # Money alone is still possible for the checked-in ticket.
    money = await refund(client, world, order, amount=PRICE, key="door")
    assert money["order"]["refundedCents"] == PRICE
    await balanced(database, clock)


# --- discounts ----------------------------------------------------------------------


async def test_partial_refunds_of_a_discounted_order_add_up_to_what_was_paid(
    client: GraphQLClient, database: Database, world: World, clock: FrozenClock,
    settings: Settings, app: Starlette,
) -> None:  # fmt: skip
    """Money, then each ticket: every refund within what is left, the last taking the
    rest, their sum exactly the total; the code's use comes back with the last ticket."""
    code = await new_code(client, world, code="THIRD", kind="FIXED", amountOffCents=1001,
                          maxUses=1)  # fmt: skip
    held = await hold(database, clock, world.buyer, world.tier_id, 3)
    order = order_of(await checkout_with(client, world.buyer_token, [held], "THIRD"))
    total = 3 * PRICE - 1001
    await webhook(client, settings, "payment_intent.succeeded", order)
    tickets = await ticket_ids(client, world, order)
    amounts = [(await refund(client, world, order, amount=777, key="a"))["refund"]["amountCents"]]
    for ticket in tickets:
        shown = await preview(client, world, order, tickets=[ticket])
        done = await refund(client, world, order, tickets=[ticket])
        assert done["refund"]["amountCents"] == shown["amountCents"]
        amounts.append(done["refund"]["amountCents"])
        assert (await uses(database, code["id"])) == ((0, 0) if ticket == tickets[-1] else (1, 0))
    share = PRICE * total // (3 * PRICE)
    assert amounts == [777, share, share, total - 777 - 2 * share]
    assert sum(amounts) == total == sum(r["amount"] for r in gateway(app).refunds())
    row = await order_row(database, order["id"])
    assert (row["status"], row["refunded_cents"]) == ("refunded", total)
    assert await tier_counts(database, world.tier_id) == (10, 0, 0)
    await balanced(database, clock)


# --- Stripe's echo ------------------------------------------------------------------


async def test_charge_refunded_for_our_own_refunds_changes_nothing_however_often(
    client: GraphQLClient, database: Database, world: World, clock: FrozenClock,
    settings: Settings,
) -> None:  # fmt: skip
    """All the money given back as an amount: the tickets still admit. Stripe then says
    the charge is fully refunded, twice under two event ids, and once more redelivered:
    our refunds explain it, so nothing is voided and nothing freed."""
    order = await paid_order(client, database, world, clock, 2)
    done = await refund(client, world, order, amount=2 * PRICE, key="all-money",
                        reason="EVENT_CHANGED")  # fmt: skip
    assert done["order"]["status"] == "PARTIALLY_REFUNDED"
    for event_id in ("evt_echo_1", "evt_echo_2", "evt_echo_2"):
        answer = await webhook(client, settings, "charge.refunded", order, event_id=event_id)
        assert answer["result"] in ("unchanged", "duplicate")
    assert await ticket_statuses(client, world, order) == ["ISSUED", "ISSUED"]
    assert await tier_counts(database, world.tier_id) == (10, 0, 2)
    row = await order_row(database, order["id"])
    assert (row["status"], row["refunded_cents"]) == ("partially_refunded", 2 * PRICE)
    more = await refund(client, world, order, amount=1, key="one-more")
    assert more["code"] == "REFUND_EXCEEDS_PAID" and more["refundableCents"] == 0
    # Voiding the tickets now gives back no money: there is none left.
    voided = await refund(client, world, order, reason="EVENT_CANCELED")
    assert voided["refund"]["amountCents"] == 0 and voided["order"]["status"] == "REFUNDED"
    assert await tier_counts(database, world.tier_id) == (10, 0, 0)
    await balanced(database, clock)


async def test_a_full_refund_at_stripe_after_a_partial_one_voids_the_rest(
    client: GraphQLClient, database: Database, world: World, clock: FrozenClock,
    settings: Settings,
) -> None:  # fmt: skip
    order = await paid_order(client, database, world, clock, 2)
    await refund(client, world, order, amount=1000, key="part")
    answer = await webhook(client, settings, "charge.refunded", order, event_id="evt_dash")
    assert answer["result"] == "refunded"
    row = await order_row(database, order["id"])
    assert (row["status"], row["refunded_cents"]) == ("refunded", 2 * PRICE)
    async with connection(database) as conn:
        reasons = await conn.fetch(
            "SELECT reason, amount_cents FROM ticketing.refunds ORDER BY created_at, amount_cents"
        )
    assert sorted((r["reason"], r["amount_cents"]) for r in reasons) == [
        ("payment_provider", 2 * PRICE - 1000),
        ("requested_by_customer", 1000),
    ]
    assert await tier_counts(database, world.tier_id) == (10, 0, 0)
    await balanced(database, clock)
