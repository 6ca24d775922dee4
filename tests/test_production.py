"""Production mode and operation limits: no suggestions, introspection by role, GraphiQL
off by default, depth counting introspection, a cost limit, execution and statement
timeouts. Each production rule is checked against development too, where it must not
apply (so a test that passes cannot be passing for want of the feature)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any

import httpx
import pytest
from databases import Database
from graphql import get_introspection_query
from starlette.applications import Starlette

import db.events
from db.core import connection
from liventix.app import create_app
from liventix.auth import Role, mint_token
from liventix.clock import FrozenClock
from liventix.settings import ROLE_NAMES, Settings, load_settings
from schema.limits import INTROSPECTION_DEPTH, VARIABLE_PAGE_SIZE
from tests.conftest import ServerThread
from tests.support import GraphQLClient, WSClient

# What GraphiQL sends (graphql-js' getIntrospectionQuery has the same shape and depth).
INTROSPECTION = get_introspection_query(
    descriptions=True,
    specified_by_url=True,
    directive_is_repeatable=True,
    schema_description=True,
    input_value_deprecation=True,
)
TYPO = "{ viewr { id } }"
EVENTS = "query Events($first: Int!) { events(first: $first) { edges { node { id } } } }"


def production_settings(settings: Settings, **overrides: Any) -> Settings:
    """The test settings as production reads them (validators run again: GRAPHIQL's
    default depends on ENVIRONMENT)."""
    values = settings.model_dump()
    values.pop("graphiql")
    values.update(environment="production", jwt_secret="p" * 40, **overrides)
    return load_settings(**values)


@asynccontextmanager
async def serving(app: Starlette) -> AsyncIterator[GraphQLClient]:
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as http,
    ):
        yield GraphQLClient(http)


@pytest.fixture
def production(settings: Settings, clock: FrozenClock) -> Callable[..., Starlette]:
    def make(**overrides: Any) -> Starlette:
        return create_app(production_settings(settings, **overrides), clock=clock)

    return make


def minter(settings: Settings) -> Callable[[Role], str]:
    return lambda role: mint_token(settings, uuid.uuid4(), role)


def messages(response: httpx.Response) -> list[str]:
    return [e["message"] for e in response.json().get("errors", [])]


def codes(response: httpx.Response) -> list[str]:
    return [e["extensions"]["code"] for e in response.json().get("errors", [])]


# --- 1. field suggestions ---------------------------------------------------------


async def test_production_errors_suggest_nothing(
    production: Callable[..., Starlette], make_app: Callable[..., Starlette]
) -> None:
    """Validation (unknown field, unknown argument) and variable coercion (unknown enum
    value) errors carry no "Did you mean"; development keeps the hints."""
    requests: list[tuple[str, dict[str, Any]]] = [
        (TYPO, {}),
        ("{ events(frist: 2) { edges { cursor } } }", {}),
        (
            'query($s: OrderStatus) { eventOrders(eventId: "x", status: $s) { __typename } }',
            {"s": "PAI"},
        ),
    ]
    async with serving(make_app()) as client:
        for query, variables in requests:
            shown = messages(await client.post(query, variables))
            assert any("Did you mean" in m for m in shown), (query, shown)
    async with serving(production()) as client:
        for query, variables in requests:
            shown = messages(await client.post(query, variables))
            assert shown, query
            assert not any("Did you mean" in m for m in shown), (query, shown)


# --- 2. introspection by role -----------------------------------------------------


async def test_production_refuses_introspection_to_anonymous_and_users(
    production: Callable[..., Starlette], settings: Settings
) -> None:
    mint = minter(production_settings(settings))
    async with serving(production()) as client:
        for token in (None, mint(Role.USER)):
            response = await client.post(INTROSPECTION, token=token)
            assert codes(response) == ["INTROSPECTION_DISABLED"], response.json()
            assert response.json().get("data") is None
            small = await client.post('{ __type(name: "Event") { name } }', token=token)
            assert codes(small) == ["INTROSPECTION_DISABLED"]
        # __typename is not introspection: clients add it everywhere.
        assert await client("{ __typename }") == {"__typename": "Query"}


async def test_production_allows_introspection_to_the_configured_roles(
    production: Callable[..., Starlette], settings: Settings
) -> None:
    """Partners, organizers and admins by default; the validation cache (keyed on the
    document) must not leak one viewer's verdict to another, in either order."""
    mint = minter(production_settings(settings))
    async with serving(production()) as client:
        for role in (Role.PARTNER, Role.ORGANIZER, Role.ADMIN):
            data = await client(INTROSPECTION, token=mint(role))
            assert data["__schema"]["queryType"]["name"] == "Query"
            refused = await client.post(INTROSPECTION)
            assert codes(refused) == ["INTROSPECTION_DISABLED"]
        # A partner is a signed-in role the database stores (migration 0007).
        viewer = await client("{ viewer { role } }", token=mint(Role.PARTNER))
        assert viewer == {"viewer": {"role": "PARTNER"}}
    async with serving(production(introspection_roles="admin")) as client:
        refused = await client.post(INTROSPECTION, token=mint(Role.PARTNER))
        assert codes(refused) == ["INTROSPECTION_DISABLED"]
        assert (await client(INTROSPECTION, token=mint(Role.ADMIN)))["__schema"]


