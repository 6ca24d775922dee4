"""GraphQL over HTTP as the GraphQL-over-HTTP specification asks of a server, one rule
per test, through the real app (`liventix.graphql_view`).

https://graphql.github.io/graphql-over-http/draft/ — "the spec" below.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.responses import Response

from liventix.graphql_view import _CODES_BY_STATUS, _SERVER_FAILURES, GraphQLView, negotiate
from resolvers.errors import ClientCode
from tests.support import GraphQLClient, only_code

GRAPHQL_RESPONSE = "application/graphql-response+json"
MODERN = {"Accept": GRAPHQL_RESPONSE}
LEGACY = {"Accept": "application/json"}
QUERY = "query Page { events(first: 1) { edges { cursor } } }"
MUTATION = (
    'mutation { createEvent(input: {title: "Gala", startAt: "2030-01-01T00:00:00Z"}) '
    "{ __typename } }"
)
OK_DATA = {"events": {"edges": []}}
FIELD_ERROR = "{ events(first: -1) { edges { cursor } } }"  # refused by the resolver


async def post(
    client: GraphQLClient, body: Any, headers: dict[str, str] | None = None
) -> httpx.Response:
    return await client.http.post("/graphql", json=body, headers=headers or {})


async def post_raw(
    client: GraphQLClient, content: bytes, headers: dict[str, str]
) -> httpx.Response:
    return await client.http.post("/graphql", content=content, headers=headers)


def media_type(response: httpx.Response) -> str:
    return response.headers["content-type"].split(";")[0].strip()


# -- Accept: negotiation ------------------------------------------------------------------


async def test_graphql_response_json_is_served_when_accepted(client: GraphQLClient) -> None:
    """A server MUST support requests accepting application/graphql-response+json (and
    answer in it, indicating the encoding)."""
    response = await post(client, {"query": QUERY}, MODERN)
    assert response.status_code == 200
    assert response.headers["content-type"] == f"{GRAPHQL_RESPONSE}; charset=utf-8"
    assert response.json() == {"data": OK_DATA}


async def test_application_json_is_served_when_accepted(client: GraphQLClient) -> None:
    """A server MUST support requests accepting application/json (legacy clients)."""
    response = await post(client, {"query": QUERY}, LEGACY)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json; charset=utf-8"
    assert response.json() == {"data": OK_DATA}


async def test_the_highest_priority_supported_type_is_used(client: GraphQLClient) -> None:
    """The server MUST encode the response in the highest priority media type listed
    that it supports: `q` values are respected, unsupported types skipped."""
    apollo = {"Accept": f"{GRAPHQL_RESPONSE},application/json;q=0.9"}
    assert media_type(await post(client, {"query": QUERY}, apollo)) == GRAPHQL_RESPONSE
    prefers_json = {"Accept": f"text/xml, application/json, {GRAPHQL_RESPONSE};q=0.5"}
    assert media_type(await post(client, {"query": QUERY}, prefers_json)) == "application/json"
    assert negotiate("*/*") == "application/json"  # curl, fetch() without headers
    assert negotiate(f"*/*;q=0.8, {GRAPHQL_RESPONSE}") == GRAPHQL_RESPONSE
    assert negotiate(f"{GRAPHQL_RESPONSE};q=0, application/*") == "application/json"


async def test_a_missing_accept_header_means_graphql_response_json(
    client: GraphQLClient,
) -> None:
    """Since the 2025 watershed, no Accept SHOULD be treated as accepting
    application/graphql-response+json."""
    request = client.http.build_request("POST", "/graphql", json={"query": "{"})
    del request.headers["accept"]
    response = await client.http.send(request)
    assert media_type(response) == GRAPHQL_RESPONSE
    assert response.status_code == 400


async def test_an_unacceptable_accept_header_gets_406(client: GraphQLClient) -> None:
    """No supported media type accepted: 406 Not Acceptable (RECOMMENDED), unprocessed."""
    response = await post(client, {"query": MUTATION}, {"Accept": "text/xml"})
    assert response.status_code == 406
    assert only_code(response) == "NOT_ACCEPTABLE"


# -- request errors: 400 and no data with graphql-response+json, 200 with json ----------

REQUEST_ERRORS = {
    # name: (body, code)
    "document parsing failure": ({"query": "{"}, "GRAPHQL_PARSE_FAILED"),
    "document validation failure": (
        {"query": "{ noSuchField }"},
        "GRAPHQL_VALIDATION_FAILED",
    ),
    "variable coercion failure": (
        {
            "query": 'mutation($q: Int!) { reserveTickets(tierId: "x", quantity: $q) '
            "{ __typename } }",
            "variables": {"q": None},
        },
        "BAD_USER_INPUT",
    ),
    "operation cannot be determined": (
        {"query": QUERY, "operationName": "Missing"},
        "OPERATION_RESOLUTION_FAILURE",
    ),
    "several operations and no operationName": (
        {"query": "query A { __typename } query B { __typename }"},
        "OPERATION_RESOLUTION_FAILURE",
    ),
    "an empty document": ({"query": ""}, "GRAPHQL_PARSE_FAILED"),
    "a document of whitespace": ({"query": "  \n "}, "GRAPHQL_PARSE_FAILED"),
}


@pytest.mark.parametrize("name", REQUEST_ERRORS)
async def test_request_errors_are_400_without_data_in_graphql_response_json(
    client: GraphQLClient, name: str
) -> None:
    """With application/graphql-response+json, a request error SHOULD be a 400, and a
    response without `data` MUST be 4xx/5xx; the GraphQL spec omits `data` when an
    error was raised before execution began."""
    body, code = REQUEST_ERRORS[name]
    response = await post(client, body, MODERN)
    assert response.status_code == 400, response.text
    assert media_type(response) == GRAPHQL_RESPONSE
    assert only_code(response) == code


@pytest.mark.parametrize("name", REQUEST_ERRORS)
async def test_request_errors_are_200_in_application_json(client: GraphQLClient, name: str) -> None:
    """With application/json the server SHOULD use 200 for every response to a
    well-formed request, request errors included (older clients read only 200s)."""
    body, code = REQUEST_ERRORS[name]
    response = await post(client, body, LEGACY)
    assert response.status_code == 200, response.text
    assert media_type(response) == "application/json"
    assert only_code(response) == code


async def test_field_errors_are_200_with_data(client: GraphQLClient) -> None:
    """Executed with field errors (a partial response): 200 and `data`, either type."""
    for headers in (MODERN, LEGACY):
        response = await post(client, {"query": FIELD_ERROR}, headers)
        assert response.status_code == 200, response.text
        payload = response.json()
        assert "data" in payload, payload
        assert payload["errors"], payload


def test_request_errors_the_server_caused_are_5xx() -> None:
    """A response without `data` MUST be 4xx or 5xx "as appropriate": a masked internal
    failure or a timeout before anything ran is the server's doing, not the client's."""
    view = GraphQLView.__new__(GraphQLView)  # only its response building is used
    sub_response = Response()
    del sub_response.headers["content-length"]
    sub_response.media_type = GRAPHQL_RESPONSE
    for code, status in [("INTERNAL_SERVER_ERROR", 500), ("TIMEOUT", 504), ("X", 400)]:
        body: Any = {"errors": [{"message": "m", "extensions": {"code": code}}]}
        assert view.create_response(body, sub_response).status_code == status
        sub_response.media_type = "application/json"
        assert view.create_response(body, sub_response).status_code == 200
        sub_response.media_type = GRAPHQL_RESPONSE


# -- GET ---------------------------------------------------------------------------------


async def test_get_runs_queries(client: GraphQLClient) -> None:
    """GET carries the parameters in the query string, variables JSON-encoded; an empty
    operationName is the same as none."""
    params = {
        "query": "query Page($n: Int) { events(first: $n) { edges { cursor } } }",
        "variables": '{"n": 1}',
        "operationName": "",
    }
    response = await client.http.get("/graphql", params=params, headers=MODERN)
    assert response.status_code == 200, response.text
    assert response.json() == {"data": OK_DATA}


async def test_get_refuses_mutations_with_405_and_allow(client: GraphQLClient) -> None:
    """A mutation over GET MUST get 405 Method Not Allowed and not be executed; HTTP
    requires the Allow header with a 405."""
    for headers in (MODERN, LEGACY):
        response = await client.http.get("/graphql", params={"query": MUTATION}, headers=headers)
        assert response.status_code == 405
        assert response.headers["allow"] == "POST"
        assert only_code(response) == "METHOD_NOT_ALLOWED"
    events = await post(client, {"query": QUERY}, LEGACY)
    assert events.json() == {"data": OK_DATA}  # nothing was created


async def test_subscriptions_over_http_are_refused(client: GraphQLClient) -> None:
    """Subscriptions are served over WebSocket only: over HTTP a coded 400, not run."""
    subscription = "subscription { clock(intervalSeconds: 1, count: 1) }"
    for response in (
        await post(client, {"query": subscription}, LEGACY),
        await client.http.get("/graphql", params={"query": subscription}, headers=MODERN),
    ):
        assert response.status_code == 400, response.text
        assert only_code(response) == "BAD_REQUEST"


async def test_other_methods_get_405_with_allow(client: GraphQLClient) -> None:
    response = await client.http.put("/graphql", json={"query": QUERY})
    assert response.status_code == 405
    assert response.headers["allow"] == "GET, POST"
    assert only_code(response) == "METHOD_NOT_ALLOWED"


# -- requests that are not well-formed: 4xx whatever the media type, JSON with a code ---

MALFORMED = {
    # name: (content, content type, status, code)
    "invalid JSON": (b'{"query":', "application/json", 400, "BAD_REQUEST"),
    "not UTF-8": (b'{"query": "\xff"}', "application/json", 400, "BAD_REQUEST"),
    "not an object": (b'"{ events { edges { cursor } } }"', "application/json", 400, "BAD_REQUEST"),
    "missing query": (b'{"qeury": "{ __typename }"}', "application/json", 400, "BAD_REQUEST"),
    "query not a string": (b'{"query": {"a": 1}}', "application/json", 400, "BAD_REQUEST"),
    "variables not a map": (
        b'{"query": "{ __typename }", "variables": [7]}',
        "application/json",
        400,
        "BAD_REQUEST",
    ),
    "variables an empty list": (
        b'{"query": "{ __typename }", "variables": []}',
        "application/json",
        400,
        "BAD_REQUEST",
    ),
    "operationName not a string": (
        b'{"query": "{ __typename }", "operationName": 1}',
        "application/json",
        400,
        "BAD_REQUEST",
    ),
    "extensions not a map": (
        b'{"query": "{ __typename }", "extensions": "x"}',
        "application/json",
        400,
        "BAD_REQUEST",
    ),
    "wrong content type": (b"query={__typename}", "text/plain", 415, "UNSUPPORTED_MEDIA_TYPE"),
    "form content type": (
        b"query=%7B__typename%7D",
        "application/x-www-form-urlencoded",
        415,
        "UNSUPPORTED_MEDIA_TYPE",
    ),
    "not UTF-8 charset": (
        b'{"query": "{ __typename }"}',
        "application/json; charset=latin-1",
        415,
        "UNSUPPORTED_MEDIA_TYPE",
    ),
}


@pytest.mark.parametrize("name", MALFORMED)
@pytest.mark.parametrize("accept", [GRAPHQL_RESPONSE, "application/json"])
async def test_malformed_requests_get_4xx_and_a_coded_json_body(
    client: GraphQLClient, name: str, accept: str
) -> None:
    """A request that is not a well-formed GraphQL-over-HTTP request SHOULD get a 4xx
    (400 for what cannot be interpreted; 415 for a body in a media type the server does
    not take), in either media type; ours is a GraphQL-shaped JSON body with a code."""
    content, content_type, status, code = MALFORMED[name]
    response = await post_raw(client, content, {"Content-Type": content_type, "Accept": accept})
    assert response.status_code == status, response.text
    assert media_type(response) == accept
    assert only_code(response) == code


async def test_a_post_without_content_type_gets_415(client: GraphQLClient) -> None:
    """No Content-Type on a POST: the server SHOULD reject it with a 4xx."""
    request = client.http.build_request("POST", "/graphql", content=b'{"query": "{ __typename }"}')
    assert "content-type" not in request.headers
    response = await client.http.send(request)
    assert response.status_code == 415
    assert only_code(response) == "UNSUPPORTED_MEDIA_TYPE"


async def test_utf8_is_assumed_and_accepted(client: GraphQLClient) -> None:
    """Without a charset UTF-8 MUST be assumed; an explicit utf-8 is accepted too."""
    body = '{"query": "query { events(first: 1) { edges { cursor } } } # é"}'.encode()
    for content_type in ("application/json", "application/json; charset=UTF-8"):
        response = await post_raw(client, body, {"Content-Type": content_type, **MODERN})
        assert response.status_code == 200, response.text


# -- the README's error codes ------------------------------------------------------------

ROOT = Path(__file__).resolve().parent.parent
# Where a GraphQL error's code is written: `"code": "X"`, `code="X"`, a code constant
# of the schema's extensions, and the codes `schema.errors` gives errors by kind.
CODE_SOURCES = [
    (r'"code":\s*"([A-Z][A-Z_]+)"', ["liventix", "schema"]),
    (r'code="([A-Z][A-Z_]+)"', ["liventix/auth.py", "liventix/middleware.py"]),
    (r'^[A-Z_]+ = "([A-Z][A-Z_]+)"$', ["schema"]),
    (r'return "([A-Z][A-Z_]+)"', ["schema/errors.py"]),
]


def codes_in_the_code() -> set[str]:
    codes = {str(code) for code in ClientCode}
    codes |= set(_CODES_BY_STATUS.values()) | set(_SERVER_FAILURES)
    for pattern, places in CODE_SOURCES:
        for place in places:
            paths = [ROOT / place] if place.endswith(".py") else (ROOT / place).rglob("*.py")
            for path in paths:
                codes |= set(re.findall(pattern, path.read_text(), flags=re.MULTILINE))
    return codes


def test_the_readme_lists_every_error_code_a_client_can_get() -> None:
    readme = (ROOT / "README.md").read_text()
    table = readme.split("### Error codes", 1)[1].split("\n## ", 1)[0]
    documented = {
        code
        for row in re.findall(r"^\| ([^|]+) \|", table, flags=re.MULTILINE)
        for code in re.findall(r"`([A-Z][A-Z_]+)`", row)
    }
    assert codes_in_the_code() <= documented, codes_in_the_code() - documented
