"""The typed per-request (per-operation, for subscriptions) GraphQL context.

`Services` are the long-lived resources the app's lifespan opens; `Context` is built
for each request by the transports (`liventix.graphql_view`, `liventix.subscriptions`)
and read by resolvers and the schema's fields through `Info`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from databases import Database
from strawberry.types import Info as _Info

from liventix.auth import Viewer
from liventix.clock import Clock
from liventix.first_sight import FirstSight
from liventix.payments.gateways import PaymentGateway
from liventix.realtime import Hub
from liventix.settings import Settings
from resolvers.console_counter import ConsoleCounter
from resolvers.inbox_fanout import InboxFanout
from resolvers.loaders import Loaders
from resolvers.post_cache import PostCache


@dataclass(slots=True)
class Services:
    """Long-lived resources opened by the lifespan, shared by every request."""

    settings: Settings
    db: Database
    clock: Clock
    hub: Hub
    first_sight: FirstSight
    payments: PaymentGateway
    post_cache: PostCache = field(init=False)
    """Posts announced on live feeds, loaded once for all of this app's subscribers."""
    inbox: InboxFanout = field(init=False)
    """Which of this process's live inbox subscribers each notification batch reached."""
    console_counts: ConsoleCounter = field(init=False)
    """The live console counts of the events followed in this process, one reader each."""

    def __post_init__(self) -> None:
        self.post_cache = PostCache(self.clock)
        self.inbox = InboxFanout(self.hub, self.db)
        self.console_counts = ConsoleCounter(self.hub, self.db)


@dataclass(slots=True)
class Context:
    services: Services
    viewer: Viewer
    loaders: Loaders
    request_id: str
    connection_params: dict[str, Any] | None = None
    registered_operation: str | None = None
    """The operation's name if the request runs a registered persisted query (set by the
    transport, which resolved it): a bounded name for metrics, never the client's own."""

    @property
    def db(self) -> Database:
        return self.services.db

    @property
    def settings(self) -> Settings:
        return self.services.settings

    @property
    def clock(self) -> Clock:
        return self.services.clock


Info = _Info[Context, None]
