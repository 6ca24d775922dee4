"""The `/graphql` endpoint over HTTP (WebSockets are served by `liventix.ws`).

Authentication happens before this view, in `liventix.middleware`: a bad token is a 401
with a GraphQL-shaped body there, and the verified viewer arrives in scope state.
GraphiQL is served with its assets from this API (see `liventix.graphiql`), never from
a CDN.
"""

from __future__ import annotations

import uuid
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL
from strawberry.http import GraphQLHTTPResponse
from strawberry.types import ExecutionResult

from liventix import graphiql
from liventix.auth import ANONYMOUS, Viewer
from resolvers.context import Context, Services
from resolvers.loaders import Loaders
from schema.errors import mask_errors


def request_id(request: Request | WebSocket) -> str:
    """The request's id (set by the middleware; made here if it did not run), kept in
    the scope so the context, the logs and a masked error all show the same one."""
    state = request.scope.setdefault("state", {})
    if not state.get("request_id"):
        state["request_id"] = uuid.uuid4().hex
    value: str = state["request_id"]
    return value


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
            request_id=request_id(request),
        )

    async def process_result(
        self, request: Request, result: ExecutionResult
    ) -> GraphQLHTTPResponse:
        """Every response's errors as the client may see them (`schema.errors`): this
        sees every result, even one Strawberry built from an exception it caught."""
        response = await super().process_result(request, result)
        errors = getattr(result, "errors", None)
        if errors:
            response["errors"] = [e.formatted for e in mask_errors(errors, request_id(request))]
        return response

    async def render_graphql_ide(self, request: Request) -> Response:
        return HTMLResponse(graphiql.page(self.services.settings.graphiql_assets_dir))

    def encode_json(self, data: object) -> bytes:
        return orjson.dumps(data)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            # Verified by `AuthenticationMiddleware`; the view only meets the user.
            viewer: Viewer = scope.get("state", {}).get("viewer", ANONYMOUS)
            await self.services.first_sight.see_quietly(viewer)
        await super().__call__(scope, receive, send)
