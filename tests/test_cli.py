"""The `liventix` command: tokens that work, idempotent `migrate` and `seed-demo`."""

from __future__ import annotations

import asyncio
import uuid

import asyncpg
import httpx
import orjson
import pytest
from databases import Database

import db.demo
import db.migrate
from liventix.cli import main
from liventix.clock import FrozenClock
from liventix.settings import Settings
from liventix.signed_events import sign
from tests.conftest import ServerThread
from tests.orders_support import World, order_row, pending_order, world
from tests.support import GraphQLClient, free_port, gid

__all__ = ["world"]

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
    assert data["viewer"] == {"id": gid("Viewer", db.demo.ORGANIZER_ID), "role": "ORGANIZER"}

    someone = uuid.uuid4()
    assert await cli("token", "--role", "user", "--user", str(someone), "--hours", "1") == 0
    data = await client(VIEWER, token=capsys.readouterr().out.strip())
    assert data["viewer"] == {"id": gid("Viewer", someone), "role": "USER"}


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


@pytest.mark.parametrize("host", [None, "0.0.0.0"])
async def test_webhook_names_the_url_it_could_not_reach(
    client: GraphQLClient,
    database: Database,
    database_url: str,
    world: World,
    clock: FrozenClock,
    host: str | None,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """With nothing on PORT, the error says where it looked (a wildcard bind address
    is reached through loopback), in one line, with no traceback."""
    order = await pending_order(client, database, world, clock, 1)
    port = free_port()  # nothing listens there
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("PORT", str(port))
    if host is not None:
        monkeypatch.setenv("HOST", host)
    assert await cli("webhook", "payment_intent.succeeded", "--order", order["id"]) == 1
    err = capsys.readouterr().err
    assert f"http://127.0.0.1:{port}/webhooks/stripe" in err
    assert err.startswith("liventix: ") and err.count("\n") == 1 and "Traceback" not in err
    assert (await order_row(database, order["id"]))["status"] == "pending"


async def test_webhook_url_overrides_host_and_port(
    client: GraphQLClient,
    database: Database,
    database_url: str,
    world: World,
    clock: FrozenClock,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    order = await pending_order(client, database, world, clock, 1)
    url = f"http://127.0.0.1:{free_port()}/elsewhere"
    monkeypatch.setenv("DATABASE_URL", database_url)
    argv = ["webhook", "payment_intent.succeeded", "--order", order["id"], "--url", url]
    assert await cli(*argv) == 1
    assert f"could not send the event to {url}: " in capsys.readouterr().err


async def test_webhook_reaches_the_server_on_the_configured_port(
    server: ServerThread,
    database: Database,
    database_url: str,
    world: World,
    clock: FrozenClock,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The README's command, with only PORT saying where the server is."""
    async with httpx.AsyncClient(base_url=server.http_url, timeout=20) as http:
        order = await pending_order(GraphQLClient(http), database, world, clock, 1)
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("PORT", str(server.port))
    assert await cli("webhook", "payment_intent.succeeded", "--order", order["id"]) == 0
    assert capsys.readouterr().out.startswith("200 ")
    assert (await order_row(database, order["id"]))["status"] == "paid"


async def test_reconcile_prints_rejected_stripe_events(
    client: GraphQLClient,
    database_url: str,
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`liventix reconcile` shows the signed events the webhook refused as malformed."""
    body = orjson.dumps({"id": "evt_broken", "type": "charge.refunded", "data": {"object": []}})
    headers = {"Stripe-Signature": sign(body, settings.stripe_webhook_secret)}
    response = await client.http.post("/webhooks/stripe", content=body, headers=headers)
    assert response.status_code == 400
    monkeypatch.setenv("DATABASE_URL", database_url)
    assert await cli("reconcile") == 0
    report = orjson.loads(capsys.readouterr().out)
    assert report["rejected_events"]["count"] == 1
    assert [e["id"] for e in report["rejected_events"]["latest"]] == ["evt_broken"]
