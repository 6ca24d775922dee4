"""Discount and comp codes: pricing, each typed refusal, the life of a use, limits and
who may manage codes, mostly through GraphQL over HTTP.

After each scenario the platform's alert queries still return 0 and every code's
counters equal its redemptions (`assert_uses_balanced`).
"""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from databases import Database
from starlette.applications import Starlette

import db.ops_views
import db.sweeper
from db.completion import CODE_REFUND_REASON
from db.discount_codes import DiscountCodeRecord, Line, discount
from db.errors import OrderError
from liventix.auth import Role
from liventix.clock import FrozenClock
from liventix.settings import Settings
from tests.discount_support import (
    EVENT_CODES,
    UPDATE_CODE,
    assert_uses_balanced,
    checkout_with,
    create_code,
    new_code,
    uses,
)
from tests.orders_support import (
    PRICE,
    REFUND,
    World,
    add_event,
    add_user,
    assert_books_balanced,
    count,
    gateway,
    hold,
    order_of,
    order_row,
    webhook,
    world,
)
from tests.support import GraphQLClient, gid

__all__ = ["world"]  # the fixture, re-exported for pytest


async def balanced(database: Database, clock: FrozenClock) -> None:
    """The alert queries and every ticketing health figure are 0; the codes balance."""
    await assert_books_balanced(database)
    assert (await db.ops_views.ticketing_health(database, clock.now())).failing_checks == 0
    await assert_uses_balanced(database)


# --- pricing ----------------------------------------------------------------------


def _code(kind: str, **fields: object) -> DiscountCodeRecord:
    values: dict[str, object] = {
        "id": uuid.uuid4(),
        "event_id": uuid.uuid4(),
        "code": "X",
        "kind": kind,
        "percent_off": None,
        "amount_off_cents": None,
        "currency": None,
        "tier_id": None,
        "max_uses": 1,
        "per_user_limit": None,
        "starts_at": None,
        "ends_at": None,
        "enabled": True,
        "uses_reserved": 0,
        "uses_paid": 0,
        "created_at": None,
        "updated_at": None,
        **fields,
    }
    return DiscountCodeRecord(**values)  # type: ignore[arg-type]


def test_discount_takes_percent_fixed_or_all_and_never_more_than_the_tickets() -> None:
    """PERCENT rounds down, FIXED is once per order and floors the total at zero, COMP
    takes everything; a tier-restricted code discounts that tier's tickets only."""
    a, b = uuid.uuid4(), uuid.uuid4()
    lines = [Line(a, 999, 3), Line(b, 500, 1)]  # 2997 + 500
    assert discount(_code("percent", percent_off=15), lines, "usd") == 3497 * 15 // 100
    assert discount(_code("percent", percent_off=100), lines, "usd") == 3497
    assert discount(_code("fixed", amount_off_cents=1000, currency="usd"), lines, "usd") == 1000
    assert discount(_code("fixed", amount_off_cents=10**6, currency="usd"), lines, "usd") == 3497
    assert discount(_code("comp"), lines, "usd") == 3497
    assert discount(_code("comp", tier_id=b), lines, "usd") == 500
    assert discount(_code("percent", percent_off=50, tier_id=a), lines, "usd") == 1498


def test_discount_refuses_another_tier_or_currency() -> None:
    lines = [Line(uuid.uuid4(), 1000, 1)]
    for code in (
        _code("comp", tier_id=uuid.uuid4()),
        _code("fixed", amount_off_cents=100, currency="eur"),
    ):
        with pytest.raises(OrderError) as refused:
            discount(code, lines, "usd")
        assert refused.value.code == "CODE_NOT_APPLICABLE"


# --- managing codes ----------------------------------------------------------------


