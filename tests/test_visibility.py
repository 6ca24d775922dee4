"""One rule, two languages: who sees an event, and which tiers are listed.

`db.events.event_visible` / `event_visible_sql` and `db.tiers.tier_listed` /
`tier_listed_sql` state each rule once in Python and once in SQL; PostgreSQL evaluates
the SQL side for every case of a table, and both must answer alike (never NULL).
"""

from __future__ import annotations

import itertools
import uuid
from dataclasses import replace
from datetime import UTC, datetime

from databases import Database

import db.events
import db.tiers
from db.core import connection

NOW = datetime(2030, 1, 1, tzinfo=UTC)
ORGANIZER = uuid.uuid4()
STRANGER = uuid.uuid4()

EVENT = db.events.EventRecord(
    id=uuid.uuid4(),
    organizer_id=ORGANIZER,
    title="Rooftop",
    description="",
    venue="",
    start_at=NOW,
    end_at=None,
    time_zone="UTC",
    status="draft",
    created_at=NOW,
    updated_at=NOW,
)
TIER = db.tiers.TierRecord(
    id=uuid.uuid4(),
    event_id=EVENT.id,
    name="GA",
    price_cents=100,
    currency="usd",
    quantity=10,
    reserved_quantity=0,
    issued_quantity=0,
    max_per_order=10,
    sales_start_at=None,
    sales_end_at=None,
    status="active",
    sort_order=0,
    created_at=NOW,
    updated_at=NOW,
    version=1,
)
# (viewer id, is admin): anonymous, the organizer, a stranger, an admin.
VIEWERS = [(None, False), (ORGANIZER, False), (STRANGER, False), (STRANGER, True)]


async def test_event_visibility_agrees_in_python_and_sql(database: Database) -> None:
    predicate = db.events.event_visible_sql("e", viewer_id="$3", is_admin="$4")
    expected = {
        ("draft", None, False): False,
        ("draft", ORGANIZER, False): True,
        ("draft", STRANGER, False): False,
        ("draft", STRANGER, True): True,
    }
    async with connection(database) as conn:
        for status, (viewer, admin) in itertools.product(db.events.STATUSES, VIEWERS):
            event = replace(EVENT, status=status)
            in_sql = await conn.fetchval(
                f"SELECT {predicate} FROM (SELECT $1::text AS status, $2::uuid AS organizer_id) e",
                status,
                ORGANIZER,
                viewer,
                admin,
            )
            in_python = db.events.event_visible(event, viewer, admin)
            assert in_sql is in_python, (status, viewer, admin)
            assert in_python is expected.get((status, viewer, admin), True), (status, viewer)


async def test_tier_listing_agrees_in_python_and_sql(database: Database) -> None:
    expected = {("hidden", False): False}
    async with connection(database) as conn:
        for status, (viewer, admin) in itertools.product(db.tiers.STATUSES, VIEWERS):
            manages = db.events.manages_event(ORGANIZER, viewer, admin)
            predicate = db.tiers.tier_listed_sql("t", manages="$2")
            in_sql = await conn.fetchval(
                f"SELECT {predicate} FROM (SELECT $1::text AS status) t", status, manages
            )
            in_python = db.tiers.tier_listed(replace(TIER, status=status), manages=manages)
            assert in_sql is in_python, (status, viewer, admin)
            assert in_python is expected.get((status, manages), True), (status, manages)


def test_managing_an_event_is_for_its_organizer_and_admins() -> None:
    answers = [db.events.manages_event(ORGANIZER, viewer, admin) for viewer, admin in VIEWERS]
    assert answers == [False, True, False, True]
