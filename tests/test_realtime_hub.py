"""The hub against a real PostgreSQL: commit-only delivery, listener recovery, bounds."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest
from databases import Database

from db.core import transaction
from liventix.realtime import Hub, SubscriberTooSlow, Subscription, load_once, metrics
from liventix.realtime.backend import ReliablePostgresBackend
from tests.realtime_support import notify_raw


@pytest.fixture
async def hub(database_url: str) -> AsyncIterator[Hub]:
    backend = ReliablePostgresBackend(database_url, min_backoff=0.01, health_interval=0.5)
    running = Hub(database_url, buffer_size=8, backend=backend)
    await running.start()
    try:
        yield running
    finally:
        await running.stop()


async def next_message(sub: Subscription, timeout: float = 5.0) -> dict[str, object]:
    async with asyncio.timeout(timeout):
        return await anext(aiter(sub))


async def test_committed_change_is_delivered_and_rolled_back_one_is_not(
    hub: Hub, database: Database
) -> None:
    key = f"feed:{uuid.uuid4()}"
    async with hub.subscribe(key) as sub:
        with pytest.raises(RuntimeError):
            async with transaction(database) as conn:
                await notify_raw(conn, key, op="created", post_id="rolled-back")
                raise RuntimeError("abort the transaction")
        async with transaction(database) as conn:
            await notify_raw(conn, key, op="created", post_id="committed")
        message = await next_message(sub)
        # The rolled-back notification would have arrived first: notifications are
        # delivered in commit order, and it never committed.
        assert message["post_id"] == "committed"
        assert message["ch"] == key


async def test_messages_reach_only_subscribers_of_their_key(hub: Hub, database: Database) -> None:
    a, b = f"tier:{uuid.uuid4()}", f"tier:{uuid.uuid4()}"
    async with hub.subscribe(a) as sub_a, hub.subscribe(b) as sub_b:
        async with transaction(database) as conn:
            await notify_raw(conn, b, op="created", n=1)
            await notify_raw(conn, a, op="created", n=2)
        assert (await next_message(sub_a))["n"] == 2
        assert (await next_message(sub_b))["n"] == 1
        assert hub.subscriber_count(a) == 1
        assert hub.subscriber_count() == 2
    assert hub.subscriber_count() == 0


async def test_killed_listener_reconnects_resyncs_and_delivers_later_changes(
    hub: Hub, database: Database, database_url: str
) -> None:
    key = f"feed:{uuid.uuid4()}"
    pid = hub.listener_pid
    assert pid is not None
    disconnects = metrics.LISTENER_DISCONNECTS._value.get()
    reconnects = metrics.LISTENER_RECONNECTS._value.get()
    async with hub.subscribe(key) as first, hub.subscribe(key) as second:
        admin = await asyncpg.connect(database_url)
        try:
            assert await admin.fetchval("SELECT pg_terminate_backend($1)", pid)
        finally:
            await admin.close()
        for sub in (first, second):
            assert await next_message(sub) == {"ch": key, "op": "resync"}
        assert hub.listener_pid not in (None, pid)
        async with transaction(database) as conn:
            await notify_raw(conn, key, op="created", post_id="after")
        for sub in (first, second):
            assert (await next_message(sub))["post_id"] == "after"
    assert metrics.LISTENER_DISCONNECTS._value.get() == disconnects + 1
    assert metrics.LISTENER_RECONNECTS._value.get() == reconnects + 1


async def test_tier_updates_coalesce_to_the_latest_per_tier(hub: Hub) -> None:
    key = f"tier:{uuid.uuid4()}"
    async with hub.subscribe(key) as sub:
        for reserved in range(50):  # far more than the buffer of 8
            hub.dispatch({"ch": key, "op": "tier", "tier_id": "t1", "reserved": reserved})
            hub.dispatch({"ch": key, "op": "tier", "tier_id": "t2", "reserved": -reserved})
        assert not sub.overflowed
        assert (await next_message(sub))["reserved"] == 49
        assert (await next_message(sub))["reserved"] == -49


async def test_a_subscriber_that_never_reads_is_dropped_not_grown(hub: Hub) -> None:
    key = f"feed:{uuid.uuid4()}"
    dropped = metrics.SLOW_SUBSCRIBERS_DROPPED.labels("hub")._value.get()
    async with hub.subscribe(key) as slow, hub.subscribe(key) as fast:
        reader = asyncio.create_task(next_message(fast))
        for n in range(1000):
            hub.dispatch({"ch": key, "op": "created", "n": n})
            if n == 0:
                assert (await reader)["n"] == 0
        assert slow.overflowed
        assert len(slow._mailbox) == 0  # its backlog was released, not kept
        with pytest.raises(SubscriberTooSlow):
            await next_message(slow)
        assert not fast.overflowed or len(fast._mailbox) == 0
    assert metrics.SLOW_SUBSCRIBERS_DROPPED.labels("hub")._value.get() >= dropped + 1


async def test_work_per_notification_is_shared_by_its_subscribers(hub: Hub) -> None:
    key = f"feed:{uuid.uuid4()}"
    calls = 0

    async def load() -> str:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0)
        return "post"

    async with hub.subscribe(key) as a, hub.subscribe(key) as b:
        hub.dispatch({"ch": key, "op": "created", "post_id": "p"})
        messages = [await next_message(a), await next_message(b)]
        assert messages[0] is messages[1]
        results = await asyncio.gather(*(load_once(m, "post", load) for m in messages))
    assert results == ["post", "post"]
    assert calls == 1


async def test_stop_ends_subscribers_iterators(database_url: str) -> None:
    running = Hub(database_url, buffer_size=4)
    await running.start()
    async with running.subscribe("feed:x") as sub:
        reader = asyncio.create_task(next_message(sub))
        await asyncio.sleep(0)
        await running.stop()
        with pytest.raises(StopAsyncIteration):
            await reader
