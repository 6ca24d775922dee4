"""Randomized reserve / release / expire / sweep interleavings against a simple model.

Hypothesis generates short programs; each runs on a fresh tier through the real
repository functions. After every step the tier's counters must equal the model's
(reserved == sum of active holds), stay within bounds, and after a sweep reserved must
equal the sum of active, unexpired holds. Outcomes (success or SOLD_OUT) must match
the model too, so a refusal while capacity was free is caught, not just an oversell.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from databases import Database
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import db.errors
import db.events
import db.reservations
import db.sweeper
import db.users
from db.core import connection
from tests.test_ticketing import seed_tier

CAPACITY = 4
MAX_PER_ORDER = 3
TTL = 600
USERS = 4

step = st.one_of(
    st.tuples(st.just("reserve"), st.integers(0, USERS - 1), st.integers(1, MAX_PER_ORDER + 1)),
    st.tuples(st.just("release"), st.integers(0, USERS - 1), st.just(0)),
    st.tuples(st.just("advance"), st.sampled_from([300, 599, 600, 601]), st.just(0)),
    st.tuples(st.just("sweep"), st.just(0), st.just(0)),
)


@dataclass
class ModelHold:
    id: uuid.UUID
    quantity: int
    expires_at: datetime


class Model:
    """Active holds (expired ones included until something expires them)."""

    def __init__(self) -> None:
        self.holds: dict[int, ModelHold] = {}

    def reserved(self) -> int:
        return sum(h.quantity for h in self.holds.values())

    def expire(self, now: datetime) -> None:
        self.holds = {u: h for u, h in self.holds.items() if h.expires_at > now}

    def reserve(self, user: int, quantity: int, now: datetime) -> str | None:
        """The expected error code, or None when the hold should succeed."""
        if quantity > MAX_PER_ORDER:
            return "MAX_PER_ORDER_EXCEEDED"
        own = self.holds.get(user)
        if own is not None and own.expires_at <= now:
            self.expire(now)
            own = None
        delta = quantity - (own.quantity if own else 0)
        if delta > 0 and CAPACITY - self.reserved() < delta:
            self.expire(now)
            if CAPACITY - self.reserved() < delta:
                return "SOLD_OUT"
        return None


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(program=st.lists(step, min_size=1, max_size=14))
# A refusal after the buyer's own hold lapsed must still retire the lapsed hold.
@example(program=[("reserve", 0, 1), ("advance", 600, 0), ("reserve", 1, 2), ("reserve", 0, 3)])
async def test_random_interleavings_keep_counters_exact(
    database: Database, program: list[tuple[str, int, int]]
) -> None:
    """Counters always equal the model; after a sweep, reserved == active unexpired holds."""
    now = datetime(2030, 1, 1, tzinfo=UTC)
    _, tier = await seed_tier(database, now, quantity=CAPACITY, max_per_order=MAX_PER_ORDER)
    users = [uuid.uuid4() for _ in range(USERS)]
    for user in users:
        await db.users.ensure_profile(database, user, "user")
    model = Model()
    for op, a, b in program:
        if op == "reserve":
            expected = model.reserve(a, b, now)
            try:
                hold = await db.reservations.reserve_tickets(
                    database, users[a], tier.id, b, now=now, ttl_seconds=TTL
                )
            except db.errors.TicketingError as error:
                assert error.code == expected, (op, a, b)
            else:
                assert expected is None, (op, a, b, expected)
                model.holds[a] = ModelHold(hold.id, b, now + timedelta(seconds=TTL))
        elif op == "release":
            held = model.holds.pop(a, None)
            if held is not None:
                released = await db.reservations.release_hold(
                    database, db.events.Actor(user_id=users[a]), held.id, now
                )
                assert released.status == "released"
        elif op == "advance":
            now += timedelta(seconds=a)
        else:
            await db.sweeper.sweep_expired_holds(database, now)
            model.expire(now)
        async with connection(database) as conn:
            row = await conn.fetchrow(
                """SELECT t.quantity, t.reserved_quantity, t.issued_quantity,
                          coalesce(sum(h.quantity) FILTER (WHERE h.status = 'active'), 0)
                              AS active,
                          coalesce(sum(h.quantity) FILTER (
                              WHERE h.status = 'active' AND h.expires_at > $2), 0) AS live
                     FROM ticketing.ticket_tiers t
                     LEFT JOIN ticketing.ticket_holds h ON h.tier_id = t.id
                    WHERE t.id = $1
                    GROUP BY t.id""",
                tier.id,
                now,
            )
        assert row is not None
        assert 0 <= row["reserved_quantity"] <= row["quantity"] - row["issued_quantity"]
        assert row["reserved_quantity"] == row["active"] == model.reserved(), (op, a, b)
        if op == "sweep":
            assert row["reserved_quantity"] == row["live"]