async def test_production_refuses_introspection_over_websocket_too(
    production: Callable[..., Starlette], settings: Settings
) -> None:
    """Queries may run over `graphql-transport-ws`; the viewer there comes from
    `connection_init`, and the same guard applies."""
    mint = minter(production_settings(settings))
    async with ServerThread(production()) as server:
        for token, allowed in ((None, False), (mint(Role.PARTNER), True)):
            client = WSClient(server.ws_url)
            await client.connect()
            await client.init({"Authorization": f"Bearer {token}"} if token else {})
            try:
                op = await client.subscribe('{ __type(name: "Event") { name } }')
                message = await client.receive()
                assert message["id"] == op
                if allowed:
                    assert message["payload"]["data"] == {"__type": {"name": "Event"}}
                else:
                    errors = message["payload"]
                    errors = errors if isinstance(errors, list) else errors["errors"]
                    assert errors[0]["extensions"]["code"] == "INTROSPECTION_DISABLED"
            finally:
                await client.close()


async def test_development_introspection_is_open_to_everyone(client: GraphQLClient) -> None:
    data = await client(INTROSPECTION)
    assert data["__schema"]["queryType"]["name"] == "Query"


def test_introspection_roles_are_validated_and_known_to_auth() -> None:
    assert set(ROLE_NAMES) == {role.value for role in Role}
    assert load_settings().introspection_role_set == {"organizer", "admin", "partner"}
    assert load_settings(introspection_roles=" admin , partner ").introspection_roles == (
        "admin,partner"
    )
    with pytest.raises(Exception, match=r"INTROSPECTION_ROLES: .*unknown role 'root'"):
        load_settings(introspection_roles="admin,root")


# --- 3. GraphiQL ------------------------------------------------------------------


