"""Fixtures and helpers for the order, payment, webhook and reconciliation tests.

`world` is an organizer with a published event (a paid and a free tier) and a buyer;
holds are made through the ticketing repository (`reserve_tickets`). After every
scenario, `assert_books_balanced` runs the platform's two alert queries and checks the
tier counters against the rows they count.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from databases import Database
from starlette.applications import Starlette

import db.ops_views
import db.reconcile
import db.reservations
from db.core import connection, transaction
from liventix.auth import Role, mint_token
from liventix.clock import FrozenClock
from liventix.payments.gateways import LocalGateway
from liventix.settings import Settings
from liventix.signed_events import build_event, send_event
from tests.support import GraphQLClient, key_of

PRICE = 2500

CHECKOUT = """
mutation ($holds: [ID!]!, $contact: ContactInput!) {
  checkout(holdIds: $holds, contact: $contact) {
    __typename
    ... on CheckoutPayload {
      clientSecret paymentIntentId
      order { id status totalCents currency items { tierId quantity unitPriceCents }
              tickets { id } }
    }
    ... on OrderError { code message field }
  }
}"""

MY_TICKETS = """
{ myTickets(first: 50) { edges { node { id status sequenceNumber qrPayload orderId tierId } } } }
"""

REFUND = """
mutation ($order: ID!, $tickets: [ID!], $reason: RefundReason! = REQUESTED_BY_CUSTOMER) {
  refundOrder(orderId: $order, ticketIds: $tickets, reason: $reason) {
    __typename
    ... on RefundPayload { refundedTickets order { status refundedCents totalCents } }
    ... on OrderError { code message }
  }
}"""

CHECK_IN = """
mutation ($token: String!) {
  checkIn(token: $token) {
    __typename
    ... on CheckInPayload { scanCount ticket { id checkedInAt status } }
    ... on OrderError { code message checkedInAt }
  }
}"""

CONTACT = {"email": "Sam@Example.com", "name": "Sam Fan", "phone": "+49 30 1234567"}


@dataclass
class World:
    organizer: uuid.UUID
    buyer: uuid.UUID
    event_id: uuid.UUID
    tier_id: uuid.UUID
    free_tier_id: uuid.UUID
    settings: Settings

    def token(self, user: uuid.UUID, role: Role = Role.USER) -> str:
        return mint_token(self.settings, user, role)

    @property
    def buyer_token(self) -> str:
        return self.token(self.buyer)

    @property
    def organizer_token(self) -> str:
        return self.token(self.organizer, Role.ORGANIZER)


async def add_user(database: Database, role: str = "user") -> uuid.UUID:
    user_id = uuid.uuid4()
    async with transaction(database) as conn:
        await conn.execute("INSERT INTO users.profiles (id, role) VALUES ($1, $2)", user_id, role)
    return user_id


async def add_event(
    database: Database,
    organizer: uuid.UUID,
    clock: FrozenClock,
    *,
    quantity: int = 10,
    price: int = PRICE,
    starts_in: timedelta = timedelta(days=30),
) -> tuple[uuid.UUID, uuid.UUID, uuid.UUID]:
    """A published event with a paid tier (`quantity`, `price`) and a free tier."""
    start = clock.now() + starts_in
    async with transaction(database) as conn:
        event_id = await conn.fetchval(
            """INSERT INTO events.events (organizer_id, title, start_at, end_at, status)
               VALUES ($1, 'Night Show', $2, $3, 'published') RETURNING id""",
            organizer,
            start,
            start + timedelta(hours=4),
        )
        tier_id = await conn.fetchval(
            """INSERT INTO ticketing.ticket_tiers (event_id, name, price_cents, quantity)
               VALUES ($1, 'General', $2, $3) RETURNING id""",
            event_id,
            price,
            quantity,
        )
        free_id = await conn.fetchval(
            """INSERT INTO ticketing.ticket_tiers (event_id, name, price_cents, quantity,
                                                   sort_order)
               VALUES ($1, 'Guest list', 0, 5, 1) RETURNING id""",
            event_id,
        )
    return event_id, tier_id, free_id


@pytest.fixture
async def world(database: Database, clock: FrozenClock, settings: Settings) -> World:
    organizer = await add_user(database, "organizer")
    buyer = await add_user(database)
    event_id, tier_id, free_id = await add_event(database, organizer, clock)
    return World(organizer, buyer, event_id, tier_id, free_id, settings)


async def hold(
    database: Database,
    clock: FrozenClock,
    user: uuid.UUID,
    tier: uuid.UUID,
    quantity: int,
    *,
    ttl: int = 900,
) -> uuid.UUID:
    record = await db.reservations.reserve_tickets(
        database, user, tier, quantity, now=clock.now(), ttl_seconds=ttl
    )
    return record.id


async def checkout(
    client: GraphQLClient, token: str, holds: list[uuid.UUID], contact: dict[str, Any] | None = None
) -> dict[str, Any]:
    data = await client(
        CHECKOUT, {"holds": [str(h) for h in holds], "contact": contact or CONTACT}, token=token
    )
    result: dict[str, Any] = data["checkout"]
    return result


def order_of(result: dict[str, Any]) -> dict[str, Any]:
    """A checkout payload's order with its payment intent id, as `webhook` takes it."""
    return {**result["order"], "paymentIntentId": result["paymentIntentId"]}


