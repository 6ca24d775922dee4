"""Announce changes from inside the transaction that makes them.

`publish` sends a message (`db.channels`) with `pg_notify` on the transaction's own
connection: PostgreSQL delivers it only when that transaction commits, in commit order,
to every process listening, so a rolled-back change is never announced and a committed
one is never lost to a crash after commit. Payloads stay small (ids and counters);
listeners load anything bigger themselves.

The process that commits also hears of its own change at once: `db.core.transaction`
records what its transaction published (`recording`) and, right after COMMIT, hands
the messages to the dispatcher registered for that database (`dispatch_locally`; the app
registers its realtime hub), before the repository function returns. Its LISTEN copy
still arrives later, like everyone else's, so a local consumer sees such a message
twice and must be idempotent (the feed page cache drops pages: twice is harmless).
A message sent inside a savepoint that `db.core.transaction` rolled back is discarded
with it; one inside a raw ``conn.transaction()`` savepoint that rolled back may still
be handed on locally (never over LISTEN), which an idempotent consumer tolerates.
A statement that commits by itself (a server-side function called outside any
transaction: `db.reservations`'s hold) is wrapped in `recording` directly, and what its
SQL sent is recorded with `sent_by_sql`.
"""

from __future__ import annotations

import contextlib
import logging
import weakref
from collections.abc import Callable, Iterator, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import orjson
from databases import Database

from db.channels import NOTIFY_CHANNEL, Message, TierMessage

MAX_PAYLOAD_BYTES = 1000

LocalDispatcher = Callable[[Sequence[Message]], None]
"""Receives the messages of each transaction committed in this process, right after
its COMMIT, in the committing task (it must not block or raise)."""

log = logging.getLogger("db.notify")
_dispatchers: weakref.WeakKeyDictionary[Database, LocalDispatcher] = weakref.WeakKeyDictionary()


@dataclass(slots=True)
class _Recorder:
    database: Database
    parent: _Recorder | None
    messages: list[Message] = field(default_factory=list)


_recorder: ContextVar[_Recorder | None] = ContextVar("db_notify_recorder", default=None)


async def publish(conn: asyncpg.Connection, message: Message) -> None:
    """Announce `message` when the transaction `conn` is in commits.

    Raises `ValueError` if its encoding exceeds `MAX_PAYLOAD_BYTES` (PostgreSQL's
    limit is 8000 bytes; keep payloads to ids and counters).
    """
    body = orjson.dumps(message.encode()).decode()
    if len(body) > MAX_PAYLOAD_BYTES:
        raise ValueError(f"notification payload too large ({len(body)} bytes)")
    await conn.execute("SELECT pg_notify($1, $2)", NOTIFY_CHANNEL, body)
    sent_by_sql(message)


def sent_by_sql(message: Message) -> None:
    """Record `message`, which SQL of the current transaction already sent with
    `pg_notify` (`publish`, or a server-side function such as `ticketing.reserve_hold`),
    so that this process's local dispatcher receives it after COMMIT like any other.

    Outside `recording` (and so outside `db.core.transaction`) it records nothing: the
    message still reaches every process, this one included, over LISTEN.
    """
    recorder = _recorder.get()
    if recorder is not None:
        recorder.messages.append(message)


async def announce_tier(conn: asyncpg.Connection, tier: Any) -> None:
    """Announce a tier's counters after they changed (one shape for every writer).

    `tier` is a row (or mapping) with id, event_id, quantity, reserved_quantity,
    issued_quantity and version, as returned by the UPDATE that changed it; the version
    lets subscribers skip a notification older than the state they already hold.
    """
    await publish(conn, TierMessage.from_row(tier))


@contextlib.contextmanager
def dispatch_locally(database: Database, dispatcher: LocalDispatcher) -> Iterator[None]:
    """While inside the block, hand every transaction on `database` that commits in
    this process to `dispatcher` right after its COMMIT (one dispatcher per database)."""
    if database in _dispatchers:
        raise RuntimeError("a local dispatcher is already registered for this database")
    _dispatchers[database] = dispatcher
    try:
        yield
    finally:
        _dispatchers.pop(database, None)


@contextlib.contextmanager
def recording(database: Database) -> Iterator[None]:
    """Record what the enclosed transaction publishes (used by `db.core.transaction`).

    Wrap it *around* the transaction block: leaving it normally means COMMIT (or
    RELEASE SAVEPOINT) succeeded. The outermost block then hands its messages to the
    local dispatcher; a nested one passes them to its parent; on an exception they are
    dropped, as PostgreSQL drops the notifications.
    """
    recorder = _Recorder(database, _recorder.get())
    token = _recorder.set(recorder)
    try:
        yield
    finally:
        _recorder.reset(token)
    if not recorder.messages:
        return
    enclosing = recorder.parent
    while enclosing is not None and enclosing.database is not database:
        enclosing = enclosing.parent  # another database's transaction commits apart
    if enclosing is not None:  # a savepoint: its outer transaction has yet to commit
        enclosing.messages.extend(recorder.messages)
        return
    dispatcher = _dispatchers.get(database)
    if dispatcher is None:
        return
    try:
        dispatcher(recorder.messages)
    except Exception:  # the change is committed: a local consumer's bug must not undo
        log.exception("local dispatch after commit failed")  # the caller's success
