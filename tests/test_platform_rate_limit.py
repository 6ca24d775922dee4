"""Rate limits: 429 with `Retry-After` once a client exceeds its window.

With per-process memory storage by default, and with Redis (TEST_REDIS_URL) where the
limit is shared: two API processes (two apps here) count against one window.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack
from datetime import timedelta
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from liventix.auth import Role, mint_token
from liventix.settings import Settings

QUERY = {"query": "{ viewer { id } }"}
REDIS_URL = os.environ.get("TEST_REDIS_URL")


class Lifespan:
    """Drives the ASGI lifespan protocol, as uvicorn does (through the middleware, so
    the limiter's Redis connections are closed at shutdown like in production)."""

    def __init__(self, app: Starlette) -> None:
        self.app = app
        self.inbox: asyncio.Queue[dict[str, str]] = asyncio.Queue()
        self.outbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.task: asyncio.Task[None] | None = None

    async def _step(self, event: str) -> None:
        await self.inbox.put({"type": f"lifespan.{event}"})
        reply = await asyncio.wait_for(self.outbox.get(), 30)
        assert reply["type"] == f"lifespan.{event}.complete", reply

    async def __aenter__(self) -> None:
        scope = {"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}
        self.task = asyncio.create_task(self.app(scope, self.inbox.get, self.outbox.put))
        await self._step("startup")

    async def __aexit__(self, *exc: object) -> None:
        await self._step("shutdown")
        assert self.task is not None
        await self.task


@pytest.fixture
async def open_app() -> AsyncIterator[Callable[[Starlette], Any]]:
    """`await open_app(app)`: start the app; returns an HTTP client for it."""
    async with AsyncExitStack() as stack:

        async def open_(app: Starlette) -> httpx.AsyncClient:
            await stack.enter_async_context(Lifespan(app))
            transport = httpx.ASGITransport(app=app)
            client = httpx.AsyncClient(transport=transport, base_url="http://testserver")
            return await stack.enter_async_context(client)

        yield open_


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def assert_limited(response: httpx.Response) -> None:
    assert response.status_code == 429, response.text
    retry_after = int(response.headers["Retry-After"])
    assert 1 <= retry_after <= 61
    error = response.json()["errors"][0]
    assert error["extensions"] == {"code": "RATE_LIMITED", "retryAfter": retry_after}


async def test_memory_limit_answers_429_with_retry_after(
    make_app: Callable[..., Starlette],
    open_app: Callable[[Starlette], Any],
    token: Callable[..., str],
) -> None:
    http = await open_app(make_app(rate_limit_enabled=True, rate_limit="3/minute"))
    alice, bob = bearer(token(Role.USER)), bearer(token(Role.USER))
    for _ in range(3):
        assert (await http.post("/graphql", json=QUERY, headers=alice)).status_code == 200
    assert_limited(await http.post("/graphql", json=QUERY, headers=alice))
    # Each client has its own window; health probes are never limited.
    assert (await http.post("/graphql", json=QUERY, headers=bob)).status_code == 200
    assert (await http.get("/healthz")).status_code == 200
    assert (await http.get("/readyz")).status_code == 200


async def test_anonymous_clients_are_limited_by_address(
    make_app: Callable[..., Starlette], open_app: Callable[[Starlette], Any]
) -> None:
    http = await open_app(make_app(rate_limit_enabled=True, rate_limit="2/minute"))
    for _ in range(2):
        assert (await http.post("/graphql", json=QUERY)).status_code == 200
    assert_limited(await http.post("/graphql", json=QUERY))


async def test_disabled_limit_never_answers_429(
    make_app: Callable[..., Starlette], open_app: Callable[[Starlette], Any]
) -> None:
    http = await open_app(make_app(rate_limit_enabled=False, rate_limit="1/minute"))
    for _ in range(5):
        assert (await http.post("/graphql", json=QUERY)).status_code == 200


@pytest.mark.skipif(not REDIS_URL, reason="TEST_REDIS_URL not set (no Redis to share limits)")
async def test_redis_limit_is_shared_by_processes(
    make_app: Callable[..., Starlette],
    open_app: Callable[[Starlette], Any],
    token: Callable[..., str],
) -> None:
    overrides = {"rate_limit_enabled": True, "rate_limit": "3/minute", "redis_url": REDIS_URL}
    first = await open_app(make_app(**overrides))
    second = await open_app(make_app(**overrides))
    carol = bearer(token(Role.USER))  # a fresh user: a key no earlier run has touched
    assert (await first.post("/graphql", json=QUERY, headers=carol)).status_code == 200
    assert (await second.post("/graphql", json=QUERY, headers=carol)).status_code == 200
    assert (await first.post("/graphql", json=QUERY, headers=carol)).status_code == 200
    assert_limited(await second.post("/graphql", json=QUERY, headers=carol))


async def test_random_bearer_strings_spend_the_address_budget(
    make_app: Callable[..., Starlette], open_app: Callable[[Starlette], Any]
) -> None:
    """An unverified token is no identity: spraying fresh random tokens from one client
    must not buy a fresh window each time. Refused tokens still count (401 until the
    address's budget is spent, then 429)."""
    http = await open_app(make_app(rate_limit_enabled=True, rate_limit="3/minute"))
    for _ in range(3):
        response = await http.post("/graphql", json=QUERY, headers=bearer(secrets.token_hex()))
        assert response.status_code == 401, response.text
        assert response.headers["WWW-Authenticate"] == "Bearer"
        assert response.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    assert_limited(await http.post("/graphql", json=QUERY, headers=bearer(secrets.token_hex())))
    assert_limited(await http.post("/graphql", json=QUERY))  # the same address, anonymous


async def test_a_users_tokens_share_one_window(
    make_app: Callable[..., Starlette],
    open_app: Callable[[Starlette], Any],
    settings: Settings,
) -> None:
    """The window belongs to the verified user, not to one of their tokens."""
    http = await open_app(make_app(rate_limit_enabled=True, rate_limit="3/minute"))
    user = uuid.uuid4()
    tokens = [
        bearer(mint_token(settings, user, Role.USER, ttl=timedelta(hours=hours)))
        for hours in (1, 2, 3, 4)
    ]
    assert len({t["Authorization"] for t in tokens}) == 4
    for headers in tokens[:3]:
        assert (await http.post("/graphql", json=QUERY, headers=headers)).status_code == 200
    assert_limited(await http.post("/graphql", json=QUERY, headers=tokens[3]))


async def test_a_user_and_anonymous_requests_from_one_address_have_separate_windows(
    make_app: Callable[..., Starlette],
    open_app: Callable[[Starlette], Any],
    token: Callable[..., str],
) -> None:
    """The rule: a verified user is counted per user id (wherever they connect from);
    anything else (no token, a refused token) per address."""
    http = await open_app(make_app(rate_limit_enabled=True, rate_limit="2/minute"))
    alice = bearer(token(Role.USER))
    for _ in range(2):
        assert (await http.post("/graphql", json=QUERY)).status_code == 200
    assert_limited(await http.post("/graphql", json=QUERY))
    for _ in range(2):
        assert (await http.post("/graphql", json=QUERY, headers=alice)).status_code == 200
    assert_limited(await http.post("/graphql", json=QUERY, headers=alice))


async def test_routes_without_a_viewer_ignore_the_authorization_header(
    make_app: Callable[..., Starlette], open_app: Callable[[Starlette], Any]
) -> None:
    """Probes and the Stripe webhook (signed, not bearer-authenticated) are never 401:
    a proxy adding its own Authorization header must not break them."""
    http = await open_app(make_app())
    junk = {"Authorization": "Basic cHJvYmU6cHJvYmU="}
    assert (await http.get("/healthz", headers=junk)).status_code == 200
    assert (await http.get("/readyz", headers=junk)).status_code == 200
    webhook = await http.post("/webhooks/stripe", content=b"{}", headers=junk)
    assert webhook.status_code == 400, webhook.text  # refused for its missing signature
    graphql = await http.post("/graphql", json=QUERY, headers=junk)
    assert graphql.status_code == 401, graphql.text
