"""Domain error codes reach clients as themselves, with GraphQL field names.

Every code of every domain enum in `db.errors` must exist in the schema's error code
enum its errors are mapped to, so none can fall through to a guess; a code outside
the domain's enum is refused when the error is made, and one the schema lacks is an
unexpected error (masked), not a wrong answer. Fields travel in snake_case inside
`db/` and come out camelCase, as clients named them. The mapping is one registry
(`schema.error_map`), installed as the schema's exception handlers: every domain error
class, and every code of each, goes through it here.
"""

from __future__ import annotations

import functools
from datetime import UTC, datetime
from enum import Enum, StrEnum

import pytest
from graphql import GraphQLError, GraphQLObjectType

import schema.feed as schema_feed
import schema.orders as schema_orders
import schema.ticketing as schema_ticketing
from db.errors import (
    DOMAIN_ERRORS,
    DomainError,
    EventError,
    FeedError,
    NotificationError,
    OrderError,
    ProfileError,
    TicketingError,
)
from resolvers.errors import ClientCode, ClientError
from schema import build_schema
from schema.error_map import CODES, ERROR_TYPES, ErrorType, TypedErrors, typed_error
from schema.errors import domain_code, graphql_field, is_unexpected, mask_errors
from schema.feed import FeedErrorCode
from schema.notifications import NotificationErrorCode
from schema.orders import OrderErrorCode
from schema.ticketing import TicketingErrorCode
from schema.users import ProfileErrorCode

# Each domain error class and the schema enum its resolvers map it to.
SCHEMA_CODES: dict[type[DomainError], type[Enum]] = {
    EventError: TicketingErrorCode,
    TicketingError: TicketingErrorCode,
    OrderError: OrderErrorCode,
    FeedError: FeedErrorCode,
    NotificationError: NotificationErrorCode,
    ProfileError: ProfileErrorCode,
}


def test_every_domain_has_a_schema_code_enum() -> None:
    assert set(SCHEMA_CODES) == set(DOMAIN_ERRORS)


@pytest.mark.parametrize("error_type", DOMAIN_ERRORS, ids=lambda t: t.__name__)
def test_every_domain_code_is_a_schema_code(error_type: type[DomainError]) -> None:
    schema_codes = SCHEMA_CODES[error_type]
    for code in error_type.codes:
        error = error_type("message", code=code, field="max_per_order")
        assert domain_code(schema_codes, error).value == code.value


def test_a_code_outside_the_domain_is_refused_when_raised() -> None:
    with pytest.raises(ValueError):
        TicketingError("nope", code="VIDEO_TOO_LONG")


def test_a_code_the_schema_lacks_is_an_error_not_a_default() -> None:
    class Codes(StrEnum):
        NOT_IN_THE_SCHEMA = "NOT_IN_THE_SCHEMA"

    class Stray(DomainError):
        codes = Codes

    with pytest.raises(LookupError):
        domain_code(TicketingErrorCode, Stray("stray", code=Codes.NOT_IN_THE_SCHEMA))


@pytest.mark.parametrize(
    ("field", "expected"),
    [
        (None, None),
        ("text", "text"),
        ("max_per_order", "maxPerOrder"),
        ("hold_ids", "holdIds"),
        ("sales_end_at", "salesEndAt"),
        ("media[2].duration_seconds", "media[2].durationSeconds"),
        ("media[0].url", "media[0].url"),
    ],
)
def test_fields_come_out_in_graphql_names(field: str | None, expected: str | None) -> None:
    assert graphql_field(field) == expected


# -- the one mapping: `schema.error_map` ---------------------------------------------


def test_the_registry_maps_every_domain_to_its_schema_code_enum() -> None:
    assert set(ERROR_TYPES) == set(DOMAIN_ERRORS)
    for error_type, payload in ERROR_TYPES.items():
        assert CODES[payload] is SCHEMA_CODES[error_type], error_type.__name__


@functools.cache
def installed_handlers() -> list[TypedErrors]:
    return [h for h in build_schema().exception_handlers if isinstance(h, TypedErrors)]


