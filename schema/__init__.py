"""The GraphQL schema.

`schema/<feature>.py` holds a feature's types, inputs, enums and typed errors;
`schema/root/<feature>.py` its root fields, which delegate to `resolvers/<feature>.py`.
The feature root classes are merged here into Query, Mutation and Subscription.
"""

from __future__ import annotations

import strawberry
from strawberry.tools import merge_types

from schema.errors import build_extensions
from schema.root import feed, orders, ticketing, users

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


def build_schema(
    *, max_depth: int = 10, max_aliases: int = 30, max_tokens: int = 2000
) -> strawberry.Schema:
    return strawberry.Schema(
        query=Query,
        mutation=Mutation,
        subscription=Subscription,
        extensions=build_extensions(
            max_depth=max_depth, max_aliases=max_aliases, max_tokens=max_tokens
        ),
    )
