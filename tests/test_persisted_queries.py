"""Persisted queries on `/graphql` over HTTP, through the real app: Apollo's automatic
persisted queries over POST and GET, the allow-list and `off` modes, Cache-Control for
CDNs, the shared PostgreSQL store with its per-process cache, and the CLI that fills the
allow-list from `.graphql` files (`liventix.persisted_queries`, `liventix.operation_files`).

Requests are shaped as Apollo Client's persisted-queries link sends them:
`extensions.persistedQuery = {"version": 1, "sha256Hash": ...}`, hash-only first, then
hash and query after a PersistedQueryNotFound.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import orjson
import pytest
from databases import Database
from starlette.applications import Starlette

import db.persisted_queries
from db.persisted_queries import Kind, Registration
from liventix.cli import main
from liventix.persisted_queries import (
    Code,
    Mode,
    PersistedQueries,
    PersistedQueryError,
    requested_hash,
)
from liventix.settings import Settings
from tests.conftest import ServerThread
from tests.feed_support import EVENT_FEED, Scene, count_statements, scene
from tests.support import WSClient, only_code

__all__ = ["scene"]  # the fixture, re-exported for pytest

ROOT = Path(__file__).resolve().parent.parent
GRAPHQL_RESPONSE = "application/graphql-response+json"
APOLLO_ACCEPT = f"{GRAPHQL_RESPONSE},application/json;q=0.9"  # what Apollo Client sends
MODERN = {"Accept": GRAPHQL_RESPONSE}
LEGACY = {"Accept": "application/json"}
QUERY = "query Page { events(first: 1) { edges { cursor } } }"
PAGE = {"events": {"edges": []}}  # its answer on an empty database
TYPENAME = "query Name { __typename }"  # runs without any SQL


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def persisted(text_or_hash: str, version: Any = 1) -> dict[str, Any]:
    """The `extensions` of Apollo's link for a document (or a bare hash)."""
    is_hash = re.fullmatch(r"[0-9a-f]{64}", text_or_hash) is not None
    digest = text_or_hash if is_hash else sha256(text_or_hash)
    return {"persistedQuery": {"version": version, "sha256Hash": digest}}


def not_found_body() -> dict[str, Any]:
    return {
        "errors": [
            {
                "message": "PersistedQueryNotFound",
                "extensions": {"code": "PERSISTED_QUERY_NOT_FOUND"},
            }
        ]
    }


async def post(
    http: httpx.AsyncClient,
    query: str | None = None,
    extensions: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
    **more: Any,
) -> httpx.Response:
    body: dict[str, Any] = {"variables": {}, **more}
    if query is not None:
        body["query"] = query
    if extensions is not None:
        body["extensions"] = extensions
    return await http.post(
        "/graphql", json=body, headers={"Accept": APOLLO_ACCEPT, **(headers or {})}
    )


async def get(
    http: httpx.AsyncClient,
    extensions: dict[str, Any] | None = None,
    query: str | None = None,
    headers: dict[str, str] | None = None,
    **params: str,
) -> httpx.Response:
    """A GET as Apollo's link sends a hashed query (`useGETForHashedQueries`)."""
    if extensions is not None:
        params["extensions"] = orjson.dumps(extensions).decode()
    if query is not None:
        params["query"] = query
    return await http.get(
        "/graphql", params=params, headers={"Accept": APOLLO_ACCEPT, **(headers or {})}
    )


@asynccontextmanager
async def running(
    make_app: Callable[..., Starlette], **overrides: Any
) -> AsyncIterator[httpx.AsyncClient]:
    """An app of its own (own caches, same database) and a client for it."""
    application = make_app(**overrides)
    async with application.router.lifespan_context(application):
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            yield http


@pytest.fixture
async def http(make_app: Callable[..., Starlette]) -> AsyncIterator[httpx.AsyncClient]:
    """The app in its default mode (automatic persisted queries)."""
    async with running(make_app) as client:
        yield client


async def stored(database: Database) -> dict[str, str]:
    """Hash -> kind of every stored document."""
    return {q.hash: q.kind.value for q in await db.persisted_queries.list_queries(database)}


# -- automatic persisted queries: Apollo's round trip ------------------------------------


