"""graphql-transport-ws rules, driven by a real WebSocket client against a real server."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from starlette.applications import Starlette
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from liventix.auth import Role, mint_token
from liventix.clock import FrozenClock
from liventix.settings import Settings
from tests.conftest import ServerThread
from tests.support import PROTOCOL, WSClient, bad_tokens, gid

CLOCK = "subscription { clock(intervalSeconds: 60, count: 5) }"
TICKS = "subscription { clock(intervalSeconds: 1, count: 1) }"

WS = Callable[..., Any]


async def closed_with(client: WSClient, timeout: float = 5.0) -> tuple[int, str]:
    """Read until the server closes; return its close code and reason."""
    assert client.conn is not None
    with pytest.raises(ConnectionClosed) as info:
        async with asyncio.timeout(timeout):
            while True:
                await client.conn.recv()
    received = info.value.rcvd
    assert received is not None, "closed without a close frame"
    return received.code, received.reason


async def raw(server: ServerThread) -> WSClient:
    client = WSClient(server.ws_url)
    await client.connect()
    return client


@pytest.fixture
async def quick_server(make_app: Callable[..., Starlette]) -> AsyncIterator[ServerThread]:
    """A server with a short init timeout and a cap of 2 operations per connection."""
    app = make_app(ws_init_timeout=0.3, ws_max_subscriptions=2)
    async with ServerThread(app) as running:
        yield running


@pytest.fixture
def app_server_websockets(server: ServerThread) -> Any:
    """The running server's WebSocket handler (to observe shared executions)."""
    app: Any = server.server.config.app
    return app.state.websockets


async def test_subscription_streams_then_completes(ws: WS) -> None:
    client = await ws()
    op = await client.subscribe(TICKS)
    first = await client.next_payload(op)
    assert datetime.fromisoformat(first["data"]["clock"]).tzinfo is not None
    assert await client.receive() == {"id": op, "type": "complete"}


async def test_query_and_mutation_over_websocket_give_one_result_then_complete(
    ws: WS, token: Callable[..., str]
) -> None:
    user_id = uuid.uuid4()
    client = await ws(token=token(Role.USER, user_id))
    op = await client.subscribe("{ viewer { id role } }")
    payload = await client.next_payload(op)
    assert payload == {"data": {"viewer": {"id": gid("Viewer", user_id), "role": "USER"}}}
    assert await client.receive() == {"id": op, "type": "complete"}
    op = await client.subscribe(
        'mutation { updateDisplayName(displayName: "Ada") { displayName } }'
    )
    assert (await client.next_payload(op))["data"] == {"updateDisplayName": {"displayName": "Ada"}}
    assert await client.receive() == {"id": op, "type": "complete"}


async def test_invalid_operation_gets_an_error_message_not_a_close(ws: WS) -> None:
    client = await ws()
    op = await client.subscribe("subscription { noSuchField }")
    message = await client.receive()
    assert message["type"] == "error" and message["id"] == op
    assert "noSuchField" in message["payload"][0]["message"]
    op = await client.subscribe("{ viewer { id } }")  # the connection still works
    assert await client.next_payload(op) == {"data": {"viewer": None}}


async def test_ping_gets_pong(ws: WS) -> None:
    client = await ws()
    await client.send({"type": "ping"})
    assert await client.receive() == {"type": "pong"}


async def test_legacy_subprotocol_is_refused(server: ServerThread) -> None:
    client = WSClient(server.ws_url, subprotocol="graphql-ws")
    await client.connect()
    assert await closed_with(client) == (4406, "Subprotocol not acceptable")


async def test_bad_token_closes_4403_with_the_reason(server: ServerThread) -> None:
    client = await raw(server)
    await client.send({"type": "connection_init", "payload": {"Authorization": "Bearer nope"}})
    code, reason = await closed_with(client)
    assert code == 4403
    assert "Malformed token" in reason


@pytest.mark.parametrize("kind", ["malformed", "other secret", "expired", "alg none"])
async def test_every_untrustworthy_token_closes_4403_with_a_reason(
    server: ServerThread, settings: Settings, kind: str
) -> None:
    client = await raw(server)
    bad = bad_tokens(settings)[kind]
    await client.send({"type": "connection_init", "payload": {"Authorization": f"Bearer {bad}"}})
    code, reason = await closed_with(client)
    assert code == 4403, kind
    assert reason and reason != "Forbidden", (kind, reason)


