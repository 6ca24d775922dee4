"""Domain error codes reach clients as themselves, with GraphQL field names.

Every code of every domain enum in `db.errors` must exist in the schema's error code
enum its errors are mapped to, so none can fall through to a guess; a code outside
the domain's enum is refused when the error is made, and one the schema lacks is an
unexpected error (masked), not a wrong answer. Fields travel in snake_case inside
`db/` and come out camelCase, as clients named them.
"""

from __future__ import annotations

from enum import Enum, StrEnum

import pytest

from db.errors import DOMAIN_ERRORS, DomainError, EventError, FeedError, OrderError, TicketingError
from schema.errors import domain_code, graphql_field
from schema.feed import FeedErrorCode
from schema.orders import OrderErrorCode
from schema.ticketing import TicketingErrorCode

# Each domain error class and the schema enum its resolvers map it to.
SCHEMA_CODES: dict[type[DomainError], type[Enum]] = {
    EventError: TicketingErrorCode,
    TicketingError: TicketingErrorCode,
    OrderError: OrderErrorCode,
    FeedError: FeedErrorCode,
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