def handler_for(error: Exception) -> TypedErrors:
    """The one handler of the built schema that takes `error` (there must be one)."""
    taking = [h for h in installed_handlers() if isinstance(error, h.exception_type)]
    assert len(taking) == 1, (error, taking)
    return taking[0]


@pytest.mark.parametrize("error_type", DOMAIN_ERRORS, ids=lambda t: t.__name__)
def test_every_domain_code_becomes_its_typed_error(error_type: type[DomainError]) -> None:
    """Through the schema's installed handler: the registered type, the same code, the
    field in GraphQL names; nothing falls through to a default."""
    for code in error_type.codes:
        error = error_type("message", code=code, field="max_per_order")
        handler = handler_for(error)
        typed = handler.handle(error, field=None, info=None)
        assert type(typed) is ERROR_TYPES[error_type] is handler.error_type
        assert typed.code.value == code.value
        assert (typed.message, typed.field) == ("message", "maxPerOrder")


def test_details_travel_with_the_typed_error() -> None:
    at = datetime(2030, 1, 1, tzinfo=UTC)
    sold_out = typed_error(
        schema_ticketing.TicketingError, TicketingError("gone", code="SOLD_OUT", available=2)
    )
    below = typed_error(
        schema_ticketing.TicketingError,
        TicketingError("no", code="CAPACITY_BELOW_SOLD", field="quantity", minimum=7),
    )
    again = typed_error(
        schema_orders.OrderError,
        OrderError("twice", code="ALREADY_CHECKED_IN", field="token", checked_in_at=at),
    )
    assert isinstance(sold_out, schema_ticketing.TicketingError) and sold_out.available == 2
    assert isinstance(below, schema_ticketing.TicketingError) and below.minimum == 7
    assert isinstance(again, schema_orders.OrderError) and again.checked_in_at == at


@pytest.mark.parametrize(
    ("payload", "code"),
    [
        (schema_ticketing.TicketingError, ClientCode.UNAUTHENTICATED),
        (schema_ticketing.TicketingError, ClientCode.NOT_ALLOWED),
        (schema_orders.OrderError, ClientCode.UNAUTHENTICATED),
        (schema_orders.OrderError, ClientCode.INVALID_INPUT),
        (schema_feed.FeedError, ClientCode.UNAUTHENTICATED),
    ],
)
def test_client_errors_in_a_typed_field_become_its_typed_error(
    payload: ErrorType, code: ClientCode
) -> None:
    """The refusals resolvers raise before any business rule, in every field kind that
    raises them."""
    error = ClientError("Sign in first", code, "hold_ids")
    typed = typed_error(payload, error)
    assert type(typed) is payload
    assert typed.code.value == code.value
    assert (typed.message, typed.field) == ("Sign in first", "holdIds")


def test_a_client_code_the_typed_error_lacks_is_an_error_not_a_default() -> None:
    error = ClientError("bad", ClientCode.BAD_USER_INPUT)
    with pytest.raises(LookupError):
        typed_error(schema_feed.FeedError, error)


def test_every_typed_error_of_the_schema_has_a_handler() -> None:
    """A new feature error type in a result union must be registered, or its field
    would show domain errors as unexpected."""
    schema = build_schema()
    implementing = {
        t.name
        for t in schema._schema.type_map.values()
        if isinstance(t, GraphQLObjectType) and any(i.name == "UserError" for i in t.interfaces)
    }
    handled = {
        h.error_type.__name__ for h in schema.exception_handlers if isinstance(h, TypedErrors)
    }
    assert (
        implementing
        == handled
        == {
            "TicketingError",
            "OrderError",
            "FeedError",
            "NotificationError",
            "ProfileError",
        }
    )


def test_a_client_error_elsewhere_is_shown_with_its_code_never_masked() -> None:
    wrapped = GraphQLError(
        "ignored", original_error=ClientError("Admins only", ClientCode.FORBIDDEN)
    )
    located = GraphQLError(
        str(wrapped.original_error), path=["eventHealth"], original_error=wrapped.original_error
    )
    assert not is_unexpected(located)
    assert located.formatted["extensions"] == {"code": "FORBIDDEN"}
    assert mask_errors([located], "r1")[0].message == "Admins only"
