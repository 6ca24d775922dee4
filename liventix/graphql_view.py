"""The `/graphql` endpoint over HTTP (WebSockets are served by `liventix.ws`).

Authentication happens before execution: a bad token is a 401 with a GraphQL-shaped
body, never a 500. GraphiQL is served with its assets from this API (see
`liventix.graphiql`), never from a CDN.
"""

from __future__ import annotations

import uuid
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL

from liventix import graphiql
from liventix.auth import ANONYMOUS, AuthError, Viewer, viewer_from_header
from liventix.context import Context, Services
from resolvers.loaders import Loaders


def unauthorized(error: AuthError) -> JSONResponse:
    """A GraphQL-shaped 401 body, so clients parse it like any other error."""
    body = {"errors": [{"message": error.message, "extensions": {"code": error.code}}]}
    return JSONResponse(body, status_code=401, headers={"WWW-Authenticate": "Bearer"})


class GraphQLView(GraphQL[Context, None]):
    def __init__(self, services: Services, schema: Any) -> None:
        settings = services.settings
        super().__init__(
            schema,
            graphql_ide="graphiql" if settings.graphiql else None,
            subscription_protocols=(),  # WebSockets are routed to `liventix.ws`
        )
        self.services = services

    async def get_context(self, request: Request | WebSocket, response: Any) -> Context:
        viewer: Viewer = request.scope.get("state", {}).get("viewer", ANONYMOUS)
        return Context(
            services=self.services,
            viewer=viewer,
            loaders=Loaders(self.services.db),
            request_id=request.scope.get("state", {}).get("request_id") or uuid.uuid4().hex,
        )

    async def render_graphql_ide(self, request: Request) -> Response:
        return HTMLResponse(graphiql.page(self.services.settings.graphiql_assets_dir))

    def encode_json(self, data: object) -> bytes:
        return orjson.dumps(data)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            request = Request(scope)
            try:
                viewer = viewer_from_header(
                    request.headers.get("authorization"), self.services.settings
                )
            except AuthError as exc:
                await unauthorized(exc)(scope, receive, send)
                return
            scope.setdefault("state", {})["viewer"] = viewer
            await self.services.first_sight.see_quietly(viewer)
        await super().__call__(scope, receive, send)
