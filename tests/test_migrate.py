"""Migrations apply once: re-running is a no-op, and processes racing to migrate one
empty database (in-process, and two real `liventix serve` processes) all come up with
every version applied exactly once.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import asyncpg
import pytest

import db.migrate
from tests.support import ApiProcess

VERSIONS = [m.version for m in db.migrate.available()]


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


@pytest.mark.slow
async def test_two_servers_started_together_on_an_empty_database_both_come_up(
    empty_database_url: str, tmp_path: Path
) -> None:
    processes = [ApiProcess(empty_database_url, tmp_path) for _ in range(2)]
    try:
        for response in await asyncio.gather(*(process.ready() for process in processes)):
            assert response.json() == {"status": "ready"}
        assert await recorded_versions(empty_database_url) == VERSIONS
    finally:
        await asyncio.gather(*(process.stop() for process in processes))


async def test_media_kinds_written_upper_case_are_repaired(
    empty_database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An earlier demo seed stored `"kind": "IMAGE"`; the migration that forbids it first
    turns such rows into the lower-case kinds the API reads."""
    everything = db.migrate.available()
    before = [m for m in everything if m.version < "0005"]
    monkeypatch.setattr(db.migrate, "available", lambda: before)
    await db.migrate.migrate(empty_database_url)
    conn = await asyncpg.connect(empty_database_url)
    try:
        organizer = await conn.fetchval(
            "INSERT INTO users.profiles (id, role) VALUES (gen_random_uuid(), 'organizer')"
            " RETURNING id"
        )
        event = await conn.fetchval(
            """INSERT INTO events.events (organizer_id, title, start_at, end_at, time_zone)
               VALUES ($1, 'Old demo', now(), now() + interval '1 hour', 'UTC') RETURNING id""",
            organizer,
        )
        media = '[{"url": "https://x.example/a.jpg", "kind": "IMAGE", "width": 1, "height": 1}]'
        await conn.execute(
            "INSERT INTO feed.posts (event_id, author_id, media) VALUES ($1, $2, $3::jsonb)",
            event,
            organizer,
            media,
        )
        monkeypatch.setattr(db.migrate, "available", lambda: everything)
        assert await db.migrate.migrate(empty_database_url) == VERSIONS[len(before) :]
        kinds = await conn.fetchval(
            "SELECT jsonb_path_query_array(media, '$[*].kind')::text FROM feed.posts"
        )
        assert kinds == '["image"]'
        with pytest.raises(asyncpg.CheckViolationError):
            await conn.execute(
                "INSERT INTO feed.posts (event_id, author_id, media) VALUES ($1, $2, $3::jsonb)",
                event,
                organizer,
                media,
            )
    finally:
        await conn.close()
