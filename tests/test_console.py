"""The producer console's reads: registrations (filters, search, paging, access) and
the sales summary (figures computed by hand, two currencies, days in the event's zone)."""

from __future__ import annotations

from datetime import UTC, datetime

from databases import Database

from db.core import transaction
from liventix.auth import Role
from tests.console_support import (
    REGISTRATIONS,
    SUMMARY,
    add_refund,
    add_sale,
    add_tier,
    edges,
)
from tests.orders_support import World, add_user, assert_books_balanced, world
from tests.support import GraphQLClient, gid

__all__ = ["world"]  # the fixture, re-exported for pytest

JAN = datetime(2030, 1, 8, 12, tzinfo=UTC)


async def three_registrations(database: Database, world: World) -> dict[str, object]:
    """Ada (2 paid tickets, one admitted), Bob (free tier), Cy (refunded), oldest first."""
    ada = await add_sale(
        database,
        event_id=world.event_id,
        user_id=world.buyer,
        tier_id=world.tier_id,
        quantity=2,
        paid_at=JAN,
        name="Ada Lovelace",
        email="ada@example.com",
        checked_in=1,
    )
    bob = await add_sale(
        database,
        event_id=world.event_id,
        user_id=world.buyer,
        tier_id=world.free_tier_id,
        quantity=1,
        paid_at=JAN.replace(hour=13),
        name="Bob 100%",
        email="bob@example.org",
    )
    cy = await add_sale(
        database,
        event_id=world.event_id,
        user_id=world.buyer,
        tier_id=world.tier_id,
        quantity=1,
        paid_at=JAN.replace(hour=14),
        name="Cy",
        email="cy@example.net",
    )
    await add_refund(database, cy, 2500, JAN.replace(hour=15), status="refunded")
    return {"ada": gid("Order", ada), "bob": gid("Order", bob), "cy": gid("Order", cy)}


async def registrations(
    client: GraphQLClient, world: World, token: str | None = None, **variables: object
) -> dict[str, object]:
    data = await client(
        REGISTRATIONS,
        {"event": gid("Event", world.event_id), "first": 20, **variables},
        token=token or world.organizer_token,
    )
    result: dict[str, object] = data["eventRegistrations"]
    return result


def order_ids(result: dict[str, object]) -> list[str]:
    return [node["order"]["id"] for node in edges(result)]


async def test_registrations_filter_and_search(
    client: GraphQLClient, database: Database, world: World
) -> None:
    """Each filter is a predicate: tier, checked in or not, status, and a search that
    matches name or email in any case, with SQL wildcards taken literally."""
    ids = await three_registrations(database, world)
    everyone = await registrations(client, world)
    assert order_ids(everyone) == [ids["cy"], ids["bob"], ids["ada"]]  # newest first
    ada = edges(everyone)[2]
    assert (ada["ticketCount"], ada["checkedInCount"]) == (2, 1)
    assert sum(1 for t in ada["order"]["tickets"] if t["checkedInAt"]) == 1

    async def only(**filter: object) -> list[str]:
        return order_ids(await registrations(client, world, filter=filter))

    assert await only(tierId=gid("TicketTier", world.free_tier_id)) == [ids["bob"]]
    assert await only(checkedIn=True) == [ids["ada"]]
    assert await only(checkedIn=False) == [ids["cy"], ids["bob"]]
    assert await only(status="REFUNDED") == [ids["cy"]]
    assert await only(status="PENDING") == []
    assert await only(search="LOVE") == [ids["ada"]]
    assert await only(search="bob@EXAMPLE") == [ids["bob"]]
    assert await only(search="100%") == [ids["bob"]]
    assert await only(search="%") == [ids["bob"]]  # only Bob's name has a literal %
    assert await only(search="_") == []
    assert await only(search="example", checkedIn=False, status="PAID") == [ids["bob"]]
    await assert_books_balanced(database)


async def test_registrations_page_by_cursor(
    client: GraphQLClient, database: Database, world: World
) -> None:
    """Pages follow each other without overlap; a cursor not ours is INVALID_CURSOR."""
    ids = await three_registrations(database, world)
    first = await registrations(client, world, first=2)
    assert first["pageInfo"]["hasNextPage"] is True
    rest = await registrations(client, world, first=2, after=first["pageInfo"]["endCursor"])
    assert order_ids(first) + order_ids(rest) == [ids["cy"], ids["bob"], ids["ada"]]
    assert rest["pageInfo"]["hasNextPage"] is False
    bad = await registrations(client, world, after="nonsense")
    assert bad["code"] == "INVALID_CURSOR"
    too_many = await registrations(client, world, first=101)
    assert (too_many["code"], too_many["field"]) == ("INVALID_INPUT", "first")


