"""The realtime contract (`db.channels`) and local delivery after commit (`db.notify`):
messages survive their wire form, a process hears its own commits at once (and only
those that committed), and subscribers still get each change exactly once."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Sequence

import asyncpg
import orjson
import pytest
from databases import Database

from db.channels import (
    ConsoleMessage,
    FeedMessage,
    Message,
    Resync,
    TierMessage,
    UserMessage,
    supersedes,
)
from db.core import transaction
from db.notify import dispatch_locally, publish
from liventix.realtime import Hub

EVENT, POST, TIER, USER = (uuid.uuid4() for _ in range(4))


@pytest.mark.parametrize(
    "message",
    [
        FeedMessage(EVENT, "created", post_id=POST, seq=7),
        FeedMessage(EVENT, "deleted", post_id=POST, seq=7),
        FeedMessage(EVENT, "event"),
        FeedMessage(EVENT, "author", user_id=USER),
        TierMessage(EVENT, TIER, quantity=10, reserved=2, issued=3, version=9),
        TierMessage(EVENT, TIER, quantity=10, reserved=2, issued=3, version=9, waitlist=4),
        UserMessage(USER, "order_paid", POST, tickets=2),
        UserMessage(USER, "order_refunded", POST, reason="sold_out_after_hold_expired"),
        ConsoleMessage(EVENT, "paid"),
        ConsoleMessage(EVENT, "refunded"),
        ConsoleMessage(EVENT, "checked_in"),
    ],
)
def test_every_message_survives_its_wire_form(message: Message) -> None:
    wire = orjson.loads(orjson.dumps(message.encode()))
    assert wire["ch"] == message.channel
    assert type(message).decode(wire) == message


def test_channel_names_and_resync() -> None:
    assert FeedMessage.channel_of(EVENT) == f"feed:{EVENT}"
    assert TierMessage.channel_of(EVENT) == f"tier:{EVENT}"
    assert UserMessage.channel_of(USER) == f"user:{USER}"
    resync = Resync(f"feed:{EVENT}").encode()
    assert resync == {"ch": f"feed:{EVENT}", "op": "resync"}
    assert FeedMessage.decode(resync) == Resync(f"feed:{EVENT}")
    assert TierMessage.decode({"ch": f"tier:{EVENT}", "op": "resync"}) == Resync(f"tier:{EVENT}")


@pytest.mark.parametrize(
    "wire",
    [
        {"ch": f"tier:{EVENT}", "op": "created", "post_id": str(POST)},  # another channel
        {"ch": "feed:not-a-uuid", "op": "created", "post_id": str(POST)},
        {"ch": f"feed:{EVENT}", "op": "created"},  # no post
        {"ch": f"feed:{EVENT}", "op": "created", "post_id": "nope"},
        {"ch": f"feed:{EVENT}", "op": "exploded", "post_id": str(POST)},
        {"op": "created", "post_id": str(POST)},
    ],
)
def test_malformed_or_foreign_feed_messages_decode_to_none(wire: dict[str, object]) -> None:
    assert FeedMessage.decode(wire) is None


def test_a_tier_message_needs_all_its_counters() -> None:
    wire = TierMessage(EVENT, TIER, 10, 2, 3, 9).encode()
    del wire["version"]
    assert TierMessage.decode(wire) is None


def test_a_tier_message_without_a_waitlist_is_one_with_nobody_waiting() -> None:
    """What a process that does not send the field yet announces (a rolling deploy)."""
    wire = TierMessage(EVENT, TIER, 10, 2, 3, 9, waitlist=4).encode()
    del wire["waitlist"]
    assert TierMessage.decode(wire) == TierMessage(EVENT, TIER, 10, 2, 3, 9)


def test_what_the_public_can_hold_leaves_the_waiting_line_its_seats() -> None:
    assert TierMessage(EVENT, TIER, 10, 2, 3, 9).available == 5
    assert TierMessage(EVENT, TIER, 10, 2, 3, 9, waitlist=4).available == 1
    assert TierMessage(EVENT, TIER, 10, 2, 3, 9, waitlist=7).available == 0


@pytest.fixture
async def hub(database_url: str) -> AsyncIterator[Hub]:
    running = Hub(database_url, buffer_size=8)
    await running.start()
    try:
        yield running
    finally:
        await running.stop()


async def test_a_commit_is_dispatched_locally_after_commit_and_a_rollback_is_not(
    database: Database,
) -> None:
    heard: list[Sequence[Message]] = []
    released: list[bool] = []
    conns: list[asyncpg.Connection] = []

    def dispatcher(messages: Sequence[Message]) -> None:
        heard.append(messages)
        try:
            conns[-1].is_in_transaction()
        except asyncpg.InterfaceError:  # "released back to the pool": committed and done
            released.append(True)
        else:
            released.append(False)

    created = FeedMessage(EVENT, "created", post_id=POST, seq=1)
    with dispatch_locally(database, dispatcher):
        with pytest.raises(RuntimeError):
            async with transaction(database) as conn:
                conns.append(conn)
                await publish(conn, FeedMessage(EVENT, "deleted", post_id=POST))
                raise RuntimeError("roll back")
        assert heard == []
        async with transaction(database) as conn:
            conns.append(conn)
            await publish(conn, created)
            assert heard == [], "dispatched before COMMIT"
        assert heard == [[created]]
        assert released == [True], "dispatched before the transaction ended"
    async with transaction(database) as conn:  # no dispatcher any more
        await publish(conn, created)
    assert heard == [[created]]


async def test_a_rolled_back_savepoint_is_not_dispatched_a_released_one_is(
    database: Database,
) -> None:
    heard: list[Sequence[Message]] = []
    kept = FeedMessage(EVENT, "event")
    undone = FeedMessage(EVENT, "deleted", post_id=POST)
    inner = FeedMessage(EVENT, "author", user_id=USER)
    with dispatch_locally(database, heard.append):
        async with transaction(database) as conn:
            await publish(conn, kept)
            with pytest.raises(RuntimeError):
                async with transaction(database) as savepoint:
                    await publish(savepoint, undone)
                    raise RuntimeError("roll back the savepoint")
            async with transaction(database) as savepoint:
                await publish(savepoint, inner)
            assert heard == [], "a savepoint's release is not the commit"
    assert heard == [[kept, inner]]


async def test_local_commits_reach_watchers_at_once_and_never_subscriptions(
    database: Database, database_url: str
) -> None:
    quiet = Hub(database_url)  # never started: no LISTEN copy can arrive
    key = FeedMessage.channel_of(EVENT)
    watched: list[dict[str, object]] = []
    watch = quiet.watch(key, watched.append)
    created = FeedMessage(EVENT, "created", post_id=POST, seq=1)
    with dispatch_locally(database, quiet.dispatch_committed):
        async with quiet.subscribe(key) as inbox:
            async with transaction(database) as conn:
                await publish(conn, created)
            assert watched == [created.encode()], "the watcher must hear it before return"
            assert len(inbox._mailbox) == 0, "subscriptions get the LISTEN copy only"
    watch.close()
    assert quiet.subscriber_count() == 0


async def test_subscribers_get_a_local_commit_once_watchers_twice(
    hub: Hub, database: Database
) -> None:
    key = FeedMessage.channel_of(EVENT)
    watched: list[dict[str, object]] = []
    watch = hub.watch(key, watched.append)
    created = FeedMessage(EVENT, "created", post_id=POST, seq=1)
    edited = FeedMessage(EVENT, "event")
    with dispatch_locally(database, hub.dispatch_committed):
        async with hub.subscribe(key) as inbox:
            for message in (created, edited):
                async with transaction(database) as conn:
                    await publish(conn, message)
            async with asyncio.timeout(5):
                received = [await anext(aiter(inbox)) for _ in range(2)]
            assert [FeedMessage.decode(r) for r in received] == [created, edited]
    # The hub offers each LISTEN copy to watchers and subscribers together, so by now
    # the watcher has both copies of both messages: watchers must be idempotent.
    heard = [FeedMessage.decode(w) for w in watched]
    assert heard.count(created) == heard.count(edited) == 2 and len(heard) == 4
    watch.close()
    assert hub.subscriber_count(key) == 0


def test_console_messages_name_their_event_and_coalesce_unread() -> None:
    """Console messages carry no figures, so an unread one is as good as several."""
    assert ConsoleMessage.channel_of(EVENT) == f"console:{EVENT}"
    channel = f"console:{EVENT}"
    assert ConsoleMessage.decode({"ch": channel, "op": "resync"}) == Resync(channel)
    assert ConsoleMessage.decode({"ch": channel, "op": "exploded"}) is None
    assert ConsoleMessage.decode({"ch": f"feed:{EVENT}", "op": "paid"}) is None
    assert ConsoleMessage.decode({"ch": "console:nope", "op": "paid"}) is None
    paid, scanned = ConsoleMessage(EVENT, "paid"), ConsoleMessage(EVENT, "checked_in")
    assert supersedes(paid.encode()) == supersedes(scanned.encode()) is not None