async def test_codes_are_case_insensitive_and_unique_per_event(
    client: GraphQLClient, database: Database, world: World, clock: FrozenClock
) -> None:
    """SAVE10 and save10 are one code in an event; another event may have it too; a
    buyer may type it in any case and the order shows it as created."""
    await new_code(client, world, code="Save10", kind="PERCENT", percentOff=10, maxUses=5)
    again = await create_code(client, world, code="SAVE10", kind="COMP", maxUses=1)
    assert (again["__typename"], again["code"], again["field"]) == (
        "TicketingError",
        "CODE_TAKEN",
        "code",
    )
    other_event, _, _ = await add_event(database, world.organizer, clock)
    elsewhere = await client(
        """mutation ($e: ID!) { createDiscountCode(eventId: $e,
             input: {code: "save10", kind: COMP, maxUses: 1}) { __typename } }""",
        {"e": gid("Event", other_event)},
        token=world.organizer_token,
    )
    assert elsewhere["createDiscountCode"]["__typename"] == "DiscountCodePayload"
    held = await hold(database, clock, world.buyer, world.tier_id, 2)
    result = await checkout_with(client, world.buyer_token, [held], "sAvE10")
    order = result["order"]
    assert (order["subtotalCents"], order["discountCents"], order["totalCents"]) == (
        2 * PRICE,
        PRICE // 5,
        2 * PRICE - PRICE // 5,
    )
    assert order["discountCode"] == "Save10" and order["status"] == "PENDING"
    await balanced(database, clock)


async def test_new_codes_are_validated_field_by_field(
    client: GraphQLClient, database: Database, world: World
) -> None:
    cases = [
        ({"code": "a b", "kind": "COMP", "maxUses": 1}, "code"),
        ({"code": "HALF", "kind": "PERCENT", "maxUses": 1}, "percentOff"),
        ({"code": "HALF", "kind": "PERCENT", "percentOff": 101, "maxUses": 1}, "percentOff"),
        ({"code": "TEN", "kind": "FIXED", "maxUses": 1}, "amountOffCents"),
        ({"code": "TEN", "kind": "COMP", "amountOffCents": 5, "maxUses": 1}, "amountOffCents"),
        ({"code": "FREE", "kind": "COMP", "maxUses": 0}, "maxUses"),
        ({"code": "FREE", "kind": "COMP", "maxUses": 1, "perUserLimit": 0}, "perUserLimit"),
        (
            {
                "code": "FREE",
                "kind": "COMP",
                "maxUses": 1,
                "startsAt": "2030-01-02T00:00:00+00:00",
                "endsAt": "2030-01-01T00:00:00+00:00",
            },
            "endsAt",
        ),
    ]
    for fields, field in cases:
        result = await create_code(client, world, **fields)
        assert (result.get("code"), result.get("field")) == ("INVALID_INPUT", field), fields
    foreign_tier = gid("TicketTier", uuid.uuid4())
    result = await create_code(
        client, world, code="VIP", kind="COMP", maxUses=1, tierId=foreign_tier
    )
    assert (result["code"], result["field"]) == ("TIER_NOT_FOUND", "tierId")


async def test_only_the_events_organizer_or_an_admin_manage_its_codes(
    client: GraphQLClient, database: Database, world: World
) -> None:
    """A buyer is refused, another organizer neither creates, sees nor edits; an admin may."""
    code = await new_code(client, world, code="STAFF", kind="COMP", maxUses=3)
    rival = world.token(await add_user(database, "organizer"), Role.ORGANIZER)
    admin = world.token(uuid.uuid4(), Role.ADMIN)
    by_buyer = await create_code(client, world, world.buyer_token, code="MINE", kind="COMP",
                                 maxUses=1)  # fmt: skip
    assert by_buyer["code"] == "NOT_ALLOWED"
    by_rival = await create_code(client, world, rival, code="MINE", kind="COMP", maxUses=1)
    assert by_rival["code"] == "NOT_ALLOWED"
    event = {"event": gid("Event", world.event_id)}
    listed = await client(EVENT_CODES, event, token=rival)
    assert listed["eventDiscountCodes"]["code"] == "EVENT_NOT_FOUND"
    listed = await client(EVENT_CODES, event, token=world.buyer_token)
    assert listed["eventDiscountCodes"]["code"] == "NOT_ALLOWED"
    edited = await client(UPDATE_CODE, {"id": code["id"], "input": {"enabled": False}},
                          token=rival)  # fmt: skip
    assert edited["updateDiscountCode"]["code"] == "CODE_NOT_FOUND"
    node = await client("query ($id: ID!) { node(id: $id) { id } }", {"id": code["id"]},
                        token=rival)  # fmt: skip
    assert node["node"] is None
    listed = await client(EVENT_CODES, event, token=admin)
    assert [c["code"] for c in listed["eventDiscountCodes"]["codes"]] == ["STAFF"]
    by_admin = await create_code(client, world, admin, code="ADMIN", kind="COMP", maxUses=1)
    assert by_admin["__typename"] == "DiscountCodePayload"