def test_graphiql_defaults_off_in_production_only(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("GRAPHIQL", "ENVIRONMENT", "JWT_SECRET"):
        monkeypatch.delenv(name, raising=False)
    assert load_settings().graphiql is True
    assert load_settings(environment="test").graphiql is True
    assert load_settings(environment="production", jwt_secret="p" * 40).graphiql is False
    monkeypatch.setenv("ENVIRONMENT", "production")
    monkeypatch.setenv("JWT_SECRET", "p" * 40)
    assert load_settings().graphiql is False
    monkeypatch.setenv("GRAPHIQL", "true")
    assert load_settings().graphiql is True


async def test_production_serves_no_playground_unless_enabled(
    production: Callable[..., Starlette],
) -> None:
    async with serving(production()) as client:
        page = await client.http.get("/graphql", headers={"Accept": "text/html"})
        assert "graphiql" not in page.text.lower()
    async with serving(production(graphiql=True)) as client:
        page = await client.http.get("/graphql", headers={"Accept": "text/html"})
        assert "graphiql" in page.text.lower()


# --- 4. depth counts introspection ------------------------------------------------


def of_type_chain(levels: int) -> str:
    return (
        "{ __schema { types { fields { type { "
        + "ofType { " * levels
        + "name"
        + " }" * levels
        + " } } } } }"
    )


async def test_a_deep_introspection_chain_is_refused(client: GraphQLClient) -> None:
    """Strawberry's depth limiter skipped everything under a `__` field: a 22-deep
    `ofType` chain passed. Now it counts, up to what the standard query needs."""
    response = await client.post(of_type_chain(22))
    assert codes(response) == ["GRAPHQL_VALIDATION_FAILED"]
    assert "exceeds maximum operation depth" in messages(response)[0]
    # The deepest chain the standard introspection query has passes: the limit is exact.
    deepest = INTROSPECTION_DEPTH - 4  # __schema, types, fields, type, then ofType...
    assert "__schema" in (await client(of_type_chain(deepest)))
    assert codes(await client.post(of_type_chain(deepest + 1))) == ["GRAPHQL_VALIDATION_FAILED"]


# --- 5. cost ----------------------------------------------------------------------


async def test_costly_operations_are_refused_with_a_code(
    make_app: Callable[..., Starlette],
) -> None:
    """Each list multiplies its selection: 100 edges x (node + id + tiers x 10 x 3)."""
    costly = "{ events(first: 100) { edges { node { id tiers { id name available } } } } }"
    async with serving(make_app(max_query_cost=1000)) as client:
        response = await client.post(costly)
        assert codes(response) == ["QUERY_TOO_COSTLY"]
        error = response.json()["errors"][0]
        assert error["extensions"]["maxCost"] == 1000
        assert error["extensions"]["cost"] > 1000
        # The same shape with a small page is fine.
        await client(costly.replace("first: 100", "first: 5"))
        # A variable page size counts as the largest page the resolvers serve, so the
        # verdict (cached with the document) holds for any value.
        narrow = "{ events(first: 100) { edges { node { id title venue startAt } } } }"
        wide = narrow.replace("first: 100", "first: $first").replace(
            "{", "query Q($first: Int!) {", 1
        )
        # wide: 1 (events) + 1 (edges) + 100 x (node + 4 fields) = 502.
        assert codes(await client.post(wide, {"first": 1})) == []
    async with serving(make_app(max_query_cost=VARIABLE_PAGE_SIZE * 5)) as client:
        refused = await client.post(wide, {"first": 1})
        assert codes(refused) == ["QUERY_TOO_COSTLY"]


async def test_the_readme_example_is_well_within_the_default_cost(
    client: GraphQLClient, settings: Settings
) -> None:
    query = (
        "query UpcomingEvents { events(first: 10) { edges { node { id title venue startAt "
        "tiers { id name priceCents available } } } } }"
    )
    assert settings.max_query_cost == 10000
    await client(query)


# --- 6. timeouts ------------------------------------------------------------------


def sleeping_events(seconds: float) -> Callable[..., Any]:
    async def list_published(database: Database, *args: Any, **kwargs: Any) -> Any:
        async with connection(database) as conn:
            await conn.execute(f"SELECT pg_sleep({seconds})")
        raise AssertionError("the sleep should have been cut short")

    return list_published


async def test_a_slow_request_times_out_and_gives_its_connection_back(
    make_app: Callable[..., Starlette], monkeypatch: pytest.MonkeyPatch
) -> None:
    """One pooled connection only: had the timed-out request kept it, the next request
    would wait for it and fail."""
    app = make_app(
        request_timeout_seconds=0.3, db_pool_min=1, db_pool_max=1, db_acquire_timeout=2.0
    )
    async with serving(app) as client:
        with monkeypatch.context() as patch:
            patch.setattr(db.events, "list_published", sleeping_events(30))
            started = datetime.now()
            response = await client.post(EVENTS, {"first": 1})
            assert (datetime.now() - started).total_seconds() < 5
        assert codes(response) == ["TIMEOUT"], response.json()
        assert await client(EVENTS, {"first": 1}) == {"events": {"edges": []}}


async def test_statement_timeout_cancels_a_slow_statement(
    make_app: Callable[..., Starlette], monkeypatch: pytest.MonkeyPatch
) -> None:
    app = make_app(statement_timeout_ms=100, db_pool_min=1, db_pool_max=1)
    async with serving(app) as client:
        services = app.state.services
        async with connection(services.db) as conn:
            assert await conn.fetchval("SHOW statement_timeout") == "100ms"
        with monkeypatch.context() as patch:
            patch.setattr(db.events, "list_published", sleeping_events(5))
            response = await client.post(EVENTS, {"first": 1})
        error = response.json()["errors"][0]
        assert error["extensions"]["code"] == "INTERNAL_SERVER_ERROR"
        assert error["extensions"]["requestId"]
        assert error["message"] == "Unexpected error"
        assert await client(EVENTS, {"first": 1}) == {"events": {"edges": []}}
