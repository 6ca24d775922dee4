"""The embedded PostgreSQL used when no DATABASE_URL is given.

`pgserver` ships the PostgreSQL binaries as a wheel, so a fresh machine needs nothing
else. The data directory lives in the project (`.data/pg` by default) and survives
restarts; the server is stopped when the last process that uses it exits (pgserver
counts its users), so several API processes may share it.
"""

from __future__ import annotations

import contextlib
import warnings
from pathlib import Path
from typing import Any
from urllib.parse import quote

import asyncpg

DATABASE_NAME = "liventix"


def start_embedded(data_dir: Path) -> Any:
    """Start (or attach to) the embedded server for `data_dir`; returns the handle."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # platformdirs' XDG_RUNTIME_DIR fallback notice
        import pgserver

        data_dir.mkdir(parents=True, exist_ok=True)
        return pgserver.get_server(  # type: ignore[attr-defined]
            str((data_dir / "pg").resolve()), cleanup_mode="stop"
        )


def server_url(server: Any, database: str = DATABASE_NAME) -> str:
    """A postgresql:// URL for `database` on the embedded server's Unix socket."""
    socket_dir = server.get_postmaster_info().socket_dir
    return f"postgresql://postgres@/{database}?host={quote(str(socket_dir))}"


async def ensure_database(admin_url: str, name: str) -> None:
    """Create database `name` if it does not exist (CREATE DATABASE cannot be in a tx)."""
    conn = await asyncpg.connect(admin_url)
    try:
        exists = await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name)
        if not exists:
            # Another process may create it between our check and our CREATE.
            with contextlib.suppress(asyncpg.DuplicateDatabaseError):
                await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
