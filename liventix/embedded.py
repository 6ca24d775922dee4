"""The embedded PostgreSQL used when no DATABASE_URL is given.

`pgserver` ships the PostgreSQL binaries as a wheel, so a fresh machine needs nothing
else. The data directory lives in the project (`.data/pg` by default) and survives
restarts; the server is stopped when the last process that uses it exits (pgserver
counts its users), so several API processes may share it.
"""

from __future__ import annotations

import contextlib
import subprocess
import time
import warnings
from pathlib import Path
from typing import Any
from urllib.parse import quote

import asyncpg

DATABASE_NAME = "liventix"


def start_embedded(data_dir: Path, attempts: int = 4) -> Any:
    """Start (or attach to) the embedded server for `data_dir`; returns the handle.

    pgserver gives `pg_ctl start` 10 seconds; on a busy machine a first start can take
    longer while the server keeps coming up. Then we forget the half-made handle and
    try again, which attaches to the now running server once it is ready.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # platformdirs' XDG_RUNTIME_DIR fallback notice
        import pgserver
        from pgserver.postgres_server import PostgresServer
        from pgserver.utils import PostmasterInfo

        data_dir.mkdir(parents=True, exist_ok=True)
        pgdata = (data_dir / "pg").resolve()
        for attempt in range(1, attempts + 1):
            try:
                server = pgserver.get_server(str(pgdata), cleanup_mode="stop")  # type: ignore[attr-defined]
            except subprocess.TimeoutExpired:
                if attempt == attempts:
                    raise
                PostgresServer._instances.pop(pgdata, None)
                deadline = time.monotonic() + 30
                while time.monotonic() < deadline:
                    info = PostmasterInfo.read_from_pgdata(pgdata)
                    if info is not None and info.is_running() and info.status == "ready":
                        break
                    time.sleep(0.2)
                continue
            return server
        raise AssertionError("unreachable")


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
