"""Every subscriber's first `tierAvailability` message is a SNAPSHOT of the current state.

Identical subscriptions share one execution (`liventix.subscriptions.multiplex`), so a
subscriber arriving after the execution has already sent results does not run the
resolver's snapshot read: it joins the group. These tests hold the group to the
schema's promise for such late joiners (and for fresh subscribers whose first frame is
still queued when the next change arrives): first SNAPSHOT with `changedTierId` null,
reflecting every change already sent to others, then the same changes as everyone else,
never an older state after a newer one.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import asyncpg
from databases import Database
from starlette.applications import Starlette

import db.demo
from liventix.auth import Role
from liventix.subscriptions.sharing import plan
from liventix.ws import GraphQLTransportWS
from tests.realtime_support import until
from tests.support import WSClient

AVAILABILITY = """subscription Availability($e: ID!) {
  tierAvailability(eventId: $e) { reason changedTierId tiers { tierId reserved available } }
}"""
ALIASED = """subscription Aliased($e: ID!) {
  live: tierAvailability(eventId: $e) { __typename ...State }
}
fragment State on EventAvailability {
  why: reason
  ... on EventAvailability { which: changedTierId }
  tiers { tierId reserved }
}"""
RESERVE = """mutation($t: ID!) { reserveTickets(tierId: $t, quantity: 1) { __typename } }"""

WS = Callable[..., Any]
EVENT = str(db.demo.EVENT_IDS[0])


async def reserve(buyer: WSClient, tier_id: str) -> None:
    """Reserve one ticket of `tier_id` as `buyer` and wait for the committed hold (a
    buyer's second reserve of one seat would only refresh its hold: use new buyers)."""
    op = await buyer.subscribe(RESERVE, {"t": tier_id})
    payload = await buyer.next_payload(op)
    assert payload == {"data": {"reserveTickets": {"__typename": "HoldPayload"}}}, payload


def availability(payload: dict[str, Any]) -> dict[str, Any]:
    assert "errors" not in payload, payload
    data: dict[str, Any] = payload["data"]["tierAvailability"]
    return data


def reserved_of(state: dict[str, Any], tier_id: str) -> int:
    reserved: int = next(t["reserved"] for t in state["tiers"] if t["tierId"] == tier_id)
    return reserved


async def test_a_late_joiner_first_gets_a_snapshot_of_the_state_others_already_have(
    demo: None, ws: WS, token: Callable[..., str], handler: GraphQLTransportWS
) -> None:
    """B joins A's shared execution after a CHANGE: B's first message is a SNAPSHOT
    with that change applied; the next change reaches both, identically."""
    buyers = [await ws(token=token(Role.USER)), await ws(token=token(Role.USER))]
    first = await ws()
    op_a = await first.subscribe(AVAILABILITY, {"e": EVENT})
    snapshot = availability(await first.next_payload(op_a))
    assert snapshot["reason"] == "SNAPSHOT" and snapshot["changedTierId"] is None
    tier = snapshot["tiers"][1]["tierId"]
    await reserve(buyers[0], tier)
    change = availability(await first.next_payload(op_a))
    assert change["reason"] == "CHANGE" and change["changedTierId"] == tier

    late = await ws()
    op_b = await late.subscribe(AVAILABILITY, {"e": EVENT})
    joined = availability(await late.next_payload(op_b))
    assert joined == {"reason": "SNAPSHOT", "changedTierId": None, "tiers": change["tiers"]}
    assert reserved_of(joined, tier) == reserved_of(snapshot, tier) + 1
    assert handler.multiplexer.group_count == 1  # B did join A's execution

    await reserve(buyers[1], tier)
    after_a, after_b = await first.next_payload(op_a), await late.next_payload(op_b)
    assert after_a == after_b
    assert availability(after_a)["reason"] == "CHANGE"
    assert reserved_of(availability(after_a), tier) == reserved_of(snapshot, tier) + 2


async def test_a_late_joiner_gets_a_snapshot_whatever_the_fields_are_called(
    demo: None, ws: WS, token: Callable[..., str], handler: GraphQLTransportWS
) -> None:
    """Aliases and fragments (inline and named) still yield a snapshot-shaped message."""
    buyer = await ws(token=token(Role.USER))
    first = await ws()
    op_a = await first.subscribe(ALIASED, {"e": EVENT})
    snapshot = (await first.next_payload(op_a))["data"]["live"]
    assert snapshot["why"] == "SNAPSHOT"
    tier = snapshot["tiers"][0]["tierId"]
    await reserve(buyer, tier)
    change = (await first.next_payload(op_a))["data"]["live"]
    assert change["why"] == "CHANGE" and change["which"] == tier

    late = await ws()
    op_b = await late.subscribe(ALIASED, {"e": EVENT})
    joined = await late.next_payload(op_b)
    assert joined == {
        "data": {
            "live": {
                "__typename": "EventAvailability",
                "why": "SNAPSHOT",
                "which": None,
                "tiers": change["tiers"],
            }
        }
    }
    assert handler.multiplexer.group_count == 1


async def test_a_late_joiner_after_a_resync_gets_a_snapshot(
    demo: None,
    ws: WS,
    token: Callable[..., str],
    handler: GraphQLTransportWS,
    database_url: str,
) -> None:
    """After a listener gap the group's latest result is a RESYNC; a joiner still
    starts with SNAPSHOT, and then sees later changes like everyone else."""
    hub = handler.services.hub
    first = await ws()
    op_a = await first.subscribe(AVAILABILITY, {"e": EVENT})
    snapshot = availability(await first.next_payload(op_a))
    admin = await asyncpg.connect(database_url)
    try:  # a listener gap: the hub reconnects and every subscriber must resync
        assert await admin.fetchval("SELECT pg_terminate_backend($1)", hub.listener_pid)
    finally:
        await admin.close()
    resync = availability(await first.next_payload(op_a))
    assert resync["reason"] == "RESYNC" and resync["tiers"] == snapshot["tiers"]

    late = await ws()
    op_b = await late.subscribe(AVAILABILITY, {"e": EVENT})
    joined = availability(await late.next_payload(op_b))
    assert joined == {"reason": "SNAPSHOT", "changedTierId": None, "tiers": snapshot["tiers"]}
    assert handler.multiplexer.group_count == 1
    tier = snapshot["tiers"][2]["tierId"]
    await reserve(await ws(token=token(Role.USER)), tier)
    assert await first.next_payload(op_a) == await late.next_payload(op_b)


async def test_many_joiners_racing_with_reserves_each_start_with_a_snapshot_and_never_go_back(
    demo: None, ws: WS, token: Callable[..., str], handler: GraphQLTransportWS
) -> None:
    """20 subscribers join while 10 reserves commit, in two waves so that the second
    wave surely joins an execution that has already sent changes. Each subscriber's
    first message is a SNAPSHOT; its reserved counter never decreases; each ends at the
    final state, as does the first subscriber, who saw it all."""
    first = await ws()
    op_a = await first.subscribe(AVAILABILITY, {"e": EVENT})
    snapshot = availability(await first.next_payload(op_a))
    tier = snapshot["tiers"][1]["tierId"]
    start = reserved_of(snapshot, tier)
    final = start + 10
    buyers = [await ws(token=token(Role.USER)) for _ in range(10)]
    joiners = [await ws() for _ in range(20)]

    async def watch(client: WSClient, delay: float) -> list[dict[str, Any]]:
        await asyncio.sleep(delay)
        op = await client.subscribe(AVAILABILITY, {"e": EVENT})
        seen = [availability(await client.next_payload(op))]
        while reserved_of(seen[-1], tier) < final:
            seen.append(availability(await client.next_payload(op)))
        return seen

    async def buy(client: WSClient, delay: float) -> None:
        await asyncio.sleep(delay)
        await reserve(client, tier)

    def wave(half: int) -> list[asyncio.Task[Any]]:
        watching = [watch(c, 0.004 * i) for i, c in enumerate(joiners[half * 10 :][:10])]
        buying = [buy(c, 0.008 * i) for i, c in enumerate(buyers[half * 5 :][:5])]
        return [asyncio.create_task(job) for job in (*watching, *buying)]

    tasks = wave(0)
    history_a = [snapshot]
    while reserved_of(history_a[-1], tier) < start + 5:  # the first wave's changes went out
        history_a.append(availability(await first.next_payload(op_a)))
    tasks += wave(1)
    results = await asyncio.gather(*tasks)
    histories: list[list[dict[str, Any]]] = [r for r in results if r is not None]
    while reserved_of(history_a[-1], tier) < final:
        history_a.append(availability(await first.next_payload(op_a)))

    assert len(histories) == 20 and handler.multiplexer.group_count == 1
    for history in (history_a, *histories):
        assert history[0]["reason"] == "SNAPSHOT" and history[0]["changedTierId"] is None
        assert all(state["reason"] in ("CHANGE", "RESYNC") for state in history[1:])
        counters = [reserved_of(state, tier) for state in history]
        assert counters == sorted(counters), counters
        assert start <= counters[0] and counters[-1] == final
        assert history[-1]["tiers"] == history_a[-1]["tiers"]
    assert any(reserved_of(h[0], tier) > start for h in histories)  # some joined late
    await first.expect_nothing(0.2)  # and no older state arrives after the final one


async def test_a_first_snapshot_still_queued_is_not_replaced_by_the_next_change(
    demo: None, database: Database, make_app: Callable[..., Starlette]
) -> None:
    """Frames of a state subscription replace their unsent predecessor on a slow
    connection, but never the operation's first one: a change arriving while the
    SNAPSHOT still waits in the outbox is queued behind it, not in its place."""
    tier = await database.fetch_one(
        """SELECT id, quantity, reserved_quantity, issued_quantity, version
             FROM ticketing.ticket_tiers WHERE event_id = :e ORDER BY sort_order LIMIT 1""",
        {"e": db.demo.EVENT_IDS[0]},
    )
    assert tier is not None
    app = make_app()
    async with app.router.lifespan_context(app):
        handler: GraphQLTransportWS = app.state.websockets
        hub = app.state.services.hub
        inbound: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        frames: list[dict[str, Any]] = []
        writable = asyncio.Event()

        async def receive() -> dict[str, Any]:
            return await inbound.get()

        async def send(message: dict[str, Any]) -> None:
            if message["type"] == "websocket.send":
                frames.append(json.loads(message["text"]))
                await writable.wait()  # the client's TCP window is full until we say

        query = f'subscription {{ tierAvailability(eventId: "{EVENT}") {{ reason }} }}'
        inbound.put_nowait({"type": "websocket.connect"})
        for message in (
            {"type": "connection_init"},
            {"id": "a", "type": "subscribe", "payload": {"query": query}},
        ):
            inbound.put_nowait({"type": "websocket.receive", "text": json.dumps(message)})
        scope = {"type": "websocket", "subprotocols": ["graphql-transport-ws"]}
        call = asyncio.create_task(handler(scope, receive, send))  # type: ignore[arg-type]
        await until(lambda: any(g.emitted for g in handler.multiplexer._groups))
        (group,) = handler.multiplexer._groups
        hub.dispatch(
            {
                "ch": f"tier:{EVENT}",
                "op": "tier",
                "tier_id": str(tier["id"]),
                "quantity": tier["quantity"],
                "reserved": tier["reserved_quantity"] + 1,
                "issued": tier["issued_quantity"],
                "version": tier["version"] + 1,
            }
        )
        await until(lambda: group.last_payload is not None and "CHANGE" in group.last_payload)
        writable.set()
        connection = next(iter(handler.connections))
        await until(lambda: not connection._outbox)  # every queued frame went out
        inbound.put_nowait({"type": "websocket.disconnect", "code": 1000})
        await asyncio.wait_for(call, 5)
    assert frames[0] == {"type": "connection_ack"}
    reasons = [f["payload"]["data"]["tierAvailability"]["reason"] for f in frames[1:]]
    assert reasons == ["SNAPSHOT", "CHANGE"]


def test_the_plan_locates_the_snapshot_fields_by_their_response_keys() -> None:
    """Aliases and fragments are resolved once, from the document; other subscriptions
    (the feed is "live": no first message to recast) and skipped fields are untouched."""
    shared = plan(ALIASED, None, {"e": EVENT})
    assert shared.join == "state"
    change = {"live": {"__typename": "EventAvailability", "why": "CHANGE", "which": "t"}}
    recast = json.loads(shared.snapshot.apply(json.dumps({"data": change})))
    assert recast == {
        "data": {"live": {"__typename": "EventAvailability", "why": "SNAPSHOT", "which": None}}
    }
    without_reason = '{"data":{"live":{"which":"t"}}}'  # e.g. `why` was @skip-ped
    assert json.loads(shared.snapshot.apply(without_reason)) == {"data": {"live": {"which": None}}}
    failed = '{"data":null,"errors":[{"message":"Event not found"}]}'
    assert shared.snapshot.apply(failed) == failed
    feed = "subscription($e: ID!) { eventFeed(eventId: $e) { __typename } }"
    assert plan(feed, None, {"e": EVENT}).snapshot.apply('{"data":{}}') == '{"data":{}}'
