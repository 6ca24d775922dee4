"""Shared executions: one GraphQL execution per group of identical subscriptions.

A *group* is keyed by (document, operation name, variables, scope) as decided by
`liventix.subscriptions.sharing.plan`. The group runs `schema.stream(...)` once, with a
context whose DataLoaders are replaced after every result (a subscription's context
lives for the whole stream; loaders must not serve stale rows across events), and
serializes each result once with orjson. Members are `Sink`s (one per WebSocket
operation) that receive the serialized payload and frame it themselves.

Queries, mutations and documents that cannot be analysed run in a group of one, with
the connection's `connection_init` parameters in their context; shared executions get
none (their scope is the viewer already resolved from those parameters).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from contextlib import aclosing
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

import orjson
from graphql import GraphQLError
from strawberry import Schema
from strawberry.types.execution import ExecutionResult, PreExecutionError

from liventix.auth import ANONYMOUS, Role, Viewer
from liventix.subscriptions import metrics
from liventix.subscriptions.sharing import Plan, plan
from resolvers.context import Context, Services
from resolvers.loaders import Loaders
from schema.errors import mask_errors

log = logging.getLogger("liventix.subscriptions")

PUBLIC_ROLES = frozenset({Role.ANONYMOUS, Role.USER})
"""Roles that see exactly what the anonymous viewer sees of a public subscription.
Organizers and admins may see more (hidden tiers, draft events they manage), so they
always execute in their own scope."""


class Sink(Protocol):
    """One member of a group: a client operation that receives its results."""

    viewer: Viewer

    def send_next(self, payload: str, *, replaceable: bool) -> None: ...
    def send_error(self, errors: str) -> None: ...
    def send_complete(self) -> None: ...
    def attach(self, group: Group) -> None:
        """The sink now receives the results of `group` (after a retry)."""

    def detach(self) -> None:
        """The group is gone (it finished or failed); forget it."""


@dataclass(frozen=True, slots=True)
class Request:
    query: str
    variables: dict[str, Any] | None
    operation_name: str | None
    connection_params: dict[str, Any] | None = None
    registered_operation: str | None = None
    """Its name if `query` is a registered persisted query (see `Context`)."""


@dataclass(eq=False)
class Group:
    key: object
    request: Request
    plan: Plan
    viewer: Viewer
    members: dict[Sink, bool] = field(default_factory=dict)
    """Each member, and whether it has been sent its first message (until then its
    frames must not be replaced by newer ones: the first one is the snapshot)."""
    last_payload: str | None = None
    newcomer_payload: str | None = None
    """`last_payload` recast as a snapshot for state groups (built on first demand)."""
    emitted: bool = False
    task: asyncio.Task[None] | None = None

    def snapshot_for_newcomer(self) -> str | None:
        """The first message of a member joining a state group that already has results:
        the latest state, as a snapshot (see `liventix.subscriptions.sharing`)."""
        if self.last_payload is None:
            return None
        if self.newcomer_payload is None:
            self.newcomer_payload = self.plan.snapshot.apply(self.last_payload)
        return self.newcomer_payload


def _format_errors(errors: list[GraphQLError], request_id: str) -> list[Any]:
    """The errors as the client may see them, as HTTP shows them (`schema.errors`)."""
    return [e.formatted for e in mask_errors(errors, request_id)]


def encode_result(result: ExecutionResult, request_id: str) -> str:
    body: dict[str, Any] = {"data": result.data}
    if result.errors:
        body["errors"] = _format_errors(result.errors, request_id)
    if result.extensions:
        body["extensions"] = result.extensions
    return orjson.dumps(body, default=str).decode()


class Multiplexer:
    def __init__(self, services: Services, schema: Schema) -> None:
        self.services = services
        self.schema = schema
        self._joinable: dict[object, Group] = {}
        self._groups: set[Group] = set()

    @property
    def group_count(self) -> int:
        return len(self._groups)

    def join(self, sink: Sink, request: Request) -> Group:
        """Run `request` for `sink`, sharing an execution where the plan allows."""
        shared = plan(request.query, request.operation_name, request.variables)
        if shared.shareable and request.connection_params is not None:
            # The viewer (resolved from them) is the scope; the raw parameters (tokens)
            # of one member must never reach an execution shared with others.
            request = replace(request, connection_params=None)
        return self._join(sink, request, shared, force_private=False)

    def _join(self, sink: Sink, request: Request, shared: Plan, *, force_private: bool) -> Group:
        viewer = sink.viewer
        group: Group | None = None
        key: object
        if shared.shareable:
            public = shared.public and not force_private and viewer.role in PUBLIC_ROLES
            scope: object = "public" if public else (viewer.user_id, viewer.role.value)
            variables = orjson.dumps(request.variables or {}, option=orjson.OPT_SORT_KEYS)
            key = (request.query, request.operation_name, variables, scope)
            group = self._joinable.get(key)
            if public:
                viewer = ANONYMOUS
            shared = replace(shared, public=public)
        else:
            key = object()
        if group is None:
            group = Group(key=key, request=request, plan=shared, viewer=viewer)
            self._groups.add(group)
            metrics.WS_SHARED_EXECUTIONS.inc()
            if shared.shareable:
                self._joinable[key] = group
            group.task = asyncio.create_task(self._run(group), name="graphql-operation")
        group.members[sink] = False
        if group.emitted and group.plan.join == "state":
            self._send_snapshot(group, sink)
        return group

    @staticmethod
    def _send_snapshot(group: Group, sink: Sink) -> None:
        """Start a newcomer of a running state group with the latest state, recast as a
        snapshot, not as the change that produced it. Joining is synchronous, so every
        later result of the group reaches the newcomer after this one."""
        payload = group.snapshot_for_newcomer()
        if payload is not None:
            sink.send_next(payload, replaceable=False)
            group.members[sink] = True

    def leave(self, group: Group, sink: Sink) -> None:
        """`sink` no longer wants results; the execution stops with its last member."""
        group.members.pop(sink, None)
        if not group.members:
            self._end(group)
            if group.task is not None and group.task is not asyncio.current_task():
                group.task.cancel()

    def _end(self, group: Group) -> None:
        if self._joinable.get(group.key) is group:
            del self._joinable[group.key]
        if group in self._groups:
            self._groups.discard(group)
            metrics.WS_SHARED_EXECUTIONS.dec()

    async def aclose(self) -> None:
        tasks = [g.task for g in self._groups if g.task is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    def _context(self, group: Group, request_id: str) -> Context:
        return Context(
            services=self.services,
            viewer=group.viewer,
            loaders=Loaders(self.services.db),
            request_id=request_id,
            connection_params=group.request.connection_params,
            registered_operation=group.request.registered_operation,
        )

    async def _run(self, group: Group) -> None:
        request_id = uuid.uuid4().hex
        context = self._context(group, request_id)
        request = group.request
        replaceable = group.plan.join == "state"
        try:
            results = await self.schema.stream(
                request.query,
                variable_values=request.variables,
                context_value=context,
                operation_name=request.operation_name,
            )
            async with aclosing(results):
                async for result in results:
                    if isinstance(result, PreExecutionError):
                        self._failed(group, result.errors or [], request_id)
                        return
                    if not isinstance(result, ExecutionResult):
                        continue  # incremental delivery is not enabled in this schema
                    if self._public_failure(group, result):
                        self._retry_privately(group)
                    payload = encode_result(result, request_id)
                    group.last_payload = payload
                    group.newcomer_payload = None
                    if not group.emitted:
                        group.emitted = True
                        if group.plan.join == "first" and self._joinable.get(group.key) is group:
                            del self._joinable[group.key]
                    self._broadcast(group, payload, replaceable=replaceable)
                    context.loaders = Loaders(self.services.db)
        except asyncio.CancelledError:
            self._end(group)
            raise
        except Exception as exc:
            log.exception(
                "shared execution failed (request %s)", request_id, extra={"request_id": request_id}
            )
            error = GraphQLError("Unexpected error", original_error=exc)
            self._failed(group, [error], request_id)
            return
        self._end(group)
        for sink in tuple(group.members):
            sink.detach()
            sink.send_complete()
        group.members.clear()

    @staticmethod
    def _broadcast(group: Group, payload: str, *, replaceable: bool) -> None:
        """Send one result to every member; a member's first message is never
        replaceable, so a slow connection still gets it (the snapshot) before others."""
        members = group.members
        for sink, started in tuple(members.items()):
            sink.send_next(payload, replaceable=replaceable and started)
            if not started and sink in members:  # (it may have left meanwhile)
                members[sink] = True

    @staticmethod
    def _public_failure(group: Group, result: ExecutionResult) -> bool:
        """The anonymous execution of a public group failed outright at its start."""
        return group.plan.public and not group.emitted and bool(result.errors) and not result.data

    def _retry_privately(self, group: Group) -> None:
        """Move signed-in members of a failed public group to their own scope (they may
        be allowed what the anonymous viewer is not)."""
        for sink in tuple(group.members):
            if sink.viewer.is_authenticated:
                del group.members[sink]
                sink.attach(self._join(sink, group.request, group.plan, force_private=True))
        if self._joinable.get(group.key) is group:
            del self._joinable[group.key]

    def _failed(self, group: Group, errors: list[GraphQLError], request_id: str) -> None:
        """Report a failure before or during execution (after retrying signed-in
        members of a public group that failed at its start in their own scope)."""
        if group.plan.public and not group.emitted:
            self._retry_privately(group)
        self._end(group)
        encoded = orjson.dumps(_format_errors(errors, request_id), default=str).decode()
        for sink in tuple(group.members):
            sink.detach()
            sink.send_error(encoded)
        group.members.clear()
