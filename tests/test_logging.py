"""Structured logs (`liventix.logs`, `liventix.request_log`): one JSON line per request
with its id, status, duration, operation and viewer; a readable format in development;
and never a token, contact data, a QR token or a Stripe secret, whatever happens."""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
import uvicorn
from starlette.applications import Starlette

import resolvers.orders
from db.notification_rules import Channel
from liventix import logs
from liventix.auth import Role
from liventix.clock import FrozenClock
from liventix.mail import links
from liventix.request_log import outcome
from liventix.settings import Settings, load_settings
from resolvers.ids import TIER
from tests.orders_support import CONTACT, World, webhook, world
from tests.support import GraphQLClient, WSClient, bad_tokens, free_port, gid

__all__ = ["world"]  # the fixture, imported for the tests below

RESERVE = """
mutation Reserve($tier: ID!) {
  reserveTickets(tierId: $tier, quantity: 2) {
    __typename
    ... on HoldPayload { hold { id } }
    ... on TicketingError { code message }
  }
}"""

CHECKOUT = """
mutation Checkout($holds: [ID!]!, $contact: ContactInput!) {
  checkout(holdIds: $holds, contact: $contact) {
    __typename
    ... on CheckoutPayload { clientSecret paymentIntentId order { id totalCents } }
    ... on OrderError { code message }
  }
}"""

MY_TICKETS = "query MyTickets { myTickets(first: 10) { edges { node { id qrPayload } } } }"

CHECK_IN = """
mutation CheckIn($token: String!) {
  checkIn(token: $token) {
    __typename
    ... on CheckInPayload { scanCount }
    ... on OrderError { code message }
  }
}"""

MY_ORDERS = "query MyOrders { myOrders(first: 5) { edges { node { id } } } }"


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """Put the process's logging back as it was: `logs.configure` and uvicorn's
    `log_config` reconfigure the root logger and uvicorn's loggers."""
    names = ("uvicorn", "uvicorn.error", "uvicorn.access")
    root = logging.getLogger()
    saved_root = (root.handlers[:], root.level)
    saved = {
        name: (lg.handlers[:], lg.level, lg.propagate, lg.disabled)
        for name in names
        for lg in [logging.getLogger(name)]
    }
    yield
    root.handlers[:], root.level = saved_root[0], saved_root[1]
    for name, (handlers, level, propagate, disabled) in saved.items():
        lg = logging.getLogger(name)
        lg.handlers[:] = handlers
        lg.level, lg.propagate, lg.disabled = level, propagate, disabled


@pytest.fixture
def stderr(capsys: pytest.CaptureFixture[str], restore_logging: None) -> Callable[[], str]:
    """What the process wrote to stderr during the test (`logs.StderrHandler` writes to
    the `sys.stderr` of the moment, pytest's capture, so the server's thread does too)."""
    return lambda: capsys.readouterr().err


@asynccontextmanager
async def serving(app: Starlette, settings: Settings) -> AsyncIterator[str]:
    """The app under uvicorn with the logging `liventix serve` gives it; the base URL."""
    port = free_port()
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, ws="websockets-sansio", **logs.uvicorn_options(settings)
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        for _ in range(400):
            if server.started:
                break
            await asyncio.sleep(0.025)
        else:
            raise RuntimeError("server did not start")
        yield f"127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await asyncio.to_thread(thread.join, 15)


def json_lines(text: str) -> list[dict[str, Any]]:
    """Every line of `text` as JSON (fails the test on a line that is not)."""
    parsed = []
    for line in text.splitlines():
        try:
            parsed.append(json.loads(line))
        except ValueError:
            pytest.fail(f"not a JSON line: {line!r}")
    return parsed


