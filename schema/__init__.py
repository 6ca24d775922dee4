"""The GraphQL schema.

`schema/<feature>.py` holds a feature's types, inputs, enums and typed errors;
`schema/root/<feature>.py` its root fields, which call `resolvers/<feature>.py` and wrap
the records it returns in types. What a resolver raises becomes a typed error in one
place, `schema.error_map`, installed here as the schema's exception handlers. The
feature root classes are merged here into Query, Mutation and Subscription.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

import strawberry
from graphql import GraphQLError
from strawberry.tools import merge_types
from strawberry.types import ExecutionContext

from liventix.metrics import GRAPHQL_ERRORS
from schema.error_map import exception_handlers
from schema.errors import log_errors, response_code
from schema.extensions import build_extensions
from schema.operation_metrics import time_root_fields
from schema.root.console import ConsoleMutation, ConsoleQuery, ConsoleSubscription
from schema.root.discount_codes import DiscountCodesMutation, DiscountCodesQuery
from schema.root.events import EventsMutation, EventsQuery
from schema.root.feed import FeedMutation, FeedQuery, FeedSubscription
from schema.root.node import NodeQuery
from schema.root.notifications import (
    NotificationsMutation,
    NotificationsQuery,
    NotificationsSubscription,
)
from schema.root.operations import OperationsQuery
from schema.root.orders import OrdersMutation, OrdersQuery
from schema.root.outbox import OutboxQuery
from schema.root.ticketing import TicketingMutation, TicketingQuery, TicketingSubscription
from schema.root.users import UsersMutation, UsersQuery, UsersSubscription
from schema.root.waitlist import WaitlistMutation, WaitlistQuery
from schema.text import StorableTextExecutor

# Root classes are imported by name, not their modules: `from schema.root import feed`
# would bind `schema.feed` to the root module, shadowing the `schema.feed` types module.
QUERIES: tuple[type, ...] = (
    UsersQuery,
    FeedQuery,
    EventsQuery,
    TicketingQuery,
    DiscountCodesQuery,
    WaitlistQuery,
    OrdersQuery,
    ConsoleQuery,
    OperationsQuery,
    NodeQuery,
    NotificationsQuery,
    OutboxQuery,
)
MUTATIONS: tuple[type, ...] = (
    UsersMutation,
    FeedMutation,
    EventsMutation,
    TicketingMutation,
    DiscountCodesMutation,
    WaitlistMutation,
    OrdersMutation,
    ConsoleMutation,
    NotificationsMutation,
)
SUBSCRIPTIONS: tuple[type, ...] = (
    UsersSubscription,
    FeedSubscription,
    TicketingSubscription,
    NotificationsSubscription,
    ConsoleSubscription,
)


def _root(name: str, features: tuple[type, ...], description: str) -> type:
    """The feature roots merged into one root type. `merge_types` takes no description,
    so the merged type's definition is given it here."""
    merged = merge_types(name, features)
    merged.__strawberry_definition__.description = description  # type: ignore[attr-defined]
    return merged


Query = _root(
    "Query",
    QUERIES,
    "Reads: events and their tiers, feeds, the viewer's holds, orders and tickets, and "
    "the organizer's and admin's views. Lists are cursor-paginated (`first` 1-100).",
)
Mutation = _root(
    "Mutation",
    MUTATIONS,
    "Writes. Expected failures (sold out, hold expired, not allowed, ...) come back as "
    "the field's typed error with a machine-readable `code`, never as a GraphQL error.",
)
Subscription = _root(
    "Subscription",
    SUBSCRIPTIONS,
    "Live updates over WebSocket (`graphql-transport-ws`), delivered only after the "
    "change they report has committed, from whichever API process made it.",
)


class LiventixSchema(strawberry.Schema):
    """Strawberry's schema with our error logging: Strawberry would log every error,
    the client's included, at ERROR with a traceback (see `schema.errors`). Each error
    is also counted by the code the client sees (Strawberry calls this once per result,
    on every transport)."""

    def process_errors(
        self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None
    ) -> None:
        context: Any = execution_context.context if execution_context else None
        operation = execution_context.operation_name if execution_context else None
        log_errors(errors, getattr(context, "request_id", None), operation)
        for error in errors:
            GRAPHQL_ERRORS.labels(response_code(error)).inc()


class SuggestionFreeExecutor(StorableTextExecutor):
    """The executor of production: a refused variable's error (an unknown enum value,
    an unknown input field) names no valid alternative."""

    @classmethod
    def build(cls, *args: Any, **kwargs: Any) -> Any:
        return super().build(*args, **{**kwargs, "hide_suggestions": True})


def build_schema(
    *,
    max_depth: int = 10,
    max_aliases: int = 30,
    max_tokens: int = 2000,
    max_cost: int = 10000,
    production: bool = False,
    introspection_roles: Collection[str] = (),
    timeout_seconds: float | None = None,
) -> strawberry.Schema:
    """The schema with its guards (`schema.extensions`). `production` hides "Did you
    mean" suggestions and lets only `introspection_roles` introspect."""
    schema = LiventixSchema(
        query=Query,
        mutation=Mutation,
        subscription=Subscription,
        extensions=build_extensions(
            max_depth=max_depth,
            max_aliases=max_aliases,
            max_tokens=max_tokens,
            max_cost=max_cost,
            production=production,
            introspection_roles=introspection_roles,
            timeout_seconds=timeout_seconds,
        ),
        execution_context_class=SuggestionFreeExecutor if production else StorableTextExecutor,
        exception_handlers=exception_handlers(),
    )
    time_root_fields(schema._schema)
    return schema
