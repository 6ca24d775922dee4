"""Payment flows: a transaction, a gateway call, a transaction, and what undoes a failure.

A gateway call never runs inside a transaction (a call that may be slow or fail must
never hold row locks, and a transaction that rolls back must never have charged), so
each flow is a few steps, each committed on its own, with a compensation for the step
that can fail. The flows take what they use (database, gateway, clock, ids), never the
request's context, so resolvers, the webhook route, jobs and the CLI share them.

* `checkout`: tx1 creates the pending order (holds stay reserved), then the intent is
  created with the key ``order-<id>``, then tx2 records its id. A free order is
  completed instead, without the gateway. *Compensation*: if the gateway fails, a
  transaction cancels the order and detaches its holds, which stay active so the buyer
  can retry at once; nothing is left half-created. A crash between tx1 and tx2 leaves a
  pending order whose holds expire normally, and a retry with the same holds returns
  that order and the same intent (same idempotency key). Concurrent repeats meet on the
  same pending order (tx1 waits for the first to commit) and send the gateway the same
  request under the same key (the first checkout's receipt email, though a repeat may
  change the order's contact), so all of them get the same client secret; a repeat
  whose gateway call fails leaves the shared order to the others (no compensation).
* `refund`: tx1 refunds money, tickets or the whole order and writes a refund row whose
  id names its gateway idempotency key, then `settle_refund` asks the gateway. A retry
  under the client's own key finds that row again (nothing new is written) and
  settles it if it is still unsettled, under the same gateway key.
* `settle_refund`: after a refund committed, ask the gateway under the refund row's
  idempotency key, with the refund's reason where Stripe has one, then a transaction
  records the gateway's id. A refund of nothing (voided free tickets) has nothing to
  settle. *Compensation*: none is
  needed, the money is owed either way: a failure leaves the row unsettled, and the
  reconciliation job retries it under the same key. The webhook route runs this after
  its response for a payment that arrived after its tickets sold out.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass, replace

from databases import Database

import db.checkout
import db.completion
import db.refunds
from db.checkout import Checkout, Contact
from db.errors import OrderError
from db.refunds import RefundAsked, RefundOutcome, RefundRecord
from liventix.clock import Clock
from liventix.payments.gateways import GatewayError, PaymentGateway, stripe_reason

log = logging.getLogger("liventix.payments")


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
    code: str | None = None,
) -> CheckoutResult:
    """Pending order + payment intent (see the module docstring for the steps); `code`
    is a discount code of the event. A total of zero (a free tier, a comp code) is
    completed at once, without the gateway.

    Raises `OrderError`, including PAYMENT_PROVIDER_ERROR after compensating.
    """
    done = await db.checkout.create_pending_order(
        database,
        user_id=user_id,
        hold_ids=hold_ids,
        contact=contact,
        now=clock.now(),
        code=code,
    )
    order = done.order
    if order.total_cents == 0 and order.status == "pending":  # free: no payment needed
        completion = await db.completion.complete_order(database, order.id, now=clock.now())
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
            await db.checkout.cancel_checkout(
                database, order.id, reason="payment provider error", now=clock.now()
            )
        raise OrderError(
            "The payment provider is unavailable; please try again",
            code="PAYMENT_PROVIDER_ERROR",
        ) from exc
    order = await db.checkout.attach_payment_intent(database, order.id, intent.id)
    return CheckoutResult(
        checkout=Checkout(order=order, reused=done.reused), client_secret=intent.client_secret
    )


async def refund(
    database: Database,
    gateway: PaymentGateway,
    clock: Clock,
    *,
    order_id: uuid.UUID,
    actor_id: uuid.UUID,
    actor_is_admin: bool,
    asked: RefundAsked,
) -> RefundOutcome:
    """Refund money, tickets or a whole order, then settle it with the gateway.

    The refund is committed before the gateway is asked, and the outcome is returned
    whether or not the gateway answered (an unsettled refund is retried by
    reconciliation, and by a retry under the same client key). Raises `OrderError`
    (see `db.refunds.refund_order`).
    """
    outcome = await db.refunds.refund_order(
        database,
        order_id=order_id,
        actor_id=actor_id,
        actor_is_admin=actor_is_admin,
        asked=asked,
        now=clock.now(),
    )
    if outcome.refund is None:
        return outcome
    return replace(outcome, refund=await _settle(database, gateway, outcome.refund))


async def settle_refund(database: Database, gateway: PaymentGateway, refund: RefundRecord) -> bool:
    """Ask the gateway for a refund recorded in the database; True once settled.

    Safe to repeat: the gateway sees the refund's own idempotency key every time.
    """
    return (await _settle(database, gateway, refund)).settled


async def _settle(
    database: Database, gateway: PaymentGateway, refund: RefundRecord
) -> RefundRecord:
    """`settle_refund`, answering the refund as it now is (with the gateway's id)."""
    if refund.settled or refund.payment_intent_id is None:
        return refund
    try:
        gateway_id = await gateway.refund(
            payment_intent_id=refund.payment_intent_id,
            amount_cents=refund.amount_cents,
            idempotency_key=refund.idempotency_key,
            reason=stripe_reason(refund.reason),
            metadata={
                "order_id": str(refund.order_id),
                "liventix_refund_id": str(refund.id),
                "reason": refund.reason,
            },
        )
    except GatewayError:
        log.exception("refund %s not settled; reconciliation will retry", refund.id)
        return refund
    await db.refunds.record_gateway_refund(database, refund.id, gateway_id)
    return replace(refund, stripe_refund_id=gateway_id)
