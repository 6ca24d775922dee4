"""Helpers of the realtime tests: raw notifications and a poll for server-side state.

Production code announces typed messages (`db.notify.publish` with a `db.channels`
message); these tests need to put arbitrary wire objects on the channel, exactly as
they travel, so they bypass the types on purpose.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import asyncpg
import orjson

from db.channels import NOTIFY_CHANNEL


async def until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    """Poll server-side state that has no event to wait on (it lives in another thread)."""
    async with asyncio.timeout(timeout):
        while not condition():  # noqa: ASYNC110
            await asyncio.sleep(0.01)


async def notify_raw(conn: asyncpg.Connection, channel: str, **payload: Any) -> None:
    """`pg_notify` the wire object ``{"ch": channel, **payload}`` (delivered on commit
    of the transaction `conn` is in, if any)."""
    body = orjson.dumps({"ch": channel, **payload}, default=str).decode()
    await conn.execute("SELECT pg_notify($1, $2)", NOTIFY_CHANNEL, body)
