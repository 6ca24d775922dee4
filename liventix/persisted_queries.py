"""Persisted queries on `/graphql` over HTTP: Apollo's automatic persisted queries (APQ)
and an allow-list of registered operations, as PERSISTED_QUERIES says.

A request names a document by the SHA-256 of its text in
`extensions.persistedQuery = {"version": 1, "sha256Hash": "<hex>"}`, exactly as Apollo
Client's persisted-queries link sends it, over POST or over GET (where a hash-only
request is a short URL a CDN can cache). `PersistedQueries.resolve` turns a request's
`query` and `extensions` into the text to run, or refuses it with a
`PersistedQueryError`:

============  ==============================  ========================================
mode          request                         answer
============  ==============================  ========================================
automatic     hash, known                     runs the stored document
automatic     hash, unknown                   200 ``PERSISTED_QUERY_NOT_FOUND``
automatic     hash + query                    runs it; stored once it ran (`remember`)
allowlist     hash, registered                runs the registered document
allowlist     query whose hash is registered  runs it
allowlist     anything else                   403 ``PERSISTED_QUERY_NOT_ALLOWED``
off           hash                            200 ``PERSISTED_QUERY_NOT_SUPPORTED``
any           query without a hash            runs it (allowlist: see above)
============  ==============================  ========================================

A hash that is not the SHA-256 of the query sent with it is a 400
``PERSISTED_QUERY_HASH_MISMATCH``; a version other than 1 a 400
``PERSISTED_QUERY_UNSUPPORTED_VERSION``; a malformed `persistedQuery` a 400
``BAD_REQUEST``.

Why 200 for "not found" and "not supported" (what Apollo Server answers too): the link
retries with the query when the body says ``PersistedQueryNotFound``, but Apollo Client
before 3.7.16 (and the older apollo-link-persisted-queries) also turns persisted queries
off for good after any 400 or 500 answer. A 4xx here would cost those clients their
hashes on every later request; a 200 works with every version. ``NOT_SUPPORTED`` is
the signal to turn them off, which the link reads from the body. ``NOT_ALLOWED`` is a
403 for the same reason: a refusal of policy that must not make those clients stop
sending the hashes of the operations that are registered.

Only a document that ran is stored: it parsed, passed validation and the operation
limits (tokens, depth, aliases, cost), so the store holds operations of this schema,
not whatever a client makes up; and automatic rows are bounded in the database
(`db.persisted_queries`). Each process keeps an LRU cache of documents in front of the
shared table.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from databases import Database

import db.persisted_queries
from db.persisted_queries import PersistedQuery
from liventix.settings import Settings

log = logging.getLogger("liventix.persisted_queries")

VERSION = 1  # the only version of Apollo's persistedQuery extension
_SHA256_HEX = re.compile(r"[0-9a-fA-F]{64}")


class Mode(StrEnum):
    """PERSISTED_QUERIES: which requests may name or register a document by hash."""

    AUTOMATIC = "automatic"
    ALLOWLIST = "allowlist"
    OFF = "off"


class Code(StrEnum):
    """The error codes of persisted queries (`extensions.code`)."""

    NOT_FOUND = "PERSISTED_QUERY_NOT_FOUND"
    NOT_SUPPORTED = "PERSISTED_QUERY_NOT_SUPPORTED"
    NOT_ALLOWED = "PERSISTED_QUERY_NOT_ALLOWED"
    HASH_MISMATCH = "PERSISTED_QUERY_HASH_MISMATCH"
    UNSUPPORTED_VERSION = "PERSISTED_QUERY_UNSUPPORTED_VERSION"
    BAD_REQUEST = "BAD_REQUEST"


class PersistedQueryError(Exception):
    """A request refused before anything ran: answered with `status` and one error
    with `code` (`liventix.graphql_view` turns it into the HTTP response)."""

    def __init__(self, status: int, message: str, code: Code) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code


def not_found() -> PersistedQueryError:
    # Apollo's link matches this exact message (or the code): keep it as it is.
    return PersistedQueryError(200, "PersistedQueryNotFound", Code.NOT_FOUND)


def not_supported() -> PersistedQueryError:
    # Apollo's link matches this exact message (or the code): keep it as it is.
    return PersistedQueryError(200, "PersistedQueryNotSupported", Code.NOT_SUPPORTED)


def sha256_hex(text: str) -> str:
    """The hash clients send for a document: SHA-256 of its UTF-8 text, lowercase hex."""
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def requested_hash(extensions: Mapping[str, Any] | None) -> str | None:
    """The lowercase hash in `extensions.persistedQuery`, or None without one.

    Raises `PersistedQueryError` (400) for a version other than 1 or a malformed
    extension."""
    if not extensions or extensions.get("persistedQuery") is None:
        return None
    persisted = extensions["persistedQuery"]
    if not isinstance(persisted, Mapping):
        raise PersistedQueryError(
            400, "`extensions.persistedQuery` must be an object", Code.BAD_REQUEST
        )
    version = persisted.get("version")
    if type(version) is not int or version != VERSION:
        raise PersistedQueryError(
            400,
            f"Persisted query version {version!r} is not supported: send version {VERSION}",
            Code.UNSUPPORTED_VERSION,
        )
    sha256_hash = persisted.get("sha256Hash")
    if not isinstance(sha256_hash, str) or not _SHA256_HEX.fullmatch(sha256_hash):
        raise PersistedQueryError(
            400,
            "`extensions.persistedQuery.sha256Hash` must be a SHA-256 in hex (64 characters)",
            Code.BAD_REQUEST,
        )
    return sha256_hash.lower()


@dataclass(frozen=True, slots=True)
class Resolved:
    """What to run for a request, and whether to store it once it ran."""

    query: str | None
    store_as: str | None = None
    """The hash to store `query` under once it has run (an APQ registration)."""
    registered_name: str | None = None
    """The operation's name when `query` is a registered document (found by its hash,
    or by its text under the allow-list): a name from the server's own list, which
    metrics may use as a label. None otherwise, and for an anonymous operation."""


class PersistedQueries:
    """Resolves hashes to documents (PostgreSQL, an LRU cache in front) and stores what
    clients register, as `mode` allows. One per process; safe to share between
    requests (the cache is touched only from the event loop)."""

    def __init__(self, database: Database, *, mode: Mode, cache_size: int, max_stored: int) -> None:
        self.database = database
        self.mode = mode
        self.cache_size = cache_size
        self.max_stored = max_stored
        self._cache: OrderedDict[str, PersistedQuery] = OrderedDict()

    @classmethod
    def from_settings(cls, settings: Settings, database: Database) -> PersistedQueries:
        return cls(
            database,
            mode=Mode(settings.persisted_queries),
            cache_size=settings.persisted_query_cache_size,
            max_stored=settings.persisted_query_max_stored,
        )

    async def resolve(self, query: str | None, extensions: Mapping[str, Any] | None) -> Resolved:
        """The document a request runs (see the module's table), or `PersistedQueryError`."""
        if self.mode is Mode.OFF:
            if extensions and extensions.get("persistedQuery") is not None:
                raise not_supported()
            return Resolved(query)
        sha256_hash = requested_hash(extensions)
        if sha256_hash is None:
            if self.mode is not Mode.ALLOWLIST or query is None:
                return Resolved(query)  # (no query: refused as such when executed)
            registered = await self._registered(sha256_hex(query))
            if registered is None:
                raise PersistedQueryError(
                    403,
                    "Only registered operations run on this server; this one is not",
                    Code.NOT_ALLOWED,
                )
            return Resolved(query, registered_name=registered.operation_name)
        if query is not None and sha256_hex(query) != sha256_hash:
            raise PersistedQueryError(
                400,
                "`extensions.persistedQuery.sha256Hash` is not the SHA-256 of `query`",
                Code.HASH_MISMATCH,
            )
        stored = await self.lookup(sha256_hash)
        if self.mode is Mode.ALLOWLIST:
            if stored is None or not stored.registered:
                why = (
                    "this hash is not registered"
                    if query is None
                    else "clients cannot register operations"
                )
                raise PersistedQueryError(
                    403, f"Only registered operations run on this server; {why}", Code.NOT_ALLOWED
                )
            return Resolved(stored.query, registered_name=stored.operation_name)
        if stored is not None:
            name = stored.operation_name if stored.registered else None
            return Resolved(stored.query, registered_name=name)
        if query is None:
            raise not_found()
        return Resolved(query, store_as=sha256_hash)

    async def remember(self, sha256_hash: str, query: str) -> None:
        """Store an automatic persisted query that ran (see `resolve`). A failure is
        logged, not raised: the client has its answer, and will send the query again
        when the hash is not found."""
        try:
            await db.persisted_queries.store_automatic(
                self.database, sha256_hash, query, keep=self.max_stored
            )
        except Exception:
            log.warning("could not store persisted query %s", sha256_hash, exc_info=True)

    async def lookup(self, sha256_hash: str) -> PersistedQuery | None:
        """The stored document with this hash, from the cache or the database.

        Misses are not cached, so an operation registered while the server runs is
        allowed at once; neither are automatic rows in allow-list mode, which would
        hide their registration."""
        cached = self._cache.get(sha256_hash)
        if cached is not None:
            self._cache.move_to_end(sha256_hash)
            return cached
        stored = await db.persisted_queries.get_query(self.database, sha256_hash)
        if stored is not None and (stored.registered or self.mode is Mode.AUTOMATIC):
            self._cache[sha256_hash] = stored
            while len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)
        return stored

    async def _registered(self, sha256_hash: str) -> PersistedQuery | None:
        """The registered document with this hash, or None."""
        stored = await self.lookup(sha256_hash)
        return stored if stored is not None and stored.registered else None