# --- refusals at checkout ------------------------------------------------------------


async def test_each_refusal_has_its_code_and_changes_nothing(
    client: GraphQLClient, database: Database, world: World, clock: FrozenClock
) -> None:
    """CODE_NOT_FOUND, CODE_EXPIRED (switched off, not started, ended),
    CODE_EXHAUSTED and CODE_NOT_APPLICABLE (another tier, another currency)."""
    now = clock.now()
    await new_code(client, world, code="OFF", kind="COMP", maxUses=5, enabled=False)
    await new_code(client, world, code="LATER", kind="COMP", maxUses=5,
                   startsAt=(now + timedelta(days=1)).isoformat())  # fmt: skip
    await new_code(client, world, code="GONE", kind="COMP", maxUses=5,
                   endsAt=(now - timedelta(seconds=1)).isoformat())  # fmt: skip
    await new_code(client, world, code="ZERO", kind="COMP", maxUses=1)
    await new_code(client, world, code="GUEST", kind="COMP", maxUses=5,
                   tierId=gid("TicketTier", world.free_tier_id))  # fmt: skip
    await new_code(client, world, code="EURO", kind="FIXED", amountOffCents=500,
                   currency="eur", maxUses=5)  # fmt: skip
    rival = await add_user(database)  # takes ZERO's one use
    rival_hold = await hold(database, clock, rival, world.tier_id, 1)
    taken = await checkout_with(client, world.token(rival), [rival_hold], "ZERO")
    assert taken["order"]["status"] == "PAID"
    held = await hold(database, clock, world.buyer, world.tier_id, 1)
    expected = {
        "NOPE": "CODE_NOT_FOUND",
        "x" * 500: "CODE_NOT_FOUND",
        "off": "CODE_EXPIRED",
        "LATER": "CODE_EXPIRED",
        "GONE": "CODE_EXPIRED",
        "ZERO": "CODE_EXHAUSTED",
        "GUEST": "CODE_NOT_APPLICABLE",
        "EURO": "CODE_NOT_APPLICABLE",
    }
    for text, code in expected.items():
        result = await checkout_with(client, world.buyer_token, [held], text)
        assert (result["__typename"], result["code"], result["field"]) == (
            "OrderError",
            code,
            "code",
        ), text
    assert await count(database, "SELECT count(*) FROM ticketing.orders") == 1
    assert await count(database, "SELECT sum(uses_reserved) FROM ticketing.discount_codes") == 0
    result = await checkout_with(client, world.buyer_token, [held], None)
    assert result["order"]["discountCode"] is None and result["order"]["discountCents"] == 0
    await balanced(database, clock)


# --- comp orders ---------------------------------------------------------------------


async def test_a_comp_order_completes_without_stripe_and_issues_tickets(
    client: GraphQLClient, database: Database, world: World, clock: FrozenClock, app: Starlette
) -> None:
    code = await new_code(client, world, code="CREW", kind="COMP", maxUses=2)
    held = await hold(database, clock, world.buyer, world.tier_id, 2)
    result = await checkout_with(client, world.buyer_token, [held], "crew")
    order = result["order"]
    assert order["status"] == "PAID" and order["totalCents"] == 0
    assert order["discountCents"] == 2 * PRICE and len(order["tickets"]) == 2
    assert result["clientSecret"] is None and result["paymentIntentId"] is None
    assert gateway(app).calls == []
    assert await uses(database, code["id"]) == (1, 0)
    again = await checkout_with(client, world.buyer_token, [held], "CREW")
    assert again["order"]["id"] == order["id"], "a repeat returns the paid order"
    assert await uses(database, code["id"]) == (1, 0)
    await balanced(database, clock)


# --- the life of a use -------------------------------------------------------------


