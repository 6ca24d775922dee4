"""ASGI middleware: request ids, CORS, request size limits, authentication, rate limits.

Pure ASGI (not BaseHTTPMiddleware) so WebSockets and streaming pass through untouched
and the hot path costs one function call per layer.

Authentication and rate limiting interlock, so their order matters (see `create_app`):

    AuthenticationMiddleware   verifies the bearer token once; records the viewer
                               (or the verification error) in scope state
    RateLimitMiddleware        counts the request: per verified user, else per address
    RefuseBadTokenMiddleware   answers 401 for a recorded verification error

The 401 comes after the count on purpose: a refused token is counted against its
address, so a client spraying random tokens spends one window, not one per token.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Collection
from typing import Any

import redis.asyncio
from limits import RateLimitItem, parse
from limits.aio.storage import MemoryStorage, RedisStorage, Storage
from limits.aio.strategies import MovingWindowRateLimiter
from starlette.datastructures import Headers
from starlette.middleware.cors import CORSMiddleware
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from liventix.auth import AuthError, Viewer, viewer_from_header
from liventix.settings import Settings

log = logging.getLogger("liventix.http")


class RequestIdMiddleware:
    """Gives every request an id (or keeps a sane incoming `X-Request-Id`)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        incoming = Headers(scope=scope).get("x-request-id", "")
        request_id = incoming if 8 <= len(incoming) <= 64 and incoming.isalnum() else None
        request_id = request_id or uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message.setdefault("headers", []).append((b"x-request-id", request_id.encode()))
            await send(message)

        await self.app(scope, receive, send_with_id)


class PathCORSMiddleware(CORSMiddleware):
    """Starlette's `CORSMiddleware` (preflights included) for `paths` only.

    It sits outside authentication, body and rate limits, so that their 401, 413 and
    429 reach a browser page with CORS headers too: a page can only read an answer the
    headers allow, and it needs the code (`UNAUTHENTICATED`, `RATE_LIMITED`) to react.
    """

    def __init__(
        self,
        app: ASGIApp,
        paths: Collection[str],
        allow_origins: Collection[str],
        allow_methods: Collection[str],
        allow_headers: Collection[str],
        expose_headers: Collection[str],
    ) -> None:
        super().__init__(
            app,
            allow_origins=list(allow_origins),
            allow_methods=list(allow_methods),
            allow_headers=list(allow_headers),
            expose_headers=list(expose_headers),
            allow_credentials=False,  # bearer tokens, never cookies
        )
        self.paths = frozenset(paths)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] in self.paths:
            await super().__call__(scope, receive, send)
            return
        await self.app(scope, receive, send)


class BodyLimitMiddleware:
    """Refuses request bodies over `max_bytes` with 413 before they are buffered."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = Headers(scope=scope).get("content-length")
        if length is not None and length.isdigit() and int(length) > self.max_bytes:
            await self._too_large(scope, receive, send)
            return
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise _BodyTooLarge
            return message

        try:
            await self.app(scope, limited_receive, send)
        except _BodyTooLarge:
            await self._too_large(scope, receive, send)

    async def _too_large(self, scope: Scope, receive: Receive, send: Send) -> None:
        message = f"Request body exceeds {self.max_bytes} bytes"
        body = {"errors": [{"message": message, "extensions": {"code": "PAYLOAD_TOO_LARGE"}}]}
        await JSONResponse(body, status_code=413)(scope, receive, send)


class _BodyTooLarge(Exception):
    pass


def unauthorized(error: AuthError) -> JSONResponse:
    """A GraphQL-shaped 401 body, so clients parse it like any other error."""
    body = {"errors": [{"message": error.message, "extensions": {"code": error.code}}]}
    return JSONResponse(body, status_code=401, headers={"WWW-Authenticate": "Bearer"})


class AuthenticationMiddleware:
    """Verifies an HTTP request's `Authorization: Bearer` token, once per request.

    Records `state["viewer"]` (anonymous without the header) or, for a token that fails
    verification, `state["auth_error"]`, answered 401 by `RefuseBadTokenMiddleware`
    further in. `public_paths` (probes, the signed Stripe webhook) never look at the
    header, so a proxy's own `Authorization` cannot break them. WebSockets authenticate
    in their `connection_init` payload instead (`liventix.ws`).
    """

    def __init__(self, app: ASGIApp, settings: Settings, public_paths: Collection[str]) -> None:
        self.app = app
        self.settings = settings
        self.public_paths = frozenset(public_paths)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] not in self.public_paths:
            state = scope.setdefault("state", {})
            authorization = Headers(scope=scope).get("authorization")
            try:
                state["viewer"] = viewer_from_header(authorization, self.settings)
            except AuthError as error:
                state["auth_error"] = error
        await self.app(scope, receive, send)


class RefuseBadTokenMiddleware:
    """Answers 401 when `AuthenticationMiddleware` could not verify the token.

    A layer of its own so that it can sit inside the rate limiter (see the module
    docstring); with rate limits off it follows authentication directly.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        error = scope.get("state", {}).get("auth_error") if scope["type"] == "http" else None
        if isinstance(error, AuthError):
            await unauthorized(error)(scope, receive, send)
            return
        await self.app(scope, receive, send)


