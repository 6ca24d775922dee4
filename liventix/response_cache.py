"""A response cache for event feed pages and tier lists, in front of the GraphQL endpoint.

`eventFeed` and `eventTiers` queries over HTTP POST are answered from a per-process
cache of serialized responses. A response is never older than the last committed change
this process heard of: every cached response belongs to the channels of the events it
read (`db.channels.FeedMessage` for posts and event edits, `TierMessage` for tiers and
their counters), each channel is watched through the realtime hub (`Hub.watch`), and any
message on it (or a resync after a listener gap) drops those responses, synchronously.
A watch hears this process's own commits right after COMMIT, before the writing request
returns, and everyone's through LISTEN; dropping twice is harmless. A response computed
while such a message arrived is not stored (generation check), so a response that read
the database before a commit can never outlive the commit's announcement. Authors'
and organizers' renames are announced on the feed channels too; a time-to-live is the
safety net for anything else.

One response serves every viewer who sees the same thing. What these two fields return
depends on the viewer only through whether they manage the event (`db.events.
manages_event`: its organizer and admins see its drafts and hidden tiers); everything
reachable below them is public. So responses are keyed by which of the events a query
names the viewer manages, not by who they are: a signed-in fan shares the anonymous
response, an event's organizer shares the admins' one for that event.
`tests/test_response_sharing.py` pins that set of reachable fields and checks, over
generated queries and viewers, that a shared answer is exactly the one a full execution
gives.

Everything else (mutations, other fields, persisted-query hashes, GET) passes through.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
from databases import Database
from graphql import FieldNode, GraphQLError, OperationDefinitionNode, OperationType, parse
from graphql.language import SelectionSetNode, StringValueNode, VariableNode

import db.events
from db.channels import FeedMessage, TierMessage
from db.core import PoolTimeout
from liventix.auth import ANONYMOUS, Viewer
from liventix.clock import Clock
from liventix.first_sight import FirstSight
from liventix.realtime import Hub, Watch
from liventix.request_log import note_operation
from resolvers.ids import EVENT, parse_id

ChannelOf = Callable[[uuid.UUID], str]
# The cacheable root fields, and the channels of an event whose messages change them. A
# feed page that selects its event's `tiers` is changed by tier messages too.
CHANNELS: dict[str, tuple[ChannelOf, ...]] = {
    "eventFeed": (FeedMessage.channel_of,),
    "eventTiers": (FeedMessage.channel_of, TierMessage.channel_of),
}
# Seconds. Everything these responses show is announced when it changes (posts, event
# edits, renames of authors and organizers, tiers and their counters, listener gaps):
# the time-to-live is a safety net, long enough that pages are rarely recomputed for it.
DEFAULT_TTL = 10.0
MAX_BODY_BYTES = 16 * 1024
MAX_ORGANIZERS = 16_384  # events whose organizer is remembered (it never changes)

Scope = dict[str, Any]
# (query, operation name, variables, Accept, which of the events named the viewer
# manages): the Accept header picks the response's media type
# (`liventix.graphql_view.negotiate`), so pages are stored per Accept value.
_Key = tuple[str, str, str, str, tuple[bool, ...]]
Receive = Callable[[], Any]
Send = Callable[[dict[str, Any]], Any]


@dataclass(frozen=True, slots=True)
class _Shape:
    """What a query document needs to be cacheable: for each root field, where its event
    id comes from (a literal, or the name of a variable) and the event's channels that
    change it."""

    fields: tuple[tuple[str, bool, tuple[ChannelOf, ...]], ...]  # (source, is variable, ...)


@dataclass(slots=True)
class _Entry:
    body: bytes
    headers: list[tuple[bytes, bytes]]
    stored_at: float


@dataclass(slots=True)
class _Watch:
    generation: int = 0
    keys: set[_Key] = field(default_factory=set)
    hub_watch: Watch | None = None


def _shape(query: str) -> _Shape | None:
    """The document's root fields and event id sources if it is a single query of
    cacheable fields, each with one `eventId` argument."""
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
    fields: list[tuple[str, bool, tuple[ChannelOf, ...]]] = []
    for selection in operation.selection_set.selections:
        if not isinstance(selection, FieldNode) or selection.name.value not in CHANNELS:
            return None
        if selection.directives:
            return None
        sources = [a.value for a in selection.arguments or () if a.name.value == "eventId"]
        if len(sources) != 1:
            return None
        (source,) = sources
        channels = CHANNELS[selection.name.value]
        if _selects_tiers(selection.selection_set):
            channels = (*channels, TierMessage.channel_of)
        if isinstance(source, VariableNode):
            fields.append((source.name.value, True, channels))
        elif isinstance(source, StringValueNode):
            fields.append((source.value, False, channels))
        else:
            return None
    return _Shape(tuple(fields))


def _selects_tiers(selection_set: SelectionSetNode | None) -> bool:
    """Whether a `tiers` field is selected anywhere below (inline fragments included)."""
    for selection in selection_set.selections if selection_set else ():
        if isinstance(selection, FieldNode) and selection.name.value == "tiers":
            return True
        if _selects_tiers(getattr(selection, "selection_set", None)):
            return True
    return False


class ResponseCache:
    """The cache and its hub watches; wrap the GraphQL ASGI app with `wrap`. The hub
    must hear this process's commits (`db.notify.dispatch_locally`) for a local write
    to show on the next read at once. Behind authentication: a signed-in request
    arrives with its verified viewer in scope state."""

    def __init__(
        self,
        hub: Hub,
        database: Database,
        first_sight: FirstSight,
        *,
        clock: Clock,
        ttl: float = DEFAULT_TTL,
        maxsize: int = 4096,
        max_watched_channels: int = 2048,
    ) -> None:
        self._hub = hub
        self._db = database  # where an event's organizer is looked up, once
        self._first_sight = first_sight
        self._clock = clock  # the app's clock, so tests expire pages without sleeping
        self._ttl = ttl
        self._maxsize = maxsize
        self._max_watched = max_watched_channels
        self._entries: OrderedDict[_Key, _Entry] = OrderedDict()
        self._shapes: OrderedDict[str, _Shape | None] = OrderedDict()
        self._watches: OrderedDict[str, _Watch] = OrderedDict()
        self._organizers: OrderedDict[uuid.UUID, uuid.UUID] = OrderedDict()
        # Pages being computed: requests for the same page wait for that one run
        # instead of all executing at once when an entry expires (no stampede).
        self._inflight: dict[_Key, asyncio.Future[_Entry | None]] = {}

    # -- invalidation ---------------------------------------------------------------

    def invalidate(self, event_id: uuid.UUID) -> None:
        """Drop the event's responses now (what any message on its channels does)."""
        for channel_of in (FeedMessage.channel_of, TierMessage.channel_of):
            watch = self._watches.get(channel_of(event_id))
            if watch is not None:
                self._drop(watch)

    def _watch(self, channel: str) -> _Watch:
        watch = self._watches.get(channel)
        if watch is not None:
            self._watches.move_to_end(channel)
            return watch
        created = _Watch()
        created.hub_watch = self._hub.watch(channel, lambda _message: self._drop(created))
        self._watches[channel] = created
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

    # -- who shares a response --------------------------------------------------------

    async def _managed(self, viewer: Viewer, events: tuple[uuid.UUID, ...]) -> tuple[bool, ...]:
        """For each event, whether the viewer manages it (`db.events.manages_event`): the
        one thing about the viewer these responses depend on."""
        if viewer.user_id is None:
            return (False,) * len(events)
        if viewer.is_admin:
            return (True,) * len(events)  # admins manage every event, known or not
        missing = [e for e in events if e not in self._organizers]
        if missing:
            for event_id, record in zip(
                missing, await db.events.get_events(self._db, missing), strict=True
            ):
                if record is not None:  # a missing event is managed by no one (yet)
                    self._organizers[event_id] = record.organizer_id
            while len(self._organizers) > MAX_ORGANIZERS:
                self._organizers.popitem(last=False)
        return tuple(
            e in self._organizers
            and db.events.manages_event(self._organizers[e], viewer.user_id, viewer.is_admin)
            for e in events
        )

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
            shared_key, events, channels = request
            viewer: Viewer = scope.get("state", {}).get("viewer", ANONYMOUS)
            try:
                key = (*shared_key, await self._managed(viewer, events))
            except PoolTimeout:  # busy: the full path answers SERVICE_UNAVAILABLE
                await app(scope, _replay(body), send)
                return
            note_operation(scope, key[0], key[1] or None)  # for the request log, hit or miss
            self._first_sight.see_soon(viewer)  # what the view does for those it serves
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
            await self._miss(app, scope, body, send, key, channels)

        return cached

    def _cache_key(
        self, body: bytes, accept: str
    ) -> tuple[tuple[str, str, str, str], tuple[uuid.UUID, ...], tuple[str, ...]] | None:
        """The request's cache key but for the viewer, the events it names and the
        channels that change it; None when it is not a cacheable request."""
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
        channels: dict[str, None] = {}
        events: dict[uuid.UUID, None] = {}
        for source, is_variable, channels_of in shape.fields:
            given = variables.get(source) if is_variable else source
            event_id = parse_id(given, EVENT) if isinstance(given, str) else None
            if event_id is None:
                return None  # missing or malformed: the full path says why
            events[event_id] = None
            channels.update((channel_of(event_id), None) for channel_of in channels_of)
        canonical = orjson.dumps(variables, option=orjson.OPT_SORT_KEYS).decode()
        key = (query, str(payload.get("operationName") or ""), canonical, accept)
        return key, tuple(events), tuple(channels)

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
        channels: tuple[str, ...],
    ) -> None:
        watches = [self._watch(c) for c in channels]
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
                w.generation == g and self._watches.get(c) is w
                for w, g, c in zip(watches, generations, channels, strict=True)
            )
            if started.get("status") != 200 or not fresh or b'"errors"' in response:
                return
            headers = [
                (name, value)
                for name, value in started.get("headers", [])
                if name.lower() in (b"content-type", b"content-length", b"vary")
            ]
            entry = _Entry(response, headers, self._clock.monotonic())
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
    if "auth_error" in scope.get("state", {}):
        return False  # refused by the middleware already; never a cached answer
    for name, value in scope["headers"]:
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