async def test_a_paid_use_counts_once_however_often_the_webhook_comes(
    client: GraphQLClient, database: Database, world: World, clock: FrozenClock,
    settings: Settings,
) -> None:  # fmt: skip
    code = await new_code(client, world, code="TENOFF", kind="FIXED", amountOffCents=1000,
                          maxUses=3)  # fmt: skip
    held = await hold(database, clock, world.buyer, world.tier_id, 1)
    order = order_of(await checkout_with(client, world.buyer_token, [held], "tenoff"))
    assert order["totalCents"] == PRICE - 1000
    assert await uses(database, code["id"]) == (0, 1)
    for event_id in ("evt_same", "evt_same", "evt_other"):
        await webhook(client, settings, "payment_intent.succeeded", order, event_id=event_id)
    assert await uses(database, code["id"]) == (1, 0)
    listed = await client(EVENT_CODES, {"event": gid("Event", world.event_id)},
                          token=world.organizer_token)  # fmt: skip
    (row,) = listed["eventDiscountCodes"]["codes"]
    assert (row["usesPaid"], row["paidOrders"], row["revenueCents"], row["discountCents"]) == (
        1,
        1,
        PRICE - 1000,
        1000,
    )
    await balanced(database, clock)


async def test_a_use_comes_back_when_the_order_fails_or_expires(
    client: GraphQLClient, database: Database, world: World, clock: FrozenClock,
    settings: Settings,
) -> None:  # fmt: skip
    code = await new_code(client, world, code="ONCE", kind="PERCENT", percentOff=50,
                          maxUses=1)  # fmt: skip
    held = await hold(database, clock, world.buyer, world.tier_id, 1)
    first = order_of(await checkout_with(client, world.buyer_token, [held], "ONCE"))
    rival = await add_user(database)
    rival_hold = await hold(database, clock, rival, world.tier_id, 1)
    refused = await checkout_with(client, world.token(rival), [rival_hold], "ONCE")
    assert refused["code"] == "CODE_EXHAUSTED"
    await webhook(client, settings, "payment_intent.payment_failed", first)
    await webhook(client, settings, "payment_intent.payment_failed", first)
    assert await uses(database, code["id"]) == (0, 0)
    second = order_of(await checkout_with(client, world.token(rival), [rival_hold], "ONCE"))
    assert await uses(database, code["id"]) == (0, 1)
    clock.advance(901)
    await db.sweeper.sweep_expired_holds(database, clock.now())
    assert (await order_row(database, second["id"]))["status"] == "expired"
    assert await uses(database, code["id"]) == (0, 0)
    await balanced(database, clock)


async def test_a_full_refund_gives_the_use_back_a_partial_one_does_not(
    client: GraphQLClient, database: Database, world: World, clock: FrozenClock,
    settings: Settings, app: Starlette,
) -> None:  # fmt: skip
    """Refunds of a discounted order give back each ticket's share of what was paid, and
    add up to the total."""
    code = await new_code(client, world, code="THIRD", kind="FIXED", amountOffCents=1001,
                          maxUses=1)  # fmt: skip
    held = await hold(database, clock, world.buyer, world.tier_id, 3)
    order = order_of(await checkout_with(client, world.buyer_token, [held], "THIRD"))
    total = 3 * PRICE - 1001
    assert order["totalCents"] == total
    await webhook(client, settings, "payment_intent.succeeded", order)
    data = await client(
        "query ($id: ID!) { order(id: $id) { tickets { id } } }",
        {"id": order["id"]},
        token=world.buyer_token,
    )
    ticket_ids = [t["id"] for t in data["order"]["tickets"]]
    one = await client(REFUND, {"order": order["id"], "tickets": ticket_ids[:1]},
                       token=world.organizer_token)  # fmt: skip
    assert one["refundOrder"]["order"]["refundedCents"] == PRICE * total // (3 * PRICE)
    assert await uses(database, code["id"]) == (1, 0)
    rest = await client(REFUND, {"order": order["id"], "tickets": None},
                        token=world.organizer_token)  # fmt: skip
    assert rest["refundOrder"]["order"]["status"] == "REFUNDED"
    assert rest["refundOrder"]["order"]["refundedCents"] == total
    assert await uses(database, code["id"]) == (0, 0)
    refunds = [c["amount"] for c in gateway(app).calls if c["op"] == "refund"]
    assert sum(refunds) == total
    again = await client(REFUND, {"order": order["id"], "tickets": None},
                         token=world.organizer_token)  # fmt: skip
    assert again["refundOrder"]["refundedTickets"] == []
    assert await uses(database, code["id"]) == (0, 0)
    await balanced(database, clock)


