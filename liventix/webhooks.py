"""Incoming Stripe webhooks: verify, record once, apply, answer fast.

The signature is checked over the raw body (HMAC-SHA256 with the endpoint secret,
within the tolerance window) before anything is parsed; anything that fails gets a 400
and changes nothing. A verified event is recorded and applied in one transaction (see
`db.orders.process_payment_event`), so redeliveries and out-of-order events are
harmless. A gateway refund the event makes necessary (a payment that arrived after the
tickets sold out) runs after the response is sent: Stripe only waits for the 2xx.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

import orjson
import stripe
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

import db.orders
from db.orders import PaymentEvent
from liventix.context import Services
from liventix.payments import settle_refund

log = logging.getLogger("liventix.webhooks")


def _bad_request(message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=400)


async def stripe_webhook(request: Request) -> Response:
    services: Services = request.app.state.services
    settings = services.settings
    payload = await request.body()
    header = request.headers.get("stripe-signature")
    if not header:
        return _bad_request("missing Stripe-Signature header")
    try:
        stripe.WebhookSignature.verify_header(
            payload.decode("utf-8"),
            header,
            settings.stripe_webhook_secret,
            settings.stripe_webhook_tolerance,
        )
    except (stripe.SignatureVerificationError, UnicodeDecodeError) as exc:
        log.warning("rejected Stripe webhook: %s", exc)
        return _bad_request("invalid signature")
    try:
        event = parse_event(orjson.loads(payload))
    except (orjson.JSONDecodeError, KeyError, TypeError, AttributeError):
        return _bad_request("malformed event")
    outcome = await db.orders.process_payment_event(services.db, event, now=services.clock.now())
    background = None
    if outcome.refund is not None and services.payments is not None:
        background = BackgroundTask(settle_refund, services.db, services.payments, outcome.refund)
    body = {"received": True, "duplicate": outcome.duplicate, "result": outcome.result}
    return JSONResponse(body, background=background)


def parse_event(event: dict[str, Any]) -> PaymentEvent:
    """The fields we act on, from a Stripe event of any type (KeyError if malformed)."""
    event_type = str(event["type"])
    obj: dict[str, Any] = event["data"]["object"]
    metadata: dict[str, Any] = obj.get("metadata") or {}
    if event_type.startswith("payment_intent."):
        intent_id = obj.get("id")
        error = obj.get("last_payment_error") or {}
        return PaymentEvent(
            id=str(event["id"]),
            type=event_type,
            payment_intent_id=str(intent_id) if intent_id else None,
            order_id=_uuid(metadata.get("order_id")),
            failure_message=error.get("message"),
        )
    intent = obj.get("payment_intent")
    amount: int | None = None
    if event_type == "charge.refunded":
        amount = int(obj.get("amount_refunded") or 0)
    elif event_type.startswith("refund.") and obj.get("status") == "succeeded":
        amount = int(obj.get("amount") or 0)
    return PaymentEvent(
        id=str(event["id"]),
        type=event_type,
        payment_intent_id=str(intent) if intent else None,
        order_id=_uuid(metadata.get("order_id")),
        amount_refunded=amount,
        refund_id=str(obj["id"]) if event_type.startswith("refund.") else None,
        ours="liventix_refund_id" in metadata,
    )


def _uuid(value: Any) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(value)) if value else None
    except ValueError:
        return None
