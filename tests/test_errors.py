"""The error policy: client errors are typed and logged at INFO, unexpected ones masked.

Bad variable values (overflow, missing, wrong type, non-finite floats, out-of-range
dates) and text PostgreSQL cannot store (NUL, unpaired surrogates) are the client's
fault: a clear message naming the variable or argument, code BAD_USER_INPUT, nothing
written, nothing logged at ERROR. The same over HTTP and over WebSocket.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from databases import Database
from graphql import GraphQLID, GraphQLInt, GraphQLString, get_named_type

import db.events
from db.core import connection
from liventix.auth import Role
from liventix.clock import FrozenClock
from schema import build_schema
from tests.orders_support import World, hold, world
from tests.support import GraphQLClient

__all__ = ["world"]  # the fixture, imported for the tests below

LOGGER = "liventix.graphql"

RESERVE = 'mutation($q: Int!) { reserveTickets(tierId: "x", quantity: $q) { __typename } }'
DURATION = """mutation($f: Float) {
  createPost(eventId: "x", media: [{url: "https://m.example/v.mp4", kind: VIDEO,
             width: 1, height: 1, durationSeconds: $f}]) { __typename }
}"""
PAGE = "query Page { events(first: 1) { edges { cursor } } }"
START_AT = """mutation($d: DateTime!) {
  createEvent(input: {title: "Gala", startAt: $d}) { __typename }
}"""


async def post_raw(client: GraphQLClient, body: str, token: str | None = None) -> httpx.Response:
    """POST a JSON body as written (NaN, Infinity and lone surrogates survive)."""
    headers = {"content-type": "application/json"}
    if token:
        headers["authorization"] = f"Bearer {token}"
    return await client.http.post("/graphql", content=body.encode(), headers=headers)


def only_error(response: httpx.Response) -> dict[str, Any]:
    payload: dict[str, Any] = response.json()
    assert response.status_code == 200, payload
    assert payload.get("data") is None, payload
    assert len(payload["errors"]) == 1, payload
    error: dict[str, Any] = payload["errors"][0]
    return error


def assert_nothing_logged_at_error(caplog: pytest.LogCaptureFixture) -> None:
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert not errors, [r.getMessage() for r in errors]


# -- 2. bad variable values are the client's fault ---------------------------------------

BAD_VARIABLES: dict[str, tuple[str, str]] = {
    # name: (query, raw JSON of the variables)
    "Int overflow": (RESERVE, '{"q": 2147483648}'),
    "missing required variable": (RESERVE, "{}"),
    "Int given 1.5": (RESERVE, '{"q": 1.5}'),
    'Int given "2"': (RESERVE, '{"q": "2"}'),
    "null for non-null": (RESERVE, '{"q": null}'),
    "Float NaN": (DURATION, '{"f": NaN}'),
    "Float Infinity": (DURATION, '{"f": Infinity}'),
    "Float -Infinity": (DURATION, '{"f": -Infinity}'),
    "Float 1e309": (DURATION, '{"f": 1e309}'),
    "DateTime in year 99999": (START_AT, '{"d": "99999-01-01T00:00:00Z"}'),
}


@pytest.mark.parametrize("case", BAD_VARIABLES)
async def test_bad_variable_values_are_bad_user_input_not_internal_errors(
    client: GraphQLClient,
    token: Callable[..., str],
    caplog: pytest.LogCaptureFixture,
    case: str,
) -> None:
    query, variables = BAD_VARIABLES[case]
    body = '{"query": ' + json.dumps(query) + ', "variables": ' + variables + "}"
    with caplog.at_level(logging.INFO):
        response = await post_raw(client, body, token(Role.ORGANIZER))
    error = only_error(response)
    assert error["extensions"] == {"code": "BAD_USER_INPUT"}, error
    variable = query.split("(", 1)[1].split(":", 1)[0]  # "$q", "$f", "$d"
    assert variable in error["message"], error
    assert "Unexpected error" not in error["message"]
    assert_nothing_logged_at_error(caplog)


# -- 3. text PostgreSQL cannot store is refused, in every string input -----------------

TABLES = (
    "users.profiles",
    "events.events",
    "ticketing.ticket_tiers",
    "ticketing.ticket_holds",
    "ticketing.orders",
    "ticketing.tickets",
    "ticketing.ticket_tokens",
)


async def snapshot(database: Database) -> dict[str, str | None]:
    """A digest of every row the tested mutations could write."""
    digests: dict[str, str | None] = {}
    async with connection(database) as conn:
        for table in TABLES:
            digests[table] = await conn.fetchval(
                f"SELECT md5(string_agg(t::text, ',' ORDER BY t::text)) FROM {table} t"
            )
    return digests


NUL_CASES: dict[str, tuple[str, str, str, dict[str, Any]]] = {
    # field: (who, literal query, query with variables, variables); <hold>, <event> and
    # <tier> stand for the world's ids.
    "displayName": (
        "buyer",
        'mutation { updateDisplayName(displayName: "Eve\\u0000") { id } }',
        "mutation($displayName: String!) { updateDisplayName(displayName: $displayName) { id } }",
        {"displayName": "Eve\x00"},
    ),
    "contact.email": (
        "buyer",
        'mutation { checkout(holdIds: ["<hold>"],'
        ' contact: {email: "eve\\u0000@example.com", name: "Eve"}) { __typename } }',
        "mutation($holds: [ID!]!, $contact: ContactInput!)"
        " { checkout(holdIds: $holds, contact: $contact) { __typename } }",
        {"holds": ["<hold>"], "contact": {"email": "eve\x00@example.com", "name": "Eve"}},
    ),
    "contact.name": (
        "buyer",
        'mutation { checkout(holdIds: ["<hold>"],'
        ' contact: {email: "eve@example.com", name: "Eve\\u0000"}) { __typename } }',
        "mutation($holds: [ID!]!, $contact: ContactInput!)"
        " { checkout(holdIds: $holds, contact: $contact) { __typename } }",
        {"holds": ["<hold>"], "contact": {"email": "eve@example.com", "name": "Eve\x00"}},
    ),
    "input.name": (
        "organizer",
        'mutation { createTier(input: {eventId: "<event>", name: "VIP\\u0000", priceCents: 100,'
        " quantity: 5}) { __typename } }",
        "mutation($input: CreateTierInput!) { createTier(input: $input) { __typename } }",
        {"input": {"eventId": "<event>", "name": "VIP\x00", "priceCents": 100, "quantity": 5}},
    ),
    "input.title": (
        "organizer",
        'mutation { createEvent(input: {title: "Gala\\u0000",'
        ' startAt: "2099-03-01T20:00:00Z"}) { __typename } }',
        "mutation($input: CreateEventInput!) { createEvent(input: $input) { __typename } }",
        {"input": {"title": "Gala\x00", "startAt": "2099-03-01T20:00:00Z"}},
    ),
    "update input.title": (
        "organizer",
        'mutation { updateEvent(id: "<event>", input: {title: "Gala\\u0000"}) { __typename } }',
        "mutation($id: ID!, $input: UpdateEventInput!)"
        " { updateEvent(id: $id, input: $input) { __typename } }",
        {"id": "<event>", "input": {"title": "Gala\x00"}},
    ),
    "token": (
        "organizer",
        'mutation { checkIn(token: "abc\\u0000") { __typename } }',
        "mutation($token: String!) { checkIn(token: $token) { __typename } }",
        {"token": "abc\x00"},
    ),
    "tierId": (
        "buyer",
        'mutation { reserveTickets(tierId: "<tier>\\u0000", quantity: 1) { __typename } }',
        "mutation($tierId: ID!) { reserveTickets(tierId: $tierId, quantity: 1) { __typename } }",
        {"tierId": "<tier>\x00"},
    ),
}


def fill(text: str, world: World, hold_id: uuid.UUID) -> str:
    ids = {"<hold>": hold_id, "<event>": world.event_id, "<tier>": world.tier_id}
    for placeholder, value in ids.items():
        text = text.replace(placeholder, str(value))
    return text


@pytest.mark.parametrize("form", ["literal", "variables"])
@pytest.mark.parametrize("field", NUL_CASES)
async def test_nul_in_any_string_input_is_refused_and_nothing_is_written(
    client: GraphQLClient,
    database: Database,
    clock: FrozenClock,
    world: World,
    caplog: pytest.LogCaptureFixture,
    field: str,
    form: str,
) -> None:
    hold_id = await hold(database, clock, world.buyer, world.tier_id, 1)
    who, literal, query, variables = NUL_CASES[field]
    token = world.buyer_token if who == "buyer" else world.organizer_token
    literal = fill(literal, world, hold_id)
    variables = json.loads(fill(json.dumps(variables), world, hold_id))
    await client("{ viewer { id } }", token=token)  # first sight touches the profile
    before = await snapshot(database)
    with caplog.at_level(logging.INFO):
        if form == "literal":
            response = await client.post(literal, token=token)
        else:
            response = await client.post(query, variables, token=token)
    error = only_error(response)
    assert error["extensions"] == {"code": "BAD_USER_INPUT"}, error
    named = field.removeprefix("update ")
    if form == "variables":
        named = "$" + named
    assert f"'{named}'" in error["message"], error
    assert "NUL" in error["message"], error
    assert await snapshot(database) == before
    assert_nothing_logged_at_error(caplog)


async def test_an_unpaired_surrogate_in_a_variable_is_refused(
    client: GraphQLClient,
    database: Database,
    token: Callable[..., str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """JSON can escape half a surrogate pair; UTF-8 (and so PostgreSQL) cannot hold it."""
    user_id = uuid.uuid4()
    signed_in = token(Role.USER, user_id)
    await client("{ viewer { id } }", token=signed_in)  # first sight touches the profile
    before = await snapshot(database)
    body = (
        '{"query": "mutation($n: String!) { updateDisplayName(displayName: $n) { id } }",'
        ' "variables": {"n": "Eve\\ud800"}}'
    )
    with caplog.at_level(logging.INFO):
        response = await post_raw(client, body, signed_in)
    error = only_error(response)
    assert error["extensions"] == {"code": "BAD_USER_INPUT"}, error
    assert "'$n'" in error["message"] and "surrogate" in error["message"], error
    assert await snapshot(database) == before
    assert_nothing_logged_at_error(caplog)


async def test_ordinary_text_still_goes_through(
    client: GraphQLClient, token: Callable[..., str]
) -> None:
    """The guard refuses only what PostgreSQL cannot store: accents, emoji, tabs pass."""
    name = "Zoë \U0001f3b7\tTab"
    data = await client(
        "mutation($n: String!) { updateDisplayName(displayName: $n) { displayName } }",
        {"n": name},
        token=token(Role.USER),
    )
    assert data["updateDisplayName"]["displayName"] == name


def test_the_sdl_keeps_the_built_in_scalars() -> None:
    # Read from the built schema, not the printed SDL: described arguments print one per
    # line, so the SDL's layout is no stable thing to match.
    schema = build_schema()
    mutation = schema._schema.mutation_type
    assert mutation is not None
    update, reserve = mutation.fields["updateDisplayName"], mutation.fields["reserveTickets"]
    assert get_named_type(update.args["displayName"].type) is GraphQLString
    assert get_named_type(reserve.args["tierId"].type) is GraphQLID
    assert get_named_type(reserve.args["quantity"].type) is GraphQLInt
    sdl = str(schema)
    assert "scalar String" not in sdl and "scalar ID" not in sdl


# -- 12. client errors are logged at INFO, unexpected ones at ERROR, once ----------------

CLIENT_ERRORS: dict[str, tuple[str, str]] = {
    # name: (query, code)
    "sign in first": ("query Mine { myOrders { edges { node { id } } } }", "UNAUTHENTICATED"),
    "validation": ("query Typo { viewer { nope } }", "GRAPHQL_VALIDATION_FAILED"),
    "bad first": ("query Page { events(first: 0) { edges { cursor } } }", "BAD_USER_INPUT"),
}


@pytest.mark.parametrize("case", CLIENT_ERRORS)
async def test_client_errors_are_one_info_line_not_error(
    client: GraphQLClient, caplog: pytest.LogCaptureFixture, case: str
) -> None:
    query, code = CLIENT_ERRORS[case]
    with caplog.at_level(logging.INFO):
        response = await client.post(query)
    error = response.json()["errors"][0]
    assert error["extensions"]["code"] == code
    request_id = response.headers["x-request-id"]
    assert_nothing_logged_at_error(caplog)
    info = [r for r in caplog.records if r.name == LOGGER and r.levelno == logging.INFO]
    assert len(info) == 1, [r.getMessage() for r in info]
    line = info[0].getMessage()
    operation = query.split()[1]
    assert request_id in line and operation in line and code in line, line
    assert info[0].exc_info is None


async def test_an_unexpected_error_is_logged_once_at_error_with_its_traceback(
    client: GraphQLClient,
    token: Callable[..., str],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("connection string postgres://secret@db")

    monkeypatch.setattr(db.events, "list_published", broken)
    with caplog.at_level(logging.INFO):
        response = await client.post(PAGE, token=token(Role.USER))
    error = response.json()["errors"][0]
    request_id = response.headers["x-request-id"]
    assert error["message"] == "Unexpected error"
    assert error["extensions"] == {"code": "INTERNAL_SERVER_ERROR", "requestId": request_id}
    assert "secret" not in response.text
    logged = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(logged) == 1, [r.getMessage() for r in logged]
    assert request_id in logged[0].getMessage() and "Page" in logged[0].getMessage()
    assert logged[0].exc_info is not None and logged[0].exc_info[0] is RuntimeError


# -- the WebSocket path behaves the same ----------------------------------------------


async def first_error(client: Any, query: str, variables: dict[str, Any]) -> dict[str, Any]:
    op = await client.subscribe(query, variables)
    message: dict[str, Any] = await client.receive()
    assert message["type"] == "error" and message["id"] == op, message
    assert len(message["payload"]) == 1, message
    error: dict[str, Any] = message["payload"][0]
    return error


async def test_bad_variables_over_websocket_are_bad_user_input(
    ws: Callable[..., Any], token: Callable[..., str], caplog: pytest.LogCaptureFixture
) -> None:
    client = await ws(token=token(Role.USER))
    with caplog.at_level(logging.INFO):
        overflow = await first_error(
            client,
            "subscription($n: Int!) { clock(intervalSeconds: $n, count: 1) }",
            {"n": 2147483648},
        )
        nul = await first_error(
            client,
            "subscription($e: ID!) { tierAvailability(eventId: $e) { eventId } }",
            {"e": "x\x00"},
        )
        literal = await first_error(
            client,
            'mutation { updateDisplayName(displayName: "Eve\\u0000") { id } }',
            {},
        )
    assert overflow["extensions"] == {"code": "BAD_USER_INPUT"} and "$n" in overflow["message"]
    assert nul["extensions"] == {"code": "BAD_USER_INPUT"} and "'$e'" in nul["message"]
    assert literal["extensions"] == {"code": "BAD_USER_INPUT"}
    assert "'displayName'" in literal["message"]
    assert_nothing_logged_at_error(caplog)


async def test_unexpected_errors_over_websocket_are_masked_and_logged_once(
    ws: Callable[..., Any],
    token: Callable[..., str],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("connection string postgres://secret@db")

    monkeypatch.setattr(db.events, "list_published", broken)
    client = await ws(token=token(Role.USER))
    with caplog.at_level(logging.INFO):
        op = await client.subscribe(PAGE)
        payload = await client.next_payload(op)
    error = payload["errors"][0]
    assert error["message"] == "Unexpected error"
    assert error["extensions"]["code"] == "INTERNAL_SERVER_ERROR"
    assert "secret" not in json.dumps(payload)
    logged = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(logged) == 1, [r.getMessage() for r in logged]
    assert error["extensions"]["requestId"] in logged[0].getMessage()
    assert logged[0].exc_info is not None
