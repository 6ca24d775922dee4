"""Signed Stripe test events, the way `stripe trigger` sends them.

`build_event` shapes an event like Stripe's for one order, `sign` computes the
``Stripe-Signature`` header (HMAC-SHA256 of ``"<t>.<body>"`` with the endpoint secret),
`send_event` posts it to a running server and `trigger` does all three for a stored
order. `liventix webhook <type> --order <id>` uses them so the whole purchase can be
walked through from the playground without a Stripe account; tests use them against
the in-process app or a real server.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
import uuid
from typing import Any

import httpx
import orjson

import db.jobs
import db.migrate
import db.order_queries
import db.reconcile
from db.core import create_database
from liventix.database_url import resolve_database_url
from liventix.settings import Settings

EVENT_TYPES = (
    "payment_intent.succeeded",
    "payment_intent.payment_failed",
    "charge.refunded",
    "refund.created",
)


def sign(payload: bytes, secret: str, *, timestamp: int | None = None) -> str:
    """The `Stripe-Signature` header value for `payload`."""
    stamp = int(time.time()) if timestamp is None else timestamp
    digest = hmac.new(secret.encode(), f"{stamp}.".encode() + payload, hashlib.sha256)
    return f"t={stamp},v1={digest.hexdigest()}"


def build_event(
    event_type: str,
    *,
    order_id: uuid.UUID | str | None,
    payment_intent_id: str | None,
    amount_cents: int,
    currency: str = "usd",
    event_id: str | None = None,
) -> dict[str, Any]:
    """A Stripe-shaped event about one order's payment intent."""
    metadata = {"order_id": str(order_id)} if order_id else {}
    obj: dict[str, Any]
    if event_type.startswith("payment_intent."):
        failed = event_type == "payment_intent.payment_failed"
        obj = {
            "id": payment_intent_id,
            "object": "payment_intent",
            "amount": amount_cents,
            "amount_received": 0 if failed else amount_cents,
            "currency": currency,
            "status": "requires_payment_method" if failed else "succeeded",
            "metadata": metadata,
            "last_payment_error": {"message": "Your card was declined."} if failed else None,
        }
    elif event_type == "charge.refunded":
        obj = {
            "id": f"ch_local_{secrets.token_hex(8)}",
            "object": "charge",
            "payment_intent": payment_intent_id,
            "amount": amount_cents,
            "amount_refunded": amount_cents,
            "refunded": True,
            "currency": currency,
            "metadata": metadata,
        }
    elif event_type.startswith("refund."):
        obj = {
            "id": f"re_local_{secrets.token_hex(8)}",
            "object": "refund",
            "payment_intent": payment_intent_id,
            "amount": amount_cents,
            "currency": currency,
            "status": "succeeded",
            "metadata": {},
        }
    else:
        obj = {"id": payment_intent_id, "metadata": metadata}
    return {
        "id": event_id or f"evt_local_{secrets.token_hex(12)}",
        "object": "event",
        "type": event_type,
        "created": int(time.time()),
        "livemode": False,
        "data": {"object": obj},
    }


async def send_event(
    http: httpx.AsyncClient,
    url: str,
    event: dict[str, Any],
    secret: str,
    *,
    timestamp: int | None = None,
) -> httpx.Response:
    """POST `event`, signed with `secret`, to the webhook `url`."""
    body = orjson.dumps(event)
    headers = {
        "Content-Type": "application/json",
        "Stripe-Signature": sign(body, secret, timestamp=timestamp),
    }
    return await http.post(url, content=body, headers=headers)


async def trigger(
    settings: Settings, event_type: str, order_id: uuid.UUID, url: str
) -> httpx.Response:
    """Send a signed `event_type` for the stored order to the server at `url`."""
    async with resolve_database_url(settings) as database_url:
        database = create_database(database_url, min_size=1, max_size=1)
        await database.connect()
        try:
            (order,) = await db.order_queries.get_orders(database, [order_id])
        finally:
            await database.disconnect()
    if order is None:
        raise LookupError(f"no order {order_id}")
    event = build_event(
        event_type,
        order_id=order.id,
        payment_intent_id=order.stripe_payment_intent_id,
        amount_cents=order.total_cents,
        currency=order.currency,
    )
    async with httpx.AsyncClient(timeout=10) as http:
        return await send_event(http, url, event, settings.stripe_webhook_secret)
