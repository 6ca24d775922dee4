"""Shared fixtures: a real PostgreSQL, a fresh database per test, the app and clients.

PostgreSQL is the embedded server unless TEST_DATABASE_URL names a server (an admin
URL, e.g. postgresql://postgres@127.0.0.1:5432/postgres). The schema is migrated once
into a template database; each test gets `CREATE DATABASE ... TEMPLATE` (~30 ms), so
tests are isolated without truncation rules.
"""

from __future__ import annotations

import asyncio
import os
import threading
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import httpx
import pytest
import uvicorn
from databases import Database
from starlette.applications import Starlette

import db.demo
import db.migrate
from db.core import create_database
from liventix.app import create_app
from liventix.auth import Role, mint_token
from liventix.clock import FrozenClock
from liventix.embedded import server_url, start_embedded
from liventix.settings import Settings, load_settings
from liventix.ws import GraphQLTransportWS
from tests.support import ApiProcess, GraphQLClient, WSClient, free_port

TEMPLATE_NAME = f"liventix_tpl_{os.getpid()}"


def with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{name}"))


@pytest.fixture(scope="session")
def pg_admin_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Admin URL of the PostgreSQL server the tests use."""
    given = os.environ.get("TEST_DATABASE_URL")
    if given:
        yield given
        return
    data_dir = Path(tmp_path_factory.mktemp("embedded"))
    server = start_embedded(data_dir)
    try:
        yield server_url(server, "postgres")
    finally:
        server.cleanup()


@pytest.fixture(scope="session")
async def template_db(pg_admin_url: str) -> AsyncIterator[str]:
    await _admin(
        pg_admin_url,
        f'DROP DATABASE IF EXISTS "{TEMPLATE_NAME}" WITH (FORCE)',
        f'CREATE DATABASE "{TEMPLATE_NAME}"',
    )
    await db.migrate.migrate(with_database(pg_admin_url, TEMPLATE_NAME))
    try:
        yield TEMPLATE_NAME
    finally:
        conn = await asyncpg.connect(pg_admin_url)
        try:
            leftovers = await conn.fetch(
                "SELECT datname FROM pg_database WHERE datname LIKE $1", f"lvx_t{os.getpid()}_%"
            )
        finally:
            await conn.close()
        await _admin(
            pg_admin_url,
            *(f'DROP DATABASE IF EXISTS "{row["datname"]}" WITH (FORCE)' for row in leftovers),
            f'DROP DATABASE IF EXISTS "{TEMPLATE_NAME}" WITH (FORCE)',
        )


async def _admin(pg_admin_url: str, *statements: str) -> None:
    """Run statements on a short-lived admin connection (none is held across tests)."""
    conn = await asyncpg.connect(pg_admin_url)
    try:
        for statement in statements:
            await conn.execute(statement)
    finally:
        await conn.close()


@asynccontextmanager
async def new_database(pg_admin_url: str, template: str | None = None) -> AsyncIterator[str]:
    """A database of its own (a copy of `template`, or empty), dropped afterwards.

    Its name carries the prefix the session's teardown sweeps, should a test leave it.
    """
    name = f"lvx_t{os.getpid()}_{uuid.uuid4().hex[:10]}"
    copy = f' TEMPLATE "{template}"' if template else ""
    await _admin(pg_admin_url, f'CREATE DATABASE "{name}"{copy}')
    yield with_database(pg_admin_url, name)
    await _admin(pg_admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
async def database_url(pg_admin_url: str, template_db: str) -> AsyncIterator[str]:
    """A fresh, migrated database for this test only."""
    async with new_database(pg_admin_url, template_db) as url:
        yield url


@pytest.fixture
async def empty_database_url(pg_admin_url: str, template_db: str) -> AsyncIterator[str]:
    """A brand-new database with no tables at all (after the template, so the session's
    teardown still sweeps it)."""
    async with new_database(pg_admin_url) as url:
        yield url


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock()


@pytest.fixture
def settings(database_url: str) -> Settings:
    return load_settings(
        environment="test",
        database_url=database_url,
        jobs_enabled=False,
        rate_limit_enabled=False,
        redis_url=None,
        stripe_secret_key=None,
    )


@pytest.fixture
async def database(database_url: str) -> AsyncIterator[Database]:
    """A connected `databases.Database` for repository-level tests."""
    database = create_database(database_url, min_size=1, max_size=20)
    await database.connect()
    try:
        yield database
    finally:
        await database.disconnect()


@pytest.fixture
def make_app(settings: Settings, clock: FrozenClock) -> Callable[..., Starlette]:
    def make(**overrides: Any) -> Starlette:
        merged = settings.model_copy(update=overrides) if overrides else settings
        return create_app(merged, clock=clock)

    return make


@pytest.fixture
async def app(make_app: Callable[..., Starlette]) -> AsyncIterator[Starlette]:
    application = make_app()
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
async def client(app: Starlette) -> AsyncIterator[GraphQLClient]:
    """GraphQL over HTTP through the ASGI app in-process."""
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        yield GraphQLClient(http)


@pytest.fixture
def token(settings: Settings) -> Callable[..., str]:
    """`token(role, user_id=None)`: a signed token for a (new) user."""

    def mint(role: str | Role = Role.USER, user_id: uuid.UUID | None = None) -> str:
        return mint_token(settings, user_id or uuid.uuid4(), Role(role))

    return mint


class ServerThread:
    """The real app under uvicorn in a thread, on a free port (for WS and e2e tests)."""

    def __init__(self, app: Starlette) -> None:
        self.port = free_port()
        config = uvicorn.Config(
            app,
            host="127.0.0.1",
            port=self.port,
            log_level="warning",
            ws="websockets-sansio",
            ws_max_size=64 * 1024,
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/graphql"

    async def __aenter__(self) -> ServerThread:
        self.thread.start()
        for _ in range(400):
            if self.server.started:
                return self
            await asyncio.sleep(0.025)
        raise RuntimeError("server did not start")

    async def __aexit__(self, *exc: object) -> None:
        self.server.should_exit = True
        await asyncio.to_thread(self.thread.join, 15)


@pytest.fixture
async def server(make_app: Callable[..., Starlette]) -> AsyncIterator[ServerThread]:
    async with ServerThread(make_app()) as running:
        yield running


@pytest.fixture
async def ws(server: ServerThread) -> AsyncIterator[Callable[..., Any]]:
    """`await ws(token=None)`: a connected, acknowledged graphql-transport-ws client."""
    clients: list[WSClient] = []

    async def connect(token: str | None = None, **payload: Any) -> WSClient:
        client = WSClient(server.ws_url)
        await client.connect()
        if token:
            payload["Authorization"] = f"Bearer {token}"
        await client.init(payload)
        clients.append(client)
        return client

    yield connect
    for client in clients:
        await client.close()


@pytest.fixture
async def demo(database: Database) -> None:
    """The demo data (organizer, events, tiers, posts) in this test's database."""
    await db.demo.seed(database)


@pytest.fixture
def handler(server: ServerThread) -> GraphQLTransportWS:
    """The running server's `graphql-transport-ws` handler, to inspect its state."""
    app: Any = server.server.config.app
    websockets: GraphQLTransportWS = app.state.websockets
    return websockets


@pytest.fixture
async def two_processes(
    database_url: str, database: Database, tmp_path: Path
) -> AsyncIterator[tuple[ApiProcess, ApiProcess]]:
    """Two `liventix serve` processes on one database (the demo data seeded): PostgreSQL
    is the only thing they share."""
    await db.demo.seed(database)
    a, b = ApiProcess(database_url, tmp_path), ApiProcess(database_url, tmp_path)
    try:
        await asyncio.gather(a.ready(), b.ready())
        yield a, b
    finally:
        await asyncio.gather(a.stop(), b.stop())
