"""The pool's acquire timeout: `DB_ACQUIRE_TIMEOUT` bounds every wait for a connection.

With the pool saturated (one connection, held by another task), asking for a
connection fails with `PoolTimeout` after about the configured time, not after a
hard-coded default.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
from databases import Database

from db.core import PoolTimeout, connection, create_database
from liventix.app import open_services
from liventix.clock import FrozenClock
from liventix.settings import Settings

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
