"""Connections and transactions on top of `databases`, with raw asyncpg for queries.

`databases` owns the pool and binds one connection to the current asyncio task; the
helpers here enter and leave it in the same task, with a timeout on acquire so a
saturated pool fails fast instead of queueing requests forever. Queries go through
the raw asyncpg connection: `$n` parameters, prepared-statement caching and no SQL
compilation step on the hot path.

The pool reports what it does to an optional `PoolObserver` (connections in use,
tasks waiting, how long each acquire waited): `db` knows nothing of metrics, so the
app passes one in (`liventix.metrics.PoolMetrics`).

`retry_transient` runs a repository function again when PostgreSQL aborted its
transaction as a serialization failure or a deadlock victim (SQLSTATE 40001 / 40P01):
those errors mean "nothing was written, try again", so a bounded retry turns a rare
collision into a slower success instead of an "Unexpected error" for the client.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from contextlib import asynccontextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, ParamSpec, Protocol, TypeVar

import asyncpg
import orjson
from databases import Database

from db import notify

DEFAULT_ACQUIRE_TIMEOUT_SECONDS = 5.0
# Attempts in all (the first included) before a transient failure reaches the caller.
RETRY_ATTEMPTS = 5
# Upper bound of the random pause before retry n is RETRY_BACKOFF_SECONDS * 2**n, so
# two victims of the same collision do not collide again in lockstep.
RETRY_BACKOFF_SECONDS = 0.005
TRANSIENT_ERRORS = (asyncpg.SerializationError, asyncpg.DeadlockDetectedError)

log = logging.getLogger("db.core")
_P = ParamSpec("_P")
_T = TypeVar("_T")
# How many `transaction()` blocks the current task is inside: a retry is only sound
# around the outermost one (an inner savepoint cannot undo the outer locks).
_depth: ContextVar[int] = ContextVar("db_transaction_depth", default=0)


class PoolTimeout(Exception):
    """No pooled connection became free within the acquire timeout."""


@dataclass(frozen=True, slots=True)
class PoolStats:
    """One process's pool at a moment."""

    size: int
    """The most connections the pool may open (its `max_size`)."""
    in_use: int
    """Connections handed out to tasks (one per task, however deeply it nests)."""
    waiting: int
    """Tasks waiting for a connection to come free."""


class PoolObserver(Protocol):
    """Told of every change of the pool's figures and of every wait for a connection;
    called on the event loop, so it must be quick and must not raise."""

    def changed(self, stats: PoolStats) -> None: ...
    def waited(self, seconds: float) -> None:
        """A task waited `seconds` for a connection (and got one, or timed out)."""


class PooledDatabase(Database):
    """A `databases.Database` that knows how long to wait for a pooled connection,
    and counts its connections in use and its waiting tasks for an observer."""

    def __init__(
        self,
        url: str,
        *,
        acquire_timeout: float,
        observer: PoolObserver | None = None,
        **options: Any,
    ) -> None:
        super().__init__(url, **options)
        self.acquire_timeout = acquire_timeout
        self.observer = observer
        self._size = int(options.get("max_size", 10))
        # `databases` gives each task one connection object, acquired by the outermost
        # use and released by its end: the depth of our uses of each, to count those.
        self._holding: dict[object, int] = {}
        self._waiting = 0

    @property
    def stats(self) -> PoolStats:
        return PoolStats(size=self._size, in_use=len(self._holding), waiting=self._waiting)

    def _changed(self) -> None:
        if self.observer is not None:
            self.observer.changed(self.stats)


def create_database(
    url: str,
    *,
    min_size: int = 2,
    max_size: int = 10,
    acquire_timeout: float = DEFAULT_ACQUIRE_TIMEOUT_SECONDS,
    statement_timeout_ms: int = 0,
    observer: PoolObserver | None = None,
) -> PooledDatabase:
    """A pool whose asyncpg connections decode json/jsonb natively.

    `acquire_timeout` (seconds) bounds every wait for a free connection; past it
    `connection()` raises `PoolTimeout`. `statement_timeout_ms` (0: none) is each
    connection's PostgreSQL `statement_timeout`: a statement running longer (lock
    waits included) is cancelled with `asyncpg.QueryCanceledError`, its transaction
    rolled back. It is a connection setting, so the pool's reset keeps it.
    `observer` hears of the pool's use (see `PoolObserver`).
    """
    if acquire_timeout <= 0:
        raise ValueError("acquire_timeout must be positive")
    if statement_timeout_ms < 0:
        raise ValueError("statement_timeout_ms must not be negative")
    database = PooledDatabase(
        url,
        acquire_timeout=acquire_timeout,
        observer=observer,
        min_size=min_size,
        max_size=max_size,
        init=_init_connection,
        reset=_reset_connection,
        # JIT compiles a plan whose estimated cost is high: for a set-based INSERT ...
        # SELECT over thousands of rows (a post notifying every ticket holder) that
        # costs more than the query itself, and short OLTP queries never gain from it.
        server_settings={"statement_timeout": str(statement_timeout_ms), "jit": "off"},
    )
    database._changed()  # the observer starts from the pool's size
    return database


async def _init_connection(conn: asyncpg.Connection) -> None:
    for type_name in ("json", "jsonb"):
        await conn.set_type_codec(
            type_name,
            encoder=lambda value: orjson.dumps(value).decode(),
            decoder=orjson.loads,
            schema="pg_catalog",
        )


