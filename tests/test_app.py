"""The service shell: health probes, viewer, auth failures, limits, masking."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from databases import Database
from starlette.applications import Starlette

import db.users
from db.core import connection
from liventix.auth import Role, Viewer
from liventix.first_sight import FirstSight
from liventix.settings import Settings
from tests.support import GraphQLClient, bad_tokens, gid

VIEWER = "{ viewer { id role displayName } }"


async def test_health_and_readiness(client: GraphQLClient) -> None:
    assert (await client.http.get("/healthz")).json() == {"status": "ok"}
    assert (await client.http.get("/readyz")).json() == {"status": "ready"}


async def test_viewer_is_null_when_anonymous(client: GraphQLClient) -> None:
    assert await client(VIEWER) == {"viewer": None}


async def test_viewer_gets_a_profile_on_first_sight(
    client: GraphQLClient, token: Callable[..., str]
) -> None:
    user_id = uuid.uuid4()
    data = await client(VIEWER, token=token(Role.ORGANIZER, user_id))
    assert data["viewer"] == {"id": gid("Viewer", user_id), "role": "ORGANIZER", "displayName": ""}


async def test_bad_tokens_get_401_with_a_clear_message(
    client: GraphQLClient, settings: Settings
) -> None:
    for name, bad in bad_tokens(settings).items():
        response = await client.post(VIEWER, token=bad)
        assert response.status_code == 401, name
        error: dict[str, Any] = response.json()["errors"][0]
        assert error["extensions"]["code"] in ("UNAUTHENTICATED", "TOKEN_EXPIRED"), name
        assert error["message"], name


async def test_too_many_aliases_and_depth_are_refused(client: GraphQLClient) -> None:
    aliases = " ".join(f"a{i}: viewer {{ id }}" for i in range(40))
    response = await client.post("{ " + aliases + " }")
    assert "aliases" in response.json()["errors"][0]["message"]
    tokens = "{ viewer { " + "id " * 3000 + "} }"
    response = await client.post(tokens)
    assert "token" in response.json()["errors"][0]["message"].lower()


async def test_queries_deeper_than_the_limit_are_refused(
    make_app: Callable[..., Starlette],
) -> None:
    # The schema has no cycles, so its deepest real query is shallow; lower the limit.
    app = make_app(max_query_depth=4)
    deep = "{ myOrders { edges { node { tickets { event { tiers { name } } } } } } }"
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
            response = await GraphQLClient(http).post(deep)
    assert "exceeds maximum operation depth" in response.json()["errors"][0]["message"]


async def test_oversized_body_is_413(client: GraphQLClient) -> None:
    response = await client.post("{ viewer { id } }", {"pad": "x" * 100_000})
    assert response.status_code == 413
    assert response.json()["errors"][0]["extensions"]["code"] == "PAYLOAD_TOO_LARGE"


async def test_unexpected_errors_are_masked_and_logged_with_the_request_id(
    client: GraphQLClient,
    token: Callable[..., str],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("connection string postgres://secret@db")

    monkeypatch.setattr(db.users, "ensure_profiles", broken)
    with caplog.at_level(logging.ERROR, logger="liventix.graphql"):
        response = await client.post(VIEWER, token=token(Role.USER))
    error = response.json()["errors"][0]
    request_id = response.headers["x-request-id"]
    assert error["message"] == "Unexpected error"
    assert error["extensions"] == {"code": "INTERNAL_SERVER_ERROR", "requestId": request_id}
    assert "secret" not in response.text
    logged = [r for r in caplog.records if request_id in r.getMessage()]
    assert logged and logged[0].exc_info is not None  # the stack trace stays server-side


async def _profile_role(database: Database, user_id: uuid.UUID) -> str | None:
    async with connection(database) as conn:
        role: str | None = await conn.fetchval(
            "SELECT role FROM users.profiles WHERE id = $1", user_id
        )
    return role


async def test_a_verified_user_gets_a_profile_on_first_sight(
    client: GraphQLClient, token: Callable[..., str], database: Database
) -> None:
    """Any signed-in request creates the row, not only `viewer` or a write."""
    user_id = uuid.uuid4()
    await client("{ events(first: 1) { edges { node { id } } } }", token=token(Role.USER, user_id))
    assert await _profile_role(database, user_id) == "user"


async def test_a_burst_of_new_users_is_written_in_a_few_statements(
    client: GraphQLClient,
    token: Callable[..., str],
    database: Database,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """300 new users at once (a sale opening): every profile is written, in batches
    rather than one transaction each, which would queue them all on the pool."""
    users = [uuid.uuid4() for _ in range(300)]
    batches: list[int] = []
    write = db.users.ensure_profiles

    async def counted(database: Database, rows: list[tuple[uuid.UUID, str]]) -> None:
        batches.append(len(rows))
        await write(database, rows)

    monkeypatch.setattr(db.users, "ensure_profiles", counted)
    answers = await asyncio.gather(
        *(client(VIEWER, token=token(Role.USER, user_id)) for user_id in users)
    )
    assert {answer["viewer"]["id"] for answer in answers} == {gid("Viewer", u) for u in users}
    assert sum(batches) == len(users) and len(batches) <= 10, batches
    async with connection(database) as conn:
        stored = await conn.fetchval(
            "SELECT count(*) FROM users.profiles WHERE id = ANY($1::uuid[])", users
        )
    assert stored == len(users)


async def test_a_user_seen_with_two_roles_in_one_batch_keeps_the_later_one(
    database: Database,
) -> None:
    """One statement cannot upsert a row twice: the batch is split, the later role last."""
    sight = FirstSight(database)
    user_id = uuid.uuid4()
    await asyncio.gather(
        sight.see(Viewer(user_id, Role.USER)), sight.see(Viewer(user_id, Role.ORGANIZER))
    )
    assert await _profile_role(database, user_id) == "organizer"


async def test_a_websocket_user_gets_a_profile_on_first_sight(
    ws: Callable[..., Any], token: Callable[..., str], database: Database
) -> None:
    user_id = uuid.uuid4()
    await ws(token=token(Role.ORGANIZER, user_id))
    for _ in range(100):
        if await _profile_role(database, user_id) == "organizer":
            return
        await asyncio.sleep(0.02)
    raise AssertionError("no profile row after the WebSocket handshake")
