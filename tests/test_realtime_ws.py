"""Shared executions over WebSocket: one execution per (document, variables, scope)."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
from databases import Database
from starlette.applications import Starlette

import db.demo
import db.events
from liventix.auth import Role
from liventix.realtime import metrics
from liventix.ws import GraphQLTransportWS
from tests.realtime_support import until
from tests.support import WSClient

AVAILABILITY = """subscription Availability($e: ID!) {
  tierAvailability(eventId: $e) { reason changedTierId tiers { tierId reserved available } }
}"""
FEED = """subscription Feed($e: ID!) {
  eventFeed(eventId: $e) {
    __typename
    ... on PostCreated { post { id text } }
    ... on PostDeleted { postId }
  }
}"""
RESERVE = """mutation($t: ID!) { reserveTickets(tierId: $t, quantity: 2) { __typename } }"""
POST = """mutation($e: ID!, $text: String!) {
  createPost(eventId: $e, text: $text) { __typename }
}"""

WS = Callable[..., Any]
EVENT = str(db.demo.EVENT_IDS[0])


async def run_once(client: WSClient, query: str, variables: dict[str, Any]) -> dict[str, Any]:
    op = await client.subscribe(query, variables)
    payload = await client.next_payload(op)
    assert "errors" not in payload, payload
    data: dict[str, Any] = payload["data"]
    return data


async def test_identical_availability_subscriptions_share_one_execution(
    demo: None, ws: WS, token: Callable[..., str], handler: GraphQLTransportWS
) -> None:
    buyer = await ws(token=token(Role.USER))  # not subscribed: run_once skips others' frames
    clients = [await ws(), await ws(), await ws(token=token(Role.USER))]
    ops = [await c.subscribe(AVAILABILITY, {"e": EVENT}) for c in clients]
    snapshots = [await c.next_payload(op) for c, op in zip(clients, ops, strict=True)]
    assert snapshots[0]["data"]["tierAvailability"]["reason"] == "SNAPSHOT"
    assert handler.multiplexer.group_count == 1  # fans and anonymous viewers share
    tier = snapshots[0]["data"]["tierAvailability"]["tiers"][1]
    assert (await run_once(buyer, RESERVE, {"t": tier["tierId"]}))["reserveTickets"] == {
        "__typename": "HoldPayload"
    }
    changes = [await c.next_payload(op) for c, op in zip(clients, ops, strict=True)]
    assert changes[0] == changes[1] == changes[2]
    change = changes[0]["data"]["tierAvailability"]
    assert change["reason"] == "CHANGE" and change["changedTierId"] == tier["tierId"]
    changed = next(t for t in change["tiers"] if t["tierId"] == tier["tierId"])
    assert changed["reserved"] == tier["reserved"] + 2
    # A newcomer joins the running execution and first gets the current state, as a
    # snapshot (tests/test_realtime_snapshot.py covers this in depth).
    late = await ws()
    op = await late.subscribe(AVAILABILITY, {"e": EVENT})
    joined = (await late.next_payload(op))["data"]["tierAvailability"]
    assert joined == {**change, "reason": "SNAPSHOT", "changedTierId": None}
    await until(lambda: handler.multiplexer.group_count == 1)


async def test_organizers_and_different_variables_get_their_own_execution(
    demo: None, ws: WS, token: Callable[..., str], handler: GraphQLTransportWS
) -> None:
    fan, organizer = await ws(), await ws(token=token(Role.ORGANIZER, db.demo.ORGANIZER_ID))
    await run_once(fan, AVAILABILITY, {"e": EVENT})
    await run_once(organizer, AVAILABILITY, {"e": EVENT})
    await run_once(fan, AVAILABILITY, {"e": str(db.demo.EVENT_IDS[1])})
    assert handler.multiplexer.group_count == 3


async def test_feed_subscribers_share_and_a_newcomer_gets_only_later_posts(
    demo: None, ws: WS, token: Callable[..., str], handler: GraphQLTransportWS
) -> None:
    author = await ws(token=token(Role.USER))
    first, second = await ws(), await ws(token=token(Role.USER))
    op1 = await first.subscribe(FEED, {"e": EVENT})
    op2 = await second.subscribe(FEED, {"e": EVENT})
    await until(lambda: handler.multiplexer.group_count == 1)
    # The shared execution listens once its resolver has looked the event up; a post
    # committed before that is, rightly, not part of a live-only feed.
    await until(lambda: handler.services.hub.subscriber_count(f"feed:{EVENT}") == 1)
    await run_once(author, POST, {"e": EVENT, "text": "one"})
    one = [await first.next_payload(op1), await second.next_payload(op2)]
    assert one[0] == one[1]
    assert one[0]["data"]["eventFeed"]["post"]["text"] == "one"
    late = await ws()
    op3 = await late.subscribe(FEED, {"e": EVENT})
    await until(lambda: sum(len(g.members) for g in handler.multiplexer._groups) == 3)
    assert handler.multiplexer.group_count == 1
    await run_once(author, POST, {"e": EVENT, "text": "two"})
    for client, op in ((first, op1), (second, op2), (late, op3)):
        assert (await client.next_payload(op))["data"]["eventFeed"]["post"]["text"] == "two"


async def test_draft_event_feed_fails_for_the_public_but_works_for_its_organizer(
    demo: None,
    database: Database,
    ws: WS,
    token: Callable[..., str],
    handler: GraphQLTransportWS,
) -> None:
    draft = await db.events.create_event(
        database,
        db.events.Actor(db.demo.ORGANIZER_ID),
        title="Secret show",
        start_at=datetime.now(UTC) + timedelta(days=3),
    )
    variables = {"e": str(draft.id)}
    anonymous, fan = await ws(), await ws(token=token(Role.USER))
    organizer = await ws(token=token(Role.ORGANIZER, db.demo.ORGANIZER_ID))
    for client in (anonymous, fan):
        op = await client.subscribe(FEED, variables)
        payload = await client.next_payload(op)
        assert payload["data"] is None
        assert payload["errors"][0]["extensions"]["code"] == "EVENT_NOT_FOUND"
        assert await client.receive() == {"id": op, "type": "complete"}
    op = await organizer.subscribe(FEED, variables)
    author = await ws(token=token(Role.ORGANIZER, db.demo.ORGANIZER_ID))
    hub = handler.services.hub
    await until(lambda: hub.subscriber_count(f"feed:{draft.id}") == 1)
    await run_once(author, POST, {"e": str(draft.id), "text": "backstage"})
    payload = await organizer.next_payload(op)
    assert payload["data"]["eventFeed"]["post"]["text"] == "backstage"


async def test_a_connection_that_stops_reading_is_closed_1013_with_bounded_memory(
    demo: None, make_app: Callable[..., Starlette]
) -> None:
    """Drive the handler with an ASGI client that stops reading after the ack."""
    app = make_app(ws_buffer_size=8)
    dropped = metrics.SLOW_SUBSCRIBERS_DROPPED.labels("websocket")._value.get()
    async with app.router.lifespan_context(app):
        handler: GraphQLTransportWS = app.state.websockets
        services = app.state.services
        inbound: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        sent: list[dict[str, Any]] = []
        stop_reading = asyncio.Event()

        async def receive() -> dict[str, Any]:
            return await inbound.get()

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)
            if stop_reading.is_set() and message["type"] != "websocket.accept":
                await asyncio.Event().wait()  # a full TCP window: blocks forever

        query = f'subscription {{ eventFeed(eventId: "{EVENT}") {{ __typename }} }}'
        inbound.put_nowait({"type": "websocket.connect"})
        for message in (
            {"type": "connection_init"},
            {"id": "f", "type": "subscribe", "payload": {"query": query}},
        ):
            inbound.put_nowait({"type": "websocket.receive", "text": json.dumps(message)})
        scope = {"type": "websocket", "subprotocols": ["graphql-transport-ws"]}
        call = asyncio.create_task(handler(scope, receive, send))  # type: ignore[arg-type]
        await until(lambda: services.hub.subscriber_count(f"feed:{EVENT}") == 1)
        stop_reading.set()
        connection = next(iter(handler.connections))
        most = 0
        for _ in range(200):
            services.hub.dispatch(
                {"ch": f"feed:{EVENT}", "op": "deleted", "post_id": str(uuid.uuid4())}
            )
            await asyncio.sleep(0.002)
            most = max(most, len(connection._outbox))
            if call.done():
                break
        await asyncio.wait_for(call, 5)
        assert most <= 8
        assert connection._outbox.overflowed
        assert sent[-1] == {
            "type": "websocket.close",
            "code": 1013,
            "reason": "subscriber too slow",
        }
        await until(lambda: services.hub.subscriber_count() == 0)
        assert handler.multiplexer.group_count == 0
    assert metrics.SLOW_SUBSCRIBERS_DROPPED.labels("websocket")._value.get() == dropped + 1


async def test_listener_killed_subscribers_resync_then_receive_later_changes(
    demo: None,
    ws: WS,
    token: Callable[..., str],
    handler: GraphQLTransportWS,
    database_url: str,
) -> None:
    hub = handler.services.hub
    clients = [await ws(), await ws()]
    ops = [await c.subscribe(AVAILABILITY, {"e": EVENT}) for c in clients]
    snapshots = [await c.next_payload(op) for c, op in zip(clients, ops, strict=True)]
    snapshot = snapshots[0]
    pid = hub.listener_pid
    admin = await asyncpg.connect(database_url)
    try:
        assert await admin.fetchval("SELECT pg_terminate_backend($1)", pid)
    finally:
        await admin.close()
    for client, op in zip(clients, ops, strict=True):
        resync = (await client.next_payload(op))["data"]["tierAvailability"]
        assert resync["reason"] == "RESYNC"
        assert resync["tiers"] == snapshot["data"]["tierAvailability"]["tiers"]
    assert hub.listener_pid not in (None, pid)
    tier = snapshot["data"]["tierAvailability"]["tiers"][0]
    buyer = await ws(token=token(Role.USER))
    await run_once(buyer, RESERVE, {"t": tier["tierId"]})
    for client, op in zip(clients, ops, strict=True):
        change = (await client.next_payload(op))["data"]["tierAvailability"]
        assert change["reason"] == "CHANGE" and change["changedTierId"] == tier["tierId"]
