"""A user's profile row is created the first time this process sees their token.

Tokens are minted elsewhere (Supabase Auth, or `liventix token`), so the API learns of a
user from a verified token. Each process remembers whom it has already seen, so only a
user's first request (per process, per role) costs the upsert.

This is the one path that makes profiles: the transports see every verified viewer
(`liventix.graphql_view` before executing, `liventix.ws` at the handshake, in the
background), and resolvers that need the row to exist (`viewer`, every write that refers
to the user) await `see` through `resolvers.access.seen`, a no-op once seen.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections import OrderedDict

from databases import Database

import db.users
from db.core import PoolTimeout
from liventix.auth import Role, Viewer

log = logging.getLogger("liventix.first_sight")


class FirstSight:
    """Profiles of the users this process has seen, written in batches.

    Users seen while a write is running wait for the next one, which writes all of them
    in one statement (`db.users.ensure_profiles`): at most one write per process at a
    time, so a burst of new users (a flash sale's buyers arriving at once) costs a few
    statements and one pooled connection instead of one transaction each, which would
    exhaust the pool.
    """

    def __init__(self, database: Database, *, remember: int = 100_000) -> None:
        self._db = database
        self._remember = remember
        self._seen: OrderedDict[tuple[uuid.UUID, Role], None] = OrderedDict()
        self._pending: set[asyncio.Task[None]] = set()
        self._waiting: dict[tuple[uuid.UUID, Role], None] = {}  # for the next write
        self._next: asyncio.Future[None] | None = None  # that write's outcome
        self._writer: asyncio.Task[None] | None = None

    async def see(self, viewer: Viewer) -> None:
        """Ensure the viewer's profile exists (a no-op after the first time)."""
        if viewer.user_id is None:
            return
        key = (viewer.user_id, viewer.role)
        if key in self._seen:
            self._seen.move_to_end(key)
            return
        if self._next is None:
            self._next = asyncio.get_running_loop().create_future()
        self._waiting[key] = None
        written = self._next
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write())
        await asyncio.shield(written)

    async def _write(self) -> None:
        """Write what is waiting, then what arrived meanwhile, until nothing is left."""
        while self._next is not None:
            keys, written = list(self._waiting), self._next
            self._waiting, self._next = {}, None
            try:
                # One row per user and statement: a user seen with two roles at once
                # (a role just changed) is written twice, the later role last.
                while keys:
                    first = {user_id: role for user_id, role in reversed(keys)}
                    rows = [(user_id, role.value) for user_id, role in first.items()]
                    await db.users.ensure_profiles(self._db, rows)
                    done = set(first.items())
                    for key in done:
                        self._remember_seen(key)
                    keys = [key for key in keys if key not in done]
            except Exception as exc:
                self._log_failure(exc, len(keys))
                written.set_exception(exc)
                written.exception()  # retrieved: the waiters each get it raised
            else:
                written.set_result(None)

    @staticmethod
    def _log_failure(exc: Exception, users: int) -> None:
        """Once per failed write, not per waiter. No free connection is the server
        being busy (a WARNING: the pool's metrics tell whether it lasts)."""
        if isinstance(exc, PoolTimeout):
            log.warning("no database connection for the profiles of %d new user(s)", users)
        else:
            log.error("could not create the profiles of %d user(s)", users, exc_info=exc)

    def _remember_seen(self, key: tuple[uuid.UUID, Role]) -> None:
        self._seen[key] = None
        if len(self._seen) > self._remember:
            self._seen.popitem(last=False)

    async def see_quietly(self, viewer: Viewer) -> None:
        """`see`, without raising (the write that failed logged it once).

        Best effort by design: the next request tries again, and every operation that
        writes rows referring to the user ensures the profile itself.
        """
        with contextlib.suppress(Exception):
            await self.see(viewer)

    def see_soon(self, viewer: Viewer) -> None:
        """`see_quietly` from synchronous code (a WebSocket handshake), as its own task."""
        if viewer.user_id is None or (viewer.user_id, viewer.role) in self._seen:
            return
        task = asyncio.create_task(self.see_quietly(viewer))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)
