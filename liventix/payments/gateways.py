"""Payment gateways: one interface, Stripe behind it, or a local stand-in.

`StripeGateway` calls Stripe through the real `stripe` library (async client),
`LocalGateway` stands in without keys (development, tests) and answers with fake
``pi_local_...`` / ``re_local_...`` ids. Both take an idempotency key on every write, so
a retried call never charges or refunds twice. A gateway is a service: it knows nothing
of the database or of requests; `liventix.payments.flows` pairs its calls with
transactions.
"""

from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass, field
from typing import Any, Protocol

import stripe

from liventix.settings import Settings

# Our refund reasons that Stripe has a reason for; Stripe is told nothing for the others
# (the reason and note stay on our refund row and in the refund's metadata).
STRIPE_REASONS = {
    "duplicate": "duplicate",
    "fraudulent": "fraudulent",
    "requested_by_customer": "requested_by_customer",
}


def stripe_reason(reason: str) -> str | None:
    """Stripe's `reason` for one of ours (`db.refund_rules.RefundReason`), or None."""
    return STRIPE_REASONS.get(reason)


class GatewayError(Exception):
    """The payment provider refused or could not be reached."""


@dataclass(frozen=True, slots=True)
class Intent:
    id: str
    client_secret: str


class PaymentGateway(Protocol):
    async def create_intent(
        self,
        *,
        amount_cents: int,
        currency: str,
        order_id: uuid.UUID,
        receipt_email: str | None,
        idempotency_key: str,
    ) -> Intent: ...

    async def refund(
        self,
        *,
        payment_intent_id: str,
        amount_cents: int,
        idempotency_key: str,
        reason: str | None,
        metadata: dict[str, str],
    ) -> str: ...

    async def aclose(self) -> None: ...


class _HTTPXClient(stripe.HTTPXClient):
    """Stripe's httpx client, sending the encoded body as `content`.

    The stock client passes bytes as `data=`, which httpx 0.28 deprecates (a warning
    per request, and an error wherever warnings are errors).
    """

    def _get_request_args_kwargs(
        self, method: str, url: str, headers: Any, post_data: Any
    ) -> list[Any]:
        args, kwargs = super()._get_request_args_kwargs(method, url, headers, post_data)
        body = kwargs.pop("data", None)
        if body:
            kwargs["content"] = body
        return [args, kwargs]


class StripeGateway:
    """Stripe through `stripe.StripeClient` and its `*_async` methods."""

    def __init__(self, api_key: str, api_base: str | None = None) -> None:
        # An explicit async httpx client, so the lifespan can close its connections.
        self._http = _HTTPXClient(timeout=20)
        self.client = stripe.StripeClient(
            api_key,
            base_addresses={"api": api_base} if api_base else None,
            max_network_retries=2,
            http_client=self._http,
        )

    async def create_intent(
        self,
        *,
        amount_cents: int,
        currency: str,
        order_id: uuid.UUID,
        receipt_email: str | None,
        idempotency_key: str,
    ) -> Intent:
        params: dict[str, Any] = {
            "amount": amount_cents,
            "currency": currency,
            "metadata": {"order_id": str(order_id)},
            "automatic_payment_methods": {"enabled": True},
        }
        if receipt_email:
            params["receipt_email"] = receipt_email
        try:
            intent = await self.client.v1.payment_intents.create_async(
                params,  # type: ignore[arg-type]
                {"idempotency_key": idempotency_key},
            )
        except stripe.StripeError as exc:
            raise GatewayError(str(exc.user_message or exc)) from exc
        return Intent(id=intent.id, client_secret=intent.client_secret or "")

    async def refund(
        self,
        *,
        payment_intent_id: str,
        amount_cents: int,
        idempotency_key: str,
        reason: str | None,
        metadata: dict[str, str],
    ) -> str:
        params: dict[str, Any] = {
            "payment_intent": payment_intent_id,
            "amount": amount_cents,
            "metadata": metadata,
        }
        if reason is not None:
            params["reason"] = reason
        try:
            refund = await self.client.v1.refunds.create_async(
                params,  # type: ignore[arg-type]
                {"idempotency_key": idempotency_key},
            )
        except stripe.StripeError as exc:
            raise GatewayError(str(exc.user_message or exc)) from exc
        return refund.id

    async def aclose(self) -> None:
        await self._http.close_async()  # type: ignore[no-untyped-call]


@dataclass
class LocalGateway:
    """A stand-in with Stripe's shape, for development and tests without keys.

    Keeps every call (`calls`) and answers repeats of an idempotency key with the first
    answer, as Stripe does. `fail_next` makes the next call raise, to test compensation.
    """

    calls: list[dict[str, Any]] = field(default_factory=list)
    fail_next: bool = False
    _seen: dict[str, Any] = field(default_factory=dict)

    def _maybe_fail(self) -> None:
        if self.fail_next:
            self.fail_next = False
            raise GatewayError("The payment provider is unavailable")

    async def create_intent(
        self,
        *,
        amount_cents: int,
        currency: str,
        order_id: uuid.UUID,
        receipt_email: str | None,
        idempotency_key: str,
    ) -> Intent:
        self._maybe_fail()
        self.calls.append(
            {
                "op": "create_intent",
                "amount": amount_cents,
                "key": idempotency_key,
                "receipt_email": receipt_email,
            }
        )
        if idempotency_key not in self._seen:
            intent_id = f"pi_local_{secrets.token_hex(12)}"
            self._seen[idempotency_key] = Intent(intent_id, f"{intent_id}_secret_local")
        intent: Intent = self._seen[idempotency_key]
        return intent

    async def refund(
        self,
        *,
        payment_intent_id: str,
        amount_cents: int,
        idempotency_key: str,
        reason: str | None,
        metadata: dict[str, str],
    ) -> str:
        self._maybe_fail()
        self.calls.append(
            {
                "op": "refund",
                "payment_intent": payment_intent_id,
                "amount": amount_cents,
                "key": idempotency_key,
                "reason": reason,
                "metadata": metadata,
            }
        )
        refund_id: str = self._seen.setdefault(idempotency_key, f"re_local_{secrets.token_hex(12)}")
        return refund_id

    def refunds(self) -> list[dict[str, Any]]:
        """Distinct refunds made (repeats of one idempotency key count once)."""
        by_key = {c["key"]: c for c in self.calls if c["op"] == "refund"}
        return list(by_key.values())

    async def aclose(self) -> None:
        return None


def gateway_for(settings: Settings) -> PaymentGateway:
    """Stripe when a secret key is configured, else the local stand-in."""
    if settings.stripe_secret_key:
        return StripeGateway(settings.stripe_secret_key, settings.stripe_api_base)
    return LocalGateway()
