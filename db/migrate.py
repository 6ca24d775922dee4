"""Plain SQL migrations: ordered files in `db/migrations`, applied once each.

Each file runs in its own transaction and is recorded in `public.schema_migrations`.
The whole run holds a session advisory lock, so processes starting together against an
empty database queue behind one another and the later ones find nothing left to do.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import asyncpg

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
LOCK_KEY = 7_231_000_001  # advisory lock id for migrations


@dataclass(frozen=True)
class Migration:
    version: str
    path: Path

    @property
    def sql(self) -> str:
        return self.path.read_text()

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.path.read_bytes()).hexdigest()


def available() -> list[Migration]:
    return [Migration(p.stem, p) for p in sorted(MIGRATIONS_DIR.glob("*.sql"))]


async def migrate(url: str) -> list[str]:
    """Apply pending migrations; returns the versions applied (empty when up to date)."""
    conn = await asyncpg.connect(url)
    try:
        await conn.execute("SELECT pg_advisory_lock($1)", LOCK_KEY)
        try:
            return await _apply_pending(conn)
        finally:
            await conn.execute("SELECT pg_advisory_unlock($1)", LOCK_KEY)
    finally:
        await conn.close()


async def _apply_pending(conn: asyncpg.Connection) -> list[str]:
    await conn.execute(
        """CREATE TABLE IF NOT EXISTS public.schema_migrations (
               version text PRIMARY KEY,
               checksum text NOT NULL,
               applied_at timestamptz NOT NULL DEFAULT now())"""
    )
    done = {r["version"] for r in await conn.fetch("SELECT version FROM public.schema_migrations")}
    applied = []
    for migration in available():
        if migration.version in done:
            continue
        async with conn.transaction():
            await conn.execute(migration.sql)
            await conn.execute(
                "INSERT INTO public.schema_migrations (version, checksum) VALUES ($1, $2)",
                migration.version,
                migration.checksum,
            )
        applied.append(migration.version)
    return applied


async def pending(conn: asyncpg.Connection) -> list[str]:
    """Versions not yet applied (for /readyz); all of them if the table is missing."""
    exists = await conn.fetchval("SELECT to_regclass('public.schema_migrations') IS NOT NULL")
    done = (
        {r["version"] for r in await conn.fetch("SELECT version FROM public.schema_migrations")}
        if exists
        else set()
    )
    return [m.version for m in available() if m.version not in done]
