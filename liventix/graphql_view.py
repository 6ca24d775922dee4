"""The `/graphql` endpoint over HTTP (WebSockets are served by `liventix.ws`).

Authentication happens before this view, in `liventix.middleware`: a bad token is a 401
with a GraphQL-shaped body there, and the verified viewer arrives in scope state.
GraphiQL is served with its assets from this API (see `liventix.graphiql`), never from
a CDN.

HTTP follows the GraphQL-over-HTTP specification (https://graphql.github.io/graphql-over-http/):

- The response's media type is negotiated from `Accept` (`negotiate`):
  `application/graphql-response+json`, or `application/json` for older clients (and
  for `*/*`); none of them acceptable: 406. No `Accept` at all: the former.
- A request error (parse, validation, operation or variable-coercion failure: nothing
  was executed) has no `data` entry. With `application/graphql-response+json` it is a
  400 (500 for a masked internal failure, 503 for `SERVICE_UNAVAILABLE`, 504 for
  `TIMEOUT`); with `application/json` a 200, as legacy clients expect. Field errors
  are a 200 with `data` either way.
- A request that is not a well-formed GraphQL-over-HTTP request gets a 4xx whatever
  the media type, with a GraphQL-shaped JSON body and a code (`Refusal`): bad JSON or
  parameters 400 `BAD_REQUEST`, a POST not in `application/json` 415
  `UNSUPPORTED_MEDIA_TYPE`, a mutation over GET 405 `METHOD_NOT_ALLOWED` with `Allow`.

Persisted queries (`liventix.persisted_queries`) are resolved before execution: a
request may name its document by hash in `extensions.persistedQuery`, over POST or GET
(a GET with `extensions` and no `query` is such a request, not the playground). Their
refusals are `Refusal`s too, with the statuses Apollo's link expects.

Caching (`with_cache_control`, around `liventix.response_cache`): a full answer to an
anonymous GET query may be kept by a CDN for PERSISTED_QUERY_MAX_AGE seconds; anything
signed in is `private, no-store`, everything else `no-store`. Every answer varies on
`Accept` and `Authorization` (and `Origin`, from the CORS middleware).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

import orjson
from cross_web import AsyncHTTPRequestAdapter, HTTPException
from graphql import GraphQLError, GraphQLSyntaxError, parse
from starlette.datastructures import Headers, MutableHeaders
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL
from strawberry.exceptions import MissingQueryError
from strawberry.http import GraphQLHTTPResponse, GraphQLRequestData
from strawberry.http.parse_content_type import parse_content_type
from strawberry.schema.exceptions import CannotGetOperationTypeError, InvalidOperationTypeError
from strawberry.types import ExecutionResult
from strawberry.types.graphql import OperationType

from liventix import graphiql
from liventix.auth import ANONYMOUS, Viewer
from liventix.metrics import GRAPHQL_ERRORS, GRAPHQL_OPERATIONS
from liventix.persisted_queries import PersistedQueries, PersistedQueryError
from liventix.request_log import note_error_codes, note_operation, operations
from resolvers.context import Context, Services
from resolvers.loaders import Loaders
from schema.errors import client_code, mask_errors


def request_id(request: Request | WebSocket) -> str:
    """The request's id (set by the middleware; made here if it did not run), kept in
    the scope so the context, the logs and a masked error all show the same one."""
    state = request.scope.setdefault("state", {})
    if not state.get("request_id"):
        state["request_id"] = uuid.uuid4().hex
    value: str = state["request_id"]
    return value


GRAPHQL_RESPONSE_JSON = "application/graphql-response+json"
JSON = "application/json"
_MEDIA_TYPE_KEY = "graphql_media_type"  # the negotiated media type, in scope state
_ANSWERED_KEY = "graphql_answered"  # in scope state: a result with data and no errors
# Every answer depends on these request headers (and `Origin`, which CORS adds).
VARY = "Accept, Authorization"
# Request errors that are the server's failure, not the request's (else 400).
_SERVER_FAILURES = {"INTERNAL_SERVER_ERROR": 500, "SERVICE_UNAVAILABLE": 503, "TIMEOUT": 504}
_CODES_BY_STATUS = {
    400: "BAD_REQUEST",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    406: "NOT_ACCEPTABLE",
    415: "UNSUPPORTED_MEDIA_TYPE",
}


def negotiate(accept: str | None) -> str | None:
    """The response media type for an `Accept` header, or None if it accepts neither.

    The highest `q` wins, then the more specific range, then the earlier one. A wildcard
    (`*/*`, `application/*`) gets `application/json`, which every client (curl, `fetch`
    without headers) can read; no header at all gets `application/graphql-response+json`
    (the specification's default since its 2025 watershed).
    """
    if accept is None or not accept.strip():
        return GRAPHQL_RESPONSE_JSON
    best: tuple[float, int, int] | None = None
    chosen: str | None = None
    for index, item in enumerate(accept.split(",")):
        media_range, *parameters = (part.strip() for part in item.split(";"))
        quality = 1.0
        for parameter in parameters:
            name, _, value = parameter.partition("=")
            if name.strip().lower() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        media_range = media_range.lower()
        if media_range in (GRAPHQL_RESPONSE_JSON, JSON):
            candidate, specificity = media_range, 1
        elif media_range in ("*/*", "application/*"):
            candidate, specificity = JSON, 0
        else:
            continue
        rank = (quality, specificity, -index)
        if quality > 0 and (best is None or rank > best):
            best, chosen = rank, candidate
    return chosen


class Refusal(Exception):
    """A request this endpoint will not run: answered with `status`, a GraphQL-shaped
    JSON body (no `data`) whose error carries `code`, and `headers`."""

    def __init__(
        self, status: int, message: str, code: str, headers: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.headers = dict(headers or {})

    @classmethod
    def from_persisted_query_error(cls, error: PersistedQueryError) -> Refusal:
        return cls(error.status, error.message, str(error.code))

    @classmethod
    def from_http_exception(cls, error: HTTPException) -> Refusal:
        """One of Strawberry's (plain-text) refusals, as ours."""
        headers = {"Allow": "GET, POST"} if error.status_code == 405 else None
        code = _CODES_BY_STATUS.get(error.status_code, "BAD_REQUEST")
        return cls(error.status_code, error.reason, code, headers)

    def response(self, media_type: str | None) -> Response:
        GRAPHQL_ERRORS.labels(self.code).inc()
        body = {"errors": [{"message": self.message, "extensions": {"code": self.code}}]}
        return JSONResponse(
            body,
            status_code=self.status,
            headers={**self.headers, "Vary": VARY},
            media_type=f"{media_type or JSON}; charset=utf-8",
        )


def _is_request_error(result: ExecutionResult) -> bool:
    """True when nothing was executed: the document did not parse or validate, the
    operation could not be chosen, or the variables could not be coerced. Errors of an
    execution have a path; these have none, and there is no data."""
    return result.data is None and all(e.path is None for e in result.errors or ())


def _request_error(error: GraphQLError) -> ExecutionResult:
    """A request error found here, before the schema saw the request: counted as the
    schema counts its own (an operation of unknown type that never ran, and its error)."""
    GRAPHQL_OPERATIONS.labels("other", "unknown", "request_error").inc()
    GRAPHQL_ERRORS.labels(client_code(error)).inc()
    return ExecutionResult(data=None, errors=[error])


def _syntax_error(query: str) -> GraphQLError:
    try:
        parse(query)
    except GraphQLSyntaxError as error:
        return error
    raise ValueError(f"{query!r} parses")


def _operation_count(query: str) -> int:
    """How many operations a document defines (0 if it does not parse: Strawberry then
    reports the syntax error itself). Cached, with the request log's view of them."""
    return len(operations(query))


class GraphQLView(GraphQL[Context, None]):
    def __init__(
        self,
        services: Services,
        schema: Any,
        persisted_queries: PersistedQueries | None = None,
    ) -> None:
        settings = services.settings
        super().__init__(
            schema,
            graphql_ide="graphiql" if settings.graphiql else None,
            subscription_protocols=(),  # WebSockets are routed to `liventix.ws`
        )
        self.services = services
        self.persisted_queries = persisted_queries or PersistedQueries.from_settings(
            settings, services.db
        )

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
        if result.data is not None and not errors:
            request.scope.setdefault("state", {})[_ANSWERED_KEY] = True
        if errors:
            masked = mask_errors(errors, request_id(request))
            response["errors"] = [e.formatted for e in masked]
            note_error_codes(request.scope, (str((e.extensions or {}).get("code")) for e in masked))
            if _is_request_error(result):
                # The GraphQL spec: an error raised before execution began, no `data`.
                del response["data"]
        return response

    async def get_sub_response(self, request: Request | WebSocket) -> Response:
        sub_response = await super().get_sub_response(request)
        sub_response.media_type = request.scope.get("state", {}).get(_MEDIA_TYPE_KEY) or JSON
        return sub_response

    def create_response(
        self,
        response_data: GraphQLHTTPResponse | list[GraphQLHTTPResponse],
        sub_response: Response,
    ) -> Response:
        """The result in the negotiated media type, with the status it calls for."""
        media_type = sub_response.media_type or JSON
        status = 200
        request_error = isinstance(response_data, dict) and "data" not in response_data
        if media_type == GRAPHQL_RESPONSE_JSON and request_error:
            errors: Any = response_data.get("errors") or ()  # type: ignore[union-attr]
            codes = [str((e.get("extensions") or {}).get("code")) for e in errors]
            status = max([_SERVER_FAILURES.get(code, 400) for code in codes], default=400)
        response = Response(
            self.encode_json(response_data),
            status_code=status,
            media_type=f"{media_type}; charset=utf-8",
            headers={"Vary": VARY},
        )
        response.headers.raw.extend(sub_response.headers.raw)
        response.background = sub_response.background
        return response

    async def parse_http_body(
        self, request: AsyncHTTPRequestAdapter
    ) -> GraphQLRequestData | list[GraphQLRequestData]:
        """A well-formed GraphQL-over-HTTP request, or a `Refusal` saying what is wrong.

        GET takes its parameters from the query string; POST only as `application/json`
        in UTF-8 (which also means a browser must ask CORS before posting from another
        origin: no "simple request" can reach a mutation)."""
        if request.method == "GET":
            data: Any = self.parse_query_params(request.query_params)
            for name in ("operationName", "variables", "extensions"):
                if data.get(name) == "":
                    data[name] = None  # the same as leaving it out
        else:
            media_type, parameters = parse_content_type(request.content_type or "")
            charset = parameters.get("charset", "utf-8").lower()
            if media_type != JSON or charset not in ("utf-8", "utf8"):
                raise Refusal(
                    415,
                    "Send the request as Content-Type: application/json (UTF-8)",
                    "UNSUPPORTED_MEDIA_TYPE",
                    {"Accept-Post": "application/json"},
                )
            data = self.parse_json(await request.get_body())
        if not isinstance(data, dict):
            raise Refusal(400, "The request body must be a JSON object", "BAD_REQUEST")
        query, variables = data.get("query"), data.get("variables")
        operation_name, extensions = data.get("operationName"), data.get("extensions")
        # A missing query is refused when executed (MissingQueryError), after the
        # extensions had their chance to supply one (persisted queries).
        for name, value, kind in (
            ("query", query, str),
            ("variables", variables, dict),
            ("extensions", extensions, dict),
            ("operationName", operation_name, str),
        ):
            if value is not None and not isinstance(value, kind):
                what = "an object" if kind is dict else "a string"
                raise Refusal(400, f"`{name}` must be {what} or null", "BAD_REQUEST")
        return GraphQLRequestData(
            query=query,
            variables=variables,
            operation_name=operation_name,
            extensions=extensions,
        )

    def parse_json(self, data: str | bytes) -> Any:
        try:
            return self.decode_json(data)
        except (ValueError, RecursionError):  # bad JSON, bad UTF-8, absurd nesting
            raise Refusal(400, "The request is not valid JSON", "BAD_REQUEST") from None

    async def execute_single(
        self,
        request: Request,
        request_adapter: AsyncHTTPRequestAdapter,
        sub_response: Response,
        context: Context,
        root_value: None,
        request_data: GraphQLRequestData,
    ) -> ExecutionResult:
        """Runs the operation: over GET a query only, over POST a query or a mutation
        (subscriptions are served over WebSocket). Strawberry's own version lets
        subscriptions through, for transports this API does not serve.

        The document may be named by hash (persisted queries); one a client sent with
        its hash to be stored is stored once it has run, so only documents that parse
        and pass validation and the operation limits are ever stored."""
        try:
            resolved = await self.persisted_queries.resolve(
                request_data.query, request_data.extensions
            )
        except PersistedQueryError as error:
            raise Refusal.from_persisted_query_error(error) from None
        if resolved.query:
            note_operation(request.scope, resolved.query, request_data.operation_name)
        context.registered_operation = resolved.registered_name  # its metrics label
        result = await self._execute(
            request_adapter, context, root_value, request_data, resolved.query
        )
        if (
            resolved.store_as is not None
            and resolved.query is not None
            and not _is_request_error(result)
        ):
            await self.persisted_queries.remember(resolved.store_as, resolved.query)
        return result

    async def _execute(
        self,
        request_adapter: AsyncHTTPRequestAdapter,
        context: Context,
        root_value: None,
        request_data: GraphQLRequestData,
        query: str | None,
    ) -> ExecutionResult:
        allowed = {OperationType.QUERY}
        if request_adapter.method == "POST":
            allowed.add(OperationType.MUTATION)
        if query == "":
            # Strawberry reads "" as no query at all; it is a document that does not parse.
            return _request_error(_syntax_error(query))
        if request_data.operation_name is None and query and _operation_count(query) > 1:
            # Strawberry would run the first; GetOperation() requires a name here.
            failure = GraphQLError(
                "Several operations and no operationName: name the one to run",
                extensions={"code": "OPERATION_RESOLUTION_FAILURE"},
            )
            return _request_error(failure)
        try:
            return await self.schema.execute(
                query,
                root_value=root_value,
                variable_values=request_data.variables,
                context_value=context,
                operation_name=request_data.operation_name,
                allowed_operation_types=allowed,
                operation_extensions=request_data.extensions,
            )
        except CannotGetOperationTypeError as error:
            # A GraphQL request error (GetOperation() failed), not a malformed request.
            failure = GraphQLError(
                error.as_http_error_reason(),
                extensions={"code": "OPERATION_RESOLUTION_FAILURE"},
            )
            return _request_error(failure)
        except InvalidOperationTypeError as error:
            if error.operation_type is OperationType.MUTATION:
                message = "Mutations are only accepted over POST"
                raise Refusal(405, message, "METHOD_NOT_ALLOWED", {"Allow": "POST"}) from None
            raise Refusal(
                400, "Subscriptions are served over WebSocket (graphql-transport-ws)", "BAD_REQUEST"
            ) from None
        except MissingQueryError:
            raise Refusal(400, "The request needs a `query` string", "BAD_REQUEST") from None

    def should_render_graphql_ide(self, request: Any) -> bool:
        """GraphiQL for a browser's GET without `query`, unless it names a persisted
        query (`extensions`): that is an API request, e.g. Apollo's hash-only GET."""
        return super().should_render_graphql_ide(request) and not _names_a_document(
            request.query_params
        )

    async def render_graphql_ide(self, request: Request) -> Response:
        return HTMLResponse(graphiql.page(self.services.settings.graphiql_assets_dir))

    def encode_json(self, data: object) -> bytes:
        return orjson.dumps(data)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await super().__call__(scope, receive, send)
            return
        # Verified by `AuthenticationMiddleware`; the view only meets the user.
        viewer: Viewer = scope.get("state", {}).get("viewer", ANONYMOUS)
        await self.services.first_sight.see_quietly(viewer)
        request = Request(scope, receive)
        media_type = negotiate(request.headers.get("accept"))
        scope.setdefault("state", {})[_MEDIA_TYPE_KEY] = media_type
        response: Response
        try:
            # A GET without a document is for the playground (HTML), not negotiated here.
            playground = request.method == "GET" and not _names_a_document(request.query_params)
            if media_type is None and not playground:
                raise Refusal(
                    406,
                    f"Accept {GRAPHQL_RESPONSE_JSON} or {JSON}",
                    "NOT_ACCEPTABLE",
                )
            response = await self.run(request)
        except HTTPException as error:
            response = Refusal.from_http_exception(error).response(media_type)
        except Refusal as refusal:
            response = refusal.response(media_type)
        await response(scope, receive, send)


def _names_a_document(query_params: Mapping[str, str]) -> bool:
    """Whether a GET's parameters carry a GraphQL document: its text, or `extensions`
    (a persisted query's hash)."""
    return "query" in query_params or bool(query_params.get("extensions"))


def with_cache_control(app: ASGIApp, *, max_age: int) -> ASGIApp:
    """`app` (the view, behind the response cache) with `Cache-Control` on every
    answer, so that a CDN keeps only what is the same for everyone:

    - ``private, no-store`` for any request with `Authorization`;
    - ``public, max-age=<max_age>`` for an anonymous GET query answered in full (200,
      `data` and no `errors`): persisted queries by hash are short GET URLs, so a CDN
      can answer popular reads (``no-store`` when `max_age` is 0);
    - ``no-store`` for everything else: errors and refusals (a PersistedQueryNotFound
      kept by a CDN would hide the document once registered), POSTs, the playground.

    Outside the feed cache because it replays only a few headers of a stored page.
    `Vary` is the view's (`Accept, Authorization`), and the CORS middleware adds
    `Origin` to every answer of `/graphql`, with an `Origin` header or without.
    """

    async def with_headers(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        request_headers = Headers(scope=scope)

        async def send_with_cache_control(message: Message) -> None:
            if message["type"] == "http.response.start":
                # A copy: the feed cache sends the header list it keeps for the page.
                message = {**message, "headers": list(message.get("headers", ()))}
                headers = MutableHeaders(scope=message)
                headers["Cache-Control"] = _cache_control(
                    scope, request_headers, message["status"], max_age
                )
            await send(message)

        await app(scope, receive, send_with_cache_control)

    return with_headers


def _cache_control(scope: Scope, headers: Headers, status: int, max_age: int) -> str:
    if "authorization" in headers:
        return "private, no-store"
    answered = scope.get("state", {}).get(_ANSWERED_KEY, False)
    if scope["method"] == "GET" and status == 200 and answered and max_age > 0:
        return f"public, max-age={max_age}"
    return "no-store"
