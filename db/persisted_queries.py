"""Persisted GraphQL documents, found by the SHA-256 of their text.

Two kinds share one table (`api.persisted_queries`), so every API process sees the same
documents:

* **registered**: the allow-list, written at deploy time from the clients' `.graphql`
  files (`liventix persisted-queries register`); never dropped;
* **automatic**: Apollo's automatic persisted queries, stored the first time a client
  sends a hash with its query. They are a cache, not a record: beyond `keep` rows the
  oldest are dropped, so clients cannot grow the table without bound (a client whose
  document was dropped is answered PersistedQueryNotFound and sends it again).

The database checks that a row's hash is the SHA-256 of its text: a hash can never
answer with another document, whoever wrote the row. Each process keeps an LRU cache in
front of this table (`liventix.persisted_queries`); rows never change once written
except for an automatic row becoming registered, which only widens what it allows.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

import asyncpg
from databases import Database

from db.core import connection, retry_transient, transaction

# One trimmer at a time: concurrent trims would delete the same rows in no set order.
_TRIM_LOCK = zlib.crc32(b"liventix.persisted_queries.trim")


class Kind(StrEnum):
    AUTOMATIC = "automatic"
    REGISTERED = "registered"


@dataclass(frozen=True, slots=True)
class PersistedQuery:
    hash: str
    query: str
    kind: Kind
    operation_name: str | None
    created_at: datetime

    @property
    def registered(self) -> bool:
        return self.kind is Kind.REGISTERED


@dataclass(frozen=True, slots=True)
class Registration:
    """A document to put on the allow-list: its hash, text and operation's name."""

    hash: str
    query: str
    operation_name: str | None


_COLUMNS = "hash, query, kind, operation_name, created_at"


def _record(row: asyncpg.Record) -> PersistedQuery:
    values = dict(row)
    return PersistedQuery(**{**values, "kind": Kind(values["kind"])})


async def get_query(database: Database, sha256_hash: str) -> PersistedQuery | None:
    """The document whose text hashes to `sha256_hash` (lowercase hex), if stored."""
    async with connection(database) as conn:
        row = await conn.fetchrow(
            f"SELECT {_COLUMNS} FROM api.persisted_queries WHERE hash = $1", sha256_hash
        )
    return None if row is None else _record(row)


@retry_transient
async def store_automatic(database: Database, sha256_hash: str, query: str, *, keep: int) -> bool:
    """Store an automatic persisted query; True if it was new.

    The caller has checked that the text hashes to `sha256_hash` (the table checks it
    again) and that it is a valid operation. An existing row, of either kind, is left
    as it is. Then, if no other process is trimming, automatic rows beyond the newest
    `keep` are dropped, in the same transaction.
    """
    async with transaction(database) as conn:
        inserted = await conn.fetchval(
            """INSERT INTO api.persisted_queries (hash, query, kind)
               VALUES ($1, $2, 'automatic')
               ON CONFLICT (hash) DO NOTHING
               RETURNING true""",
            sha256_hash,
            query,
        )
        if inserted and await conn.fetchval("SELECT pg_try_advisory_xact_lock($1)", _TRIM_LOCK):
            await conn.execute(
                """DELETE FROM api.persisted_queries
                    WHERE hash IN (SELECT hash FROM api.persisted_queries
                                    WHERE kind = 'automatic'
                                    ORDER BY created_at DESC, hash DESC
                                   OFFSET $1)""",
                keep,
            )
    return bool(inserted)


@retry_transient
async def register(database: Database, registrations: Sequence[Registration]) -> frozenset[str]:
    """Put documents on the allow-list, all or none; returns the hashes that were not on it.

    Registering a document again (or one a client stored automatically) makes it
    registered, with this operation name. Rows are written in hash order, so two
    concurrent registrations never deadlock.
    """
    ordered = sorted({r.hash: r for r in registrations}.values(), key=lambda r: r.hash)
    hashes = [r.hash for r in ordered]
    async with transaction(database) as conn:
        known = await conn.fetch(
            """SELECT hash FROM api.persisted_queries
                WHERE kind = 'registered' AND hash = ANY($1::text[])""",
            hashes,
        )
        await conn.executemany(
            """INSERT INTO api.persisted_queries
                      (hash, query, kind, operation_name, registered_at)
               VALUES ($1, $2, 'registered', $3, now())
               ON CONFLICT (hash) DO UPDATE
                  SET kind = 'registered',
                      operation_name = EXCLUDED.operation_name,
                      registered_at = COALESCE(api.persisted_queries.registered_at, now())""",
            [(r.hash, r.query, r.operation_name) for r in ordered],
        )
    return frozenset(hashes) - {row["hash"] for row in known}


async def list_queries(database: Database, kind: Kind | None = None) -> list[PersistedQuery]:
    """Stored documents (of one kind, if given), registered first, then by name and hash."""
    async with connection(database) as conn:
        rows = await conn.fetch(
            f"""SELECT {_COLUMNS} FROM api.persisted_queries
                 WHERE $1::text IS NULL OR kind = $1
                 ORDER BY kind DESC, operation_name NULLS LAST, hash""",
            None if kind is None else kind.value,
        )
    return [_record(row) for row in rows]
