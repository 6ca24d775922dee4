"""Several API processes on one database: PostgreSQL is the only shared component."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest
from databases import Database

from db.core import transaction
from db.holds import COUNTERS
from db.notify import announce_tier
from liventix.auth import Role
from tests.support import ApiProcess, GraphQLClient, WSClient, key_of
from tests.test_realtime_ws import AVAILABILITY, EVENT, RESERVE

pytestmark = pytest.mark.slow


async def test_change_through_one_process_reaches_a_subscriber_of_the_other_and_a_rollback_nobody(
    two_processes: tuple[ApiProcess, ApiProcess],
    database: Database,
    token: Callable[..., str],
) -> None:
    a, b = two_processes
    subscriber = WSClient(f"ws://127.0.0.1:{a.port}/graphql")
    await subscriber.connect()
    await subscriber.init()
    try:
        op = await subscriber.subscribe(AVAILABILITY, {"e": EVENT})
        snapshot = (await subscriber.next_payload(op))["data"]["tierAvailability"]
        tier = snapshot["tiers"][1]

        # A change that rolls back is announced to nobody.
        with pytest.raises(RuntimeError):
            async with transaction(database) as conn:
                row = await conn.fetchrow(
                    f"""UPDATE ticketing.ticket_tiers SET reserved_quantity = 7 WHERE id = $1
                        RETURNING {COUNTERS}""",
                    key_of(tier["tierId"]),
                )
                await announce_tier(conn, row)
                raise RuntimeError("roll back")

        # A change made through process B reaches the subscriber on process A.
        async with httpx.AsyncClient(base_url=b.url) as http:
            data: dict[str, Any] = await GraphQLClient(http)(
                RESERVE, {"t": tier["tierId"]}, token=token(Role.USER)
            )
        assert data == {"reserveTickets": {"__typename": "HoldPayload"}}
        change = (await subscriber.next_payload(op))["data"]["tierAvailability"]
        assert change["reason"] == "CHANGE"
        changed = next(t for t in change["tiers"] if t["tierId"] == tier["tierId"])
        assert changed["reserved"] == 2  # never the rolled-back 7
        await subscriber.expect_nothing(0.3)
    finally:
        await subscriber.close()
