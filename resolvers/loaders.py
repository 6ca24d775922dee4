"""DataLoaders, fresh per request (and per event for subscriptions).

Each loader batches the keys asked for in one tick into one repository call, so a page
of N posts costs one query for authors, one for events, never N.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

from databases import Database
from strawberry.dataloader import DataLoader

import db.users

K = TypeVar("K")
V = TypeVar("V")

BatchFn = Callable[[Database, list[Any]], Awaitable[Sequence[Any]]]


class Loaders:
    """One DataLoader per batch function, created on first use."""

    def __init__(self, database: Database) -> None:
        self._db = database
        self._loaders: dict[BatchFn, DataLoader[Any, Any]] = {}

    def get(self, batch: BatchFn) -> DataLoader[Any, Any]:
        loader = self._loaders.get(batch)
        if loader is None:
            database = self._db

            async def load(keys: list[Any]) -> Sequence[Any]:
                return await batch(database, keys)

            loader = DataLoader(load_fn=load)
            self._loaders[batch] = loader
        return loader

    async def profile(self, user_id: uuid.UUID) -> db.users.Profile | None:
        result: db.users.Profile | None = await self.get(db.users.get_profiles).load(user_id)
        return result
