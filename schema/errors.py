"""Typed errors shared by every feature, and the error policy of every transport.

Expected failures are values: each feature's error type implements `UserError`, with a
machine-readable `code` enum of its own and the input `field` it concerns. What a
resolver raises becomes one in `schema.error_map` (the one place that maps them),
through `domain_code` (its code, which must exist in the schema's enum) and
`graphql_field` (its field, named as the client sent it).

Every other error is sorted by one rule, `is_unexpected`:

- **Client errors** are shown as they are, always with a code, and logged as one INFO
  line: a `resolvers.errors.ClientError` a resolver raised (it carries its code), or an
  error about the request itself, found before any field ran: a syntax error
  (``GRAPHQL_PARSE_FAILED``), a validation error (``GRAPHQL_VALIDATION_FAILED``), a
  variable value graphql-core or a scalar refused (``BAD_USER_INPUT``: an Int out of
  range, a missing variable, NaN, a date out of range, text PostgreSQL cannot store).
- **Busy errors**: no database connection came free within the pool's acquire timeout
  (`db.core.PoolTimeout`): the server is overloaded, not broken. The client sees code
  ``SERVICE_UNAVAILABLE`` and that it may try again; one WARNING line per result is
  logged (the pool's metrics and alerts say whether it lasts), never a stack trace.
- **Unexpected errors** (a resolver or the machinery raised) are logged once at ERROR
  with their stack trace and request id; the client sees only "Unexpected error", code
  ``INTERNAL_SERVER_ERROR`` and that request id.

The schema logs (`log_errors`, from `schema.LiventixSchema.process_errors`, which
Strawberry calls once per result on every transport); the transports mask
(`mask_errors`): HTTP in `liventix.graphql_view`, WebSocket in
`liventix.subscriptions.multiplex`.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from enum import Enum
from typing import TypeVar

import strawberry
from graphql import GraphQLError, GraphQLSyntaxError

from db.core import PoolTimeout
from db.errors import DomainError
from resolvers.errors import ClientError

log = logging.getLogger("liventix.graphql")
CodeT = TypeVar("CodeT", bound=Enum)
Failure = DomainError | ClientError
"""What a resolver raises for a request it cannot serve (see `resolvers.errors`)."""
_SNAKE_PART = re.compile(r"_([a-z0-9])")


@strawberry.interface(description="An expected failure: switch on `code`, show `message`.")
class UserError:
    message: str = strawberry.field(
        description="What went wrong, in English, fit to show a person; may change wording."
    )
    field: str | None = strawberry.field(
        default=None, description="The input field the error concerns, if any."
    )


def graphql_field(field: str | None) -> str | None:
    """The GraphQL name of a domain error's field: `db/` names fields as Python and SQL
    do (``max_per_order``, ``media[2].duration_seconds``), the API as clients send them
    (``maxPerOrder``, ``media[2].durationSeconds``)."""
    if field is None:
        return None
    return _SNAKE_PART.sub(lambda part: part.group(1).upper(), field)


def domain_code(codes: type[CodeT], error: Failure) -> CodeT:
    """The member of the schema's code enum `codes` for a domain or client error's code.

    A code the enum lacks is a bug (tests/test_error_codes.py checks every domain code
    has one): raised as a `LookupError`, so it is masked and logged as unexpected
    instead of reaching the client as a wrong code.
    """
    try:
        return codes(str(error.code))
    except ValueError:
        raise LookupError(
            f"{type(error).__name__} code {str(error.code)!r} is not in {codes.__name__}"
        ) from None


SERVICE_UNAVAILABLE = "SERVICE_UNAVAILABLE"
BUSY_MESSAGE = "The server is busy; try again in a moment"


def is_busy(error: GraphQLError) -> bool:
    """True for an error that says the server is overloaded (see the module doc)."""
    return isinstance(error.original_error, PoolTimeout)


def is_unexpected(error: GraphQLError) -> bool:
    """True for an error the client must not see: something raised that no one meant
    for the client. Errors without an underlying exception are graphql-core's own
    (syntax, validation); a `ClientError` is deliberate (graphql-core copies its message
    and code into the error it wraps it in); and an error located in the document but at
    no response path is about the request itself: graphql-core wraps what a scalar
    raised when it refused a variable's value."""
    original = error.original_error
    if original is None or isinstance(original, ClientError | PoolTimeout):
        return False
    return not (error.path is None and error.nodes)


def client_code(error: GraphQLError) -> str:
    """The machine-readable code of a client error (its own, or one by its kind)."""
    code = (error.extensions or {}).get("code")
    if isinstance(code, str):
        return code
    if is_busy(error):
        return SERVICE_UNAVAILABLE
    if isinstance(error, GraphQLSyntaxError):
        return "GRAPHQL_PARSE_FAILED"
    if error.original_error is not None:
        return "BAD_USER_INPUT"  # a value refused while coercing a variable
    return "GRAPHQL_VALIDATION_FAILED"


def response_code(error: GraphQLError) -> str:
    """The code the client sees for `error` once masked (`mask_errors`)."""
    return "INTERNAL_SERVER_ERROR" if is_unexpected(error) else client_code(error)


def mask_errors(errors: Iterable[GraphQLError], request_id: str | None) -> list[GraphQLError]:
    """The errors as the client may see them: unexpected ones replaced by "Unexpected
    error" and the request id, client ones given a code if they have none. Logs
    nothing (see `log_errors`); masking twice changes nothing."""
    return [_masked(e, request_id) if is_unexpected(e) else _with_code(e) for e in errors]


def _masked(error: GraphQLError, request_id: str | None) -> GraphQLError:
    return GraphQLError(
        "Unexpected error",
        nodes=error.nodes,
        path=error.path,
        extensions={"code": "INTERNAL_SERVER_ERROR", "requestId": request_id},
    )


def _with_code(error: GraphQLError) -> GraphQLError:
    if isinstance((error.extensions or {}).get("code"), str):
        return error
    return GraphQLError(
        BUSY_MESSAGE if is_busy(error) else error.message,
        nodes=error.nodes,
        source=error.source,
        positions=error.positions,
        path=error.path,
        original_error=error.original_error,
        extensions={**(error.extensions or {}), "code": client_code(error)},
    )


def log_errors(
    errors: Iterable[GraphQLError], request_id: str | None, operation_name: str | None
) -> None:
    """Log one result's errors: each unexpected one at ERROR with its stack trace, the
    client ones together as one INFO line (they are the client's business, and a fuzzer
    must not flood the error log). Each line has the request id and the operation as
    fields too (``request_id``, ``operation``), for a log search; never the variables."""
    operation = operation_name or "an anonymous operation"
    fields = {"request_id": request_id, "operation": operation_name}
    codes: list[str] = []
    busy = 0
    for error in errors:
        if is_busy(error):
            busy += 1
            continue
        if not is_unexpected(error):
            codes.append(client_code(error))
            continue
        field_path = ".".join(str(p) for p in error.path or ()) or "-"
        log.error(
            "unexpected error in %s at %s (request %s)",
            operation,
            field_path,
            request_id,
            exc_info=error.original_error,
            extra={**fields, "field_path": field_path, "error_codes": ["INTERNAL_SERVER_ERROR"]},
        )
    if busy:
        log.warning(
            "server busy in %s (request %s): %d field(s) found no free database connection",
            operation,
            request_id,
            busy,
            extra={**fields, "error_codes": [SERVICE_UNAVAILABLE] * busy},
        )
    if codes:
        log.info(
            "client error in %s (request %s): %s",
            operation,
            request_id,
            ", ".join(codes),
            extra={**fields, "error_codes": codes},
        )
