"""The producer console's live counts over graphql-transport-ws: the current counts
first, then after each paid order, check-in and refund (made by this server or by
another process), fresh after a listener gap; one recompute per event however many
subscribers, a burst coalesced into a few; and the console's access rule."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any

import asyncpg
from databases import Database

from liventix.auth import Role
from liventix.clock import FrozenClock
from liventix.ws import GraphQLTransportWS
from resolvers.console_counter import ConsoleCounter
from tests.console_support import COUNTS, add_sale
from tests.orders_support import (
    CHECK_IN,
    PRICE,
    REFUND,
    World,
    add_user,
    assert_books_balanced,
    count,
    paid_order,
    world,
)
from tests.realtime_support import until
from tests.support import GraphQLClient, WSClient, gid

__all__ = ["world"]

WS = Callable[..., Any]


def figures(orders: int, gross: int, refund: int = 0) -> dict[str, Any]:
    """One currency's sales as the subscription shows them (usd, no discounts)."""
    return {
        "currency": "usd",
        "orders": orders,
        "grossCents": gross,
        "discountCents": 0,
        "refundCents": refund,
        "netCents": gross - refund,
        "feesCents": None,
    }


def counts(
    reason: str, registrations: int, issued: int, checked_in: int, sales: list[dict[str, Any]]
) -> dict[str, Any]:
    return {
        "reason": reason,
        "registrations": registrations,
        "ticketsIssued": issued,
        "ticketsCheckedIn": checked_in,
        "sales": sales,
    }


async def next_counts(client: WSClient, op: str, event: str | None = None) -> dict[str, Any]:
    """The next message of the subscription, without its type and event id (which
    must be `event`'s, when given)."""
    payload = await client.next_payload(op)
    assert "errors" not in payload, payload
    result: dict[str, Any] = dict(payload["data"]["eventConsoleCounts"])
    assert result.pop("__typename") == "ConsoleCounts", result
    event_id = result.pop("eventId")
    assert event is None or event_id == event
    return result


async def follow(ws: WS, world: World, token: str) -> tuple[WSClient, str, dict[str, Any]]:
    """A client following the event's counts, and its first message."""
    client = await ws(token=token)
    event = gid("Event", world.event_id)
    op = await client.subscribe(COUNTS, {"event": event})
    return client, op, await next_counts(client, op, event)


def counter(handler: GraphQLTransportWS) -> ConsoleCounter:
    return handler.services.console_counts


async def sell(database: Database, world: World, clock: FrozenClock, **kwargs: Any) -> uuid.UUID:
    """A paid order of one ticket written in SQL, as another process would."""
    return await add_sale(
        database,
        event_id=world.event_id,
        user_id=world.buyer,
        tier_id=world.tier_id,
        paid_at=clock.now(),
        **{"quantity": 1, **kwargs},
    )


async def test_counts_follow_payments_check_ins_and_refunds(
    server: object,
    ws: WS,
    client: GraphQLClient,
    database: Database,
    world: World,
    clock: FrozenClock,
) -> None:
    """Snapshot, then a webhook-paid order, a scan at the door and a refund, each seen."""
    earlier = await sell(database, world, clock, quantity=2, checked_in=1)
    watcher, op, first = await follow(ws, world, world.organizer_token)
    assert first == counts("SNAPSHOT", 1, 2, 1, [figures(1, 2 * PRICE)])

    order = await paid_order(client, database, world, clock, 2)
    assert await next_counts(watcher, op) == counts("CHANGE", 2, 4, 1, [figures(2, 4 * PRICE)])

    token = await ticket_token(database, earlier, sequence=2)
    scanned = await client(CHECK_IN, {"token": token}, token=world.organizer_token)
    assert scanned["checkIn"]["__typename"] == "CheckInPayload"
    assert await next_counts(watcher, op) == counts("CHANGE", 2, 4, 2, [figures(2, 4 * PRICE)])

    refunded = await client(REFUND, {"order": order["id"]}, token=world.organizer_token)
    assert refunded["refundOrder"]["__typename"] == "RefundPayload"
    after_refund = counts("CHANGE", 2, 2, 2, [figures(2, 4 * PRICE, refund=2 * PRICE)])
    assert await next_counts(watcher, op) == after_refund
    await watcher.expect_nothing(0.4)
    await assert_books_balanced(database)


async def ticket_token(database: Database, order_id: uuid.UUID, *, sequence: int) -> str:
    async with database.connection() as conn:
        token: str = await conn.raw_connection.fetchval(
            """SELECT k.token FROM ticketing.ticket_tokens k
                 JOIN ticketing.tickets t ON t.id = k.ticket_id
                WHERE t.order_id = $1 AND t.sequence_number = $2""",
            order_id,
            sequence,
        )
    return token


