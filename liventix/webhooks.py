"""Incoming Stripe webhooks: verify, record once, apply, answer fast.

The signature is checked over the raw body (HMAC-SHA256 with the endpoint secret,
within the tolerance window) before anything is parsed; anything that fails gets a 400
and changes nothing. A verified event is then checked whole against the shape Stripe
sends (`parse_event`: strict pydantic models of the fields we read, one per kind of
object): one that does not fit is a `MalformedEvent`, answered 400 and recorded once
as rejected (`db.payment_events`) so reconciliation shows it to a person, with no
other effect. A well-formed event is recorded and applied in one transaction (see
`db.payment_events.process_payment_event`), so redeliveries and out-of-order events are
harmless. A gateway refund the event makes necessary (a payment that arrived after the
tickets sold out) is settled by `liventix.payments.flows.settle_refund` after the
response is sent: Stripe only waits for the 2xx.

Every delivery is counted by event type and result (`liventix_webhook_events_total`).
The type is a label only once the signature is verified (else ``unknown``): only Stripe
signs, and its catalogue of event types is finite, so the label stays bounded.
"""

from __future__ import annotations

import hashlib
import logging
import uuid
from dataclasses import replace
from typing import Annotated, Any, TypeVar

import orjson
import stripe
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    TypeAdapter,
    ValidationError,
)
from pydantic_core import PydanticCustomError
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

