"""The Stripe gateway: the real `stripe` library against a local stand-in of Stripe's API.

The stub records each request (path, form fields, idempotency key) and answers like
Stripe, so these tests assert exactly what would be sent to Stripe: amounts computed on
the server, one idempotency key per order or refund, the order id in the metadata.
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any
from urllib.parse import parse_qsl

import httpx
import pytest
from databases import Database
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from liventix.clock import FrozenClock
from liventix.payments.gateways import GatewayError, StripeGateway
from liventix.settings import Settings
from tests.conftest import ServerThread
from tests.orders_support import (
    PRICE,
    REFUND,
    World,
    assert_books_balanced,
    checkout,
    hold,
    order_of,
    webhook,
    world,
)
from tests.support import GraphQLClient, key_of

__all__ = ["world"]


class StripeStub:
    """Just enough of Stripe's API: payment intents and refunds, with idempotency."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.decline = False
        self._answers: dict[str, dict[str, Any]] = {}
        self.app = Starlette(
            routes=[
                Route("/v1/payment_intents", self.payment_intent, methods=["POST"]),
                Route("/v1/refunds", self.refund, methods=["POST"]),
            ]
        )

    async def _record(self, request: Request) -> tuple[dict[str, str], str | None]:
        form = dict(parse_qsl((await request.body()).decode()))
        key = request.headers.get("idempotency-key")
        self.requests.append(
            {
                "path": request.url.path,
                "form": form,
                "key": key,
                "auth": request.headers.get("authorization"),
            }
        )
        return form, key

    async def payment_intent(self, request: Request) -> JSONResponse:
        form, key = await self._record(request)
        if self.decline:
            error = {"type": "card_error", "code": "card_declined", "message": "Declined"}
            return JSONResponse({"error": error}, status_code=402)
        if key and key in self._answers:
            return JSONResponse(self._answers[key])
        intent_id = f"pi_{secrets.token_hex(8)}"
        body = {
            "id": intent_id,
            "object": "payment_intent",
            "amount": int(form["amount"]),
            "currency": form["currency"],
            "client_secret": f"{intent_id}_secret_{secrets.token_hex(4)}",
            "status": "requires_payment_method",
            "metadata": {"order_id": form.get("metadata[order_id]")},
        }
        if key:
            self._answers[key] = body
        return JSONResponse(body)

    async def refund(self, request: Request) -> JSONResponse:
        form, key = await self._record(request)
        if key and key in self._answers:
            return JSONResponse(self._answers[key])
        body = {
            "id": f"re_{secrets.token_hex(8)}",
            "object": "refund",
            "amount": int(form["amount"]),
            "payment_intent": form["payment_intent"],
            "status": "succeeded",
        }
        if key:
            self._answers[key] = body
        return JSONResponse(body)


@pytest.fixture
async def stripe_stub() -> AsyncIterator[tuple[StripeStub, str]]:
    stub = StripeStub()
    async with ServerThread(stub.app) as running:
        yield stub, running.http_url


@pytest.fixture
async def stripe_app(
    make_app: Callable[..., Starlette], stripe_stub: tuple[StripeStub, str]
) -> AsyncIterator[Starlette]:
    """The API configured with a Stripe key, talking to the stub."""
    application = make_app(stripe_secret_key="sk_test_liventix", stripe_api_base=stripe_stub[1])
    async with application.router.lifespan_context(application):
        yield application
        await application.state.services.payments.aclose()


@pytest.fixture
async def stripe_client(stripe_app: Starlette) -> AsyncIterator[GraphQLClient]:
    transport = httpx.ASGITransport(app=stripe_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        yield GraphQLClient(http)


async def test_checkout_and_refund_call_stripe_with_keys_and_metadata(
    stripe_client: GraphQLClient,
    stripe_stub: tuple[StripeStub, str],
    stripe_app: Starlette,
    database: Database,
    world: World,
    clock: FrozenClock,
    settings: Settings,
) -> None:
    stub, _ = stripe_stub
    assert isinstance(stripe_app.state.services.payments, StripeGateway)
    held = await hold(database, clock, world.buyer, world.tier_id, 2)
    result = await checkout(stripe_client, world.buyer_token, [held])
    again = await checkout(stripe_client, world.buyer_token, [held])  # a double submit
    order_id = result["order"]["id"]
    assert again["paymentIntentId"] == result["paymentIntentId"]
    assert result["clientSecret"].startswith(result["paymentIntentId"] + "_secret_")
    intents = [r for r in stub.requests if r["path"] == "/v1/payment_intents"]
    assert len(intents) == 2
    assert {r["key"] for r in intents} == {f"order-{key_of(order_id)}"}
    form = intents[0]["form"]
    assert form["amount"] == str(2 * PRICE) and form["currency"] == "usd"
    assert form["metadata[order_id]"] == str(key_of(order_id))
    assert form["receipt_email"] == "sam@example.com"
    assert intents[0]["auth"] == "Bearer sk_test_liventix"

    order = order_of(result)
    assert (await webhook(stripe_client, settings, "payment_intent.succeeded", order))[
        "result"
    ] == "paid"
    for _ in range(2):
        await stripe_client(REFUND, {"order": order_id}, token=world.organizer_token)
    refunds = [r for r in stub.requests if r["path"] == "/v1/refunds"]
    assert len(refunds) == 1
    assert refunds[0]["form"]["payment_intent"] == result["paymentIntentId"]
    assert refunds[0]["form"]["amount"] == str(2 * PRICE)
    assert refunds[0]["key"].startswith(f"order-{key_of(order_id)}-refund-")
    assert refunds[0]["form"]["metadata[order_id]"] == str(key_of(order_id))
    await assert_books_balanced(database)


async def test_a_declined_intent_is_a_typed_error_and_cancels_the_order(
    stripe_client: GraphQLClient,
    stripe_stub: tuple[StripeStub, str],
    database: Database,
    world: World,
    clock: FrozenClock,
) -> None:
    stub, _ = stripe_stub
    stub.decline = True
    held = await hold(database, clock, world.buyer, world.tier_id, 1)
    result = await checkout(stripe_client, world.buyer_token, [held])
    assert result["code"] == "PAYMENT_PROVIDER_ERROR"
    stub.decline = False
    retried = await checkout(stripe_client, world.buyer_token, [held])
    assert retried["order"]["status"] == "PENDING" and retried["clientSecret"]
    await assert_books_balanced(database)


async def test_gateway_errors_are_wrapped(stripe_stub: tuple[StripeStub, str]) -> None:
    stub, url = stripe_stub
    stub.decline = True
    gateway = StripeGateway("sk_test_liventix", url)
    try:
        with pytest.raises(GatewayError):
            await gateway.create_intent(
                amount_cents=100,
                currency="usd",
                order_id=uuid.uuid4(),
                receipt_email=None,
                idempotency_key="order-x",
            )
    finally:
        await gateway.aclose()