async def test_one_recompute_per_event_for_all_its_subscribers_and_other_processes_reach_them(
    ws: WS, database: Database, world: World, clock: FrozenClock, handler: GraphQLTransportWS
) -> None:
    """The organizer twice (one shared execution) and an admin (their own execution)
    follow one reader; a sale committed in SQL by another process, with the message a
    payment publishes, reaches all three after one recompute."""
    admin = world.token(await add_user(database, "admin"), Role.ADMIN)
    followers = [
        await follow(ws, world, world.organizer_token),
        await follow(ws, world, world.organizer_token),
        await follow(ws, world, admin),
    ]
    assert all(first == counts("SNAPSHOT", 0, 0, 0, []) for _, _, first in followers)
    await until(lambda: counter(handler).following(world.event_id) == 2)
    assert handler.multiplexer.group_count == 2
    assert counter(handler).recomputes == 1

    await sell(database, world, clock, announce=True)
    for watcher, op, _ in followers:
        assert await next_counts(watcher, op) == counts("CHANGE", 1, 1, 0, [figures(1, PRICE)])
    assert counter(handler).recomputes == 2
    await assert_books_balanced(database)


async def test_a_burst_of_paid_orders_is_coalesced(
    ws: WS, database: Database, world: World, clock: FrozenClock, handler: GraphQLTransportWS
) -> None:
    """100 orders paid back to back cost about one recompute per interval (shared by
    both subscribers), not 100 per subscriber, and the last message has all 100."""
    admin = world.token(await add_user(database, "admin"), Role.ADMIN)
    followers = [await follow(ws, world, world.organizer_token), await follow(ws, world, admin)]
    await until(lambda: counter(handler).following(world.event_id) == 2)
    async with database.connection() as conn:
        await conn.raw_connection.execute(
            "UPDATE ticketing.ticket_tiers SET quantity = 200 WHERE id = $1", world.tier_id
        )
    started = time.monotonic()
    for _ in range(100):
        await sell(database, world, clock, announce=True)
    elapsed = time.monotonic() - started
    for watcher, op, _ in followers:
        received = 0
        latest: dict[str, Any] = {}
        while latest.get("registrations") != 100:
            latest = await next_counts(watcher, op)
            received += 1
        assert latest == counts("CHANGE", 100, 100, 0, [figures(100, 100 * PRICE)])
        assert received <= counter(handler).recomputes - 1
    recomputes = counter(handler).recomputes - 1  # after the snapshot
    interval = counter(handler).interval
    assert recomputes <= elapsed / interval + 2, (recomputes, elapsed)
    assert recomputes < 50
    await assert_books_balanced(database)


async def test_fresh_counts_after_a_listener_gap(
    ws: WS,
    database: Database,
    database_url: str,
    world: World,
    clock: FrozenClock,
    handler: GraphQLTransportWS,
) -> None:
    """A sale whose message was lost (none sent) shows up once the listener reconnects."""
    watcher, op, first = await follow(ws, world, world.organizer_token)
    assert first["registrations"] == 0
    await sell(database, world, clock)  # no message: as if it were lost in the gap
    pid = handler.services.hub.listener_pid
    admin = await asyncpg.connect(database_url)
    try:
        assert await admin.fetchval("SELECT pg_terminate_backend($1)", pid)
    finally:
        await admin.close()
    assert await next_counts(watcher, op) == counts("RESYNC", 1, 1, 0, [figures(1, PRICE)])


async def test_only_the_events_managers_may_follow_its_counts(
    ws: WS, database: Database, world: World, handler: GraphQLTransportWS
) -> None:
    """A fan gets NOT_ALLOWED, the anonymous UNAUTHENTICATED, another organizer
    EVENT_NOT_FOUND (the console queries' errors), then the subscription completes."""
    other = world.token(await add_user(database, "organizer"), Role.ORGANIZER)
    for token, code in (
        (world.buyer_token, "NOT_ALLOWED"),
        (None, "UNAUTHENTICATED"),
        (other, "EVENT_NOT_FOUND"),
    ):
        client = await ws(token=token)
        op = await client.subscribe(COUNTS, {"event": gid("Event", world.event_id)})
        payload = await client.next_payload(op)
        assert "errors" not in payload, payload
        refusal = payload["data"]["eventConsoleCounts"]
        assert refusal["__typename"] == "OrderError" and refusal["code"] == code, refusal
        assert await client.receive() == {"id": op, "type": "complete"}
    assert counter(handler).following(world.event_id) == 0
    assert counter(handler).recomputes == 0
    assert await count(database, "SELECT count(*) FROM ticketing.orders") == 0
