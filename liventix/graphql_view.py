"""The `/graphql` endpoint: GraphQL over HTTP and `graphql-transport-ws`.

Authentication happens before execution: a bad token is a 401 over HTTP and a
`4403 Forbidden` close over WebSocket, never a 500. GraphiQL is served with its assets
from this API (see `liventix.graphiql`), never from a CDN.
"""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL
from strawberry.exceptions import ConnectionRejectionError
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL

from liventix import graphiql
from liventix.auth import ANONYMOUS, AuthError, Viewer, viewer_from_header, viewer_from_token
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
            subscription_protocols=(GRAPHQL_TRANSPORT_WS_PROTOCOL,),
            connection_init_wait_timeout=timedelta(seconds=settings.ws_init_timeout),
            max_subscriptions_per_connection=settings.ws_max_subscriptions,
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

    async def on_ws_connect(self, context: Context) -> dict[str, object] | None:
        params = context.connection_params or {}
        raw = params.get("Authorization") or params.get("authorization") or params.get("token")
        if raw is None:
            return None
        try:
            token = str(raw)
            if token.lower().startswith("bearer "):
                token = token[7:]
            context.viewer = viewer_from_token(token.strip(), self.services.settings)
        except AuthError as exc:
            raise ConnectionRejectionError({"message": exc.message, "code": exc.code}) from None
        return None

    async def render_graphql_ide(self, request: Request) -> Response:
        return HTMLResponse(graphiql.page())

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
        await super().__call__(scope, receive, send)
