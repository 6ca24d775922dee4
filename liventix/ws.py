"""GraphQL over WebSocket: the `graphql-transport-ws` protocol, with shared executions.

Only `graphql-transport-ws` (the protocol of the `graphql-ws` library) is spoken; a
client offering only the legacy `graphql-ws` subprotocol is closed with 4406. Each
connection must send `connection_init` within ``WS_INIT_TIMEOUT`` seconds (else 4408);
its payload may carry ``Authorization: Bearer <jwt>`` (a bad token closes 4403 with the
reason). Close codes, as the protocol defines them:

====  ===========================================================================
4400  malformed message, or a message of unknown type
4401  `subscribe` before `connection_ack`
4403  bad token at `connection_init`, or the token expired ("token expired")
4406  subprotocol not acceptable
4408  `connection_init` did not arrive in time
4409  a second `subscribe` with the id of an active operation
4429  a second `connection_init`
1013  the client reads too slowly: its bounded outgoing buffer (``WS_BUFFER_SIZE``
      frames) overflowed ("subscriber too slow"); reconnecting clients resubscribe
      (graphql-ws retries 1013, whereas it treats the 44xx codes as fatal)
1001  the server is shutting down
====  ===========================================================================

More than ``WS_MAX_SUBSCRIPTIONS`` active operations on one connection is not a
connection error: the extra `subscribe` gets an `error` message with code
``TOO_MANY_SUBSCRIPTIONS`` and the connection's other operations go on.

Each operation's end is logged as one line (logger ``liventix.ws``) with the
connection's request id, the operation's name and type, the viewer id, its duration
and its outcome: ``complete``, ``error``, ``stopped`` (the client's `complete`) or
``disconnected``. Nothing of `connection_init` (its token) or of the variables is.

Queries and mutations work too (one `next`, then `complete`). Subscriptions run through
`Multiplexer`: identical ones share one execution and one serialized payload, and each
member's frame is built by string concatenation around it. Frames go through a bounded
per-connection `Mailbox` drained by one writer task, so a slow client never blocks the
shared execution or the other clients.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import logging
import time
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import replace
from datetime import datetime
from itertools import count
from typing import Any

import orjson
from strawberry import Schema

from liventix.auth import ANONYMOUS, AuthError, Viewer, bearer_token, viewer_from_token
from liventix.metrics import GRAPHQL_ERRORS, WS_MESSAGES_SENT
from liventix.persisted_queries import Mode, PersistedQueries, PersistedQueryError
from liventix.realtime.mailbox import Mailbox, MailboxOverflow
from liventix.realtime.metrics import SLOW_SUBSCRIBERS_DROPPED
from liventix.request_log import operation_of
from liventix.subscriptions import metrics
from liventix.subscriptions.multiplex import Group, Multiplexer, Request
from resolvers.context import Services

log = logging.getLogger("liventix.ws")

PROTOCOL = "graphql-transport-ws"
Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]

CLOSE_SEND_TIMEOUT = 1.0
EXPIRY_CHECK_INTERVAL = 1.0


class _Close(Exception):
    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


class Operation:
    """One client operation (`subscribe` id) and the group that feeds it."""

    __slots__ = ("conn", "group", "id", "id_json", "name", "started", "type", "viewer")

    def __init__(
        self, conn: Connection, op_id: str, query: str = "", operation_name: str | None = None
    ) -> None:
        self.conn = conn
        self.id = op_id
        self.id_json = orjson.dumps(op_id).decode()
        self.viewer: Viewer = conn.viewer
        self.group: Group | None = None
        described = operation_of(query, operation_name) if query else None
        self.name = described.name if described else None
        self.type = described.type if described else None
        self.started = time.perf_counter()

    def send_next(self, payload: str, *, replaceable: bool) -> None:
        frame = '{"id":' + self.id_json + ',"type":"next","payload":' + payload + "}"
        self.conn.push(frame, self if replaceable else None)

    def send_error(self, errors: str) -> None:
        self.conn.push('{"id":' + self.id_json + ',"type":"error","payload":' + errors + "}")
        self.conn.operation_done(self, "error")

    def send_complete(self) -> None:
        self.conn.push('{"id":' + self.id_json + ',"type":"complete"}')
        self.conn.operation_done(self, "complete")

    def attach(self, group: Group) -> None:
        self.group = group

    def detach(self) -> None:
        self.group = None


class Connection:
    def __init__(
        self,
        handler: GraphQLTransportWS,
        receive: Receive,
        send: Send,
        request_id: str | None = None,
    ) -> None:
        self.handler = handler
        self.request_id = request_id
        self.settings = handler.services.settings
        self._receive = receive
        self._send = send
        self.viewer: Viewer = ANONYMOUS
        self.connection_params: dict[str, Any] | None = None
        self.acknowledged = False
        self.init_received = False
        self.operations: dict[str, Operation] = {}
        self.closed = False
        self._outbox: Mailbox[str] = Mailbox(self.settings.ws_buffer_size)
        self._writer: asyncio.Task[None] | None = None
        self._reader: asyncio.Task[None] | None = None

    async def run(self) -> None:
        self._writer = asyncio.create_task(self._write_loop(), name="ws-writer")
        self._reader = asyncio.create_task(self._read_loop(), name="ws-reader")
        loop = asyncio.get_running_loop()
        timer = loop.call_later(self.settings.ws_init_timeout, self._init_timed_out)
        metrics.WS_CONNECTIONS.inc()
        try:
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
        finally:
            timer.cancel()
            metrics.WS_CONNECTIONS.dec()
            self.closed = True
            for operation in list(self.operations.values()):
                self._stop(operation, "disconnected")
            self._outbox.close()
            if self._writer is not None:
                self._writer.cancel()
                with contextlib.suppress(asyncio.CancelledError, OSError, RuntimeError):
                    await self._writer
            self.handler.forget(self)

    # -- outgoing -----------------------------------------------------------------

    def push(self, frame: str, replace_key: object | None = None) -> None:
        """Queue a frame without blocking; a client too slow to drain is cut off."""
        if self.closed:
            return
        if not self._outbox.put(frame, replace_key):
            SLOW_SUBSCRIBERS_DROPPED.labels("websocket").inc()
            log.warning("closing a WebSocket whose client reads too slowly")
            self.close_soon(1013, "subscriber too slow")

    async def _write_loop(self) -> None:
        send = self._send
        outbox = self._outbox
        try:
            while True:
                frame = await outbox.get()
                await send({"type": "websocket.send", "text": frame})
                WS_MESSAGES_SENT.inc()
        except (EOFError, MailboxOverflow):
            return
        except (OSError, RuntimeError):
            return  # the client went away; the reader sees the disconnect

    def close_soon(self, code: int, reason: str) -> None:
        """Close from outside the reader (timers, the writer, the expiry watchdog)."""
        if not self.closed:
            self.closed = True
            task = asyncio.get_running_loop().create_task(self._close(code, reason))
            self.handler.keep(task)

    async def _close(self, code: int, reason: str) -> None:
        self.closed = True
        if self._writer is not None and self._writer is not asyncio.current_task():
            self._writer.cancel()
        close = {"type": "websocket.close", "code": code, "reason": reason[:120]}
        try:
            async with asyncio.timeout(CLOSE_SEND_TIMEOUT):
                await self._send(close)
        except (TimeoutError, OSError, RuntimeError):
            pass  # a client that does not read gets its TCP connection closed instead
        if self._reader is not None and self._reader is not asyncio.current_task():
            self._reader.cancel()

    def _init_timed_out(self) -> None:
        if not self.init_received:
            self.close_soon(4408, "Connection initialisation timeout")

    # -- incoming -----------------------------------------------------------------

    async def _read_loop(self) -> None:
        while not self.closed:
            event = await self._receive()
            if event["type"] == "websocket.disconnect":
                self.closed = True
                return
            raw = event.get("text")
            if raw is None:
                raw = event.get("bytes")
            try:
                self._handle(raw)
            except _Close as close:
                await self._close(close.code, close.reason)
                return

    def _handle(self, raw: str | bytes | None) -> None:
        try:
            message = orjson.loads(raw) if raw is not None else None
        except orjson.JSONDecodeError:
            message = None
        if not isinstance(message, dict) or not isinstance(message.get("type"), str):
            raise _Close(4400, "Invalid message received")
        kind = message["type"]
        if kind == "connection_init":
            self._on_init(message.get("payload"))
        elif kind == "ping":
            self.push('{"type":"pong"}')
        elif kind == "pong":
            pass
        elif kind == "subscribe":
            self._on_subscribe(message)
        elif kind == "complete":
            op_id = message.get("id")
            operation = self.operations.get(op_id) if isinstance(op_id, str) else None
            if operation is not None:
                self._stop(operation, "stopped")
        else:
            raise _Close(4400, f"Unknown message type '{kind[:40]}'")

    def _on_init(self, payload: object) -> None:
        if self.init_received:
            raise _Close(4429, "Too many initialisation requests")
        self.init_received = True
        if payload is not None and not isinstance(payload, dict):
            raise _Close(4400, "connection_init payload must be an object")
        params: dict[str, Any] = payload or {}
        self.connection_params = params or None
        raw = params.get("Authorization") or params.get("authorization")
        if raw is not None:
            value = str(raw).strip()  # `Bearer <token>`, or the bare token
            token = bearer_token(value) or value
            try:
                self.viewer = viewer_from_token(token, self.settings)
            except AuthError as exc:
                raise _Close(4403, f"Forbidden: {exc.message}") from None
            if self._expired():
                raise _Close(4403, "token expired")
            if self.viewer.expires_at is not None:
                self.handler.watch_expiry(self, self.viewer.expires_at)
            self.handler.services.first_sight.see_soon(self.viewer)
        self.acknowledged = True
        self.push('{"type":"connection_ack"}')

    def _on_subscribe(self, message: dict[str, Any]) -> None:
        if not self.acknowledged:
            raise _Close(4401, "Unauthorized")
        op_id = message.get("id")
        payload = message.get("payload")
        if not isinstance(op_id, str) or not op_id or not isinstance(payload, dict):
            raise _Close(4400, "subscribe needs an id and a payload object")
        query = payload.get("query")
        variables = payload.get("variables")
        operation_name = payload.get("operationName")
        if (
            not isinstance(query, str)
            or not (variables is None or isinstance(variables, dict))
            or not (operation_name is None or isinstance(operation_name, str))
        ):
            raise _Close(4400, "subscribe payload needs a query string")
        if op_id in self.operations:
            raise _Close(4409, f"Subscriber for {op_id[:80]} already exists")
        if self._expired():
            raise _Close(4403, "token expired")
        operation = Operation(self, op_id, query, operation_name)
        limit = self.settings.ws_max_subscriptions
        if len(self.operations) >= limit:
            error = {
                "message": f"Too many operations on this connection (at most {limit})",
                "extensions": {"code": "TOO_MANY_SUBSCRIPTIONS"},
            }
            GRAPHQL_ERRORS.labels("TOO_MANY_SUBSCRIPTIONS").inc()
            operation.send_error(orjson.dumps([error]).decode())
            return
        self.operations[op_id] = operation
        metrics.WS_OPERATIONS.inc()
        request = Request(query, variables, operation_name, self.connection_params)
        if self.handler.persisted_queries.mode is Mode.ALLOWLIST:
            self.handler.keep(asyncio.create_task(self._join_if_registered(operation, request)))
        else:
            operation.group = self.handler.multiplexer.join(operation, request)

    async def _join_if_registered(self, operation: Operation, request: Request) -> None:
        """With PERSISTED_QUERIES=allowlist, a subscription runs only if its text is a
        registered operation, as over HTTP; else the operation ends with an `error`."""
        try:
            resolved = await self.handler.persisted_queries.resolve(request.query, None)
        except PersistedQueryError as refused:
            error = {"message": refused.message, "extensions": {"code": str(refused.code)}}
            GRAPHQL_ERRORS.labels(str(refused.code)).inc()
            if self.operations.get(operation.id) is operation:
                operation.send_error(orjson.dumps([error]).decode())
            return
        if self.operations.get(operation.id) is operation and not self.closed:
            request = replace(request, registered_operation=resolved.registered_name)
            operation.group = self.handler.multiplexer.join(operation, request)

    def _expired(self) -> bool:
        expires = self.viewer.expires_at
        return expires is not None and self.handler.services.clock.now() >= expires

    def _stop(self, operation: Operation, outcome: str) -> None:
        """The client completed the operation (or left): leave its group."""
        group = operation.group
        operation.group = None
        if group is not None:
            self.handler.multiplexer.leave(group, operation)
        self.operation_done(operation, outcome)

    def operation_done(self, operation: Operation, outcome: str) -> None:
        if self.operations.get(operation.id) is operation:
            del self.operations[operation.id]
            metrics.WS_OPERATIONS.dec()
            self._log_end(operation, outcome)

    def _log_end(self, operation: Operation, outcome: str) -> None:
        if not log.isEnabledFor(logging.INFO):
            return
        viewer = operation.viewer.user_id
        log.info(
            "%s %s ended: %s",
            operation.type or "operation",
            operation.name or "(anonymous)",
            outcome,
            extra={
                "request_id": self.request_id,
                "operation": operation.name,
                "operation_type": operation.type,
                "viewer_id": str(viewer) if viewer is not None else None,
                "duration_ms": round((time.perf_counter() - operation.started) * 1000, 2),
                "outcome": outcome,
            },
        )


class GraphQLTransportWS:
    """The ASGI app for WebSocket `/graphql` (built in the lifespan, with services)."""

    def __init__(
        self, services: Services, schema: Schema, persisted_queries: PersistedQueries
    ) -> None:
        self.services = services
        self.persisted_queries = persisted_queries
        self.multiplexer = Multiplexer(services, schema)
        self.connections: set[Connection] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._expiries: list[tuple[datetime, int, Connection]] = []
        self._sequence = count()
        self._watchdog: asyncio.Task[None] | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        assert scope["type"] == "websocket"
        event = await receive()
        if event["type"] != "websocket.connect":
            return
        if PROTOCOL not in scope.get("subprotocols", ()):
            await send({"type": "websocket.accept"})
            await send(
                {"type": "websocket.close", "code": 4406, "reason": "Subprotocol not acceptable"}
            )
            return
        await send({"type": "websocket.accept", "subprotocol": PROTOCOL})
        connection = Connection(self, receive, send, scope.get("state", {}).get("request_id"))
        self.connections.add(connection)
        await connection.run()

    def forget(self, connection: Connection) -> None:
        self.connections.discard(connection)

    def keep(self, task: asyncio.Task[None]) -> None:
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def watch_expiry(self, connection: Connection, expires_at: datetime) -> None:
        """Close `connection` with 4403 "token expired" once the injected clock passes
        `expires_at` (one watchdog per process, not a timer per connection)."""
        heapq.heappush(self._expiries, (expires_at, next(self._sequence), connection))
        if self._watchdog is None or self._watchdog.done():
            self._watchdog = asyncio.create_task(self._watch_expiries(), name="ws-expiry")

    async def _watch_expiries(self) -> None:
        clock = self.services.clock
        while self._expiries:
            await asyncio.sleep(EXPIRY_CHECK_INTERVAL)
            now = clock.now()
            while self._expiries and self._expiries[0][0] <= now:
                _, _, connection = heapq.heappop(self._expiries)
                if connection in self.connections and not connection.closed:
                    connection.close_soon(4403, "token expired")
            self._expiries = [e for e in self._expiries if e[2] in self.connections]
            heapq.heapify(self._expiries)

    async def aclose(self) -> None:
        """Close every connection (1001) and stop the shared executions."""
        for connection in list(self.connections):
            connection.close_soon(1001, "server shutting down")
        if self._watchdog is not None:
            self._watchdog.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watchdog
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=CLOSE_SEND_TIMEOUT + 1)
        await self.multiplexer.aclose()
