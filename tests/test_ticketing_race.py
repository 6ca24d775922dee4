"""Flash-sale races over real HTTP against a running server, with controls.

Buyers are distinct users sending real concurrent requests (`asyncio.gather` over an
httpx client against the `server` fixture) while a separate connection polls the
tier's counters. The controls swap the guarded hold transaction for a naive
read-then-write one (defined here, used only here) and show the same harness catches
the oversell, or the CHECK constraint catches it when that is still in place.
"""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import asyncpg
import httpx
import pytest
from databases import Database

import db.errors
import db.holds
import db.reservations
import db.users
from db.core import transaction
from liventix.clock import FrozenClock
from tests.test_ticketing import RESERVE, seed_tier, tier_row


@dataclass
class RaceResult:
    statuses: list[int] = field(default_factory=list)
    bodies: list[dict[str, Any]] = field(default_factory=list)
    max_taken: int = 0
    polls: int = 0

    def answers(self, typename: str) -> list[dict[str, Any]]:
        return [
            b["data"]["reserveTickets"]
            for b in self.bodies
            if (b.get("data") or {}).get("reserveTickets", {}).get("__typename") == typename
        ]

    @property
    def errors(self) -> list[Any]:
        return [b["errors"] for b in self.bodies if b.get("errors")]


async def race(
    server: Any,
    database_url: str,
    tier_id: uuid.UUID,
    tokens: list[str],
    quantities: list[int],
) -> RaceResult:
    """Send one hold request per token at once; poll reserved + issued meanwhile."""
    result = RaceResult()
    done = asyncio.Event()
    poll_conn = await asyncpg.connect(database_url)

    async def poll() -> None:
        while not done.is_set():
            taken = await poll_conn.fetchval(
                """SELECT reserved_quantity + issued_quantity
                     FROM ticketing.ticket_tiers WHERE id = $1""",
                tier_id,
            )
            result.max_taken = max(result.max_taken, taken)
            result.polls += 1

    limits = httpx.Limits(max_connections=len(tokens), max_keepalive_connections=len(tokens))
    async with httpx.AsyncClient(base_url=server.http_url, timeout=30, limits=limits) as http:

        async def buy(token: str, quantity: int) -> httpx.Response:
            return await http.post(
                "/graphql",
                json={"query": RESERVE, "variables": {"tier": str(tier_id), "q": quantity}},
                headers={"Authorization": f"Bearer {token}"},
            )

        poller = asyncio.create_task(poll())
        try:
            responses = await asyncio.gather(
                *(buy(t, q) for t, q in zip(tokens, quantities, strict=True))
            )
        finally:
            done.set()
            await poller
            await poll_conn.close()
    result.statuses = [r.status_code for r in responses]
    result.bodies = [r.json() for r in responses]
    return result


async def test_hundred_buyers_race_for_fifty_tickets(
    server: Any,
    database: Database,
    database_url: str,
    clock: FrozenClock,
    token: Callable[..., str],
) -> None:
    """100 concurrent 1-ticket holds on 50 seats: exactly 50 win, 50 SOLD_OUT, no 5xx."""
    _, tier = await seed_tier(database, clock.now(), quantity=50)
    tokens = [token("user") for _ in range(100)]
    result = await race(server, database_url, tier.id, tokens, [1] * 100)
    assert all(status == 200 for status in result.statuses), result.statuses
    assert not result.errors, result.errors[:3]
    assert len(result.answers("HoldPayload")) == 50
    sold_out = result.answers("TicketingError")
    assert len(sold_out) == 50 and {a["code"] for a in sold_out} == {"SOLD_OUT"}
    assert result.polls > 0 and result.max_taken <= 50
    row = await tier_row(database, tier.id)
    assert (row["reserved_quantity"], row["issued_quantity"]) == (50, 0)