import db.payment_events
from db.payment_events import PaymentEvent
from liventix.metrics import WEBHOOK_EVENTS
from liventix.payments.flows import settle_refund
from resolvers.context import Services

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
        WEBHOOK_EVENTS.labels(UNKNOWN_TYPE, "bad_signature").inc()
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
        WEBHOOK_EVENTS.labels(UNKNOWN_TYPE, "bad_signature").inc()
        return _bad_request("invalid signature")
    try:
        event = decode_event(payload)
    except MalformedEvent as exc:
        WEBHOOK_EVENTS.labels(exc.event_type or UNKNOWN_TYPE, "malformed").inc()
        return await _reject(services, payload, exc)
    try:
        outcome = await db.payment_events.process_payment_event(
            services.db, event, now=services.clock.now()
        )
    except Exception:  # answered 500, and Stripe retries
        WEBHOOK_EVENTS.labels(event.type, "error").inc()
        raise
    WEBHOOK_EVENTS.labels(event.type, outcome.result).inc()
    background = None
    if outcome.refund is not None:
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
    amounts non-negative integers, objects objects) before anything acts on it: a
    misfit raises `MalformedEvent` naming the field, never a `ValueError` mid-way.
    The envelope is read first; its type then picks the model of `data.object`.
    """
    if not isinstance(raw, dict):
        raise MalformedEvent(f"event: {_OBJECT_EXPECTED}")
    known_id, known_type = _usable_id(raw.get("id")), _usable_id(raw.get("type"))
    try:
        event = _validate(_Event, raw, "")
        obj = event.data.object
        return _validate(_object_model(event.type, obj), obj, "data.object").event(
            event.id, event.type
        )
    except MalformedEvent as exc:
        raise MalformedEvent(exc.reason, event_id=known_id, event_type=known_type) from None


# ------------------------------------------------------------------- event models


def _no_nul(value: str) -> str:
    if "\x00" in value:  # PostgreSQL text cannot hold one
        raise PydanticCustomError("string_nul", "String should not contain NUL")
    return value


Id = Annotated[
    str, StringConstraints(min_length=1, max_length=ID_MAX_LENGTH), AfterValidator(_no_nul)
]
Text = Annotated[
    str, StringConstraints(min_length=1, max_length=TEXT_MAX_LENGTH), AfterValidator(_no_nul)
]
Amount = Annotated[int, Field(ge=0)]  # in the currency's minor unit; strict: never a bool

_OBJECT_EXPECTED = "Input should be an object"
# Pydantic says "a valid dictionary or instance of <model>": our class names are not
# the sender's business.
_MESSAGES = {"model_type": _OBJECT_EXPECTED, "dict_type": _OBJECT_EXPECTED}


class _Strict(BaseModel):
    """Exactly Stripe's JSON types ("5" is not 5, true is not 1); other fields ignored.
    A field that may be absent may also be null."""

    model_config = ConfigDict(strict=True, frozen=True, extra="ignore")


_M = TypeVar("_M", bound=_Strict)


def _validate(model: type[_M], value: object, where: str) -> _M:
    """`model` of `value`, or a `MalformedEvent` naming the first field that misfits."""
    try:
        return model.model_validate(value)
    except ValidationError as exc:
        error = exc.errors(include_url=False)[0]
        loc = [str(part) for part in error["loc"]]
        path = ".".join([where, *loc] if where else loc)
        raise MalformedEvent(f"{path}: {_MESSAGES.get(error['type'], error['msg'])}") from None


_ID = TypeAdapter(Id)


def _usable_id(value: object) -> str | None:
    """`value` if it is a usable id, else None (for recording a rejection)."""
    try:
        return _ID.validate_python(value, strict=True)
    except ValidationError:
        return None


class _Data(_Strict):
    object: dict[str, Any]


class _Event(_Strict):
    id: Id
    type: Id
    data: _Data


class _Metadata(_Strict):
    order_id: Id | None = None
    liventix_refund_id: Any = None  # only its presence counts

    @property
    def order(self) -> uuid.UUID | None:
        """Our order id, if the metadata holds one.

        A string that is not a UUID is not an error: metadata is free-form, and other
        integrations on the same Stripe account may use the key for their own ids.
        """
        try:
            return uuid.UUID(self.order_id) if self.order_id else None
        except ValueError:
            return None

    @property
    def ours(self) -> bool:
        """A refund this service asked for."""
        return "liventix_refund_id" in self.model_fields_set


_NO_METADATA = _Metadata()


class _PaymentError(_Strict):
    message: Text | None = None


class _PaymentIntent(_Strict):
    """`payment_intent.*`."""

    id: Id | None = None
    metadata: _Metadata | None = None
    last_payment_error: _PaymentError | None = None
    amount_received: Amount | None = None

    def event(self, event_id: str, event_type: str) -> PaymentEvent:
        error = self.last_payment_error
        return PaymentEvent(
            id=event_id,
            type=event_type,
            payment_intent_id=self.id,
            order_id=(self.metadata or _NO_METADATA).order,
            failure_message=error.message if error else None,
            amount_received=self.amount_received,
        )


class _Object(_Strict):
    """A charge, refund or any other object: what links it to an order."""

    payment_intent: Id | None = None
    metadata: _Metadata | None = None

    def event(self, event_id: str, event_type: str) -> PaymentEvent:
        metadata = self.metadata or _NO_METADATA
        return PaymentEvent(
            id=event_id,
            type=event_type,
            payment_intent_id=self.payment_intent,
            order_id=metadata.order,
            ours=metadata.ours,
        )


class _RefundedCharge(_Object):
    """`charge.refunded`: the amount refunded so far is what we act on."""

    amount_refunded: Amount

    def event(self, event_id: str, event_type: str) -> PaymentEvent:
        return replace(super().event(event_id, event_type), amount_refunded=self.amount_refunded)


class _Refund(_Object):
    """`refund.*` of a refund not (yet) succeeded: its amount is not read."""

    id: Id
    status: Id | None = None

    def event(self, event_id: str, event_type: str) -> PaymentEvent:
        return replace(super().event(event_id, event_type), refund_id=self.id)


class _SucceededRefund(_Refund):
    amount: Amount

    def event(self, event_id: str, event_type: str) -> PaymentEvent:
        return replace(super().event(event_id, event_type), amount_refunded=self.amount)


def _object_model(event_type: str, obj: dict[str, Any]) -> type[_PaymentIntent | _Object]:
    """The model of `data.object` for this type of event (see the classes)."""
    if event_type.startswith("payment_intent."):
        return _PaymentIntent
    if event_type == "charge.refunded":
        return _RefundedCharge
    if event_type.startswith("refund."):
        return _SucceededRefund if obj.get("status") == "succeeded" else _Refund
    return _Object
