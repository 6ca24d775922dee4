"""Several API processes on one database: PostgreSQL is the only shared component."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
from databases import Database

import db.demo
from db.core import transaction
from db.notify import announce_tier
from liventix.auth import Role
from tests.conftest import free_port
from tests.support import GraphQLClient, WSClient
from tests.test_realtime_ws import AVAILABILITY, EVENT, RESERVE

pytestmark = pytest.mark.slow


class ApiProcess:
    """`liventix serve` in a subprocess, on its own port."""

    def __init__(self, database_url: str) -> None:
        self.port = free_port()
        env = {
            **os.environ,
            "DATABASE_URL": database_url,
            "JOBS_ENABLED": "false",
            "RATE_LIMIT_ENABLED": "false",
            "ENVIRONMENT": "test",
            "LOG_LEVEL": "warning",
            "PORT": str(self.port),
        }
        self.process = subprocess.Popen(
            [sys.executable, "-m", "liventix.cli", "serve"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def ready(self, http: httpx.AsyncClient) -> None:
        for _ in range(300):
            if self.process.poll() is not None:
                raise RuntimeError(
                    self.process.stderr.read().decode() if self.process.stderr else ""
                )
            try:
                if (await http.get(f"{self.url}/readyz")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.05)
        raise RuntimeError("API process did not become ready")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        if self.process.stderr is not None:
            self.process.stderr.close()


@pytest.fixture
async def two_processes(
    database_url: str, database: Database
) -> AsyncIterator[tuple[ApiProcess, ApiProcess]]:
    await db.demo.seed(database)
    a, b = ApiProcess(database_url), ApiProcess(database_url)
    try:
        async with httpx.AsyncClient() as http:
            await asyncio.gather(a.ready(http), b.ready(http))
        yield a, b
    finally:
        a.stop()
        b.stop()


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
                    """UPDATE ticketing.ticket_tiers SET reserved_quantity = 7 WHERE id = $1
                       RETURNING id, event_id, quantity, reserved_quantity, issued_quantity,
                                 version""",
                    tier["tierId"],
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
