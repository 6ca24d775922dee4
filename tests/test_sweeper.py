"""The hold sweeper ends pending orders whose holds all lapsed, and late payments still count.

A pending order whose every hold expired is marked `expired` by the sweep; an order
that still has an active hold stays pending. An expired order is not final: the
payment that succeeds afterwards completes it with tickets (SPEC invariant 6).
"""

from __future__ import annotations

from databases import Database

import db.sweeper
from liventix.auth import Role
from liventix.clock import FrozenClock
from liventix.settings import Settings
from tests.orders_support import (
    World,
    add_user,
    assert_books_balanced,
    checkout,
    hold,
    order_of,
    order_row,
    pending_order,
    tier_counts,
    webhook,
    world,
)
from tests.support import GraphQLClient

__all__ = ["world"]  # the fixture, re-exported for pytest


async def test_a_pending_order_whose_holds_lapsed_expires_and_a_late_payment_completes_it(
    client: GraphQLClient,
    database: Database,
    world: World,
    clock: FrozenClock,
    settings: Settings,
) -> None:
    order = await pending_order(client, database, world, clock, 2)
    clock.advance(901)
    report = await db.sweeper.sweep_expired_holds(database, clock.now())
    assert (report.expired_holds, report.expired_orders) == (1, 1)
    assert (await order_row(database, order["id"]))["status"] == "expired"
    again = await db.sweeper.sweep_expired_holds(database, clock.now())
    assert again.expired_orders == 0
    answer = await webhook(client, settings, "payment_intent.succeeded", order)
    assert answer["result"] == "paid"
    assert (await order_row(database, order["id"]))["status"] == "paid"
    assert await tier_counts(database, world.tier_id) == (10, 0, 2)
    await assert_books_balanced(database)


async def test_an_order_with_an_active_hold_stays_pending(
    client: GraphQLClient, database: Database, world: World, clock: FrozenClock
) -> None:
    """Only orders whose holds all lapsed expire: one checked out later is untouched."""
    early = await pending_order(client, database, world, clock, 1)
    clock.advance(600)
    other = await add_user(database)
    held = await hold(database, clock, other, world.tier_id, 1)
    later = order_of(await checkout(client, world.token(other, Role.USER), [held]))
    clock.advance(301)  # the first hold lapsed; the other has 599 s left
    report = await db.sweeper.sweep_expired_holds(database, clock.now())
    assert (report.expired_holds, report.expired_orders) == (1, 1)
    assert (await order_row(database, early["id"]))["status"] == "expired"
    assert (await order_row(database, later["id"]))["status"] == "pending"
    await assert_books_balanced(database)
