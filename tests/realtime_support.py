"""Raw notifications for tests that play another process, a tool, or a malformed sender.

Production code announces typed messages (`db.notify.publish` with a `db.channels`
message); these tests need to put arbitrary wire objects on the channel, exactly as
they travel, so they bypass the types on purpose.
"""

from __future__ import annotations

from typing import Any

import asyncpg
import orjson

from db.channels import NOTIFY_CHANNEL


async def notify_raw(conn: asyncpg.Connection, channel: str, **payload: Any) -> None:
    """`pg_notify` the wire object ``{"ch": channel, **payload}`` (delivered on commit
    of the transaction `conn` is in, if any)."""
    body = orjson.dumps({"ch": channel, **payload}, default=str).decode()
    await conn.execute("SELECT pg_notify($1, $2)", NOTIFY_CHANNEL, body)
