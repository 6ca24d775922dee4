"""The pool: its acquire timeout and what it resets on release.

`DB_ACQUIRE_TIMEOUT` bounds every wait for a connection: with the pool saturated (one
connection, held by another task), asking for a connection fails with `PoolTimeout`
after about the configured time, not after a hard-coded default.

A released connection is not reset with a round trip (nothing we run leaves session
state), except one marked with `keeps_session_state`, whose advisory locks go with it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import asyncpg
import httpx
import pytest
from databases import Database
from starlette.applications import Starlette

import db.jobs
from db.core import PoolTimeout, connection, create_database, keeps_session_state, transaction
from liventix.app import open_services
from liventix.clock import FrozenClock
from liventix.settings import Settings
from tests.support import GraphQLClient

TINY = 0.2


@asynccontextmanager
async def saturated(database: Database) -> AsyncIterator[None]:
    """Another task holds the pool's only connection for the duration."""
    holding, done = asyncio.Event(), asyncio.Event()

    async def hold() -> None:
        async with connection(database):
            holding.set()
            await done.wait()

    holder = asyncio.create_task(hold())
    await holding.wait()
    try:
        yield
    finally:
        done.set()
        await holder


async def seconds_until_timeout(database: Database) -> float:
    started = time.monotonic()
    with pytest.raises(PoolTimeout):
        async with connection(database):
            pass
    return time.monotonic() - started


async def test_create_database_acquire_timeout_bounds_the_wait(database_url: str) -> None:
    database = create_database(database_url, min_size=1, max_size=1, acquire_timeout=TINY)
    await database.connect()
    try:
        async with saturated(database):
            waited = await seconds_until_timeout(database)
    finally:
        await database.disconnect()
    assert TINY * 0.9 <= waited < 1.5, waited  # the old hard-coded wait was 5 s


async def test_db_acquire_timeout_setting_reaches_the_app_pool(
    settings: Settings, clock: FrozenClock
) -> None:
    tight = settings.model_copy(
        update={"db_pool_min": 1, "db_pool_max": 1, "db_acquire_timeout": TINY}
    )
    async with open_services(tight, clock) as services, saturated(services.db):
        waited = await seconds_until_timeout(services.db)
    assert TINY * 0.9 <= waited < 1.5, waited


def test_acquire_timeout_must_be_positive(database_url: str) -> None:
    with pytest.raises(ValueError):
        create_database(database_url, acquire_timeout=0)


LOCK = 4242


async def lock_is_free(database_url: str) -> bool:
    """Whether another session can take the advisory lock `LOCK` (released if so)."""
    other = await asyncpg.connect(database_url)
    try:
        if await other.fetchval("SELECT pg_try_advisory_lock($1)", LOCK):
            await other.execute("SELECT pg_advisory_unlock($1)", LOCK)
            return True
        return False
    finally:
        await other.close()


@pytest.mark.parametrize("marked", [True, False])
async def test_only_a_marked_connection_is_reset_on_release(
    database_url: str, marked: bool
) -> None:
    database = create_database(database_url, min_size=1, max_size=1)
    await database.connect()
    try:
        async with connection(database) as conn:
            if marked:
                keeps_session_state(conn)
            await conn.execute("SELECT pg_advisory_lock($1)", LOCK)
        # Released without an unlock: the marked connection's full reset frees the lock;
        # an unmarked one keeps it (the control: no reset round trip ran).
        assert await lock_is_free(database_url) is marked
    finally:
        await database.disconnect()


async def test_a_transaction_left_open_is_rolled_back_on_release(database_url: str) -> None:
    database = create_database(database_url, min_size=1, max_size=1)
    await database.connect()
    try:
        async with connection(database) as conn:
            await conn.execute("BEGIN")
            await conn.execute("CREATE TEMP TABLE left_open (x int) ON COMMIT DROP")
        async with transaction(database) as conn:  # would fail inside an open one
            assert await conn.fetchval("SELECT to_regclass('pg_temp.left_open')") is None
    finally:
        await database.disconnect()


async def test_a_jobs_lock_is_released_with_its_connection(database_url: str) -> None:
    database = create_database(database_url, min_size=1, max_size=1)
    await database.connect()
    try:
        async with db.jobs.exclusive(database, "pool-test") as got:
            assert got
        async with connection(database) as conn:  # the same pooled connection, reset
            held = await conn.fetchval(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = $1",
                conn.get_server_pid(),
            )
        assert held == 0
    finally:
        await database.disconnect()


async def test_a_saturated_pool_answers_service_unavailable_without_an_error_log(
    make_app: Callable[..., Starlette],
    token: Callable[..., str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """No free connection is the server being busy, not a bug: the client is told to
    try again (SERVICE_UNAVAILABLE), and nothing is logged at ERROR."""
    app = make_app(db_pool_min=1, db_pool_max=1, db_acquire_timeout=TINY)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            client = GraphQLClient(http)
            async with saturated(app.state.services.db):
                with caplog.at_level(logging.INFO):
                    response = await client.post("{ viewer { id } }", token=token("user"))
    body = response.json()
    assert response.status_code == 200 and body["data"] == {"viewer": None}, body
    (error,) = body["errors"]
    assert error["extensions"] == {"code": "SERVICE_UNAVAILABLE"}
    assert error["message"] == "The server is busy; try again in a moment"
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], caplog.text
    assert any(
        "server busy" in r.getMessage() for r in caplog.records if r.levelno == logging.WARNING
    )
