"""What a resolver raises when the request cannot be served.

Resolvers return records; they never build GraphQL errors or payloads. A request that
cannot be served raises one of two kinds of exception, and `schema/` alone decides how
the client sees it (`schema.error_map`)::

    Exception
     ├── db.errors.DomainError   a business rule refused the operation (SOLD_OUT,
     │    ├── EventError         HOLD_EXPIRED, VIDEO_TOO_LONG, ...): raised by `db/` or
     │    ├── TicketingError     `liventix.payments`, or by a resolver for what it checks
     │    ├── OrderError         itself (an id that names nothing: TIER_NOT_FOUND)
     │    └── FeedError
     └── ClientError             the request itself is wrong: not signed in, not
                                 allowed, malformed input (UNAUTHENTICATED,
                                 BAD_USER_INPUT, ...)

A field whose result is a union with a typed error (a mutation's ``...Result``) returns
either kind as that typed error, with the same code. Any other field shows a
`ClientError` as a GraphQL error with its code in ``extensions.code``, never masked.
Both kinds carry their input `field` as Python names it (``hold_ids``); the schema
shows it as the client sent it (``holdIds``).
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any


class ClientCode(StrEnum):
    """The codes of `ClientError`: those of GraphQL errors (the first four) and those
    of the typed errors that refuse a request before any business rule ran."""

    UNAUTHENTICATED = "UNAUTHENTICATED"
    FORBIDDEN = "FORBIDDEN"
    BAD_USER_INPUT = "BAD_USER_INPUT"
    NOT_FOUND = "NOT_FOUND"
    EVENT_NOT_FOUND = "EVENT_NOT_FOUND"
    NOT_ALLOWED = "NOT_ALLOWED"
    INVALID_INPUT = "INVALID_INPUT"


class ClientError(Exception):
    """An error the client caused (bad auth, bad input shape): shown, never masked."""

    def __init__(self, message: str, code: ClientCode, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.field = field
        self.details: dict[str, Any] = {}

    @property
    def extensions(self) -> dict[str, Any]:
        """What graphql-core copies into the GraphQL error it wraps this in."""
        return {"code": str(self.code)}