class RateLimitMiddleware:
    """Moving-window rate limit per client: the verified user, else the address.

    Keys on the viewer `AuthenticationMiddleware` verified (placed before this one);
    requests without one, refused tokens included, count against their address.

    Storage is Redis when `REDIS_URL` is set (limits shared by all API processes),
    otherwise per-process memory. Over the limit: 429 with `Retry-After`.
    """

    def __init__(self, app: ASGIApp, rate: str, redis_url: str | None) -> None:
        self.app = app
        self.item: RateLimitItem = parse(rate)
        self.redis_pool: redis.asyncio.ConnectionPool | None = None
        storage: Storage = MemoryStorage()
        if redis_url:
            # redis-py (already a dependency) rather than limits' default client, coredis;
            # our own pool so shutdown can close its connections.
            self.redis_pool = redis.asyncio.ConnectionPool.from_url(redis_url)
            storage = RedisStorage(  # options are forwarded to redis.asyncio.Redis
                "async+redis://",
                implementation="redispy",
                connection_pool=self.redis_pool,  # type: ignore[arg-type]
            )
        self.limiter = MovingWindowRateLimiter(storage)

    async def aclose(self) -> None:
        """Close the Redis connections (called when the app shuts down)."""
        if self.redis_pool is not None:
            await self.redis_pool.disconnect()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self.app(scope, receive, self._closing_on_shutdown(send))
            return
        if scope["type"] != "http" or scope["path"] in ("/healthz", "/readyz", "/metrics"):
            await self.app(scope, receive, send)
            return
        key = _client_key(scope)
        try:
            allowed = await self.limiter.hit(self.item, key)
        except Exception:  # storage outage must not take the API down with it
            log.exception("rate limiter storage failed; allowing request")
            allowed = True
        if allowed:
            await self.app(scope, receive, send)
            return
        stats = await self.limiter.get_window_stats(self.item, key)
        retry_after = max(1, int(stats.reset_time - time.time()) + 1)
        body = {
            "errors": [
                {
                    "message": "Too many requests; retry later",
                    "extensions": {"code": "RATE_LIMITED", "retryAfter": retry_after},
                }
            ]
        }
        response = JSONResponse(body, status_code=429, headers={"Retry-After": str(retry_after)})
        await response(scope, receive, send)

    def _closing_on_shutdown(self, send: Send) -> Send:
        async def send_closing(message: Message) -> None:
            if message["type"] == "lifespan.shutdown.complete":
                await self.aclose()
            await send(message)

        return send_closing


def _client_key(scope: Scope) -> str:
    """`user:<id>` for a verified viewer, else `ip:<address>`.

    Never the raw header: anyone can make up a new bearer string per request, while a
    user id comes only from a token signed with our secret.
    """
    viewer = scope.get("state", {}).get("viewer")
    if isinstance(viewer, Viewer) and viewer.user_id is not None:
        return f"user:{viewer.user_id}"
    client: Any = scope.get("client")
    return "ip:" + (client[0] if client else "unknown")
