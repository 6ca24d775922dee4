"""Which PostgreSQL to use: DATABASE_URL, or the embedded server as a fallback."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from liventix.embedded import DATABASE_NAME, ensure_database, server_url, start_embedded
from liventix.settings import Settings


@contextlib.asynccontextmanager
async def resolve_database_url(settings: Settings) -> AsyncIterator[str]:
    """Yield a usable URL; with no DATABASE_URL, start the embedded server meanwhile."""
    if settings.database_url:
        yield settings.database_url
        return
    server = await asyncio.to_thread(start_embedded, settings.data_dir)
    try:
        await ensure_database(server_url(server, "postgres"), DATABASE_NAME)
        yield server_url(server, DATABASE_NAME)
    finally:
        await asyncio.to_thread(server.cleanup)