@pytest.mark.parametrize("accept", [APOLLO_ACCEPT, GRAPHQL_RESPONSE, "application/json"])
async def test_the_round_trip_over_post(
    http: httpx.AsyncClient, database: Database, accept: str
) -> None:
    """Hash only: PersistedQueryNotFound, as a 200 whatever the media type (a 400 or 500
    would turn persisted queries off in Apollo Client before 3.7.16); then hash and
    query: run and stored; then the hash alone runs it."""
    headers = {"Accept": accept}
    first = await post(http, extensions=persisted(QUERY), headers=headers, operationName="Page")
    assert first.status_code == 200, first.text
    assert first.json() == not_found_body()
    assert first.headers["cache-control"] == "no-store"
    assert await stored(database) == {}

    retry = await post(http, QUERY, persisted(QUERY), headers=headers, operationName="Page")
    assert retry.status_code == 200, retry.text
    assert retry.json() == {"data": PAGE}
    assert await stored(database) == {sha256(QUERY): "automatic"}

    again = await post(http, extensions=persisted(QUERY), headers=headers, operationName="Page")
    assert again.status_code == 200, again.text
    assert again.json() == {"data": PAGE}


async def test_the_round_trip_over_get(http: httpx.AsyncClient) -> None:
    """Apollo's `useGETForHashedQueries`: a hash-only GET (no `query` at all), the
    registration over POST, then the GET answers, cacheable by a CDN."""
    params = {"operationName": "Page", "variables": "{}"}
    first = await get(http, persisted(QUERY), **params)
    assert first.status_code == 200, first.text
    assert first.headers["content-type"].startswith(GRAPHQL_RESPONSE)
    assert first.json() == not_found_body()
    assert first.headers["cache-control"] == "no-store"  # a CDN must not keep "not found"

    registered = await post(http, QUERY, persisted(QUERY), operationName="Page")
    assert registered.json() == {"data": PAGE}

    answered = await get(http, persisted(QUERY), **params)
    assert answered.status_code == 200, answered.text
    assert answered.json() == {"data": PAGE}
    assert answered.headers["cache-control"] == "public, max-age=10"


async def test_a_hashed_get_is_an_api_request_not_the_playground(http: httpx.AsyncClient) -> None:
    """A GET with `extensions` and no `query` from a client accepting anything (a
    browser's `*/*`) is answered as GraphQL, not with GraphiQL's page; one accepting
    nothing GraphQL is refused with 406 instead of getting the page."""
    browser = {"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"}
    answer = await get(http, persisted(QUERY), headers=browser)
    assert answer.headers["content-type"].startswith("application/json"), answer.text
    assert answer.json() == not_found_body()
    refused = await get(http, persisted(QUERY), headers={"Accept": "text/html"})
    assert refused.status_code == 406
    assert only_code(refused) == "NOT_ACCEPTABLE"
    page = await http.get("/graphql", headers=browser)  # no document: the playground
    assert page.headers["content-type"].startswith("text/html")


async def test_a_hash_that_is_not_the_querys_is_refused(
    http: httpx.AsyncClient, database: Database
) -> None:
    for headers in (MODERN, LEGACY):
        response = await post(http, QUERY, persisted(TYPENAME), headers=headers)
        assert response.status_code == 400, response.text
        assert only_code(response) == "PERSISTED_QUERY_HASH_MISMATCH"
    assert await stored(database) == {}
    # Neither the hash sent nor the query's own hash names anything now.
    for text in (TYPENAME, QUERY):
        assert (await post(http, extensions=persisted(text))).json() == not_found_body()


@pytest.mark.parametrize(
    ("persisted_query", "code"),
    [
        ({"version": 2, "sha256Hash": sha256(QUERY)}, "PERSISTED_QUERY_UNSUPPORTED_VERSION"),
        ({"version": True, "sha256Hash": sha256(QUERY)}, "PERSISTED_QUERY_UNSUPPORTED_VERSION"),
        ({"sha256Hash": sha256(QUERY)}, "PERSISTED_QUERY_UNSUPPORTED_VERSION"),
        ({"version": 1, "sha256Hash": "abc"}, "BAD_REQUEST"),
        ({"version": 1}, "BAD_REQUEST"),
        ("a string", "BAD_REQUEST"),
    ],
)
async def test_a_malformed_persisted_query_extension_is_a_400(
    http: httpx.AsyncClient, persisted_query: Any, code: str
) -> None:
    response = await post(http, QUERY, {"persistedQuery": persisted_query})
    assert response.status_code == 400, response.text
    assert only_code(response) == code


