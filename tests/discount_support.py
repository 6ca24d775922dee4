"""Helpers for the discount code tests: the GraphQL documents, making a code, checking
out with one, and the code's books (its counters against its redemption rows)."""

from __future__ import annotations

import uuid
from typing import Any

from databases import Database

from db.core import connection
from tests.orders_support import CONTACT, World
from tests.support import GraphQLClient, gid, key_of

CODE_FIELDS = """id code kind percentOff amountOffCents currency tierId maxUses perUserLimit
                 startsAt endsAt enabled usesPaid usesReserved paidOrders revenueCents
                 discountCents"""

CREATE_CODE = f"""
mutation ($event: ID!, $input: CreateDiscountCodeInput!) {{
  createDiscountCode(eventId: $event, input: $input) {{
    __typename
    ... on DiscountCodePayload {{ discountCode {{ {CODE_FIELDS} }} }}
    ... on TicketingError {{ code message field minimum }}
  }}
}}"""

UPDATE_CODE = f"""
mutation ($id: ID!, $input: UpdateDiscountCodeInput!) {{
  updateDiscountCode(id: $id, input: $input) {{
    __typename
    ... on DiscountCodePayload {{ discountCode {{ {CODE_FIELDS} }} }}
    ... on TicketingError {{ code message field minimum }}
  }}
}}"""

EVENT_CODES = f"""
query ($event: ID!) {{
  eventDiscountCodes(eventId: $event) {{
    __typename
    ... on DiscountCodeList {{ codes {{ {CODE_FIELDS} }} }}
    ... on TicketingError {{ code message }}
  }}
}}"""

CHECKOUT_WITH_CODE = """
mutation ($holds: [ID!]!, $contact: ContactInput!, $code: String) {
  checkout(holdIds: $holds, contact: $contact, code: $code) {
    __typename
    ... on CheckoutPayload {
      clientSecret paymentIntentId
      order { id status totalCents subtotalCents discountCents discountCode currency
              tickets { id status } }
    }
    ... on OrderError { code message field }
  }
}"""


async def create_code(
    client: GraphQLClient, world: World, token: str | None = None, **fields: Any
) -> dict[str, Any]:
    """`createDiscountCode` on the world's event (as its organizer unless `token`)."""
    data = await client(
        CREATE_CODE,
        {"event": gid("Event", world.event_id), "input": fields},
        token=token or world.organizer_token,
    )
    result: dict[str, Any] = data["createDiscountCode"]
    return result


async def new_code(client: GraphQLClient, world: World, **fields: Any) -> dict[str, Any]:
    """A code that must be created; its `DiscountCode` fields."""
    result = await create_code(client, world, **fields)
    assert result["__typename"] == "DiscountCodePayload", result
    code: dict[str, Any] = result["discountCode"]
    return code


async def checkout_with(
    client: GraphQLClient, token: str, holds: list[uuid.UUID], code: str | None
) -> dict[str, Any]:
    data = await client(
        CHECKOUT_WITH_CODE,
        {"holds": [str(h) for h in holds], "contact": CONTACT, "code": code},
        token=token,
    )
    result: dict[str, Any] = data["checkout"]
    return result


async def uses(database: Database, code_id: str | uuid.UUID) -> tuple[int, int]:
    """(paid, reserved) uses of a code, from its counters."""
    async with connection(database) as conn:
        row = await conn.fetchrow(
            "SELECT uses_paid, uses_reserved FROM ticketing.discount_codes WHERE id = $1",
            key_of(code_id),
        )
    assert row is not None
    return row["uses_paid"], row["uses_reserved"]


async def assert_uses_balanced(database: Database) -> None:
    """Every code's counters equal its redemptions by status, within `max_uses`, and each
    redemption's status agrees with its order's."""
    async with connection(database) as conn:
        drifted = await conn.fetch(
            """SELECT c.id FROM ticketing.discount_codes c
                WHERE c.uses_paid <> (SELECT count(*) FROM ticketing.discount_redemptions r
                                       WHERE r.code_id = c.id AND r.status = 'paid')
                   OR c.uses_reserved <> (SELECT count(*)
                                            FROM ticketing.discount_redemptions r
                                           WHERE r.code_id = c.id AND r.status = 'reserved')
                   OR c.uses_paid + c.uses_reserved > c.max_uses"""
        )
        mismatched = await conn.fetch(
            """SELECT r.order_id, r.status, o.status AS order_status
                 FROM ticketing.discount_redemptions r
                 JOIN ticketing.orders o ON o.id = r.order_id
                WHERE (r.status = 'paid') <> (o.status IN ('paid', 'partially_refunded'))
                   OR (r.status = 'reserved') <> (o.status = 'pending')"""
        )
    assert drifted == [] and mismatched == [], (drifted, mismatched)
