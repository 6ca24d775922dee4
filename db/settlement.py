"""Settlement: what an event's paid orders should have collected, what the payment
provider's recorded events say was collected, what was refunded, what is pending, and
the orders where these disagree.

Per order (integer minor units, per currency, never summed across currencies):

- **expected**: the order's total if it was sold (`db.console.SOLD_STATUSES`: paid,
  partially refunded or refunded; a refund does not undo what was collected);
- **collected**: the amount of the order's recorded ``payment_intent.succeeded`` event
  (`db.payment_events` stores its order and ``amount_received``); a payment intent
  succeeds once, so a repeated event counts once (the largest amount). Free orders
  expect and collect nothing;
- **refunded**: its refunds the gateway confirmed; a refund still owed at the gateway
  is *unsettled* (`db.refunds.UNSETTLED`, the rule reconciliation retries by);
- **pending**: the total of an order still waiting for its payment.

The differences listed, one per order and kind:

- ``PAID_WITHOUT_PAYMENT``: sold with a total, but no successful payment recorded;
- ``PAYMENT_WITHOUT_SALE``: a successful payment recorded for an order that is not sold
  (pending, failed, expired, canceled);
- ``AMOUNT_MISMATCH``: sold and paid, but for another amount;
- ``REFUND_NOT_SETTLED``: a refund recorded here whose gateway call is unconfirmed.

Stripe events recorded before their order and amount were stored (migration 0014)
carry neither, so an order paid before then shows as ``PAID_WITHOUT_PAYMENT``.

Who may read is `db.console`'s rule (the event's organizer or an admin), with its
errors (`OrderError` EVENT_NOT_FOUND). One read-only, repeatable-read transaction.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Literal

from databases import Database

from db.console import SOLD_STATUSES, ManagedEvent, managed_in
from db.core import connection
from db.events import Actor
from db.payment_events import SUCCEEDED
from db.refunds import UNSETTLED

DifferenceKind = Literal[
    "paid_without_payment", "payment_without_sale", "amount_mismatch", "refund_not_settled"
]
MAX_DIFFERENCES = 500


@dataclass(frozen=True, slots=True)
class SettlementFigures:
    """One currency's settlement, in minor units."""

    currency: str
    expected_cents: int
    collected_cents: int
    refunded_cents: int
    """Refunds the gateway confirmed."""
    unsettled_refund_cents: int
    """Refunds recorded here, still owed at the gateway."""
    pending_cents: int
    """Totals of orders waiting for their payment."""


@dataclass(frozen=True, slots=True)
class SettlementDifference:
    order_id: uuid.UUID
    kind: DifferenceKind
    currency: str
    status: str
    expected_cents: int
    collected_cents: int
    unsettled_refund_cents: int


@dataclass(frozen=True, slots=True)
class Settlement:
    event: ManagedEvent
    totals: list[SettlementFigures]
    differences: list[SettlementDifference]
    """Oldest order first; at most `MAX_DIFFERENCES` (`more_differences` says if cut)."""
    more_differences: bool


# One row per order of the event $1, with what it expects ($2: the sold statuses),
# collected, got refunded (settled or not) and awaits.
_ORDERS = f"""
WITH per_order AS (
    SELECT o.id, o.currency, o.status, o.created_at, o.total_cents,
           CASE WHEN o.status = ANY($2::text[]) THEN o.total_cents ELSE 0 END AS expected,
           (SELECT max(e.amount_cents) FROM ticketing.stripe_events e
             WHERE e.order_id = o.id AND e.type = '{SUCCEEDED}') AS collected,
           (SELECT coalesce(sum(r.amount_cents) FILTER (WHERE NOT ({UNSETTLED})), 0)
              FROM ticketing.refunds r WHERE r.order_id = o.id) AS refunded,
           (SELECT coalesce(sum(r.amount_cents) FILTER (WHERE {UNSETTLED}), 0)
              FROM ticketing.refunds r WHERE r.order_id = o.id) AS unsettled,
           CASE WHEN o.status = 'pending' THEN o.total_cents ELSE 0 END AS pending
      FROM ticketing.orders o WHERE o.event_id = $1)"""

_TOTALS = f"""{_ORDERS}
SELECT currency, sum(expected)::bigint AS expected_cents,
       sum(coalesce(collected, 0))::bigint AS collected_cents,
       sum(refunded)::bigint AS refunded_cents, sum(unsettled)::bigint AS unsettled_refund_cents,
       sum(pending)::bigint AS pending_cents
  FROM per_order GROUP BY currency ORDER BY currency"""

_DIFFERENCES = f"""{_ORDERS}
SELECT p.id AS order_id, k.kind, p.currency, p.status, p.expected::bigint AS expected_cents,
       coalesce(p.collected, 0)::bigint AS collected_cents,
       p.unsettled::bigint AS unsettled_refund_cents
  FROM per_order p
 CROSS JOIN LATERAL (VALUES
        ('paid_without_payment', p.expected > 0 AND p.collected IS NULL),
        ('payment_without_sale', p.collected > 0 AND NOT (p.status = ANY($2::text[]))),
        ('amount_mismatch', p.status = ANY($2::text[]) AND p.collected <> p.total_cents),
        ('refund_not_settled', p.unsettled > 0)) AS k(kind, found)
 WHERE k.found
 ORDER BY p.created_at, p.id, k.kind LIMIT $3"""


async def event_settlement(database: Database, *, event_id: uuid.UUID, actor: Actor) -> Settlement:
    """The event's settlement per currency and its differences, for its managers;
    `OrderError(EVENT_NOT_FOUND)` for anyone else."""
    async with (
        connection(database) as conn,
        conn.transaction(isolation="repeatable_read", readonly=True),
    ):
        event = await managed_in(conn, event_id, actor)
        totals = await conn.fetch(_TOTALS, event_id, SOLD_STATUSES)
        found = await conn.fetch(_DIFFERENCES, event_id, SOLD_STATUSES, MAX_DIFFERENCES + 1)
    differences = [SettlementDifference(**dict(r)) for r in found[:MAX_DIFFERENCES]]
    return Settlement(
        event=event,
        totals=[SettlementFigures(**dict(r)) for r in totals],
        differences=differences,
        more_differences=len(found) > MAX_DIFFERENCES,
    )
