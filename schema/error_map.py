"""Every expected failure a resolver raises, as the typed error its field returns.

The one place where errors become payloads. `ERROR_TYPES` says which schema error type
each domain error (`db.errors`) becomes; `typed_error` builds it. The schema installs
one `TypedErrors` handler per error type (Strawberry's exception handlers): a field
whose result union holds that type returns a matching exception as a value of it, and
a `resolvers.errors.ClientError` too (UNAUTHENTICATED, INVALID_INPUT, ...). Elsewhere
the exception propagates: a `ClientError` is then a GraphQL error with its code, and
anything else is unexpected (masked). So root fields neither catch nor check: they
wrap what the resolver returned.

A code the schema's enum lacks is a bug, never a default: `typed_error` raises
`LookupError` (masked and logged), and tests/test_error_codes.py walks every code of
every domain through this module.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import aclosing
from enum import Enum
from typing import Any, TypeVar, cast

import db.errors
from resolvers.errors import ClientError
from schema.errors import Failure, domain_code, graphql_field
from schema.feed import FeedError, FeedErrorCode
from schema.notifications import NotificationError, NotificationErrorCode
from schema.orders import OrderError, OrderErrorCode
from schema.ticketing import TicketingError, TicketingErrorCode
from schema.users import ProfileError, ProfileErrorCode

TypedError = TicketingError | OrderError | FeedError | NotificationError | ProfileError
ErrorType = type[TypedError]

ERROR_TYPES: dict[type[db.errors.DomainError], ErrorType] = {
    db.errors.EventError: TicketingError,
    db.errors.TicketingError: TicketingError,
    db.errors.OrderError: OrderError,
    db.errors.FeedError: FeedError,
    db.errors.NotificationError: NotificationError,
    db.errors.ProfileError: ProfileError,
}
"""Each domain error class and the schema error type it becomes."""

CODES: dict[ErrorType, type[Enum]] = {
    TicketingError: TicketingErrorCode,
    OrderError: OrderErrorCode,
    FeedError: FeedErrorCode,
    NotificationError: NotificationErrorCode,
    ProfileError: ProfileErrorCode,
}
"""Each schema error type and its code enum."""

DETAILS: dict[ErrorType, tuple[str, ...]] = {
    TicketingError: ("available", "minimum"),
    OrderError: ("checked_in_at", "refundable_cents"),
    FeedError: (),
    NotificationError: (),
    ProfileError: (),
}
"""The details of a failure (`DomainError.details`) each error type shows."""


def typed_error(error_type: ErrorType, error: Failure) -> TypedError:
    """`error` as a value of `error_type`: its code (`LookupError` if the type's enum
    lacks it), message, field in GraphQL names, and the details the type shows."""
    values: dict[str, Any] = {
        "code": domain_code(CODES[error_type], error),
        "message": error.message,
        "field": graphql_field(error.field),
        **{name: error.details.get(name) for name in DETAILS[error_type]},
    }
    return error_type(**values)


class TypedErrors:
    """Strawberry's exception handler for the fields whose result union holds
    `error_type`: the domain errors `ERROR_TYPES` maps to it, and client errors."""

    def __init__(self, error_type: ErrorType) -> None:
        self.error_type = error_type
        domain = tuple(d for d, t in ERROR_TYPES.items() if t is error_type)
        self.exception_type: tuple[type[Exception], ...] = (*domain, ClientError)

    def handle(self, exception: Failure, *, field: Any, info: Any) -> TypedError:
        return typed_error(self.error_type, exception)


T = TypeVar("T")
E = TypeVar("E", TicketingError, OrderError, FeedError, NotificationError, ProfileError)


async def typed_stream(
    error_type: type[E], stream: AsyncGenerator[T, None]
) -> AsyncIterator[T | E]:
    """`stream`'s items, then, if it raises an error `TypedErrors(error_type)` handles,
    that error as a value of `error_type`, its last item.

    Strawberry applies exception handlers to queries and mutations, not to
    subscriptions; a subscription whose result union holds a typed error wraps its
    resolver's stream in this, so a refusal looks the same as the console queries'."""
    handled = TypedErrors(error_type).exception_type
    async with aclosing(stream):
        try:
            async for item in stream:
                yield item
        except handled as exc:
            error = typed_error(error_type, cast(Failure, exc))  # (what `handled` holds)
            assert isinstance(error, error_type)
            yield error


def exception_handlers() -> list[TypedErrors]:
    """One handler per schema error type, for `strawberry.Schema(exception_handlers=)`."""
    return [TypedErrors(error_type) for error_type in CODES]
