"""CSV exports: the signed link, its refusals, the file's content and its streaming."""

from __future__ import annotations

import csv
import io
import uuid
from datetime import UTC, datetime
from typing import Any

import jwt
from databases import Database

import db.console
from db.core import transaction
from liventix.auth import Role, mint_token
from liventix.clock import FrozenClock
from liventix.settings import Settings
from tests.console_support import EXPORT_REGISTRATIONS, EXPORT_SALES, add_sale
from tests.orders_support import World, add_user, assert_books_balanced, world
from tests.support import GraphQLClient, gid

__all__ = ["world"]  # the fixture, re-exported for pytest


async def export_url(client: GraphQLClient, world: World, token: str | None = None) -> str:
    data = await client(
        EXPORT_REGISTRATIONS,
        {"event": gid("Event", world.event_id)},
        token=token or world.organizer_token,
    )
    result = data["exportRegistrationsCsv"]
    assert result["__typename"] == "ExportLink", result
    url: str = result["url"]
    return url


def path_of(url: str) -> str:
    return url[url.index("/exports/") :]


def rows_of(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text)))


async def sale(database: Database, world: World, **fields: Any) -> uuid.UUID:
    return await add_sale(
        database,
        event_id=world.event_id,
        user_id=world.buyer,
        tier_id=world.tier_id,
        quantity=1,
        paid_at=world_now(),
        **fields,
    )


def world_now() -> datetime:
    return datetime(2030, 1, 8, 12, tzinfo=UTC)


async def test_registrations_csv_is_quoted_and_formula_safe(
    client: GraphQLClient, database: Database, world: World
) -> None:
    """A header, one line per order; commas and quotes are quoted, and a cell that a
    spreadsheet would run as a formula starts with a single quote."""
    await sale(database, world, name='Smith, "Jr"', email="jr@example.com")
    await sale(database, world, name='=HYPERLINK("http://x")', email="+1@example.com")
    await sale(database, world, name="@SUM(A1)", email="-x@example.com")
    response = await client.http.get(path_of(await export_url(client, world)))
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "text/csv; charset=utf-8"
    assert response.headers["content-disposition"] == (
        'attachment; filename="night-show-registrations.csv"'
    )
    assert response.headers["cache-control"] == "no-store"
    assert 'Smith, ""Jr""' in response.text
    rows = rows_of(response.text)
    header = rows[0]
    assert tuple(header) == db.console.EXPORT_COLUMNS
    by_name = {row[header.index("contact_name")]: row for row in rows[1:]}
    assert set(by_name) == {'Smith, "Jr"', '\'=HYPERLINK("http://x")', "'@SUM(A1)"}
    assert by_name["'@SUM(A1)"][header.index("contact_email")] == "'-x@example.com"
    assert by_name['\'=HYPERLINK("http://x")'][header.index("contact_email")] == "'+1@example.com"
    jr = by_name['Smith, "Jr"']
    assert jr[header.index("tiers")] == "General x1"
    assert jr[header.index("total_cents")] == "2500"
    assert jr[header.index("status")] == "paid"
    await assert_books_balanced(database)


async def test_sales_csv(client: GraphQLClient, database: Database, world: World) -> None:
    """Totals per currency, days and tiers, one line each; unknown fees are empty."""
    await sale(database, world, discount=500)
    data = await client(
        EXPORT_SALES, {"event": gid("Event", world.event_id)}, token=world.organizer_token
    )
    response = await client.http.get(path_of(data["exportSalesCsv"]["url"]))
    assert response.status_code == 200, response.text
    rows = rows_of(response.text)
    header = rows[0]
    lines = [dict(zip(header, row, strict=True)) for row in rows[1:]]
    assert [line["scope"] for line in lines] == ["total", "day", "tier"]
    total = lines[0]
    assert (total["currency"], total["gross_cents"], total["discount_cents"]) == (
        "usd",
        "2500",
        "500",
    )
    assert (total["net_cents"], total["fees_cents"]) == ("2000", "")
    assert (lines[1]["date"], lines[2]["tier_name"], lines[2]["tickets"]) == (
        "2030-01-08",
        "General",
        "1",
    )


def forged(settings: Settings, claims: dict[str, Any]) -> str:
    return jwt.encode(claims, settings.jwt_secret, algorithm="HS256")


async def test_links_not_ours_or_expired_are_refused(
    client: GraphQLClient, database: Database, world: World, clock: FrozenClock
) -> None:
    """A forged, altered or foreign token is 400, an expired one 410, and a user who no
    longer manages the event gets 404: each with a code, never a 500."""
    url = await export_url(client, world)
    token = path_of(url).removeprefix("/exports/").removesuffix(".csv")
    header, payload, signature = token.split(".")
    settings = world.settings
    genuine = jwt.decode(token, options={"verify_signature": False})
    api_token = mint_token(settings, world.organizer, Role.ORGANIZER)
    bad = {
        "altered": f"{header}.{payload}.{signature[:-4]}AAAA",
        "cut short": token[: len(token) // 2],
        "an API token": api_token,
        "another purpose": forged(settings, {**genuine, "purpose": "unsubscribe"}),
        "another secret": jwt.encode(genuine, "x" * 40, algorithm="HS256"),
        "garbage": "not-a-token",
    }
    for what, value in bad.items():
        response = await client.http.get(f"/exports/{value}.csv")
        assert response.status_code == 400, what
        assert response.json()["errors"][0]["extensions"]["code"] == "EXPORT_LINK_INVALID"
    clock.advance(5 * 60 + 1)
    expired = await client.http.get(path_of(url))
    assert expired.status_code == 410
    assert expired.json()["errors"][0]["extensions"]["code"] == "EXPORT_LINK_EXPIRED"
    fresh = await export_url(client, world)
    async with transaction(database) as conn:  # the event changes hands
        await conn.execute(
            "UPDATE events.events SET organizer_id = $2 WHERE id = $1",
            world.event_id,
            await add_user(database, "organizer"),
        )
    gone = await client.http.get(path_of(fresh))
    assert gone.status_code == 404
    assert gone.json()["errors"][0]["extensions"]["code"] == "EVENT_NOT_FOUND"


async def test_export_link_is_an_organizers_or_admins(
    client: GraphQLClient, database: Database, world: World
) -> None:
    """A fan cannot ask for a link, nor another organizer; an admin can, and the link
    works for them. A link's token is never an API token."""
    other = world.token(await add_user(database, "organizer"), Role.ORGANIZER)
    for token, code in ((world.buyer_token, "NOT_ALLOWED"), (other, "EVENT_NOT_FOUND")):
        data = await client(EXPORT_REGISTRATIONS, {"event": gid("Event", world.event_id)}, token)
        assert data["exportRegistrationsCsv"]["code"] == code
    admin = world.token(await add_user(database, "admin"), Role.ADMIN)
    url = await export_url(client, world, admin)
    assert (await client.http.get(path_of(url))).status_code == 200
    link_token = path_of(url).removeprefix("/exports/").removesuffix(".csv")
    response = await client.post("{ viewer { id } }", token=link_token)
    assert response.status_code == 401


async def test_rows_are_read_in_chunks_from_a_cursor(database: Database, world: World) -> None:
    """The export reads through a server-side cursor, a chunk at a time, oldest first."""
    made = [await sale(database, world) for _ in range(5)]
    chunks = [
        [row["order_id"] for row in chunk]
        async for chunk in db.console.registration_rows(database, world.event_id, chunk_rows=2)
    ]
    assert [len(c) for c in chunks] == [2, 2, 1]
    assert sorted(key for chunk in chunks for key in chunk) == sorted(made)
