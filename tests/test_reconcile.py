"""Reconciliation, operations views and contact anonymization."""

from __future__ import annotations

from datetime import timedelta

import orjson
from databases import Database
from starlette.applications import Starlette

import db.ops_views
import db.refunds
from db.core import transaction
from liventix import jobs
from liventix.auth import Role
from liventix.clock import FrozenClock
from liventix.settings import Settings
from liventix.signed_events import sign
from tests.orders_support import (
    World,
    assert_books_balanced,
    checkout,
    count,
    hold,
    order_row,
    paid_order,
    tier_counts,
    world,
)
from tests.support import GraphQLClient, gid, job_named, key_of

__all__ = ["world"]


async def test_reconcile_repairs_orphans_and_drift_and_reports(
    client: GraphQLClient,
    app: Starlette,
    database: Database,
    world: World,
    clock: FrozenClock,
) -> None:
    held = await hold(database, clock, world.buyer, world.tier_id, 2)
    result = await checkout(client, world.buyer_token, [held])
    # Break the books the ways a bug or a manual edit would: a paid order with no
    # tickets, and a counter that no longer matches its rows.
    async with transaction(database) as conn:
        await conn.execute(
            "UPDATE ticketing.orders SET status = 'paid' WHERE id = $1",
            key_of(result["order"]["id"]),
        )
        await conn.execute(
            "UPDATE ticketing.ticket_tiers SET issued_quantity = 3 WHERE id = $1",
            world.free_tier_id,
        )
    assert await db.ops_views.alert_counts(database) == (1, 0)

    report = await jobs.run_once(app.state.services, job_named("reconcile"))
    assert report is not None
    assert report["completed_orders"] == [str(key_of(result["order"]["id"]))]
    assert [c["tier_id"] for c in report["corrected_tiers"]] == [str(world.free_tier_id)]
    assert await tier_counts(database, world.tier_id) == (10, 0, 2)
    assert await tier_counts(database, world.free_tier_id) == (5, 0, 0)
    await assert_books_balanced(database)

    admin = world.token(world.organizer, Role.ADMIN)
    data = await client(
        """{ reconciliationReports { status items report }
             eventHealth { eventId sold healthScore paidOrdersWithoutTickets }
             eventReadiness { eventId overallStatus } }""",
        token=admin,
    )
    (run,) = data["reconciliationReports"]
    assert run["status"] == "ok" and run["items"] == 2
    assert run["report"]["completed_orders"] == [str(key_of(result["order"]["id"]))]
    assert data["eventHealth"] == [
        {
            "eventId": gid("Event", world.event_id),
            "sold": 2,
            "healthScore": 100,
            "paidOrdersWithoutTickets": 0,
        }
    ]
    assert data["eventReadiness"] == [
        {"eventId": gid("Event", world.event_id), "overallStatus": "ready"}
    ]
    refused = await client.post("{ eventHealth { eventId } }", token=world.organizer_token)
    assert refused.json()["errors"][0]["extensions"]["code"] == "FORBIDDEN"


async def test_reconcile_retries_refunds_the_gateway_never_confirmed(
    client: GraphQLClient,
    app: Starlette,
    database: Database,
    world: World,
    clock: FrozenClock,
) -> None:
    order = await paid_order(client, database, world, clock, 1)
    app.state.services.payments.fail_next = True  # the gateway is down during the refund
    refund = await client(
        "mutation ($o: ID!) { refundOrder(orderId: $o, reason: EVENT_CANCELED) { __typename } }",
        {"o": order["id"]},
        token=world.organizer_token,
    )
    assert refund["refundOrder"]["__typename"] == "RefundPayload"
    assert len(await db.refunds.unsettled_refunds(database)) == 1
    report = await jobs.run_once(app.state.services, job_named("reconcile"))
    assert report is not None and len(report["refunds_settled"]) == 1
    assert await db.refunds.unsettled_refunds(database) == []
    assert len(app.state.services.payments.refunds()) == 1


async def test_contacts_are_anonymized_long_after_the_event(
    client: GraphQLClient,
    app: Starlette,
    database: Database,
    world: World,
    clock: FrozenClock,
) -> None:
    order = await paid_order(client, database, world, clock, 2)
    job = job_named("anonymize_orders")
    clock.advance(timedelta(days=30 + 89).total_seconds())  # event over, 89 days later
    assert (await jobs.run_once(app.state.services, job)) == {
        "anonymized_orders": 0,
        "after_days": 90,
    }
    clock.advance(timedelta(days=2).total_seconds())
    assert (await jobs.run_once(app.state.services, job))["anonymized_orders"] == 1  # type: ignore[index]
    row = await order_row(database, order["id"])
    assert row["contact_email"] is row["contact_name"] is row["contact_phone"] is None
    assert row["total_cents"] == order["totalCents"] and row["status"] == "paid"
    assert await count(database, "SELECT count(*) FROM ticketing.tickets") == 2
    mine = await client(
        "query ($id: ID!) { order(id: $id) { contact { email } totalCents } }",
        {"id": order["id"]},
        token=world.buyer_token,
    )
    assert mine["order"] == {"contact": None, "totalCents": order["totalCents"]}


async def test_reconcile_reports_rejected_stripe_events(
    client: GraphQLClient,
    app: Starlette,
    database: Database,
    clock: FrozenClock,
    settings: Settings,
) -> None:
    """Signed events the webhook refused as malformed are listed for a person: Stripe
    retries them for days and then gives up, so nobody would notice otherwise."""
    report = await jobs.run_once(app.state.services, job_named("reconcile"))
    assert report is not None and report["rejected_events"] == {"count": 0, "latest": []}
    for index in range(3):
        body = orjson.dumps(
            {
                "id": f"evt_bad_{index}",
                "type": "charge.refunded",
                "data": {"object": {"id": "ch_1", "amount_refunded": "abc", "metadata": {}}},
            }
        )
        headers = {"Stripe-Signature": sign(body, settings.stripe_webhook_secret)}
        response = await client.http.post("/webhooks/stripe", content=body, headers=headers)
        assert response.status_code == 400
        clock.advance(1)
    report = await jobs.run_once(app.state.services, job_named("reconcile"))
    assert report is not None
    rejected = report["rejected_events"]
    assert rejected["count"] == 3
    assert [r["id"] for r in rejected["latest"]] == ["evt_bad_2", "evt_bad_1", "evt_bad_0"]
    assert rejected["latest"][0]["type"] == "charge.refunded"
    assert "data.object.amount_refunded" in rejected["latest"][0]["reason"]
