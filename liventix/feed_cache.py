"""A response cache for public feed pages, in front of the GraphQL endpoint.

Anonymous `eventFeed` queries over HTTP POST are answered from a per-process cache of
serialized responses. A page is never older than the last committed change this
process heard of: every cached page belongs to the events it read, each such event's
feed channel (`db.channels.FeedMessage`) is watched through the realtime hub
(`Hub.watch`), and any message on it (a post created or deleted, or a resync after a
listener gap) drops that event's pages, synchronously. A watch hears this process's
own commits right after COMMIT, before the writing request returns, and everyone's
through LISTEN; dropping twice is harmless. A page computed while such a message
arrived is not stored (generation check), so a response that read the database before
a commit can never outlive the commit's announcement. Event edits and authors' renames
are announced on the feed channels too; a one-second time-to-live bounds anything else
a page shows.

Everything else (signed-in viewers, mutations, other fields, GET) passes through.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
from graphql import FieldNode, GraphQLError, OperationDefinitionNode, OperationType, parse
from graphql.language import StringValueNode, VariableNode

from db.channels import FeedMessage
from liventix.clock import Clock
from liventix.realtime import Hub, Watch
from liventix.request_log import note_operation
from resolvers.ids import EVENT, parse_ids

CACHEABLE_FIELDS = frozenset({"eventFeed"})
DEFAULT_TTL = 1.0  # seconds; bounds what no feed announcement covers
MAX_BODY_BYTES = 16 * 1024

Scope = dict[str, Any]
# (query, operation name, variables, Accept): the Accept header picks the response's
# media type (`liventix.graphql_view.negotiate`), so pages are stored per Accept value.
_Key = tuple[str, str, str, str]
Receive = Callable[[], Any]
Send = Callable[[dict[str, Any]], Any]


@dataclass(frozen=True, slots=True)
class _Shape:
    """What a query document needs to be cacheable: where its event ids come from."""

    literal_events: tuple[str, ...]
    event_variables: tuple[str, ...]


@dataclass(slots=True)
class _Entry:
    body: bytes
    headers: list[tuple[bytes, bytes]]
    stored_at: float
    events: tuple[uuid.UUID, ...]


@dataclass(slots=True)
class _Watch:
    generation: int = 0
    keys: set[_Key] = field(default_factory=set)
    hub_watch: Watch | None = None


def _shape(query: str) -> _Shape | None:
    """The document's event id sources if it is a single query of cacheable fields."""
    try:
        document = parse(query, no_location=True, max_tokens=2000)
    except GraphQLError:
        return None
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    if len(operations) != 1 or len(document.definitions) != 1:
        return None  # fragments and several operations: leave them to the full path
    operation = operations[0]
    if operation.operation is not OperationType.QUERY:
        return None
    literals: list[str] = []
    variables: list[str] = []
    for selection in operation.selection_set.selections:
        if not isinstance(selection, FieldNode) or selection.name.value not in CACHEABLE_FIELDS:
            return None
        if selection.directives:
            return None
        for argument in selection.arguments or ():
            if argument.name.value != "eventId":
                continue
            if isinstance(argument.value, VariableNode):
                variables.append(argument.value.name.value)
            elif isinstance(argument.value, StringValueNode):
                literals.append(argument.value.value)
            else:
                return None
    return _Shape(tuple(literals), tuple(variables))


