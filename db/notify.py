"""Announce changes from inside the transaction that makes them.

`pg_notify` on the transaction's own connection is delivered by PostgreSQL only when
that transaction commits, in commit order, to every process listening, so a rolled-back
change is never announced and a committed one is never lost to a crash after commit.
Payloads stay small (ids and counters); listeners load anything bigger themselves.
"""

from __future__ import annotations

from typing import Any

import asyncpg
import orjson

CHANNEL = "liventix"
MAX_PAYLOAD_BYTES = 1000


async def publish(conn: asyncpg.Connection, channel: str, **payload: Any) -> None:
    """Queue a notification for `channel` (e.g. ``feed:<event id>``) on commit."""
    body = orjson.dumps({"ch": channel, **payload}, default=str).decode()
    if len(body) > MAX_PAYLOAD_BYTES:
        raise ValueError(f"notification payload too large ({len(body)} bytes)")
    await conn.execute("SELECT pg_notify($1, $2)", CHANNEL, body)


async def announce_tier(conn: asyncpg.Connection, tier: Any) -> None:
    """Announce a tier's counters after they changed (one shape for every writer).

    `tier` is a row (or mapping) with id, event_id, quantity, reserved_quantity,
    issued_quantity and version, as returned by the UPDATE that changed it; the version
    lets subscribers skip a notification older than the state they already hold.
    """
    await publish(
        conn,
        f"tier:{tier['event_id']}",
        op="tier",
        tier_id=str(tier["id"]),
        quantity=tier["quantity"],
        reserved=tier["reserved_quantity"],
        issued=tier["issued_quantity"],
        version=tier["version"],
    )