# Backend pids of pooled connections that took session state (`keeps_session_state`).
_stateful_pids: set[int] = set()


def keeps_session_state(conn: asyncpg.Connection) -> None:
    """Mark `conn` as holding session state beyond a transaction (a session advisory
    lock): it gets asyncpg's full reset when released, in case its owner could not
    undo that state itself."""
    _stateful_pids.add(conn.get_server_pid())


async def _reset_connection(conn: asyncpg.Connection) -> None:
    """What the pool does to a released connection, after asyncpg has rolled back an
    open transaction and dropped listener callbacks.

    asyncpg's default reset (`CLOSE ALL; UNLISTEN *; RESET ALL;` and an advisory
    unlock) is a round trip on every release, that is on every request. Our statements
    leave nothing behind a transaction: settings are the connection's startup
    parameters (`create_database`), LISTEN has its own connection (`liventix.realtime`), and
    cursors live inside transactions. The one exception, `db.jobs.exclusive`, marks its
    connection with `keeps_session_state` and gets the full reset.
    """
    pid = conn.get_server_pid()
    if pid in _stateful_pids:
        _stateful_pids.discard(pid)
        await conn.execute(conn.get_reset_query())


def _acquire_timeout(database: Database) -> float:
    if isinstance(database, PooledDatabase):
        return database.acquire_timeout
    return DEFAULT_ACQUIRE_TIMEOUT_SECONDS


@asynccontextmanager
async def connection(database: Database) -> AsyncIterator[asyncpg.Connection]:
    """The task's pooled connection, outside any transaction (single-statement reads).

    Raises `PoolTimeout` when no connection is free within the database's acquire
    timeout (`create_database(acquire_timeout=...)`).
    """
    conn = database.connection()
    pooled = database if isinstance(database, PooledDatabase) else None
    depth = pooled._holding.get(conn, 0) if pooled is not None else 0
    if pooled is not None and not depth:
        await _acquire(pooled, conn)
    else:  # not observed, or the task holds its connection already (nothing to wait for)
        await _enter(conn, _acquire_timeout(database))
    if pooled is not None:
        pooled._holding[conn] = depth + 1
        if not depth:
            pooled._changed()
    try:
        yield conn.raw_connection
    finally:
        try:
            await conn.__aexit__(None, None, None)
        finally:
            if pooled is not None:
                if depth:
                    pooled._holding[conn] = depth
                else:
                    del pooled._holding[conn]
                    pooled._changed()


async def _enter(conn: Any, timeout: float) -> None:
    try:
        async with asyncio.timeout(timeout):
            await conn.__aenter__()
    except TimeoutError:
        raise PoolTimeout("database pool exhausted") from None


async def _acquire(database: PooledDatabase, conn: Any) -> None:
    """Acquire the task's connection, counted as waiting meanwhile, and time the wait.

    The caller counts the connection as in use and tells the observer."""
    database._waiting += 1
    database._changed()
    started = time.monotonic()
    try:
        await _enter(conn, database.acquire_timeout)
    except BaseException:
        database._waiting -= 1
        database._changed()
        raise
    finally:
        if database.observer is not None:
            database.observer.waited(time.monotonic() - started)
    database._waiting -= 1


@asynccontextmanager
async def transaction(
    database: Database, *, isolation: str | None = None
) -> AsyncIterator[asyncpg.Connection]:
    """One transaction on the task's connection; commits on exit, rolls back on error.

    Nested use in the same task becomes a savepoint (databases' transaction stack).
    After the outermost COMMIT, the messages published inside (`db.notify.publish`) go
    to the database's local dispatcher, before this block is left.
    """
    kwargs: dict[str, Any] = {"isolation": isolation} if isolation else {}
    depth = _depth.set(_depth.get() + 1)
    try:
        # Outside the transaction block: what it published is handed on after COMMIT.
        with notify.recording(database):
            # Within the task, `database.connection()` is the connection just acquired.
            async with connection(database), database.connection().transaction(**kwargs):
                yield database.connection().raw_connection
    finally:
        _depth.reset(depth)


def retry_transient(
    operation: Callable[_P, Awaitable[_T]],
) -> Callable[_P, Coroutine[Any, Any, _T]]:
    """Decorate a repository function to rerun it on serialization failure or deadlock.

    The function must be all-or-nothing: one transaction (or a sequence that is safe to
    repeat from the start) and no side effect outside the database before it returns
    (``pg_notify`` inside the transaction is fine: it is delivered only on commit).
    Up to `RETRY_ATTEMPTS` runs with a short random backoff; the last failure is
    raised. Called inside another transaction of the same task it runs once, since
    only the outermost transaction can be retried.
    """

    @functools.wraps(operation)
    async def retrying(*args: _P.args, **kwargs: _P.kwargs) -> _T:
        if _depth.get() > 0:
            return await operation(*args, **kwargs)
        for attempt in range(1, RETRY_ATTEMPTS + 1):
            try:
                return await operation(*args, **kwargs)
            except TRANSIENT_ERRORS as exc:
                if attempt == RETRY_ATTEMPTS:
                    raise
                log.warning(
                    "retrying %s after %s (attempt %d of %d)",
                    operation.__qualname__,
                    type(exc).__name__,
                    attempt + 1,
                    RETRY_ATTEMPTS,
                )
                await asyncio.sleep(random.uniform(0, RETRY_BACKOFF_SECONDS * 2**attempt))
        raise AssertionError("unreachable")

    return retrying
