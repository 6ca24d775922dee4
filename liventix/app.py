"""The ASGI application and the lifespan that owns its resources.

`create_app` wires routes and middleware; `lifespan` opens the database (the embedded
server when no DATABASE_URL is given), applies migrations, starts the realtime listener
and the background jobs, and closes all of them in reverse order on shutdown.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route, WebSocketRoute

import db.migrate
from db.core import connection, create_database
from db.notify import dispatch_locally
from liventix import exports, graphiql, jobs, metrics_endpoint, unsubscribe
from liventix.clock import Clock, SystemClock
from liventix.database_url import resolve_database_url
from liventix.first_sight import FirstSight
from liventix.graphql_view import GraphQLView, with_cache_control
from liventix.http_metrics import HttpMetricsMiddleware
from liventix.metrics import PoolMetrics
from liventix.middleware import (
    AuthenticationMiddleware,
    BodyLimitMiddleware,
    PathCORSMiddleware,
    RateLimitMiddleware,
    RefuseBadTokenMiddleware,
    RequestIdMiddleware,
)
from liventix.payments.gateways import gateway_for
from liventix.persisted_queries import PersistedQueries
from liventix.realtime import Hub
from liventix.realtime.gc_tuning import freeze_startup_heap, tune_for_many_connections
from liventix.request_log import RequestLogMiddleware
from liventix.response_cache import ResponseCache
from liventix.settings import Settings, load_settings
from liventix.webhooks import stripe_webhook
from liventix.ws import GraphQLTransportWS
from resolvers.context import Services
from schema import build_schema

log = logging.getLogger("liventix")


@contextlib.asynccontextmanager
async def open_services(settings: Settings, clock: Clock) -> AsyncIterator[Services]:
    """Database, migrations, realtime hub, payment gateway and jobs, opened and closed
    together (in reverse order)."""
    async with contextlib.AsyncExitStack() as stack:
        url = await stack.enter_async_context(resolve_database_url(settings))
        applied = await db.migrate.migrate(url)
        if applied:
            log.info("applied migrations: %s", ", ".join(applied))
        database = create_database(
            url,
            min_size=settings.db_pool_min,
            max_size=settings.db_pool_max,
            acquire_timeout=settings.db_acquire_timeout,
            statement_timeout_ms=settings.statement_timeout_ms,
            observer=PoolMetrics(),
        )
        await database.connect()
        stack.push_async_callback(database.disconnect)
        hub = Hub(url, buffer_size=settings.ws_buffer_size)
        await hub.start()
        stack.push_async_callback(hub.stop)
        # The hub hears this process's commits at once (for its watchers: the feed cache).
        stack.enter_context(dispatch_locally(database, hub.dispatch_committed))
        gateway = gateway_for(settings)
        stack.push_async_callback(gateway.aclose)
        services = Services(
            settings=settings,
            db=database,
            clock=clock,
            hub=hub,
            first_sight=FirstSight(database),
            payments=gateway,
        )
        stack.push_async_callback(services.console_counts.aclose)
        if settings.jobs_enabled:
            if settings.is_production and settings.smtp_host is None:
                log.warning("SMTP_HOST is not set: emails stay pending in the outbox, unsent")
            await stack.enter_async_context(jobs.running(services))
        tune_for_many_connections()  # avoids second-long GC pauses at 10k subscribers
        yield services


def create_served_app() -> Starlette:
    """The app as `liventix serve` runs it in each worker: its start-up heap frozen out
    of garbage collection once the lifespan has built everything (`freeze_startup_heap`)."""
    return create_app(freeze_heap=True)


def create_app(
    settings: Settings | None = None, *, clock: Clock | None = None, freeze_heap: bool = False
) -> Starlette:
    settings = settings or load_settings()
    clock = clock or SystemClock()
    schema = build_schema(
        max_depth=settings.max_query_depth,
        max_aliases=settings.max_aliases,
        max_tokens=settings.max_tokens,
        max_cost=settings.max_query_cost,
        production=settings.is_production,
        introspection_roles=settings.introspection_role_set,
        timeout_seconds=settings.request_timeout_seconds,
    )
    websockets: GraphQLTransportWS | None = None
    http_view: Any = None  # the view behind the response cache and Cache-Control

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[dict[str, Any]]:
        nonlocal websockets, http_view
        async with open_services(settings, clock) as services:
            persisted_queries = PersistedQueries.from_settings(settings, services.db)
            view = GraphQLView(services, schema, persisted_queries)
            response_cache = ResponseCache(
                services.hub, services.db, services.first_sight, clock=services.clock
            )
            http_view = with_cache_control(
                response_cache.wrap(view), max_age=settings.persisted_query_max_age
            )
            websockets = GraphQLTransportWS(services, schema, persisted_queries)
            app.state.services = services
            app.state.websockets = websockets
            app.state.response_cache = response_cache
            if freeze_heap:
                freeze_startup_heap()
            try:
                yield {"services": services}
            finally:
                await websockets.aclose()
                response_cache.close()

    class GraphQLEndpoint:
        """The view is built in the lifespan (it needs the services); route to it."""

        async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
            assert http_view is not None, "lifespan not started"
            await http_view(scope, receive, send)

    graphql_endpoint = GraphQLEndpoint()

    class WebSocketEndpoint:
        """`graphql-transport-ws` with shared executions (see `liventix.ws`)."""

        async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
            assert websockets is not None, "lifespan not started"
            await websockets(scope, receive, send)

    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readyz(request: Request) -> Response:
        services: Services = request.app.state.services
        try:
            async with connection(services.db) as conn:
                missing = await db.migrate.pending(conn)
        except Exception as exc:  # report, don't crash: this is the probe for outages
            return JSONResponse({"status": "unavailable", "error": type(exc).__name__}, 503)
        if missing:
            return JSONResponse({"status": "migrating", "pending": missing}, 503)
        return JSONResponse({"status": "ready"})

    routes = [
        Route("/healthz", healthz),
        Route("/readyz", readyz),
        Route("/metrics", metrics_endpoint.metrics),
        Route("/webhooks/stripe", stripe_webhook, methods=["POST"]),
        # Opened from emails: GET confirms, POST (one click, RFC 8058) unsubscribes.
        Route(unsubscribe.PATH, unsubscribe.unsubscribe, methods=["GET", "POST"]),
        # The console's CSV downloads: the signed token in the path says who and what.
        Route(exports.PATH, exports.download, methods=["GET"]),
        # Every method reaches the view, which answers 405 with `Allow` and a JSON body.
        Route("/graphql", graphql_endpoint),
        WebSocketRoute("/graphql", WebSocketEndpoint()),
        Mount(graphiql.STATIC_PREFIX, app=graphiql.AssetFiles(settings.graphiql_assets_dir)),
    ]
    # Routes that never use a viewer: probes, the webhook (Stripe signs it) and the
    # unsubscribe link (its token says who).
    public_paths = ("/healthz", "/readyz", "/metrics", "/webhooks/stripe", unsubscribe.PATH)
    # Authenticate, count, then refuse bad tokens: see `liventix.middleware` for why.
    middleware = [
        # Outermost: it counts every answer, the other middleware's refusals too.
        Middleware(HttpMetricsMiddleware, routes=routes),
        Middleware(RequestIdMiddleware),
        # Inside the request id: its line, and its 500 for an uncaught error, have the id.
        Middleware(RequestLogMiddleware),
        # Browser pages on CORS_ORIGINS may call /graphql: a bearer token, no cookies.
        Middleware(
            PathCORSMiddleware,
            paths=("/graphql",),
            allow_origins=settings.cors_origin_list,
            allow_methods=("GET", "POST"),
            allow_headers=("Authorization", "Content-Type", "X-Request-Id"),
            expose_headers=("X-Request-Id", "Retry-After"),
        ),
        Middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes),
        Middleware(AuthenticationMiddleware, settings=settings, public_paths=public_paths),
    ]
    if settings.rate_limit_enabled:
        middleware.append(
            Middleware(RateLimitMiddleware, rate=settings.rate_limit, redis_url=settings.redis_url)
        )
    middleware.append(Middleware(RefuseBadTokenMiddleware))
    return Starlette(routes=routes, middleware=middleware, lifespan=lifespan)
