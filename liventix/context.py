"""The typed per-request (per-operation, for subscriptions) GraphQL context."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from databases import Database
from strawberry.types import Info as _Info

from liventix.auth import Viewer
from liventix.clock import Clock
from liventix.settings import Settings

if TYPE_CHECKING:
    from liventix.first_sight import FirstSight
    from liventix.payments.gateways import PaymentGateway
    from liventix.realtime import Hub
    from resolvers.loaders import Loaders


@dataclass(slots=True)
class Services:
    """Long-lived resources opened by the lifespan, shared by every request."""

    settings: Settings
    db: Database
    clock: Clock
    hub: Hub
    first_sight: FirstSight
    payments: PaymentGateway
    extras: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class Context:
    services: Services
    viewer: Viewer
    loaders: Loaders
    request_id: str
    connection_params: dict[str, Any] | None = None

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