async def test_expired_token_at_init_closes_4403(server: ServerThread, settings: Settings) -> None:
    stale = mint_token(settings, uuid.uuid4(), Role.USER, now=datetime.now(UTC) - timedelta(days=1))
    client = await raw(server)
    await client.send({"type": "connection_init", "payload": {"Authorization": f"Bearer {stale}"}})
    code, reason = await closed_with(client)
    assert code == 4403 and "expired" in reason.lower()


async def test_subscription_ends_when_the_token_expires(
    ws: WS, token: Callable[..., str], clock: FrozenClock
) -> None:
    client = await ws(token=token(Role.USER))
    op = await client.subscribe(CLOCK)
    await client.next_payload(op)
    clock.advance(13 * 3600)  # tokens from the fixture live 12 hours
    assert await closed_with(client, timeout=5) == (4403, "token expired")


async def test_no_init_in_time_closes_4408(quick_server: ServerThread) -> None:
    client = await raw(quick_server)
    assert await closed_with(client) == (4408, "Connection initialisation timeout")


async def test_subscribe_before_ack_closes_4401(server: ServerThread) -> None:
    client = await raw(server)
    await client.subscribe(CLOCK)
    assert await closed_with(client) == (4401, "Unauthorized")


async def test_second_init_closes_4429(ws: WS) -> None:
    client = await ws()
    await client.send({"type": "connection_init", "payload": {}})
    assert await closed_with(client) == (4429, "Too many initialisation requests")


async def test_duplicate_operation_id_closes_4409(ws: WS) -> None:
    client = await ws()
    await client.subscribe(CLOCK, op_id="one")
    await client.next_payload("one")
    await client.subscribe(CLOCK, op_id="one")
    assert await closed_with(client) == (4409, "Subscriber for one already exists")


@pytest.mark.parametrize(
    "message",
    ["not json", '{"no": "type"}', '{"type": "unheard-of"}', '{"type": "subscribe", "id": "x"}'],
)
async def test_malformed_messages_close_4400(ws: WS, message: str) -> None:
    client = await ws()
    assert client.conn is not None
    await client.conn.send(message)
    code, _reason = await closed_with(client)
    assert code == 4400


async def test_operations_over_the_cap_get_an_error_and_the_others_go_on(
    quick_server: ServerThread,
) -> None:
    client = await raw(quick_server)
    await client.init()
    first = await client.subscribe(CLOCK)
    second = await client.subscribe(CLOCK)
    third = await client.subscribe(CLOCK)
    seen: dict[str, dict[str, Any]] = {}
    while len(seen) < 3:
        message = await client.receive()
        seen.setdefault(message["id"], message)
    assert seen[third]["type"] == "error"
    assert seen[third]["payload"][0]["extensions"]["code"] == "TOO_MANY_SUBSCRIPTIONS"
    assert seen[first]["type"] == seen[second]["type"] == "next"
    # Completing one frees a slot.
    await client.send({"id": first, "type": "complete"})
    fourth = await client.subscribe(CLOCK)
    assert "clock" in (await client.next_payload(fourth))["data"]


async def test_complete_stops_the_operation(ws: WS, app_server_websockets: Any) -> None:
    client = await ws()
    op = await client.subscribe(CLOCK)
    await client.next_payload(op)
    assert app_server_websockets.multiplexer.group_count == 1
    await client.send({"id": op, "type": "complete"})
    for _ in range(100):
        if app_server_websockets.multiplexer.group_count == 0:
            break
        await asyncio.sleep(0.01)
    assert app_server_websockets.multiplexer.group_count == 0
    await client.expect_nothing(0.2)


async def test_plain_websocket_clients_get_the_protocol(server: ServerThread) -> None:
    async with connect(server.ws_url, subprotocols=[PROTOCOL]) as conn:  # type: ignore[list-item]
        assert conn.subprotocol == PROTOCOL


async def test_an_oversized_message_closes_1009(ws: WS) -> None:
    """A WebSocket message is held to the HTTP body limit (64 KiB in tests)."""
    client = await ws()
    query = "subscription { clock(count: 1) }" + " " * 70_000
    assert client.conn is not None
    await client.send({"id": "big", "type": "subscribe", "payload": {"query": query}})
    with pytest.raises(ConnectionClosed) as closed:
        await client.receive()
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009
