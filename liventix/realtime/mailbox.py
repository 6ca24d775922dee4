"""A bounded FIFO whose entries can be superseded while unread.

Both fan-out layers use it: the hub's per-subscriber buffer (a newer `op="tier"` message
for the same tier replaces an unread older one, since only the latest counters matter)
and each WebSocket connection's outgoing frames (a newer result of a state subscription
replaces its unsent predecessor). Memory is bounded by `maxsize` entries; when a reader
falls that far behind the mailbox *overflows*: it drops its contents and every later
`get` raises `MailboxOverflow`, so the owner disconnects the reader instead of growing.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Hashable
from typing import Generic, TypeVar

T = TypeVar("T")


class MailboxOverflow(Exception):
    """The reader fell more than `maxsize` entries behind."""


class _Cell(Generic[T]):
    __slots__ = ("item", "key")

    def __init__(self, item: T, key: Hashable | None) -> None:
        self.item = item
        self.key = key


class Mailbox(Generic[T]):
    def __init__(self, maxsize: int) -> None:
        self.maxsize = maxsize
        self.overflowed = False
        self.closed = False
        self._cells: deque[_Cell[T]] = deque()
        self._by_key: dict[Hashable, _Cell[T]] = {}
        self._waiter: asyncio.Future[None] | None = None

    def __len__(self) -> int:
        return len(self._cells)

    def put(self, item: T, key: Hashable | None = None) -> bool:
        """Queue `item` (replacing the unread entry with the same `key`, if any).

        Never blocks. Returns False when the mailbox is (or just became) overflowed or
        closed: the item was dropped and the reader must be cut off.
        """
        if self.overflowed or self.closed:
            return False
        if key is not None:
            cell = self._by_key.get(key)
            if cell is not None:
                cell.item = item
                return True
        if len(self._cells) >= self.maxsize:
            self.overflowed = True
            self._cells.clear()
            self._by_key.clear()
            self._wake()
            return False
        cell = _Cell(item, key)
        self._cells.append(cell)
        if key is not None:
            self._by_key[key] = cell
        self._wake()
        return True

    def close(self) -> None:
        """Wake the reader; `get` returns what is left, then raises `EOFError`."""
        self.closed = True
        self._wake()

    async def get(self) -> T:
        """The oldest entry; raises `MailboxOverflow` once overflowed, `EOFError` once
        closed and drained."""
        while True:
            if self.overflowed:
                raise MailboxOverflow
            if self._cells:
                cell = self._cells.popleft()
                if cell.key is not None and self._by_key.get(cell.key) is cell:
                    del self._by_key[cell.key]
                return cell.item
            if self.closed:
                raise EOFError
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