async def test_an_uppercase_hash_names_the_same_document(http: httpx.AsyncClient) -> None:
    await post(http, QUERY, persisted(QUERY))
    upper = {"persistedQuery": {"version": 1, "sha256Hash": sha256(QUERY).upper()}}
    assert (await post(http, extensions=upper)).json() == {"data": PAGE}


DEEP = "{ events(first: 1) { edges { node { tiers { name } } } } }"  # depth 4


@pytest.mark.parametrize(
    ("query", "code", "limits"),
    [
        ("{ noSuchField }", "GRAPHQL_VALIDATION_FAILED", {}),
        ("{ events(first: 1) { edges { cursor }", "GRAPHQL_PARSE_FAILED", {}),
        (DEEP, "GRAPHQL_VALIDATION_FAILED", {"max_query_depth": 3}),
        (DEEP, "QUERY_TOO_COSTLY", {"max_query_cost": 3}),
        (
            "{ " + " ".join(f"a{n}: __typename" for n in range(31)) + " }",
            "GRAPHQL_VALIDATION_FAILED",
            {},
        ),
        ("{ " + "__typename " * 2001 + "}", "GRAPHQL_PARSE_FAILED", {}),
    ],
    ids=[
        "invalid",
        "does not parse",
        "too deep",
        "too costly",
        "too many aliases",
        "too many tokens",
    ],
)
async def test_a_query_that_did_not_run_is_not_stored(
    make_app: Callable[..., Starlette],
    database: Database,
    query: str,
    code: str,
    limits: dict[str, Any],
) -> None:
    """Only what parsed, validated and passed the limits is stored, so clients cannot
    fill the table with junk: each of these is answered its request error and the
    hash stays unknown."""
    async with running(make_app, **limits) as http:
        response = await post(http, query, persisted(query), headers=MODERN)
        assert response.status_code == 400, response.text
        assert only_code(response) == code
        assert await stored(database) == {}
        assert (await post(http, extensions=persisted(query))).json() == not_found_body()


async def test_a_mutation_by_hash_runs_over_post_but_not_get(
    http: httpx.AsyncClient, database: Database
) -> None:
    mutation = 'mutation Nothing { deletePost(postId: "x") { __typename } }'
    registered = await post(http, mutation, persisted(mutation))
    assert registered.status_code == 200, registered.text
    assert "data" in registered.json(), registered.text
    assert sha256(mutation) in await stored(database)
    over_get = await get(http, persisted(mutation))
    assert over_get.status_code == 405
    assert over_get.headers["allow"] == "POST"
    assert only_code(over_get) == "METHOD_NOT_ALLOWED"


# -- one store for every process, an LRU cache in each ----------------------------------


async def test_a_stored_query_is_shared_by_every_app_on_the_database(
    make_app: Callable[..., Starlette],
) -> None:
    """Registered through one app; a second app, started afterwards with an empty cache,
    answers the hash from PostgreSQL, over GET as a CDN would ask it."""
    async with running(make_app) as first:
        assert (await post(first, extensions=persisted(QUERY))).json() == not_found_body()
        assert (await post(first, QUERY, persisted(QUERY))).json() == {"data": PAGE}
        async with running(make_app) as second:
            answered = await get(second, persisted(QUERY))
            assert answered.status_code == 200, answered.text
            assert answered.json() == {"data": PAGE}


