"""Connections and transactions on top of `databases`, with raw asyncpg for queries.

`databases` owns the pool and binds one connection to the current asyncio task; the
helpers here enter and leave it in the same task, with a timeout on acquire so a
saturated pool fails fast instead of queueing requests forever. Queries go through
the raw asyncpg connection: `$n` parameters, prepared-statement caching and no SQL
compilation step on the hot path.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
import orjson
from databases import Database

ACQUIRE_TIMEOUT_SECONDS = 5.0


class PoolTimeout(Exception):
    """No pooled connection became free within the acquire timeout."""


def create_database(url: str, *, min_size: int = 2, max_size: int = 10) -> Database:
    """A `databases.Database` whose asyncpg connections decode json/jsonb natively."""
    return Database(url, min_size=min_size, max_size=max_size, init=_init_connection)


async def _init_connection(conn: asyncpg.Connection) -> None:
    for type_name in ("json", "jsonb"):
        await conn.set_type_codec(
            type_name,
            encoder=lambda value: orjson.dumps(value).decode(),
            decoder=orjson.loads,
            schema="pg_catalog",
        )


@asynccontextmanager
async def connection(database: Database) -> AsyncIterator[asyncpg.Connection]:
    """The task's pooled connection, outside any transaction (single-statement reads)."""
    conn = database.connection()
    try:
        async with asyncio.timeout(ACQUIRE_TIMEOUT_SECONDS):
            await conn.__aenter__()
    except TimeoutError:
        raise PoolTimeout("database pool exhausted") from None
    try:
        yield conn.raw_connection
    finally:
        await conn.__aexit__(None, None, None)


@asynccontextmanager
async def transaction(
    database: Database, *, isolation: str | None = None
) -> AsyncIterator[asyncpg.Connection]:
    """One transaction on the task's connection; commits on exit, rolls back on error.

    Nested use in the same task becomes a savepoint (databases' transaction stack).
    """
    kwargs: dict[str, Any] = {"isolation": isolation} if isolation else {}
    # Within the task, `database.connection()` is the connection just acquired.
    async with connection(database), database.connection().transaction(**kwargs):
        yield database.connection().raw_connection
