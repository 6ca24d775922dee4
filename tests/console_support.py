"""Helpers for the producer console tests: sales written straight into the tables (with
their tickets, tokens and tier counters, so the books stay balanced), and the GraphQL
documents of the console."""

from __future__ import annotations

import secrets
import uuid
from datetime import datetime
from typing import Any

from databases import Database

from db.channels import ConsoleMessage
from db.core import transaction
from db.notify import publish

REGISTRATIONS = """
query ($event: ID!, $filter: RegistrationFilter, $first: Int!, $after: String) {
  eventRegistrations(eventId: $event, filter: $filter, first: $first, after: $after) {
    __typename
    ... on RegistrationConnection {
      edges { cursor node { buyerName ticketCount checkedInCount
              order { id status totalCents contact { name email }
                      tickets { id checkedInAt } } } }
      pageInfo { hasNextPage endCursor }
    }
    ... on OrderError { code message field }
  }
}"""

FIGURES = "currency orders grossCents discountCents refundCents netCents feesCents"
SUMMARY = f"""
query ($event: ID!, $from: DateTime, $to: DateTime) {{
  eventSalesSummary(eventId: $event, from: $from, to: $to) {{
    __typename
    ... on SalesSummary {{
      timeZone from to
      totals {{ {FIGURES} }}
      days {{ date figures {{ {FIGURES} }} }}
      tiers {{ tierId tierName currency tickets grossCents refundedTickets }}
    }}
    ... on OrderError {{ code message field }}
  }}
}}"""

COUNTS = f"""
subscription ($event: ID!) {{
  eventConsoleCounts(eventId: $event) {{
    __typename
    ... on ConsoleCounts {{
      eventId reason registrations ticketsIssued ticketsCheckedIn
      sales {{ {FIGURES} }}
    }}
    ... on OrderError {{ code message field }}
  }}
}}"""

EXPORT_REGISTRATIONS = """
mutation ($event: ID!) {
  exportRegistrationsCsv(eventId: $event) {
    __typename
    ... on ExportLink { url expiresAt }
    ... on OrderError { code message }
  }
}"""

EXPORT_SALES = """
mutation ($event: ID!, $from: DateTime, $to: DateTime) {
  exportSalesCsv(eventId: $event, from: $from, to: $to) {
    __typename
    ... on ExportLink { url expiresAt }
    ... on OrderError { code message }
  }
}"""


async def add_tier(
    database: Database, event_id: uuid.UUID, name: str, price: int, currency: str
) -> uuid.UUID:
    async with transaction(database) as conn:
        tier_id: uuid.UUID = await conn.fetchval(
            """INSERT INTO ticketing.ticket_tiers (event_id, name, price_cents, currency,
                                                   quantity, sort_order)
               VALUES ($1, $2, $3, $4, 100, 5) RETURNING id""",
            event_id,
            name,
            price,
            currency,
        )
    return tier_id


async def add_sale(
    database: Database,
    *,
    event_id: uuid.UUID,
    user_id: uuid.UUID,
    tier_id: uuid.UUID,
    quantity: int,
    paid_at: datetime,
    name: str | None = "Sam Fan",
    email: str | None = "sam@example.com",
    discount: int = 0,
    checked_in: int = 0,
    announce: bool = False,
) -> uuid.UUID:
    """A paid order of `quantity` tickets of the tier at its price, less `discount`,
    paid at `paid_at`; its first `checked_in` tickets admitted. With `announce`, the
    transaction also publishes the console message a real payment does."""
    async with transaction(database) as conn:
        tier = await conn.fetchrow(
            """UPDATE ticketing.ticket_tiers SET issued_quantity = issued_quantity + $2
                WHERE id = $1 RETURNING price_cents, currency""",
            tier_id,
            quantity,
        )
        assert tier is not None
        order_id: uuid.UUID = await conn.fetchval(
            """INSERT INTO ticketing.orders (event_id, user_id, status, contact_email,
                   contact_name, total_cents, currency, discount_cents, created_at, paid_at)
               VALUES ($1, $2, 'paid', $3, $4, $5, $6, $7, $8, $8) RETURNING id""",
            event_id,
            user_id,
            email,
            name,
            tier["price_cents"] * quantity - discount,
            tier["currency"],
            discount,
            paid_at,
        )
        await conn.execute(
            """INSERT INTO ticketing.order_items (order_id, tier_id, quantity, unit_price_cents)
               VALUES ($1, $2, $3, $4)""",
            order_id,
            tier_id,
            quantity,
            tier["price_cents"],
        )
        for n in range(1, quantity + 1):
            ticket_id = await conn.fetchval(
                """INSERT INTO ticketing.tickets (order_id, event_id, tier_id, owner_user_id,
                       sequence_number, checked_in_at, created_at)
                   VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id""",
                order_id,
                event_id,
                tier_id,
                user_id,
                n,
                paid_at if n <= checked_in else None,
                paid_at,
            )
            await conn.execute(
                "INSERT INTO ticketing.ticket_tokens (token, ticket_id) VALUES ($1, $2)",
                secrets.token_urlsafe(24),
                ticket_id,
            )
        if announce:
            await publish(conn, ConsoleMessage(event_id, "paid"))
    return order_id


async def add_refund(
    database: Database, order_id: uuid.UUID, amount: int, at: datetime, *, status: str
) -> None:
    """A settled refund of `amount` written at `at`; the order moves to `status`."""
    async with transaction(database) as conn:
        await conn.execute(
            """INSERT INTO ticketing.refunds (order_id, amount_cents, idempotency_key,
                   stripe_refund_id, created_at)
               VALUES ($1, $2, $3, 're_test', $4)""",
            order_id,
            amount,
            f"test-{uuid.uuid4()}",
            at,
        )
        await conn.execute(
            """UPDATE ticketing.orders SET status = $2, refunded_cents = refunded_cents + $3
                WHERE id = $1""",
            order_id,
            status,
            amount,
        )


def edges(result: dict[str, Any]) -> list[dict[str, Any]]:
    assert result["__typename"] == "RegistrationConnection", result
    found: list[dict[str, Any]] = [e["node"] for e in result["edges"]]
    return found


SETTLEMENT = """
query ($event: ID!) {
  eventSettlement(eventId: $event) {
    __typename
    ... on Settlement {
      eventId moreDifferences
      totals { currency expectedCents collectedCents refundedCents unsettledRefundCents
               pendingCents }
      differences { orderId kind currency status expectedCents collectedCents
                    unsettledRefundCents }
    }
    ... on OrderError { code message field }
  }
}"""