async def pending_order(
    client: GraphQLClient, database: Database, world: World, clock: FrozenClock, quantity: int
) -> dict[str, Any]:
    """The buyer holds `quantity` paid-tier tickets and checks out (payment not yet made)."""
    held = await hold(database, clock, world.buyer, world.tier_id, quantity)
    return order_of(await checkout(client, world.buyer_token, [held]))


async def paid_order(
    client: GraphQLClient, database: Database, world: World, clock: FrozenClock, quantity: int
) -> dict[str, Any]:
    """A pending order whose payment then succeeded (a signed webhook)."""
    order = await pending_order(client, database, world, clock, quantity)
    await webhook(client, world.settings, "payment_intent.succeeded", order)
    return order


def gateway(app: Starlette) -> LocalGateway:
    payments = app.state.services.payments
    assert isinstance(payments, LocalGateway)
    return payments


async def webhook(
    client: GraphQLClient,
    settings: Settings,
    event_type: str,
    order: dict[str, Any],
    *,
    event_id: str | None = None,
) -> dict[str, Any]:
    """Send a correctly signed event about `order` (a checkout payload's order)."""
    event = build_event(
        event_type,
        order_id=str(key_of(order["id"])),
        payment_intent_id=order.get("paymentIntentId"),
        amount_cents=order["totalCents"],
        event_id=event_id,
    )
    response = await send_event(
        client.http, "/webhooks/stripe", event, settings.stripe_webhook_secret
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def order_row(database: Database, order_id: str | uuid.UUID) -> dict[str, Any]:
    async with connection(database) as conn:
        row = await conn.fetchrow("SELECT * FROM ticketing.orders WHERE id = $1", key_of(order_id))
    assert row is not None
    return dict(row)


async def tier_counts(database: Database, tier_id: uuid.UUID) -> tuple[int, int, int]:
    """(quantity, reserved, issued) of a tier."""
    async with connection(database) as conn:
        row = await conn.fetchrow(
            """SELECT quantity, reserved_quantity, issued_quantity
                 FROM ticketing.ticket_tiers WHERE id = $1""",
            tier_id,
        )
    assert row is not None
    return row["quantity"], row["reserved_quantity"], row["issued_quantity"]


async def count(database: Database, sql: str, *args: Any) -> int:
    async with connection(database) as conn:
        value: int = await conn.fetchval(sql, *args)
    return value


async def assert_books_balanced(database: Database) -> None:
    """The SPEC's two alert queries return 0, and every counter matches its rows."""
    assert await db.ops_views.alert_counts(database) == (0, 0)
    assert await db.reconcile.drifted_tiers(database) == []
    assert (
        await count(
            database,
            """SELECT count(*) FROM ticketing.orders o
            WHERE o.status IN ('paid', 'partially_refunded')
              AND (SELECT count(*) FROM ticketing.tickets t WHERE t.order_id = o.id)
                  <> (SELECT sum(quantity) FROM ticketing.order_items i WHERE i.order_id = o.id)""",
        )
        == 0
    )
