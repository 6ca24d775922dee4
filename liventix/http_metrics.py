"""HTTP requests counted by method, route and status (`liventix_http_requests_total`).

The outermost middleware, so it counts every answer: the routes', the middleware's own
refusals (401, 413, 429) and the 500 of an exception nothing else caught. The route is
the matched route's path (``/graphql``, ``/webhooks/stripe``, ...), never the request's
own path, and an unknown method is ``other``, so a client cannot grow the label sets.
WebSocket connections have their own metrics (`liventix.subscriptions.metrics`).
"""

from __future__ import annotations

from collections.abc import Sequence

from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from liventix.metrics import HTTP_REQUESTS

METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
OTHER = "other"


class HttpMetricsMiddleware:
    """Counts each HTTP request once its response has started (or failed to)."""

    def __init__(self, app: ASGIApp, routes: Sequence[BaseRoute]) -> None:
        self.app = app
        self.routes = routes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500  # unless a response starts: what the server answers to an exception

        async def send_counted(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_counted)
        finally:
            method = scope["method"] if scope["method"] in METHODS else OTHER
            HTTP_REQUESTS.labels(method, self.route_of(scope), str(status)).inc()

    def route_of(self, scope: Scope) -> str:
        """The path of the route that served (or would have served) the request."""
        route = scope.get("route")
        if route is None:  # answered before routing: find the route it was meant for
            route = next((r for r in self.routes if r.matches(scope)[0] != Match.NONE), None)
        path = getattr(route, "path", None)
        return path if isinstance(path, str) else OTHER
