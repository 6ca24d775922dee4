"""Payment gateways, and the flows that pair a database transaction with a gateway call.

Two gateways share one interface: `StripeGateway` calls Stripe through the real
`stripe` library (async client), `LocalGateway` stands in without keys (development,
tests) and answers with fake ``pi_local_...`` / ``re_local_...`` ids. Both take an
idempotency key on every write, so a retried call never charges or refunds twice.

The flows keep gateway calls out of transactions (a call that may be slow or fail must
never hold row locks, and a transaction that rolls back must never have charged):

* `checkout`: tx1 creates the pending order (holds stay reserved), then the intent is
  created with the key ``order-<id>``, then tx2 records its id. If the gateway fails,
  a compensating transaction cancels the order and detaches its holds, which stay
  active so the buyer can retry at once; nothing is left half-created. A crash between
  tx1 and tx2 leaves a pending order whose holds expire normally, and a retry with the
  same holds returns that order and the same intent (same idempotency key). Concurrent
  repeats meet on the same pending order (tx1 waits for the first to commit) and send
  the gateway the same request under the same key (the first checkout's receipt email,
  though a repeat may change the order's contact), so all of them get the same client
  secret; a repeat whose gateway call fails leaves the shared order to the others.
* `settle_refund`: after a refund committed, ask the gateway under the refund row's
  idempotency key and record the gateway id; a failure leaves the row unsettled for
  the reconciliation job to retry.
"""

from __future__ import annotations

import logging
import secrets
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import stripe
from databases import Database

import db.orders
import db.reconcile
import db.refunds
from db.order_records import OrderError
from db.orders import Checkout, Contact
from db.refunds import RefundRecord
from liventix.clock import Clock
from liventix.settings import Settings

if TYPE_CHECKING:
    from liventix.context import Services

log = logging.getLogger("liventix.payments")


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
        metadata: dict[str, str],
    ) -> str:
        try:
            refund = await self.client.v1.refunds.create_async(
                {"payment_intent": payment_intent_id, "amount": amount_cents, "metadata": metadata},
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
        metadata: dict[str, str],
    ) -> str:
        self._maybe_fail()
        self.calls.append(
            {
                "op": "refund",
                "payment_intent": payment_intent_id,
                "amount": amount_cents,
                "key": idempotency_key,
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


# ----------------------------------------------------------------------------- flows


@dataclass(frozen=True, slots=True)
class CheckoutResult:
    checkout: Checkout
    client_secret: str | None


async def checkout(
    database: Database,
    gateway: PaymentGateway,
    clock: Clock,
    *,
    user_id: uuid.UUID,
    hold_ids: list[uuid.UUID],
    contact: Contact,
) -> CheckoutResult:
    """Pending order + payment intent (see the module docstring for the steps).

    Raises `OrderError`, including PAYMENT_PROVIDER_ERROR after compensating.
    """
    done = await db.orders.create_pending_order(
        database, user_id=user_id, hold_ids=hold_ids, contact=contact, now=clock.now()
    )
    order = done.order
    if order.total_cents == 0 and order.status == "pending":  # free: no payment needed
        completion = await db.orders.complete_order(database, order.id, now=clock.now())
        return CheckoutResult(
            checkout=Checkout(
                order=completion.order, reused=done.reused, tickets=completion.tickets
            ),
            client_secret=None,
        )
    if order.status != "pending":
        return CheckoutResult(checkout=done, client_secret=None)
    try:
        intent = await gateway.create_intent(
            amount_cents=order.total_cents,
            currency=order.currency,
            order_id=order.id,
            receipt_email=done.receipt_email,
            idempotency_key=f"order-{order.id}",
        )
    except GatewayError as exc:
        log.warning("payment intent for order %s failed: %s", order.id, exc)
        if not done.reused:  # a repeat's order may already be paying under another call
            await db.orders.cancel_checkout(
                database, order.id, reason="payment provider error", now=clock.now()
            )
        raise OrderError(
            "The payment provider is unavailable; please try again",
            code="PAYMENT_PROVIDER_ERROR",
        ) from exc
    order = await db.orders.attach_payment_intent(database, order.id, intent.id)
    return CheckoutResult(
        checkout=Checkout(order=order, reused=done.reused), client_secret=intent.client_secret
    )


async def settle_refund(database: Database, gateway: PaymentGateway, refund: RefundRecord) -> bool:
    """Ask the gateway for a refund recorded in the database; True once settled.

    Safe to repeat: the gateway sees the refund's own idempotency key every time.
    """
    if refund.stripe_refund_id is not None:
        return True
    if refund.payment_intent_id is None:
        return False
    try:
        gateway_id = await gateway.refund(
            payment_intent_id=refund.payment_intent_id,
            amount_cents=refund.amount_cents,
            idempotency_key=refund.idempotency_key,
            metadata={"order_id": str(refund.order_id), "liventix_refund_id": str(refund.id)},
        )
    except GatewayError:
        log.exception("refund %s not settled; reconciliation will retry", refund.id)
        return False
    await db.refunds.record_gateway_refund(database, refund.id, gateway_id)
    return True


# ------------------------------------------------------------------------------ jobs


async def reconcile_job(services: Services) -> tuple[int, dict[str, Any]]:
    """The periodic reconciliation: repair, then retry refunds the gateway never confirmed."""
    report = await db.reconcile.reconcile(services.db, now=services.clock.now())
    refunds: list[RefundRecord] = report.pop("refunds_to_settle")
    settled = []
    if services.payments is not None:
        for refund in refunds:
            if await settle_refund(services.db, services.payments, refund):
                settled.append(str(refund.id))
    report["refunds_settled"] = settled
    report["refunds_unsettled"] = [str(r.id) for r in refunds if str(r.id) not in settled]
    items = len(report["completed_orders"]) + len(report["corrected_tiers"]) + len(refunds)
    return items, report


async def anonymize_job(services: Services) -> tuple[int, dict[str, Any]]:
    """Erase buyers' contact data once their event is long over (privacy by default)."""
    days = services.settings.anonymize_after_days
    count = await db.orders.anonymize_contacts(
        services.db, now=services.clock.now(), after_days=days
    )
    return count, {"anonymized_orders": count, "after_days": days}