class FeedResponseCache:
    """The cache and its hub watches; wrap the GraphQL ASGI app with `wrap`. The hub
    must hear this process's commits (`db.notify.dispatch_locally`) for a local write
    to show on the next read at once."""

    def __init__(
        self,
        hub: Hub,
        *,
        clock: Clock,
        ttl: float = DEFAULT_TTL,
        maxsize: int = 4096,
        max_watched_events: int = 1024,
    ) -> None:
        self._hub = hub
        self._clock = clock  # the app's clock, so tests expire pages without sleeping
        self._ttl = ttl
        self._maxsize = maxsize
        self._max_watched = max_watched_events
        self._entries: OrderedDict[_Key, _Entry] = OrderedDict()
        self._shapes: OrderedDict[str, _Shape | None] = OrderedDict()
        self._watches: OrderedDict[uuid.UUID, _Watch] = OrderedDict()
        # Pages being computed: requests for the same page wait for that one run
        # instead of all executing at once when an entry expires (no stampede).
        self._inflight: dict[_Key, asyncio.Future[_Entry | None]] = {}

    # -- invalidation ---------------------------------------------------------------

    def invalidate(self, event_id: uuid.UUID) -> None:
        """Drop the event's pages now (what any message on its feed channel does)."""
        watch = self._watches.get(event_id)
        if watch is not None:
            self._drop(watch)

    def _watch_event(self, event_id: uuid.UUID) -> _Watch:
        watch = self._watches.get(event_id)
        if watch is not None:
            self._watches.move_to_end(event_id)
            return watch
        created = _Watch()
        created.hub_watch = self._hub.watch(
            FeedMessage.channel_of(event_id), lambda _message: self._drop(created)
        )
        self._watches[event_id] = created
        while len(self._watches) > self._max_watched:
            _, evicted = self._watches.popitem(last=False)
            self._forget(evicted)
        return created

    def _drop(self, watch: _Watch) -> None:
        watch.generation += 1
        for key in watch.keys:
            self._entries.pop(key, None)
        watch.keys.clear()

    def _forget(self, watch: _Watch) -> None:
        self._drop(watch)
        if watch.hub_watch is not None:
            watch.hub_watch.close()
            watch.hub_watch = None

    def close(self) -> None:
        for watch in self._watches.values():
            self._forget(watch)
        self._watches.clear()
        self._entries.clear()

    # -- the ASGI side --------------------------------------------------------------

    def wrap(self, app: Callable[[Scope, Receive, Send], Any]) -> Callable[..., Any]:
        async def cached(scope: Scope, receive: Receive, send: Send) -> None:
            if not _candidate(scope):
                await app(scope, receive, send)
                return
            body = await _read_body(receive)
            if body is None:
                return  # the client went away before sending its request
            accept = dict(scope["headers"]).get(b"accept", b"").decode("latin-1")
            request = self._cache_key(body, accept) if len(body) <= MAX_BODY_BYTES else None
            if request is None:
                await app(scope, _replay(body), send)
                return
            key, events = request
            note_operation(scope, key[0], key[1] or None)  # for the request log, hit or miss
            entry = self._entries.get(key)
            if entry is not None and self._clock.monotonic() - entry.stored_at < self._ttl:
                await _send_cached(send, entry)
                return
            running = self._inflight.get(key)
            if running is not None:
                # Computed by a request that started earlier and finished with no change
                # announced meanwhile: as fresh as a stored entry would be.
                entry = await asyncio.shield(running)
                if entry is not None:
                    await _send_cached(send, entry)
                    return
            await self._miss(app, scope, body, send, key, events)

        return cached

    def _cache_key(self, body: bytes, accept: str) -> tuple[_Key, tuple[uuid.UUID, ...]] | None:
        try:
            payload = orjson.loads(body)
        except orjson.JSONDecodeError:
            return None
        if not isinstance(payload, dict):
            return None
        query = payload.get("query")
        variables = payload.get("variables") or {}
        if not isinstance(query, str) or not isinstance(variables, dict):
            return None
        if payload.get("extensions"):
            return None  # a persisted query's hash: checked, and stored, by the view
        shape = self._shape(query)
        if shape is None:
            return None
        if any(name not in variables for name in shape.event_variables):
            return None
        given = [*shape.literal_events, *(str(variables[n]) for n in shape.event_variables)]
        ids = parse_ids(given, EVENT)
        if not ids:
            return None
        canonical = orjson.dumps(variables, option=orjson.OPT_SORT_KEYS).decode()
        key = (query, str(payload.get("operationName") or ""), canonical, accept)
        return key, tuple(dict.fromkeys(ids))

    def _shape(self, query: str) -> _Shape | None:
        if query in self._shapes:
            self._shapes.move_to_end(query)
            return self._shapes[query]
        shape = _shape(query)
        self._shapes[query] = shape
        while len(self._shapes) > 1024:
            self._shapes.popitem(last=False)
        return shape

    async def _miss(
        self,
        app: Callable[[Scope, Receive, Send], Any],
        scope: Scope,
        body: bytes,
        send: Send,
        key: _Key,
        events: tuple[uuid.UUID, ...],
    ) -> None:
        watches = [self._watch_event(e) for e in events]
        generations = [w.generation for w in watches]
        started: dict[str, Any] = {}
        chunks: list[bytes] = []

        async def capture(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                started.update(message)
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))
            await send(message)

        leading = key not in self._inflight
        outcome: asyncio.Future[_Entry | None] = asyncio.get_running_loop().create_future()
        if leading:
            self._inflight[key] = outcome
        entry: _Entry | None = None
        try:
            await app(scope, _replay(body), capture)
            response = b"".join(chunks)
            fresh = all(
                w.generation == g and self._watches.get(e) is w
                for w, g, e in zip(watches, generations, events, strict=True)
            )
            if started.get("status") != 200 or not fresh or b'"errors"' in response:
                return
            headers = [
                (name, value)
                for name, value in started.get("headers", [])
                if name.lower() in (b"content-type", b"content-length", b"vary")
            ]
            entry = _Entry(response, headers, self._clock.monotonic(), events)
            self._entries[key] = entry
            for watch in watches:
                watch.keys.add(key)
            while len(self._entries) > self._maxsize:
                self._entries.popitem(last=False)
        finally:
            if leading:
                del self._inflight[key]
                outcome.set_result(entry)


def _candidate(scope: Scope) -> bool:
    if scope["type"] != "http" or scope["method"] != "POST":
        return False
    for name, value in scope["headers"]:
        if name == b"authorization":
            return False
        if name == b"content-type" and not value.startswith(b"application/json"):
            return False
    return True


async def _read_body(receive: Receive) -> bytes | None:
    """The whole request body (its size is already bounded by the body-limit
    middleware), or None when the client disconnected first."""
    chunks: list[bytes] = []
    more = True
    while more:
        message = await receive()
        if message["type"] != "http.request":
            return None
        chunks.append(message.get("body", b""))
        more = message.get("more_body", False)
    return b"".join(chunks)


def _replay(body: bytes) -> Receive:
    sent = False

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        await asyncio.Event().wait()  # like a client that keeps the connection open
        return {"type": "http.disconnect"}

    return receive


async def _send_cached(send: Send, entry: _Entry) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": entry.headers})
    await send({"type": "http.response.body", "body": entry.body})