async def test_a_purchase_and_a_check_in_log_json_lines_without_secrets_or_contact_data(
    make_app: Callable[..., Starlette],
    settings: Settings,
    world: World,
    stderr: Callable[[], str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The whole purchase over real HTTP (hold, checkout with contact data, signed
    webhook, tickets, check-in), a WebSocket subscription, a refused token and an
    unexpected error whose message carries secrets: every line is JSON, every request
    has its line with the id of its X-Request-Id header, and none of the secrets or
    contact details appears anywhere in the output."""
    json_settings = settings.model_copy(update={"log_format": "json"})
    buyer, organizer = world.buyer_token, world.organizer_token
    forged = bad_tokens(settings)["other secret"]
    request_ids: dict[str, str] = {}  # operation (or route) -> X-Request-Id

    async with (
        serving(make_app(), json_settings) as address,
        httpx.AsyncClient(base_url=f"http://{address}") as http,
    ):
        client = GraphQLClient(http)

        async def call(name: str, query: str, variables: dict[str, Any], token: str) -> Any:
            response = await client.post(query, variables, token)
            assert response.status_code == 200, response.text
            request_ids[name] = response.headers["x-request-id"]
            return response.json()["data"]

        held = await call("Reserve", RESERVE, {"tier": gid(TIER, world.tier_id)}, buyer)
        hold_id = held["reserveTickets"]["hold"]["id"]
        paid = await call("Checkout", CHECKOUT, {"holds": [hold_id], "contact": CONTACT}, buyer)
        checkout = paid["checkout"]
        assert checkout["__typename"] == "CheckoutPayload", checkout
        client_secret = checkout["clientSecret"]
        assert "_secret_" in client_secret
        order = {**checkout["order"], "paymentIntentId": checkout["paymentIntentId"]}
        await webhook(client, settings, "payment_intent.succeeded", order)
        tickets = await call("MyTickets", MY_TICKETS, {}, buyer)
        qr_tokens = [edge["node"]["qrPayload"] for edge in tickets["myTickets"]["edges"]]
        assert len(qr_tokens) == 2 and all(qr_tokens)
        scanned = await call("CheckIn", CHECK_IN, {"token": qr_tokens[0]}, organizer)
        assert scanned["checkIn"]["__typename"] == "CheckInPayload", scanned

        refused = await client.post(MY_TICKETS, {}, forged)
        assert refused.status_code == 401
        request_ids["refused"] = refused.headers["x-request-id"]

        async def broken(*args: object, **kwargs: object) -> None:
            email, phone = CONTACT["email"], CONTACT["phone"]
            raise RuntimeError(
                f"card of {email} ({phone}) failed: Authorization: Bearer {buyer}, "
                f"ticket {qr_tokens[1]}, intent {client_secret}, "
                f"signing {settings.stripe_webhook_secret}"
            )

        monkeypatch.setattr(resolvers.orders, "my_orders", broken)
        failed = await client.post(MY_ORDERS, {}, buyer)
        request_ids["MyOrders"] = failed.headers["x-request-id"]
        error = failed.json()["errors"][0]
        assert error["extensions"] == {
            "code": "INTERNAL_SERVER_ERROR",
            "requestId": request_ids["MyOrders"],
        }

        ws = WSClient(f"ws://{address}/graphql")
        await ws.connect()
        await ws.init({"Authorization": f"Bearer {buyer}"})
        op_id = await ws.subscribe("subscription Clock { clock(count: 1) }")
        await ws.next_payload(op_id)
        assert (await ws.receive())["type"] == "complete"
        await ws.close()

    output = stderr()
    never = {
        "contact email": CONTACT["email"],
        "contact email (lower case)": CONTACT["email"].lower(),
        "contact name": CONTACT["name"],
        "contact phone": CONTACT["phone"],
        "buyer's bearer token": buyer,
        "organizer's bearer token": organizer,
        "refused token": forged,
        "QR token (checked in)": qr_tokens[0],
        "QR token (in an error)": qr_tokens[1],
        "client secret": client_secret,
        "webhook signing secret": settings.stripe_webhook_secret,
    }
    leaked = [what for what, value in never.items() if value in output]
    assert not leaked, leaked

    lines = json_lines(output)
    assert any(line["logger"].startswith("uvicorn") for line in lines)  # uvicorn's too
    requests = {line["request_id"]: line for line in lines if line["logger"] == "liventix.access"}
    buyer_id, organizer_id = str(world.buyer), str(world.organizer)
    expected = {
        "Reserve": ("mutation", buyer_id, 200, "ok"),
        "Checkout": ("mutation", buyer_id, 200, "ok"),
        "MyTickets": ("query", buyer_id, 200, "ok"),
        "CheckIn": ("mutation", organizer_id, 200, "ok"),
        "MyOrders": ("query", buyer_id, 200, "server_error"),
    }
    for name, (kind, viewer, status, result) in expected.items():
        line = requests[request_ids[name]]  # the header's id is the logged one
        assert line["operation"] == name and line["operation_type"] == kind, line
        assert line["viewer_id"] == viewer and line["status"] == status, line
        assert line["outcome"] == result and line["method"] == "POST", line
        assert line["path"] == "/graphql" and isinstance(line["duration_ms"], float), line
        assert line["level"] == "info" and line["timestamp"].endswith("Z"), line
    refused_line = requests[request_ids["refused"]]
    assert (refused_line["status"], refused_line["viewer_id"]) == (401, None)
    assert refused_line["outcome"] == "client_error"
    hooks = [line for line in requests.values() if line["path"] == "/webhooks/stripe"]
    assert [(h["status"], h["viewer_id"]) for h in hooks] == [(200, None)]

    (unexpected,) = [line for line in lines if line["level"] == "error"]
    assert unexpected["logger"] == "liventix.graphql"
    assert unexpected["level"] == "error" and "Traceback" in unexpected["exception"]
    assert unexpected["request_id"] == request_ids["MyOrders"]
    assert unexpected["operation"] == "MyOrders"
    assert "[redacted]" in unexpected["exception"]

    (ended,) = [line for line in lines if line["logger"] == "liventix.ws"]
    assert (ended["operation"], ended["operation_type"]) == ("Clock", "subscription")
    assert (ended["viewer_id"], ended["outcome"]) == (buyer_id, "complete")
    assert len(ended["request_id"]) == 32 and isinstance(ended["duration_ms"], float)


async def test_every_response_has_its_request_id_even_refusals_and_crashes(
    make_app: Callable[..., Starlette],
    stderr: Callable[[], str],
    monkeypatch: pytest.MonkeyPatch,
    settings: Settings,
    clock: FrozenClock,
) -> None:
    """401, 429 and an uncaught exception outside GraphQL each answer with an
    X-Request-Id header, and that id is the one on the request's log line; an
    unsubscribe link's token (in the query string) is never logged, not even when the
    exception's message carries it."""
    logs.configure(settings.model_copy(update={"log_format": "json"}), force=True)
    app = make_app(rate_limit_enabled=True, rate_limit="3/minute")
    link = links.sign(settings, links.Unsubscribe(uuid.uuid4(), Channel.EMAIL, None), clock.now())

    def crash(settings: Settings, token: str) -> links.Unsubscribe:
        raise RuntimeError(f"could not read {token}")

    graphql = {"query": "{ __typename }"}
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            bad = await http.post("/graphql", json=graphql, headers={"Authorization": "Bearer x"})
            page = await http.get("/notifications/unsubscribe", params={"token": link})
            monkeypatch.setattr(links, "verify", crash)
            crashed = await http.get("/notifications/unsubscribe", params={"token": link})
            limited = await http.post("/graphql", json=graphql)
    statuses = [r.status_code for r in (bad, page, crashed, limited)]
    assert statuses == [401, 200, 500, 429]
    assert crashed.json()["errors"][0]["extensions"] == {
        "code": "INTERNAL_SERVER_ERROR",
        "requestId": crashed.headers["x-request-id"],
    }
    output = stderr()
    assert link not in output
    lines = json_lines(output)
    requests = {line["request_id"]: line for line in lines if line["logger"] == "liventix.access"}
    for response in (bad, page, crashed, limited):
        line = requests[response.headers["x-request-id"]]
        assert line["status"] == response.status_code, line
        assert "?" not in line["path"] and "token" not in line["path"], line
    assert requests[crashed.headers["x-request-id"]]["outcome"] == "server_error"
    (trace,) = [line for line in lines if line["level"] == "error"]
    assert trace["request_id"] == crashed.headers["x-request-id"]
    assert "RuntimeError: could not read [redacted]" in trace["exception"]


async def test_development_logs_readable_lines(
    make_app: Callable[..., Starlette],
    stderr: Callable[[], str],
    settings: Settings,
    token: Callable[..., str],
) -> None:
    """Outside production (LOG_FORMAT=auto) a request's line is text, its fields as
    key=value, with the same redaction."""
    development = settings.model_copy(update={"environment": "development"})
    assert development.log_format_in_use == "text"
    logs.configure(development, force=True)
    app = make_app()
    user = uuid.uuid4()
    bearer = token(Role.USER, user)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            response = await GraphQLClient(http).post("query Me { viewer { id } }", token=bearer)
    output = stderr()
    (line,) = [line for line in output.splitlines() if "liventix.access" in line]
    assert not line.startswith("{")
    assert "POST /graphql 200" in line
    assert f"request_id={response.headers['x-request-id']}" in line
    assert "operation=Me" in line and f"viewer_id={user}" in line and "outcome=ok" in line
    assert bearer not in output


def test_log_format_follows_the_environment_unless_set() -> None:
    assert load_settings(environment="production", jwt_secret="s" * 40).log_format_in_use == "json"
    assert load_settings(environment="development").log_format_in_use == "text"
    text = load_settings(environment="production", jwt_secret="s" * 40, log_format="text")
    assert text.log_format_in_use == "text"
    assert load_settings(environment="development", log_format="json").log_format_in_use == "json"


@pytest.mark.parametrize(
    ("text", "kept"),
    [
        (
            "Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2ln",
            "Authorization: Bearer ",
        ),
        ("unsubscribe eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2ln now", "unsubscribe "),
        ("mail to Sam.Fan+tix@mail.example.co.uk failed", "mail to "),
        ("post_data=amount=2500&receipt_email=sam%40example.com", "post_data=amount=2500&"),
        ("call +49 30 1234567 now", "call "),
        ("intent pi_3MtwBwLkdIwHu7ix28a3tqPa_secret_YrKJUKribcBjcG8HVhfZluoGH", "intent "),
        ("key sk_live_51HxYzAbCdEf and whsec_abcDEF123", "key "),
        ("Stripe-Signature: t=1700000000,v1=" + "ab" * 32, "Stripe-Signature: t=1700000000,"),
        ("postgresql://app:hunter2@db.internal:5432/liventix", "postgresql://app:"),
        ("ticket Tk3mQ9x_-aB1cD2eF3gH4iJ5kL6mN7oP", "ticket "),
    ],
)
def test_redaction_scrubs_secret_shapes_in_any_text(text: str, kept: str) -> None:
    scrubbed = logs.scrub(text)
    assert "[redacted]" in scrubbed and scrubbed.startswith(kept), scrubbed


def test_redaction_keeps_what_operators_need() -> None:
    """Request ids, UUIDs, global ids, timestamps and paths are not secrets."""
    for text in (
        uuid.uuid4().hex,
        str(uuid.uuid4()),
        gid(TIER, uuid.uuid4()),
        "2026-05-01T12:00:00.123Z",
        "POST /graphql 200",
        "job reconcile failed after 1234567 ms",
        "postgres@localhost",
    ):
        assert logs.scrub(text) == text


def test_sensitive_fields_are_redacted_whatever_their_value() -> None:
    event = logs.redact(
        None,
        "info",
        {
            "event": "x",
            "authorization": "opaque",
            "contact": {"email": "a", "name": "b"},
            "variables": {"q": 1},
            "client_secret": "opaque",
            "stripe-signature": "opaque",
            "extra": {"qr_token": "opaque", "count": 2},
            "status": 200,
            "request_id": "Tk3mQ9xaB1cD2eF3gH4iJ5kL6mN7oP9q",
        },
    )
    assert event == {
        "event": "x",
        "authorization": "[redacted]",
        "contact": "[redacted]",
        "variables": "[redacted]",
        "client_secret": "[redacted]",
        "stripe-signature": "[redacted]",
        "extra": {"qr_token": "[redacted]", "count": 2},
        "status": 200,
        "request_id": "Tk3mQ9xaB1cD2eF3gH4iJ5kL6mN7oP9q",  # checked by the middleware
    }


def test_outcome_reads_status_and_error_codes() -> None:
    assert outcome(200) == "ok"
    assert outcome(200, ["BAD_USER_INPUT"]) == "client_error"
    assert outcome(200, ["INTERNAL_SERVER_ERROR"]) == "server_error"
    assert outcome(429) == "client_error"
    assert outcome(504) == "server_error"


def test_configure_leaves_a_host_s_logging_alone_unless_forced(
    settings: Settings, restore_logging: None
) -> None:
    """Like `logging.basicConfig`: a test runner (or any host) that set up handlers
    keeps them when it calls the CLI in-process."""
    root = logging.getLogger()
    host = logging.NullHandler()
    root.addHandler(host)
    logs.configure(settings)
    assert host in root.handlers
    logs.configure(settings, force=True)
    assert root.handlers and all(isinstance(h, logs.StderrHandler) for h in root.handlers)


def test_stripe_never_logs_its_bodies_even_at_debug(settings: Settings) -> None:
    """Stripe's DEBUG lines are request and response bodies (the buyer's email, the
    client secret): its logger stays at INFO when LOG_LEVEL=debug."""
    config = logs.logging_config(settings.model_copy(update={"log_level": "debug"}))
    assert config["root"]["level"] == "DEBUG"
    assert config["loggers"]["stripe"]["level"] == "INFO"
