"""Signed Stripe test events, the way `stripe trigger` sends them.

`build_event` shapes an event like Stripe's for one order, `sign` computes the
``Stripe-Signature`` header (HMAC-SHA256 of ``"<t>.<body>"`` with the endpoint secret)
and `send_event` posts it to a running server. `liventix webhook <type> --order <id>`
uses them so the whole purchase can be walked through from the playground without a
Stripe account; tests use them against the in-process app or a real server.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import secrets
import sys
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import asyncpg
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


# ---------------------------------------------------------------------------- commands


def add_commands(commands: Any) -> None:
    """`liventix webhook ...` and `liventix reconcile` (added to the main parser)."""
    hook = commands.add_parser(
        "webhook", help="send a signed Stripe test event for an order to a running server"
    )
    hook.add_argument("event_type", choices=EVENT_TYPES)
    hook.add_argument("--order", type=uuid.UUID, required=True, help="order id")
    hook.add_argument(
        "--url", help="webhook URL (default: /webhooks/stripe on HOST and PORT, as `serve` binds)"
    )
    hook.set_defaults(handler=_webhook_command)
    reconcile = commands.add_parser(
        "reconcile", help="repair paid orders without tickets and drifted counters; report"
    )
    reconcile.set_defaults(handler=_reconcile_command)


# A wildcard bind address accepts connections on every interface but is not itself an
# address to connect to: the loopback of the same family reaches the server.
_CONNECTABLE = {"0.0.0.0": "127.0.0.1", "": "127.0.0.1", "::": "::1"}


def local_webhook_url(settings: Settings) -> str:
    """The webhook URL of the server `liventix serve` runs with these settings.

    HOST and PORT are what `serve` binds (a wildcard becomes loopback), so the
    command reaches a server started with the same environment.
    """
    host = _CONNECTABLE.get(settings.host, settings.host)
    if ":" in host and not host.startswith("["):  # an IPv6 literal needs brackets
        host = f"[{host}]"
    return f"http://{host}:{settings.port}/webhooks/stripe"


def _webhook_command(settings: Settings, args: argparse.Namespace) -> int:
    url = args.url or local_webhook_url(settings)
    try:
        response = asyncio.run(trigger(settings, args.event_type, args.order, url))
    except LookupError as exc:
        print(f"liventix: {exc}", file=sys.stderr)
        return 1
    except (httpx.HTTPError, httpx.InvalidURL) as exc:
        # httpx's own message ("All connection attempts failed") does not say where.
        hint = "" if args.url else " (is `liventix serve` running with this HOST and PORT?)"
        print(
            f"liventix: could not send the event to {url}: {_one_line(exc)}{hint}", file=sys.stderr
        )
        return 1
    except (OSError, asyncpg.PostgresError) as exc:  # the order is read first
        print(
            f"liventix: could not read the order from the database: {_one_line(exc)}",
            file=sys.stderr,
        )
        return 1
    print(f"{response.status_code} {response.text}")
    return 0 if response.is_success else 1


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def _reconcile_command(settings: Settings, args: argparse.Namespace) -> int:
    from liventix.payments import gateway_for, settle_refund

    async def run() -> dict[str, Any]:
        async with resolve_database_url(settings) as database_url:
            await db.migrate.migrate(database_url)
            database = create_database(database_url, min_size=1, max_size=2)
            await database.connect()
            gateway = gateway_for(settings)
            try:
                run_id = await db.jobs.start_run(database, db.reconcile.JOB_NAME)
                report = await db.reconcile.reconcile(database, now=datetime.now(UTC))
                refunds = report.pop("refunds_to_settle")
                report["refunds_settled"] = [
                    str(r.id) for r in refunds if await settle_refund(database, gateway, r)
                ]
                items = len(report["completed_orders"]) + len(report["corrected_tiers"])
                await db.jobs.finish_run(database, run_id, items=items, report=report)
                return report
            finally:
                await gateway.aclose()
                await database.disconnect()

    print(orjson.dumps(asyncio.run(run()), option=orjson.OPT_INDENT_2).decode())
    return 0