async def test_a_late_payment_beyond_the_codes_limit_is_refunded(
    client: GraphQLClient, database: Database, world: World, clock: FrozenClock,
    settings: Settings,
) -> None:  # fmt: skip
    """The order expired and gave its use back, someone else took it: the late payment
    is refunded rather than the code used twice."""
    code = await new_code(client, world, code="SOLO", kind="PERCENT", percentOff=20,
                          maxUses=1)  # fmt: skip
    held = await hold(database, clock, world.buyer, world.tier_id, 1)
    late = order_of(await checkout_with(client, world.buyer_token, [held], "SOLO"))
    clock.advance(901)
    await db.sweeper.sweep_expired_holds(database, clock.now())
    rival = await add_user(database)
    rival_hold = await hold(database, clock, rival, world.tier_id, 1)
    await checkout_with(client, world.token(rival), [rival_hold], "SOLO")
    answer = await webhook(client, settings, "payment_intent.succeeded", late)
    assert answer["result"] == "refunded_late"
    row = await order_row(database, late["id"])
    assert (row["status"], row["refund_reason"]) == ("refunded", CODE_REFUND_REASON)
    assert await uses(database, code["id"]) == (0, 1)
    await balanced(database, clock)


# --- limits ---------------------------------------------------------------------------


async def test_the_per_user_limit_counts_reserved_and_paid_uses(
    client: GraphQLClient, database: Database, world: World, clock: FrozenClock,
    settings: Settings,
) -> None:  # fmt: skip
    await new_code(client, world, code="ONEEACH", kind="PERCENT", percentOff=10,
                   maxUses=10, perUserLimit=1)  # fmt: skip
    first = await hold(database, clock, world.buyer, world.tier_id, 1)
    order = order_of(await checkout_with(client, world.buyer_token, [first], "oneeach"))
    second = await hold(database, clock, world.buyer, world.free_tier_id, 1)
    refused = await checkout_with(client, world.buyer_token, [second], "ONEEACH")
    assert refused["code"] == "CODE_EXHAUSTED"
    rival = await add_user(database)
    rival_hold = await hold(database, clock, rival, world.tier_id, 1)
    ok = await checkout_with(client, world.token(rival), [rival_hold], "ONEEACH")
    assert ok["__typename"] == "CheckoutPayload"
    await webhook(client, settings, "payment_intent.payment_failed", order)
    again = await checkout_with(client, world.buyer_token, [second], "ONEEACH")
    assert again["__typename"] == "CheckoutPayload", "the failed order gave its use back"
    await balanced(database, clock)


async def test_max_uses_never_goes_below_the_uses_taken(
    client: GraphQLClient, database: Database, world: World, clock: FrozenClock
) -> None:
    code = await new_code(client, world, code="TWO", kind="COMP", maxUses=5)
    for buyer in (world.buyer, await add_user(database)):
        held = await hold(database, clock, buyer, world.tier_id, 1)
        await checkout_with(client, world.token(buyer), [held], "TWO")
    assert await uses(database, code["id"]) == (2, 0)
    low = await client(UPDATE_CODE, {"id": code["id"], "input": {"maxUses": 1}},
                       token=world.organizer_token)  # fmt: skip
    assert (low["updateDiscountCode"]["code"], low["updateDiscountCode"]["minimum"]) == (
        "MAX_USES_BELOW_USES",
        2,
    )
    changed = await client(
        UPDATE_CODE,
        {"id": code["id"], "input": {"maxUses": 2, "enabled": False, "endsAt": None}},
        token=world.organizer_token,
    )
    updated = changed["updateDiscountCode"]["discountCode"]
    assert (updated["maxUses"], updated["enabled"], updated["usesPaid"]) == (2, False, 2)
    await balanced(database, clock)
