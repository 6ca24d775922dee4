"""Orders, tickets, refunds, check-in and operations health: auth, input → call → type.

Who may do what is decided here (signed in, admin) and in the repository functions
(ownership, checked under the same lock as the write). Domain failures come back as
`OrderError` values in the result union; only a missing sign-in on a query, or a
non-admin asking for operations data, is a GraphQL error.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence

import strawberry

import db.checkin
import db.errors
import db.ops_views
import db.order_queries
from db.checkout import Contact
from liventix.context import Info
from liventix.payments import flows
from schema.errors import ClientError
from schema.orders import (
    CheckInPayload,
    CheckInResult,
    CheckoutPayload,
    CheckoutResult,
    ContactInput,
    EventHealth,
    EventReadiness,
    Order,
    OrderConnection,
    OrderError,
    OrderErrorCode,
    OrdersResult,
    OrderStatus,
    ReconciliationReport,
    RefundPayload,
    RefundResult,
    Ticket,
    TicketConnection,
)

MAX_PAGE = 100


def _ids(values: Sequence[strawberry.ID], field: str) -> list[uuid.UUID] | OrderError:
    try:
        return [uuid.UUID(str(v)) for v in values]
    except ValueError:
        return OrderError.of(OrderErrorCode.INVALID_INPUT, "Not a valid id", field)


def _signed_in(info: Info) -> uuid.UUID | OrderError:
    user_id = info.context.viewer.user_id
    if user_id is None:
        return OrderError.of(OrderErrorCode.UNAUTHENTICATED, "Sign in first")
    return user_id


def _require_user(info: Info) -> uuid.UUID:
    user_id = info.context.viewer.user_id
    if user_id is None:
        raise ClientError("Sign in first", "UNAUTHENTICATED")
    return user_id


def _require_admin(info: Info) -> None:
    if not info.context.viewer.is_admin:
        raise ClientError("Admins only", "FORBIDDEN")


def _first(first: int) -> int:
    if not 1 <= first <= MAX_PAGE:
        raise ClientError(f"first must be 1 to {MAX_PAGE}", "BAD_USER_INPUT")
    return first


async def checkout(
    info: Info, hold_ids: list[strawberry.ID], contact: ContactInput
) -> CheckoutResult:
    ctx = info.context
    user_id = _signed_in(info)
    if isinstance(user_id, OrderError):
        return user_id
    holds = _ids(hold_ids, "holdIds")
    if isinstance(holds, OrderError):
        return holds
    await ctx.services.first_sight.see(ctx.viewer)
    try:
        result = await flows.checkout(
            ctx.db,
            ctx.services.payments,
            ctx.clock,
            user_id=user_id,
            hold_ids=holds,
            contact=Contact(email=contact.email, name=contact.name, phone=contact.phone),
        )
    except db.errors.OrderError as exc:
        return OrderError.from_domain(exc)
    order = result.checkout.order
    return CheckoutPayload(
        order=Order.from_record(order),
        client_secret=result.client_secret,
        payment_intent_id=order.stripe_payment_intent_id,
    )


async def refund_order(
    info: Info,
    order_id: strawberry.ID,
    ticket_ids: list[strawberry.ID] | None = None,
    reason: str = "",
) -> RefundResult:
    """Refund a whole order, or some tickets of it (the event's organizer or an admin)."""
    ctx = info.context
    actor = _signed_in(info)
    if isinstance(actor, OrderError):
        return actor
    ids = _ids([order_id], "orderId")
    if isinstance(ids, OrderError):
        return ids
    tickets = None if ticket_ids is None else _ids(ticket_ids, "ticketIds")
    if isinstance(tickets, OrderError):
        return tickets
    if len(reason) > 500:
        return OrderError.of(OrderErrorCode.INVALID_INPUT, "Reason is too long", "reason")
    try:
        outcome = await flows.refund(
            ctx.db,
            ctx.services.payments,
            ctx.clock,
            order_id=ids[0],
            actor_id=actor,
            actor_is_admin=ctx.viewer.is_admin,
            ticket_ids=tickets,
            reason=reason or "requested by the organizer",
        )
    except db.errors.OrderError as exc:
        return OrderError.from_domain(exc)
    return RefundPayload(
        order=Order.from_record(outcome.order),
        refunded_tickets=[strawberry.ID(str(t)) for t in outcome.refunded_ticket_ids],
    )


async def check_in(info: Info, token: str) -> CheckInResult:
    """Admit a ticket holder at the door (the event's organizer or an admin)."""
    ctx = info.context
    actor = _signed_in(info)
    if isinstance(actor, OrderError):
        return actor
    if not 20 <= len(token) <= 200:
        return OrderError.of(OrderErrorCode.TOKEN_NOT_FOUND, "Unknown ticket", "token")
    try:
        scan = await db.checkin.check_in(
            ctx.db,
            token=token,
            actor_id=actor,
            actor_is_admin=ctx.viewer.is_admin,
            now=ctx.clock.now(),
        )
    except db.errors.OrderError as exc:
        return OrderError.from_domain(exc)
    if scan.refusal is None:
        return CheckInPayload(ticket=Ticket.from_record(scan.ticket), scan_count=scan.scan_count)
    messages = {
        "ALREADY_CHECKED_IN": "This ticket was already checked in",
        "TICKET_REFUNDED": "This ticket was refunded",
        "TICKET_VOID": "This ticket is void",
    }
    return OrderError(
        code=OrderErrorCode(scan.refusal),
        message=messages[scan.refusal],
        field="token",
        checked_in_at=scan.ticket.checked_in_at,
    )


async def my_orders(info: Info, first: int = 20, after: str | None = None) -> OrderConnection:
    user_id = _require_user(info)
    try:
        page = await db.order_queries.list_user_orders(
            info.context.db, user_id, first=_first(first), after=after
        )
    except db.errors.OrderError as exc:
        raise ClientError(exc.message, "BAD_USER_INPUT") from None
    return OrderConnection.from_page(page)


async def my_tickets(info: Info, first: int = 20, after: str | None = None) -> TicketConnection:
    user_id = _require_user(info)
    try:
        page = await db.order_queries.list_user_tickets(
            info.context.db, user_id, first=_first(first), after=after
        )
    except db.errors.OrderError as exc:
        raise ClientError(exc.message, "BAD_USER_INPUT") from None
    return TicketConnection.from_page(page)


async def order(info: Info, id: strawberry.ID) -> Order | None:
    """An order visible to its buyer, its event's organizer and admins; else null."""
    viewer = info.context.viewer
    user_id = _require_user(info)
    ids = _ids([id], "id")
    if isinstance(ids, OrderError):
        return None
    record = await info.context.loaders.get(db.order_queries.get_orders).load(ids[0])
    if record is None:
        return None
    if record.user_id == user_id or viewer.is_admin:
        return Order.from_record(record)
    organizer = await db.order_queries.event_organizer(info.context.db, record.event_id)
    return Order.from_record(record) if organizer == user_id else None


async def event_orders(
    info: Info,
    event_id: strawberry.ID,
    first: int = 20,
    after: str | None = None,
    status: OrderStatus | None = None,
) -> OrdersResult:
    """An event's orders, for its organizer or an admin."""
    ctx = info.context
    actor = _signed_in(info)
    if isinstance(actor, OrderError):
        return actor
    ids = _ids([event_id], "eventId")
    if isinstance(ids, OrderError):
        return ids
    if not 1 <= first <= MAX_PAGE:
        return OrderError.of(
            OrderErrorCode.INVALID_INPUT, f"first must be 1 to {MAX_PAGE}", "first"
        )
    try:
        page = await db.order_queries.list_event_orders(
            ctx.db,
            event_id=ids[0],
            actor_id=actor,
            actor_is_admin=ctx.viewer.is_admin,
            first=first,
            after=after,
            status=status.value if status else None,
        )
    except db.errors.OrderError as exc:
        return OrderError.from_domain(exc)
    return OrderConnection.from_page(page)


async def event_health(info: Info, event_id: strawberry.ID | None = None) -> list[EventHealth]:
    _require_admin(info)
    ids = None if event_id is None else _ids([event_id], "eventId")
    if isinstance(ids, OrderError):
        raise ClientError(ids.message, "BAD_USER_INPUT")
    rows = await db.ops_views.event_health(info.context.db, ids)
    return [EventHealth.from_row(r) for r in rows]


async def event_readiness(info: Info) -> list[EventReadiness]:
    _require_admin(info)
    rows = await db.ops_views.event_readiness(info.context.db)
    return [EventReadiness.from_row(r) for r in rows]


async def reconciliation_reports(info: Info, limit: int = 20) -> list[ReconciliationReport]:
    _require_admin(info)
    rows = await db.ops_views.reconciliation_reports(info.context.db, min(max(limit, 1), 100))
    return [ReconciliationReport.from_row(r) for r in rows]
