"""Every GraphQL operation and root field, counted and timed (`liventix.metrics`).

`OperationMetrics` is the first (outermost) extension of every operation on every
transport, so it sees the operation whole: parsing, validation, the other guards,
execution, and what ended it. When the operation ends it counts it by name, type and
outcome, and times it:

- **name**: the registered persisted query's (the transport puts it in the context as
  `registered_operation`), else ``anonymous`` for an operation without a name, else
  ``other``. A name a client sends is never a label: only the server's list is bounded.
- **type**: ``query``, ``mutation`` or ``subscription``; ``unknown`` when the document
  did not parse or names no operation it has.
- **outcome**: ``ok``; ``error`` when the response has any error (a field's, a timeout);
  ``request_error`` when nothing ran (the document did not parse or validate, its
  variables were refused, no operation could be chosen).

A subscription's duration is the time it took to start streaming (its whole life would
say nothing about latency); it is counted when it ends, with ``error`` if any of its
results had one. Root fields of Query and Mutation are timed one by one (that is what
the checkout latency alert reads) by `time_root_fields`, which `schema.build_schema`
applies; deeper fields are left untouched.

Errors are counted by code elsewhere, once per result: `schema.LiventixSchema`.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterator
from inspect import isawaitable
from typing import Any

from graphql import GraphQLResolveInfo, GraphQLSchema, default_field_resolver
from strawberry.extensions import SchemaExtension
from strawberry.types import ExecutionContext
from strawberry.types.graphql import OperationType

from liventix.metrics import GRAPHQL_FIELD_DURATION, GRAPHQL_OPERATION_DURATION, GRAPHQL_OPERATIONS

OK, ERROR, REQUEST_ERROR = "ok", "error", "request_error"
OTHER, ANONYMOUS, UNKNOWN = "other", "anonymous", "unknown"


class OperationMetrics(SchemaExtension):
    """Counts and times the operation (see the module)."""

    def __init__(self) -> None:
        super().__init__()
        self._executing = False
        self._executed_at: float | None = None

    def on_operation(self) -> Iterator[None]:
        started = time.perf_counter()
        outcome: str | None = None
        try:
            yield
        except Exception:
            # Raised before execution began (a syntax error, too many tokens, no such
            # operation): nothing ran. After (the execution timeout): it ran and failed.
            outcome = ERROR if self._executing else REQUEST_ERROR
            raise
        finally:  # also when a subscription's stream is closed: it ended
            self._record(started, outcome)

    def on_execute(self) -> Iterator[None]:
        self._executing = True
        yield
        self._executed_at = time.perf_counter()

    def _record(self, started: float, outcome: str | None) -> None:
        context = self.execution_context
        kind = operation_type(context)
        name = operation_label(context)
        ended = time.perf_counter()
        if kind == OperationType.SUBSCRIPTION.value and self._executed_at is not None:
            ended = self._executed_at
        GRAPHQL_OPERATIONS.labels(name, kind, outcome or result_outcome(context)).inc()
        GRAPHQL_OPERATION_DURATION.labels(name, kind).observe(ended - started)


def time_root_fields(schema: GraphQLSchema) -> None:
    """Time every root field of Query and Mutation (`liventix_graphql_field_duration_seconds`).

    Their resolvers are wrapped once, when the schema is built, rather than through an
    extension's `resolve` hook: that hook runs for every field of every response (a feed
    page has hundreds), and timing the root ones only would still cost each of them a
    call (about a tenth of a response's CPU, measured on introspection)."""
    for root in (schema.query_type, schema.mutation_type):
        for name, field in (root.fields if root is not None else {}).items():
            field.resolve = _timed_resolver(field.resolve or default_field_resolver, name)


def _timed_resolver(resolve: Callable[..., Any], field: str) -> Callable[..., Any]:
    def timed(root: Any, info: GraphQLResolveInfo[Any], **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            result = resolve(root, info, **kwargs)
        except Exception:
            _observe_field(field, started)
            raise
        if isawaitable(result):
            return _timed(result, field, started)
        _observe_field(field, started)
        return result

    return timed


async def _timed(result: Awaitable[Any], field: str, started: float) -> Any:
    try:
        return await result
    finally:
        _observe_field(field, started)


def _observe_field(field: str, started: float) -> None:
    GRAPHQL_FIELD_DURATION.labels(field).observe(time.perf_counter() - started)


def operation_type(context: ExecutionContext) -> str:
    """``query``, ``mutation``, ``subscription``, or ``unknown`` (no such operation)."""
    if context.graphql_document is None:
        return UNKNOWN
    try:
        return context.operation_type.value
    except RuntimeError:  # the operation name names none of the document's operations
        return UNKNOWN


def operation_label(context: ExecutionContext) -> str:
    """The registered operation's name, else ``anonymous`` or ``other`` (bounded)."""
    registered = getattr(context.context, "registered_operation", None)
    if isinstance(registered, str) and registered:
        return registered
    if context.graphql_document is not None and context.operation_name is None:
        return ANONYMOUS
    return OTHER


def result_outcome(context: ExecutionContext) -> str:
    """``ok``, ``error`` or ``request_error`` from what the operation produced.

    Strawberry keeps the errors of every result in `pre_execution_errors` (validation
    leaves an empty list there), so a subscription that had an error shows it even if
    later results had none. A request error has no data and errors at no path: the
    same rule as the HTTP view's status."""
    result = context.result
    errors = context.pre_execution_errors or getattr(result, "errors", None)
    if not errors:
        return OK
    if getattr(result, "data", None) is None and all(e.path is None for e in errors):
        return REQUEST_ERROR
    return ERROR
