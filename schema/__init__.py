"""The GraphQL schema.

`schema/<feature>.py` holds a feature's types, inputs, enums and typed errors;
`schema/root/<feature>.py` its root fields, which delegate to `resolvers/<feature>.py`.
The feature root classes are merged here into Query, Mutation and Subscription.
"""

from __future__ import annotations

from typing import Any

import strawberry
from graphql import GraphQLError
from strawberry.tools import merge_types
from strawberry.types import ExecutionContext

from schema.errors import build_extensions, log_errors
from schema.root import feed, orders, ticketing, users
from schema.text import StorableTextExecutor

QUERIES: tuple[type, ...] = (
    users.UsersQuery,
    feed.FeedQuery,
    ticketing.TicketingQuery,
    orders.OrdersQuery,
)
MUTATIONS: tuple[type, ...] = (
    users.UsersMutation,
    feed.FeedMutation,
    ticketing.TicketingMutation,
    orders.OrdersMutation,
)
SUBSCRIPTIONS: tuple[type, ...] = (
    users.UsersSubscription,
    feed.FeedSubscription,
    ticketing.TicketingSubscription,
)

Query = merge_types("Query", QUERIES)
Mutation = merge_types("Mutation", MUTATIONS)
Subscription = merge_types("Subscription", SUBSCRIPTIONS)


class LiventixSchema(strawberry.Schema):
    """Strawberry's schema with our error logging: Strawberry would log every error,
    the client's included, at ERROR with a traceback (see `schema.errors`)."""

    def process_errors(
        self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None
    ) -> None:
        context: Any = execution_context.context if execution_context else None
        operation = execution_context.operation_name if execution_context else None
        log_errors(errors, getattr(context, "request_id", None), operation)


def build_schema(
    *, max_depth: int = 10, max_aliases: int = 30, max_tokens: int = 2000
) -> strawberry.Schema:
    return LiventixSchema(
        query=Query,
        mutation=Mutation,
        subscription=Subscription,
        extensions=build_extensions(
            max_depth=max_depth, max_aliases=max_aliases, max_tokens=max_tokens
        ),
        execution_context_class=StorableTextExecutor,
    )