async def test_only_the_events_managers_see_its_console(
    client: GraphQLClient, database: Database, world: World
) -> None:
    """Another organizer gets EVENT_NOT_FOUND, a fan NOT_ALLOWED, the anonymous
    UNAUTHENTICATED; an admin sees everything."""
    await three_registrations(database, world)
    other = world.token(await add_user(database, "organizer"), Role.ORGANIZER)
    admin = world.token(await add_user(database, "admin"), Role.ADMIN)
    variables = {"event": gid("Event", world.event_id), "first": 5}
    for token, code in (
        (other, "EVENT_NOT_FOUND"),
        (world.buyer_token, "NOT_ALLOWED"),
        (None, "UNAUTHENTICATED"),
    ):
        reads = await client(REGISTRATIONS, variables, token=token)
        assert reads["eventRegistrations"]["code"] == code
        summary = await client(SUMMARY, {"event": variables["event"]}, token=token)
        assert summary["eventSalesSummary"]["code"] == code
    assert len(order_ids(await registrations(client, world, token=admin))) == 3
    summary = await client(SUMMARY, {"event": variables["event"]}, token=admin)
    assert summary["eventSalesSummary"]["__typename"] == "SalesSummary"


def figures(currency: str, orders: int, gross: int, discount: int, refund: int) -> dict:  # type: ignore[type-arg]
    return {
        "currency": currency,
        "orders": orders,
        "grossCents": gross,
        "discountCents": discount,
        "refundCents": refund,
        "netCents": gross - discount - refund,
        "feesCents": None,
    }


async def two_currency_sales(database: Database, world: World) -> None:
    """In New York: an order at 23:30 on 9 Jan (2 x 2500, 500 off), one at 00:30 on 10
    Jan (2500, 1000 of it refunded on 11 Jan) and a euro order (3000) on 10 Jan."""
    async with transaction(database) as conn:
        await conn.execute(
            "UPDATE events.events SET time_zone = 'America/New_York' WHERE id = $1",
            world.event_id,
        )
    euro = await add_tier(database, world.event_id, "Euro pass", 3000, "eur")
    sale = {"event_id": world.event_id, "user_id": world.buyer}
    await add_sale(
        database,
        **sale,
        tier_id=world.tier_id,
        quantity=2,
        discount=500,
        paid_at=datetime(2030, 1, 10, 4, 30, tzinfo=UTC),
    )
    late = await add_sale(
        database,
        **sale,
        tier_id=world.tier_id,
        quantity=1,
        paid_at=datetime(2030, 1, 10, 5, 30, tzinfo=UTC),
    )
    await add_sale(
        database, **sale, tier_id=euro, quantity=1, paid_at=datetime(2030, 1, 10, 15, tzinfo=UTC)
    )
    await add_refund(database, late, 1000, datetime(2030, 1, 11, 12, tzinfo=UTC), status="paid")


async def test_sales_summary_by_currency_tier_and_local_day(
    client: GraphQLClient, database: Database, world: World
) -> None:
    """Gross, discounts, refunds and net per currency (never summed across them), per
    tier, and per day of the event's time zone: 04:30 UTC is still 9 Jan in New York."""
    await two_currency_sales(database, world)
    data = await client(
        SUMMARY, {"event": gid("Event", world.event_id)}, token=world.organizer_token
    )
    summary = data["eventSalesSummary"]
    assert summary["timeZone"] == "America/New_York"
    assert summary["totals"] == [figures("eur", 1, 3000, 0, 0), figures("usd", 2, 7500, 500, 1000)]
    assert summary["days"] == [
        {"date": "2030-01-10", "figures": figures("eur", 1, 3000, 0, 0)},
        {"date": "2030-01-09", "figures": figures("usd", 1, 5000, 500, 0)},
        {"date": "2030-01-10", "figures": figures("usd", 1, 2500, 0, 0)},
        {"date": "2030-01-11", "figures": figures("usd", 0, 0, 0, 1000)},
    ]
    tiers = [
        (t["tierName"], t["currency"], t["tickets"], t["grossCents"]) for t in summary["tiers"]
    ]
    assert tiers == [("General", "usd", 3, 7500), ("Euro pass", "eur", 1, 3000)]
    await assert_books_balanced(database)


async def test_sales_summary_window(
    client: GraphQLClient, database: Database, world: World
) -> None:
    """`from` is inclusive and `to` exclusive, for sales and refunds alike; an empty or
    reversed window is INVALID_INPUT."""
    await two_currency_sales(database, world)
    window = {
        "event": gid("Event", world.event_id),
        "from": "2030-01-10T05:30:00Z",
        "to": "2030-01-11T12:00:00Z",
    }
    data = await client(SUMMARY, window, token=world.organizer_token)
    assert data["eventSalesSummary"]["totals"] == [
        figures("eur", 1, 3000, 0, 0),
        figures("usd", 1, 2500, 0, 0),
    ]
    reversed_window = {**window, "to": window["from"]}
    data = await client(SUMMARY, reversed_window, token=world.organizer_token)
    assert (data["eventSalesSummary"]["code"], data["eventSalesSummary"]["field"]) == (
        "INVALID_INPUT",
        "to",
    )