async def test_known_hashes_are_answered_from_the_process_cache(
    http: httpx.AsyncClient,
    make_app: Callable[..., Starlette],
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """After a first lookup the hash costs no SQL; the row deleted behind its back, this
    process still answers from its cache while a new one, reading PostgreSQL, does not."""
    await post(http, TYPENAME, persisted(TYPENAME))
    assert (await post(http, extensions=persisted(TYPENAME))).json() == {
        "data": {"__typename": "Query"}
    }
    with count_statements(monkeypatch) as statements:
        again = await post(http, extensions=persisted(TYPENAME))
    assert again.json() == {"data": {"__typename": "Query"}}
    assert statements == []
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute("DELETE FROM api.persisted_queries")
    finally:
        await conn.close()
    assert (await post(http, extensions=persisted(TYPENAME))).json() == {
        "data": {"__typename": "Query"}
    }
    async with running(make_app) as cold:
        assert (await post(cold, extensions=persisted(TYPENAME))).json() == not_found_body()


async def test_the_process_cache_is_bounded_least_recently_used_first(database: Database) -> None:
    texts = [f"query Q{n} {{ __typename }}" for n in range(3)]
    await db.persisted_queries.register(database, [Registration(sha256(t), t, None) for t in texts])
    queries = PersistedQueries(database, mode=Mode.AUTOMATIC, cache_size=2, max_stored=10)
    for text in (texts[0], texts[1], texts[0], texts[2]):  # Q1 is now the least recent
        assert (await queries.lookup(sha256(text))) is not None
    await database.execute("DELETE FROM api.persisted_queries")
    assert (await queries.lookup(sha256(texts[0]))) is not None
    assert (await queries.lookup(sha256(texts[2]))) is not None
    assert (await queries.lookup(sha256(texts[1]))) is None


async def test_automatic_queries_are_bounded_in_the_database(
    make_app: Callable[..., Starlette], database: Database
) -> None:
    """Beyond PERSISTED_QUERY_MAX_STORED the oldest automatic documents are dropped
    (their clients register them again); registered ones never are."""
    kept = "query Registered { __typename }"
    await db.persisted_queries.register(database, [Registration(sha256(kept), kept, "Registered")])
    texts = [f"query A{n} {{ __typename }}" for n in range(3)]
    async with running(make_app, persisted_query_max_stored=2) as http:
        for text in texts:
            assert (await post(http, text, persisted(text))).status_code == 200
        assert (await post(http, extensions=persisted(texts[0]))).json() == not_found_body()
    assert await stored(database) == {
        sha256(kept): "registered",
        sha256(texts[1]): "automatic",
        sha256(texts[2]): "automatic",
    }


async def test_the_database_refuses_a_hash_that_is_not_its_querys(database_url: str) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        with pytest.raises(asyncpg.CheckViolationError):
            await conn.execute(
                """INSERT INTO api.persisted_queries (hash, query, kind)
                   VALUES ($1, $2, 'automatic')""",
                sha256(QUERY),
                TYPENAME,
            )
    finally:
        await conn.close()


# -- Cache-Control and Vary -------------------------------------------------------------


async def test_only_full_anonymous_get_answers_are_public(
    http: httpx.AsyncClient, token: Callable[..., str]
) -> None:
    await post(http, QUERY, persisted(QUERY))
    signed_in = {"Authorization": f"Bearer {token()}"}
    cases = {
        "anonymous GET": (await get(http, persisted(QUERY)), "public, max-age=10"),
        "anonymous GET of a query's text": (await get(http, query=QUERY), "public, max-age=10"),
        "signed-in GET": (
            await get(http, persisted(QUERY), headers=signed_in),
            "private, no-store",
        ),
        "signed-in POST": (await post(http, QUERY, headers=signed_in), "private, no-store"),
        "anonymous POST": (await post(http, extensions=persisted(QUERY)), "no-store"),
        "request error": (await get(http, query="{ noSuchField }"), "no-store"),
        "field error": (
            await get(http, query="{ events(first: -1) { edges { cursor } } }"),
            "no-store",
        ),
        "not found": (await get(http, persisted(TYPENAME)), "no-store"),
        "refusal": (
            await get(http, query='mutation { deletePost(postId: "x") { __typename } }'),
            "no-store",
        ),
    }
    for name, (response, expected) in cases.items():
        assert response.headers["cache-control"] == expected, (name, response.text)
        vary = [v.strip() for v in response.headers["vary"].split(",")]
        assert sorted(vary) == ["Accept", "Authorization", "Origin"], (name, vary)


async def test_vary_names_origin_once_with_cors(http: httpx.AsyncClient) -> None:
    """The CORS middleware adds `Origin` to every answer, with an `Origin` header or
    without, so a CDN never serves a page an answer stored without CORS headers."""
    origin = {"Origin": "http://localhost:5173"}
    response = await get(http, query=QUERY, headers=origin)
    assert response.headers["access-control-allow-origin"] == origin["Origin"]
    assert response.headers["vary"] == "Accept, Authorization, Origin"
    assert (await get(http, query=QUERY)).headers["vary"] == "Accept, Authorization, Origin"


@pytest.mark.parametrize(("max_age", "expected"), [(60, "public, max-age=60"), (0, "no-store")])
async def test_the_max_age_is_a_setting(
    make_app: Callable[..., Starlette], max_age: int, expected: str
) -> None:
    async with running(make_app, persisted_query_max_age=max_age) as http:
        assert (await get(http, query=QUERY)).headers["cache-control"] == expected


async def test_feed_pages_from_the_feed_cache_are_no_store_too(
    http: httpx.AsyncClient, scene: Scene, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The feed response cache answers anonymous POSTs from the headers it kept; the
    answer still says `no-store` (and varies as the view's did)."""
    variables = {"eventId": str(scene.event_id), "first": 5}
    first = await post(http, EVENT_FEED, variables=variables)
    assert first.status_code == 200 and "errors" not in first.json(), first.text
    with count_statements(monkeypatch) as statements:
        hit = await post(http, EVENT_FEED, variables=variables)
    assert statements == [], "expected an answer from the feed cache"
    for response in (first, hit):
        assert response.headers["cache-control"] == "no-store"
        assert response.headers["vary"] == "Accept, Authorization, Origin"


# -- allow-list mode -------------------------------------------------------------------


async def register(database: Database, *texts: str) -> None:
    await db.persisted_queries.register(database, [Registration(sha256(t), t, None) for t in texts])


async def test_allowlist_runs_registered_operations_by_hash_or_text(
    make_app: Callable[..., Starlette], database: Database
) -> None:
    await register(database, QUERY)
    async with running(make_app, persisted_queries="allowlist") as http:
        assert (await post(http, extensions=persisted(QUERY))).json() == {"data": PAGE}
        by_get = await get(http, persisted(QUERY))
        assert by_get.json() == {"data": PAGE}
        assert by_get.headers["cache-control"] == "public, max-age=10"
        assert (await post(http, QUERY)).json() == {"data": PAGE}  # its text, no hash
        assert (await post(http, QUERY, persisted(QUERY))).json() == {"data": PAGE}


async def test_allowlist_refuses_everything_else(
    make_app: Callable[..., Starlette], database: Database
) -> None:
    """Unregistered text or hash: 403 (not a 400 or 500, after which older Apollo
    Clients would stop sending hashes, for registered operations too); a client's
    registration is refused and stores nothing; an automatic row is not registered."""
    async with running(make_app) as automatic:
        await post(automatic, TYPENAME, persisted(TYPENAME))
    await register(database, QUERY)
    before = await stored(database)
    async with running(make_app, persisted_queries="allowlist") as http:
        refused = {
            "unregistered text": await post(http, "{ __typename }"),
            "unregistered hash": await post(http, extensions=persisted("{ __typename }")),
            "registration by a client": await post(
                http, "{ __typename }", persisted("{ __typename }")
            ),
            "automatic row": await post(http, extensions=persisted(TYPENAME)),
            "unregistered GET": await get(http, persisted("{ __typename }")),
        }
        for name, response in refused.items():
            assert response.status_code == 403, (name, response.text)
            assert only_code(response) == "PERSISTED_QUERY_NOT_ALLOWED", name
            assert response.headers["cache-control"] == "no-store", name
    assert await stored(database) == before


async def test_an_operation_registered_while_serving_is_allowed_at_once(
    make_app: Callable[..., Starlette], database: Database
) -> None:
    async with running(make_app, persisted_queries="allowlist") as http:
        assert (await post(http, extensions=persisted(QUERY))).status_code == 403
        await register(database, QUERY)
        assert (await post(http, extensions=persisted(QUERY))).json() == {"data": PAGE}


async def test_allowlist_covers_subscriptions_over_websocket(
    make_app: Callable[..., Starlette], database: Database
) -> None:
    """A subscription runs only if its text is registered, as over HTTP; an unregistered
    one ends with an `error` message carrying the code, and the connection stays up."""
    registered = "subscription Tick { clock(intervalSeconds: 1, count: 1) }"
    await register(database, registered)
    async with ServerThread(make_app(persisted_queries="allowlist")) as server:
        client = WSClient(server.ws_url)
        await client.connect()
        await client.init()
        try:
            refused = await client.subscribe("subscription { clock(count: 1) }")
            message = await client.receive()
            assert (message["id"], message["type"]) == (refused, "error")
            assert message["payload"][0]["extensions"]["code"] == "PERSISTED_QUERY_NOT_ALLOWED"
            allowed = await client.subscribe(registered)
            assert "clock" in (await client.next_payload(allowed))["data"]
        finally:
            await client.close()


# -- off -------------------------------------------------------------------------------


async def test_off_answers_persisted_query_not_supported(
    make_app: Callable[..., Starlette], database: Database
) -> None:
    """Apollo's link turns persisted queries off on PersistedQueryNotSupported and sends
    the query alone from then on, which runs."""
    async with running(make_app, persisted_queries="off") as http:
        for response in (
            await post(http, extensions=persisted(QUERY), headers=MODERN),
            await post(http, QUERY, persisted(QUERY), headers=LEGACY),
            await get(http, persisted(QUERY)),
        ):
            assert response.status_code == 200, response.text
            assert response.json() == {
                "errors": [
                    {
                        "message": "PersistedQueryNotSupported",
                        "extensions": {"code": "PERSISTED_QUERY_NOT_SUPPORTED"},
                    }
                ]
            }
        assert (await post(http, QUERY)).json() == {"data": PAGE}
    assert await stored(database) == {}


# -- the CLI: registering the operations of a folder ------------------------------------

EVENT_CARD = """\
# An event's card, with its tiers.
query EventCard($id: ID!) {
  event(id: $id) { ...CardFields tiers { name priceCents } }
}

fragment CardFields on Event { title venue }
"""
UPCOMING = "query Upcoming { events(first: 5) { edges { node { title } } } }\n"

# What Apollo Client sends for them: its InMemoryCache adds `__typename` to every
# selection set but the operation's, then the link hashes graphql-js's `print`.
EVENT_CARD_APOLLO = """\
query EventCard($id: ID!) {
  event(id: $id) {
    ...CardFields
    tiers {
      name
      priceCents
      __typename
    }
    __typename
  }
}

fragment CardFields on Event {
  title
  venue
  __typename
}"""
UPCOMING_APOLLO = """\
query Upcoming {
  events(first: 5) {
    edges {
      node {
        title
        __typename
      }
      __typename
    }
    __typename
  }
}"""
UPCOMING_PRINTED = """\
query Upcoming {
  events(first: 5) {
    edges {
      node {
        title
      }
    }
  }
}"""


@pytest.fixture
def cli_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, database_url: str) -> None:
    """The CLI reads settings from the environment: a blank one, on this test's database."""
    monkeypatch.chdir(tmp_path)
    for name in Settings.model_fields:
        monkeypatch.delenv(name.upper(), raising=False)
    monkeypatch.setenv("DATABASE_URL", database_url)


async def cli(*argv: str) -> int:
    return await asyncio.to_thread(main, list(argv))


def operations_folder(root: Path, **files: str) -> Path:
    folder = root / "operations"
    for name, text in files.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return folder


@pytest.mark.usefixtures("cli_environment")
async def test_cli_registers_what_apollo_sends(
    tmp_path: Path,
    make_app: Callable[..., Starlette],
    database: Database,
    capsys: pytest.CaptureFixture[str],
) -> None:
    folder = operations_folder(
        tmp_path, **{"events/card.graphql": EVENT_CARD, "upcoming.graphql": UPCOMING}
    )
    assert await cli("persisted-queries", "register", str(folder)) == 0
    out = capsys.readouterr().out
    for name, text, variant in [
        ("EventCard", EVENT_CARD_APOLLO, "with __typename"),
        ("Upcoming", UPCOMING_APOLLO, "with __typename"),
        ("Upcoming", UPCOMING_PRINTED, "as written"),
    ]:
        assert re.search(rf"^{name} +{sha256(text)}  {variant}  \(registered\)$", out, re.M), out
    assert out.splitlines()[-1] == "4 documents of 2 operations on the allow-list (4 new)"
    assert set((await stored(database)).values()) == {"registered"}
    assert len(await stored(database)) == 4

    async with running(make_app, persisted_queries="allowlist") as http:
        answered = await get(http, persisted(UPCOMING_APOLLO), operationName="Upcoming")
        assert answered.status_code == 200, answered.text
        edges: dict[str, Any] = {"edges": [], "__typename": "EventConnection"}
        assert answered.json() == {"data": {"events": edges}}
        card = await post(http, extensions=persisted(EVENT_CARD_APOLLO), variables={"id": "x"})
        assert card.status_code == 200, card.text
        assert "data" in card.json(), card.text  # it ran (the id names no event)
        assert (await post(http, UPCOMING_PRINTED)).json() == {"data": {"events": {"edges": []}}}
        assert (await post(http, UPCOMING)).status_code == 403  # not as printed

    assert await cli("persisted-queries", "register", str(folder)) == 0
    assert capsys.readouterr().out.splitlines()[-1].endswith("(0 new)")
    assert await cli("persisted-queries", "list", "--kind", "registered") == 0
    listed = capsys.readouterr().out.splitlines()
    assert len(listed) == 4
    assert any(
        line.split() == ["registered", sha256(EVENT_CARD_APOLLO), "EventCard"] for line in listed
    )


@pytest.mark.usefixtures("cli_environment")
@pytest.mark.parametrize(
    ("files", "message"),
    [
        (
            {"a.graphql": UPCOMING, "b.graphql": "query Broken { events(first: 1) { nope } }"},
            "b.graphql: operation Broken: Cannot query field 'nope' on type 'EventConnection'.",
        ),
        (
            {"a.graphql": "query Missing { events(first: 1) { ...Nowhere } }"},
            "a.graphql: operation Missing: Unknown fragment 'Nowhere'.",
        ),
        (
            {"a.graphql": "query Cut { events"},
            "a.graphql: Syntax Error: Expected Name, found <EOF>.",
        ),
        (
            {"a.graphql": EVENT_CARD, "b.graphql": "fragment CardFields on Event { id }"},
            "b.graphql: fragment CardFields is defined again (first in",
        ),
        (
            {"a.graphql": "fragment F on Event { id }"},
            "operations: no operations in its .graphql files",
        ),
    ],
    ids=["invalid", "unknown fragment", "does not parse", "fragment defined twice", "empty"],
)
async def test_cli_refuses_a_folder_with_an_invalid_operation(
    tmp_path: Path,
    database: Database,
    capsys: pytest.CaptureFixture[str],
    files: dict[str, str],
    message: str,
) -> None:
    """Exit 2 with one line naming the file (and the operation); nothing registered."""
    folder = operations_folder(tmp_path, **files)
    assert await cli("persisted-queries", "register", str(folder)) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith("liventix: ") and message in lines[0], lines[0]
    assert await stored(database) == {}


@pytest.mark.usefixtures("cli_environment")
async def test_cli_validates_with_the_operation_limits(
    tmp_path: Path,
    database: Database,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MAX_QUERY_COST", "3")
    folder = operations_folder(tmp_path, **{"upcoming.graphql": UPCOMING})
    assert await cli("persisted-queries", "register", str(folder)) == 2
    assert "operation Upcoming: 'Upcoming' may cost" in capsys.readouterr().err
    assert await stored(database) == {}


# -- the pieces, alone --------------------------------------------------------------------


def test_the_extension_is_read_as_apollo_writes_it() -> None:
    assert requested_hash(None) is None
    assert requested_hash({"clientLibrary": {"name": "@apollo/client"}}) is None
    assert requested_hash(persisted(QUERY)) == sha256(QUERY)
    with pytest.raises(PersistedQueryError) as caught:
        requested_hash(persisted(QUERY, version=1.0))
    assert (caught.value.status, caught.value.code) == (400, Code.UNSUPPORTED_VERSION)


def test_the_readme_documents_every_persisted_query_code_and_mode() -> None:
    readme = (ROOT / "README.md").read_text()
    table = readme.split("### Error codes", 1)[1].split("\n## ", 1)[0]
    documented = set(re.findall(r"`([A-Z][A-Z_]+)`", table))
    assert {code.value for code in Code} <= documented
    configuration = readme.split("\n## Configuration\n", 1)[1].split("\n## ", 1)[0]
    row = next(
        line for line in configuration.splitlines() if line.startswith("| `PERSISTED_QUERIES`")
    )
    assert all(f"`{mode.value}`" in row for mode in Mode), row


async def test_store_kinds_are_what_the_schema_allows(database: Database) -> None:
    await register(database, QUERY)
    (query,) = await db.persisted_queries.list_queries(database, Kind.REGISTERED)
    assert (query.hash, query.query, query.registered) == (sha256(QUERY), QUERY, True)
    assert await db.persisted_queries.list_queries(database, Kind.AUTOMATIC) == []
