"""One log line per HTTP request, written when its response has gone out.

The line (logger ``liventix.access``) carries ``request_id`` (the one the response's
`X-Request-Id` header gives the client), ``method``, ``path`` (never the query string:
an unsubscribe link's token and a GET's variables are there), ``status``,
``duration_ms``, ``viewer_id`` (the verified user's id, never the token), ``outcome``
(``ok``, ``client_error`` or ``server_error``, from the status and the GraphQL error
codes), and for GraphQL ``operation`` and ``operation_type``, which the endpoint notes in
the request's scope state (`note_operation`, `note_error_codes`) as it learns them.
Probes (`/healthz`, `/readyz`, `/metrics`) are logged at DEBUG: they come every few
seconds and say nothing about users.

`RequestLogMiddleware` is also the last stop of an exception nothing else caught: it
logs the stack trace with the request id and answers a GraphQL-shaped 500 carrying that
id, inside the request id middleware, so that this 500 has its `X-Request-Id` too.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from graphql import GraphQLError, OperationDefinitionNode, parse
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from liventix.auth import Viewer

log = logging.getLogger("liventix.access")

QUIET_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})
SERVER_ERROR_CODES = frozenset({"INTERNAL_SERVER_ERROR", "TIMEOUT"})
_OPERATION_KEY = "log_operation"  # in scope state: the `Operation` being run
_ERROR_CODES_KEY = "log_error_codes"  # in scope state: the response's GraphQL error codes
_MAX_PATH = 200


@dataclass(frozen=True, slots=True)
class Operation:
    """A GraphQL operation of a document: its name (None if anonymous) and type."""

    name: str | None
    type: str  # query, mutation or subscription


@lru_cache(maxsize=1024)
def operations(query: str) -> tuple[Operation, ...]:
    """The operations `query` defines, in order; none if it does not parse (the schema
    reports the syntax error). Cached: clients send the same few documents."""
    try:
        document = parse(query, no_location=True)
    except GraphQLError:
        return ()
    return tuple(
        Operation(d.name.value if d.name else None, d.operation.value)
        for d in document.definitions
        if isinstance(d, OperationDefinitionNode)
    )


def operation_of(query: str, operation_name: str | None) -> Operation | None:
    """The operation a request with this document and `operationName` runs, as GraphQL
    chooses it; None when it names none (GraphQL then refuses the request)."""
    defined = operations(query)
    if operation_name is None:
        return defined[0] if len(defined) == 1 else None
    return next((o for o in defined if o.name == operation_name), None)


def note_operation(scope: Scope, query: str, operation_name: str | None) -> None:
    """Record the operation a request runs, for its log line."""
    operation = operation_of(query, operation_name)
    if operation is not None:
        scope.setdefault("state", {})[_OPERATION_KEY] = operation


def note_error_codes(scope: Scope, codes: Iterable[str]) -> None:
    """Record the codes of the GraphQL errors a response carries, for its outcome."""
    scope.setdefault("state", {})[_ERROR_CODES_KEY] = tuple(codes)


def outcome(status: int | None, error_codes: Iterable[str] = ()) -> str:
    """``server_error`` (5xx, or a masked internal error or timeout in a 200),
    ``client_error`` (4xx, or GraphQL errors the client caused), else ``ok``."""
    codes = set(error_codes)
    if status is None or status >= 500 or codes & SERVER_ERROR_CODES:
        return "server_error"
    if status >= 400 or codes:
        return "client_error"
    return "ok"


def _internal_error(request_id: str | None) -> JSONResponse:
    error = {
        "message": "Unexpected error",
        "extensions": {"code": "INTERNAL_SERVER_ERROR", "requestId": request_id},
    }
    return JSONResponse({"errors": [error]}, status_code=500)


class RequestLogMiddleware:
    """Logs one line per HTTP request (see the module docstring). WebSockets log each
    operation's end instead (`liventix.ws`)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status: int | None = None
        failed = False

        async def send_noting_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_noting_status)
        except Exception:
            failed = True
            state = scope.get("state", {})
            log.error(
                "unhandled error in %s %s (request %s)",
                scope["method"],
                scope["path"][:_MAX_PATH],
                state.get("request_id"),
                exc_info=True,
                extra={"request_id": state.get("request_id")},
            )
            if status is None:  # else the client has a broken response: nothing to add
                await _internal_error(state.get("request_id"))(scope, receive, send_noting_status)
        finally:
            _log_request(scope, status, time.perf_counter() - started, failed)


def _log_request(scope: Scope, status: int | None, seconds: float, failed: bool) -> None:
    path: str = scope["path"][:_MAX_PATH]
    level = logging.DEBUG if path in QUIET_PATHS else logging.INFO
    if not log.isEnabledFor(level):
        return
    state: dict[str, Any] = scope.get("state", {})
    viewer = state.get("viewer")
    operation = state.get(_OPERATION_KEY)
    codes: tuple[str, ...] = state.get(_ERROR_CODES_KEY, ())
    fields: dict[str, Any] = {
        "request_id": state.get("request_id"),
        "method": scope["method"],
        "path": path,
        "status": status,
        "duration_ms": round(seconds * 1000, 2),
        "viewer_id": str(viewer.user_id)
        if isinstance(viewer, Viewer) and viewer.user_id is not None
        else None,
        "outcome": "server_error" if failed else outcome(status, codes),
    }
    if isinstance(operation, Operation):
        fields["operation"] = operation.name
        fields["operation_type"] = operation.type
    if codes:
        fields["error_codes"] = list(codes)
    log.log(level, "%s %s %s", scope["method"], path, status, extra=fields)
