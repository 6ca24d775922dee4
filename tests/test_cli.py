"""The `liventix` command: tokens that work, idempotent `migrate` and `seed-demo`."""

from __future__ import annotations

import asyncio
import uuid

import asyncpg
import pytest

import db.demo
import db.migrate
from liventix.cli import main
from liventix.settings import Settings
from tests.support import GraphQLClient

VIEWER = "{ viewer { id role } }"


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: object) -> None:
    """The CLI reads settings from the environment: start each test from a blank one."""
    monkeypatch.chdir(str(tmp_path))
    for name in Settings.model_fields:
        monkeypatch.delenv(name.upper(), raising=False)


@pytest.fixture
def empty_database_url(empty_database_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """A new, empty database that the CLI is pointed at through DATABASE_URL."""
    monkeypatch.setenv("DATABASE_URL", empty_database_url)
    return empty_database_url


async def cli(*argv: str) -> int:
    """Run the command as the console script does (it starts its own event loop)."""
    return await asyncio.to_thread(main, list(argv))


async def test_minted_tokens_authenticate_with_their_role(
    client: GraphQLClient, capsys: pytest.CaptureFixture[str]
) -> None:
    assert await cli("token", "--role", "organizer") == 0
    organizer = capsys.readouterr().out.strip()
    data = await client(VIEWER, token=organizer)
    assert data["viewer"] == {"id": str(db.demo.ORGANIZER_ID), "role": "ORGANIZER"}

    someone = uuid.uuid4()
    assert await cli("token", "--role", "user", "--user", str(someone), "--hours", "1") == 0
    data = await client(VIEWER, token=capsys.readouterr().out.strip())
    assert data["viewer"] == {"id": str(someone), "role": "USER"}


async def test_an_expired_cli_token_is_refused(
    client: GraphQLClient, capsys: pytest.CaptureFixture[str]
) -> None:
    assert await cli("token", "--hours", "-1") == 0
    response = await client.post(VIEWER, token=capsys.readouterr().out.strip())
    assert response.status_code == 401


async def test_migrate_twice_applies_once(
    empty_database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    versions = [m.version for m in db.migrate.available()]
    assert await cli("migrate") == 0
    assert capsys.readouterr().out.strip() == "applied: " + ", ".join(versions)
    assert await cli("migrate") == 0
    assert capsys.readouterr().out.strip() == "applied: nothing (up to date)"


async def demo_counts(url: str) -> dict[str, int]:
    conn = await asyncpg.connect(url)
    try:
        row = await conn.fetchrow(
            """SELECT
                 (SELECT count(*) FROM events.events WHERE status = 'published') AS published,
                 (SELECT count(*) FROM events.events) AS events,
                 (SELECT count(*) FROM ticketing.ticket_tiers) AS tiers,
                 (SELECT count(*) FROM feed.posts) AS posts,
                 (SELECT count(*) FROM users.profiles) AS profiles"""
        )
        assert row is not None
        return dict(row)
    finally:
        await conn.close()


async def test_seed_demo_gives_two_published_events_and_is_idempotent(
    empty_database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert await cli("seed-demo") == 0  # migrates the empty database first
    first = await demo_counts(empty_database_url)
    assert first["published"] == 2
    assert first["events"] == 2
    assert first["tiers"] > 0
    assert first["posts"] > 0
    assert await cli("seed-demo") == 0
    assert await demo_counts(empty_database_url) == first
    assert "demo data loaded" in capsys.readouterr().out