async def test_mixed_quantities_race_for_the_last_tickets(
    server: Any,
    database: Database,
    database_url: str,
    clock: FrozenClock,
    token: Callable[..., str],
) -> None:
    """Buyers of 1-4 tickets race for the last 6: never oversold, no buyer refused wrongly."""
    _, tier = await seed_tier(database, clock.now(), quantity=50)
    for _ in range(11):  # 44 of 50 already held by earlier buyers
        buyer = uuid.uuid4()
        await db.users.ensure_profile(database, buyer, "user")
        await db.reservations.reserve_tickets(
            database, buyer, tier.id, 4, now=clock.now(), ttl_seconds=900
        )
    rng = random.Random(20240601)
    quantities = [rng.randint(1, 4) for _ in range(40)]
    tokens = [token("user") for _ in quantities]
    result = await race(server, database_url, tier.id, tokens, quantities)
    assert all(status == 200 for status in result.statuses)
    assert not result.errors
    won = sum(a["hold"]["quantity"] for a in result.answers("HoldPayload"))
    refused = [
        q
        for q, b in zip(quantities, result.bodies, strict=True)
        if b["data"]["reserveTickets"]["__typename"] == "TicketingError"
    ]
    assert won <= 6 and result.max_taken <= 50
    row = await tier_row(database, tier.id)
    assert row["reserved_quantity"] == 44 + won
    left = row["quantity"] - row["reserved_quantity"] - row["issued_quantity"]
    assert refused and left < min(refused), "a buyer was refused while capacity remained"


# --- controls: the same harness with the guard taken away ---------------------------


async def unguarded_reserve(
    database: Database,
    user_id: uuid.UUID,
    tier_id: uuid.UUID,
    quantity: int,
    *,
    now: datetime,
    ttl_seconds: int,
) -> db.holds.HoldRecord:
    """The classic bug: read what is free, decide in Python, then write unconditionally."""
    async with transaction(database) as conn:
        tier = await conn.fetchrow(
            """SELECT event_id, quantity - reserved_quantity - issued_quantity AS free
                 FROM ticketing.ticket_tiers WHERE id = $1""",
            tier_id,
        )
        assert tier is not None
        if tier["free"] < quantity:
            raise db.errors.TicketingError("Sold out", code="SOLD_OUT", available=tier["free"])
        await conn.execute(
            """UPDATE ticketing.ticket_tiers SET reserved_quantity = reserved_quantity + $2
                WHERE id = $1""",
            tier_id,
            quantity,
        )
        row = await conn.fetchrow(
            f"""INSERT INTO ticketing.ticket_holds
                    (tier_id, event_id, user_id, quantity, expires_at)
                VALUES ($1, $2, $3, $4, $5) RETURNING {db.holds.HOLD_COLUMNS}""",
            tier_id,
            tier["event_id"],
            user_id,
            quantity,
            now + timedelta(seconds=ttl_seconds),
        )
    assert row is not None
    return db.holds.HoldRecord.from_row(row)


async def test_control_without_guard_or_check_the_harness_sees_oversell(
    server: Any,
    database: Database,
    database_url: str,
    clock: FrozenClock,
    token: Callable[..., str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With the conditional update and the CHECK both gone, the same race oversells."""
    _, tier = await seed_tier(database, clock.now(), quantity=50)
    async with transaction(database) as conn:
        await conn.execute("ALTER TABLE ticketing.ticket_tiers DROP CONSTRAINT tier_never_oversold")
    monkeypatch.setattr(db.reservations, "reserve_tickets", unguarded_reserve)
    result = await race(
        server, database_url, tier.id, [token("user") for _ in range(100)], [1] * 100
    )
    row = await tier_row(database, tier.id)
    oversold = row["reserved_quantity"] - row["quantity"]
    assert len(result.answers("HoldPayload")) > 50
    assert oversold > 0 and result.max_taken > 50


async def test_control_without_guard_the_check_constraint_fires(
    server: Any,
    database: Database,
    database_url: str,
    clock: FrozenClock,
    token: Callable[..., str],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """With only the CHECK left, the naive path's oversell attempts fail in the database."""
    _, tier = await seed_tier(database, clock.now(), quantity=50)
    monkeypatch.setattr(db.reservations, "reserve_tickets", unguarded_reserve)
    with caplog.at_level("ERROR", logger="liventix.graphql"):
        result = await race(
            server, database_url, tier.id, [token("user") for _ in range(100)], [1] * 100
        )
    assert result.errors, "expected the CHECK constraint to reject some writes"
    assert any("tier_never_oversold" in str(r.exc_info) for r in caplog.records if r.exc_info)
    assert result.max_taken <= 50
    assert (await tier_row(database, tier.id))["reserved_quantity"] <= 50
