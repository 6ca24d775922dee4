"""Migrations apply once: re-running is a no-op, and processes racing to migrate one
empty database (in-process, and two real `liventix serve` processes) all come up with
every version applied exactly once.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import httpx
import pytest

import db.migrate
from liventix.settings import Settings
from tests.conftest import free_port, with_database

VERSIONS = [m.version for m in db.migrate.available()]


@pytest.fixture
async def empty_database_url(pg_admin_url: str, template_db: str) -> AsyncIterator[str]:
    """A brand-new database with no tables at all (named so the session cleans it up)."""
    name = f"lvx_t{os.getpid()}_empty_{uuid.uuid4().hex[:8]}"
    conn = await asyncpg.connect(pg_admin_url)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
        yield with_database(pg_admin_url, name)
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


async def recorded_versions(url: str) -> list[str]:
    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetch("SELECT version FROM public.schema_migrations ORDER BY version")
        return [row["version"] for row in rows]
    finally:
        await conn.close()


async def test_migrations_exist_and_are_ordered() -> None:
    assert VERSIONS, "no migrations found"
    assert sorted(VERSIONS) == VERSIONS
    assert len(set(VERSIONS)) == len(VERSIONS)


async def test_first_run_applies_everything_and_a_rerun_is_a_noop(
    empty_database_url: str,
) -> None:
    assert await db.migrate.migrate(empty_database_url) == VERSIONS
    assert await db.migrate.migrate(empty_database_url) == []
    assert await recorded_versions(empty_database_url) == VERSIONS
    conn = await asyncpg.connect(empty_database_url)
    try:
        assert await db.migrate.pending(conn) == []
    finally:
        await conn.close()


async def test_pending_lists_everything_on_an_empty_database(empty_database_url: str) -> None:
    conn = await asyncpg.connect(empty_database_url)
    try:
        assert await db.migrate.pending(conn) == VERSIONS
    finally:
        await conn.close()


async def test_concurrent_migrations_apply_each_version_once(empty_database_url: str) -> None:
    runs = await asyncio.gather(*(db.migrate.migrate(empty_database_url) for _ in range(4)))
    applied = [version for run in runs for version in run]
    assert sorted(applied) == VERSIONS  # one runner did the work, the rest found none
    assert sum(1 for run in runs if run) == 1
    assert await recorded_versions(empty_database_url) == VERSIONS


def serve(database_url: str, port: int, workdir: Path) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if k.upper() not in _SETTINGS_VARS}
    env.update(
        DATABASE_URL=database_url,
        PORT=str(port),
        JOBS_ENABLED="false",
        RATE_LIMIT_ENABLED="false",
        ENVIRONMENT="test",
        LOG_LEVEL="warning",
    )
    return subprocess.Popen(
        [sys.executable, "-m", "liventix.cli", "serve"],
        cwd=workdir,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


_SETTINGS_VARS = {name.upper() for name in Settings.model_fields}


async def wait_ready(port: int, process: subprocess.Popen[bytes], timeout: float = 45) -> None:
    deadline = time.monotonic() + timeout
    async with httpx.AsyncClient(timeout=2) as http:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                stderr = process.stderr.read().decode() if process.stderr else ""
                raise AssertionError(f"server on :{port} exited early:\n{stderr}")
            with contextlib.suppress(httpx.TransportError):
                response = await http.get(f"http://127.0.0.1:{port}/readyz")
                if response.status_code == 200:
                    assert response.json() == {"status": "ready"}
                    return
            await asyncio.sleep(0.1)
    raise AssertionError(f"server on :{port} not ready after {timeout}s")


@pytest.mark.slow
async def test_two_servers_started_together_on_an_empty_database_both_come_up(
    empty_database_url: str, tmp_path: Path
) -> None:
    ports = [free_port(), free_port()]
    processes = [serve(empty_database_url, port, tmp_path) for port in ports]
    try:
        await asyncio.gather(
            *(wait_ready(p, proc) for p, proc in zip(ports, processes, strict=True))
        )
        assert await recorded_versions(empty_database_url) == VERSIONS
    finally:
        for process in processes:
            if process.poll() is None:
                process.send_signal(signal.SIGINT)
        for process in processes:
            try:
                await asyncio.to_thread(process.wait, 15)
            except subprocess.TimeoutExpired:
                process.kill()
                await asyncio.to_thread(process.wait)
            if process.stderr:
                process.stderr.close()
