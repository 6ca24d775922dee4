"""Incoming Stripe webhooks: verify, record once, apply, answer fast.

The signature is checked over the raw body (HMAC-SHA256 with the endpoint secret,
within the tolerance window) before anything is parsed; anything that fails gets a 400
and changes nothing. A verified event is then checked whole against the shape Stripe
sends (`parse_event`): one that does not fit is a `MalformedEvent`, answered 400 and
recorded once as rejected (`db.payment_events`) so reconciliation shows it to a
person, with no other effect. A well-formed event is recorded and applied in one
transaction (see `db.orders.process_payment_event`), so redeliveries and out-of-order
events are harmless. A gateway refund the event makes necessary (a payment that arrived after the
tickets sold out) runs after the response is sent: Stripe only waits for the 2xx.
"""

from __future__ import annotations

import hashlib
import logging
import uuid
from contextlib import suppress
from typing import Any

import orjson
import stripe
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

import db.orders
import db.payment_events
from db.orders import PaymentEvent
from liventix.context import Services
from liventix.payments import settle_refund

log = logging.getLogger("liventix.webhooks")


# Stripe's ids and type names are short; a longer one is not Stripe's (and an index
# entry has a size limit). Free text (a decline message) gets more room.
ID_MAX_LENGTH = 255
TEXT_MAX_LENGTH = 5000
UNKNOWN_TYPE = "unknown"


class MalformedEvent(ValueError):
    """A verified event that is not the shape Stripe sends; `reason` names the field.

    `event_id` and `event_type` are the event's own, when those two fields could be
    read, so the rejection is recorded under Stripe's id.
    """

    def __init__(
        self, reason: str, *, event_id: str | None = None, event_type: str | None = None
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.event_id = event_id
        self.event_type = event_type


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
        event = decode_event(payload)
    except MalformedEvent as exc:
        return await _reject(services, payload, exc)
    outcome = await db.orders.process_payment_event(services.db, event, now=services.clock.now())
    background = None
    if outcome.refund is not None and services.payments is not None:
        background = BackgroundTask(settle_refund, services.db, services.payments, outcome.refund)
    body = {"received": True, "duplicate": outcome.duplicate, "result": outcome.result}
    return JSONResponse(body, background=background)


async def _reject(services: Services, payload: bytes, exc: MalformedEvent) -> JSONResponse:
    """Refuse a signed but malformed event: 400, and one record of it.

    Stripe retries what it did not get a 2xx for, then gives up; the record is what
    lets reconciliation show the event to a person. An event without a usable id is
    recorded under its body's hash, so each retry of the same body finds its record.
    """
    event_id = exc.event_id or f"rejected:{hashlib.sha256(payload).hexdigest()}"
    event_type = exc.event_type or UNKNOWN_TYPE
    now = services.clock.now()
    await db.payment_events.record_rejected(services.db, event_id, event_type, exc.reason, now=now)
    log.warning("rejected malformed Stripe event %s: %s", event_id, exc.reason)
    return JSONResponse({"error": "malformed event", "reason": exc.reason}, status_code=400)


def decode_event(payload: bytes) -> PaymentEvent:
    """`parse_event` of a raw body; a body that is not JSON is a `MalformedEvent` too."""
    try:
        raw = orjson.loads(payload)
    except orjson.JSONDecodeError:
        raise MalformedEvent("body: not JSON") from None
    return parse_event(raw)


def parse_event(raw: object) -> PaymentEvent:
    """The fields we act on, from a decoded Stripe event of any type.

    Every field read is checked for the type Stripe sends (ids non-empty strings,
    amounts non-negative integers, objects objects), before anything acts on it: a
    misfit raises `MalformedEvent` naming the field, never a `ValueError` mid-way.
    """
    event = _object(raw, "event")
    known_id, known_type = _readable_string(event, "id"), _readable_string(event, "type")
    try:
        return _read_event(event)
    except MalformedEvent as exc:
        raise MalformedEvent(exc.reason, event_id=known_id, event_type=known_type) from None


def _read_event(event: dict[str, Any]) -> PaymentEvent:
    event_id = _required_string(event, "id", "")
    event_type = _required_string(event, "type", "")
    obj = _object(_object(event.get("data"), "data").get("object"), "data.object")
    if event_type.startswith("payment_intent."):
        return _payment_intent_event(event_id, event_type, obj)
    return _charge_or_refund_event(event_id, event_type, obj)


def _payment_intent_event(event_id: str, event_type: str, obj: dict[str, Any]) -> PaymentEvent:
    where = "data.object"
    error = _optional_object(obj, "last_payment_error", where)
    return PaymentEvent(
        id=event_id,
        type=event_type,
        payment_intent_id=_string(obj, "id", where),
        order_id=_order_id(_metadata(obj)),
        failure_message=_string(
            error, "message", f"{where}.last_payment_error", max_length=TEXT_MAX_LENGTH
        ),
    )


def _charge_or_refund_event(event_id: str, event_type: str, obj: dict[str, Any]) -> PaymentEvent:
    """A charge, refund or any other object: what links it to an order, and any
    refunded amount (required where we act on it)."""
    where = "data.object"
    metadata = _metadata(obj)
    is_refund = event_type.startswith("refund.")
    amount: int | None = None
    if event_type == "charge.refunded":
        amount = _amount(obj, "amount_refunded", where)
    elif is_refund and _string(obj, "status", where) == "succeeded":
        amount = _amount(obj, "amount", where)
    return PaymentEvent(
        id=event_id,
        type=event_type,
        payment_intent_id=_string(obj, "payment_intent", where),
        order_id=_order_id(metadata),
        amount_refunded=amount,
        refund_id=_required_string(obj, "id", where) if is_refund else None,
        ours="liventix_refund_id" in metadata,
    )


def _metadata(obj: dict[str, Any]) -> dict[str, Any]:
    return _optional_object(obj, "metadata", "data.object")


def _order_id(metadata: dict[str, Any]) -> uuid.UUID | None:
    """Our order id, if the metadata holds one.

    A string that is not a UUID is not an error: metadata is free-form, and other
    integrations on the same Stripe account may use the key for their own ids.
    """
    value = _string(metadata, "order_id", "data.object.metadata")
    try:
        return uuid.UUID(value) if value else None
    except ValueError:
        return None


# ------------------------------------------------------------------- field readers


def _path(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


def _describe(value: object) -> str:
    """The JSON kind of `value`, for a reason (never the value: it is not ours to log)."""
    if isinstance(value, bool):  # before int: bool is an int in Python, not in JSON
        return "a boolean"
    if isinstance(value, int) and value < 0:
        return "a negative number"
    kinds = {dict: "an object", list: "an array", str: "a string", int: "a number"}
    kinds |= {float: "a number", type(None): "null"}
    return kinds.get(type(value), type(value).__name__)


def _object(value: object, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise MalformedEvent(f"{where}: expected an object, got {_describe(value)}")
    return value


def _optional_object(parent: dict[str, Any], key: str, where: str) -> dict[str, Any]:
    """An object that may be absent or null (then empty)."""
    value = parent.get(key)
    return {} if value is None else _object(value, _path(where, key))


def _string(
    parent: dict[str, Any], key: str, where: str, *, max_length: int = ID_MAX_LENGTH
) -> str | None:
    """A string that may be absent or null; present, it is 1 to `max_length` characters
    without NUL (PostgreSQL text cannot hold one)."""
    value = parent.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or not 0 < len(value) <= max_length or "\x00" in value:
        shown = "an unusable string" if isinstance(value, str) else _describe(value)
        raise MalformedEvent(
            f"{_path(where, key)}: expected a string of 1 to {max_length} characters"
            f" without NUL, got {shown}"
        )
    return value


def _required_string(parent: dict[str, Any], key: str, where: str) -> str:
    value = _string(parent, key, where)
    if value is None:
        raise MalformedEvent(f"{_path(where, key)}: required")
    return value


def _readable_string(event: dict[str, Any], key: str) -> str | None:
    """`event[key]` if it is a usable string, else None (for recording a rejection)."""
    with suppress(MalformedEvent):
        return _string(event, key, "")
    return None


def _amount(parent: dict[str, Any], key: str, where: str) -> int:
    """An amount in the currency's minor unit: a non-negative integer, never a bool."""
    value = parent.get(key)
    if type(value) is not int or value < 0:
        got = "nothing" if key not in parent else _describe(value)
        raise MalformedEvent(
            f"{_path(where, key)}: expected a non-negative integer amount, got {got}"
        )
    return value
