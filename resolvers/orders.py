"""Orders, tickets, refunds and check-in: auth checks, input → call → records.

Who may do what is decided here (signed in) and in the repository functions
(ownership, checked under the same lock as the write). Operations views for admins are
in `resolvers.operations`.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Sequence

import db.checkin
import db.errors
import db.events
import db.order_queries
import db.order_records
import db.refunds
from db.checkout import Contact
from db.errors import OrderCode
from db.refund_rules import (
    CHOSEN_REASONS,
    NOTE_MAX_LENGTH,
    RefundPlan,
    RefundReason,
    RefundRequest,
)
from db.refunds import RefundAsked
from liventix.payments import flows
from resolvers.access import seen, signed_in
from resolvers.context import Info
from resolvers.errors import ClientCode, ClientError
from resolvers.ids import EVENT, HOLD, ORDER, TICKET, parse_id, parse_ids

MAX_PAGE = 100
MAX_CLIENT_KEY = 200

CHECK_IN_REFUSALS = {
    OrderCode.ALREADY_CHECKED_IN: "This ticket was already checked in",
    OrderCode.TICKET_REFUNDED: "This ticket was refunded",
    OrderCode.TICKET_VOID: "This ticket is void",
}


def ids(values: Sequence[str], type_name: str, field: str) -> list[uuid.UUID]:
    """The UUIDs of client-supplied ids of `type_name`; INVALID_INPUT naming `field` if any
    is not one."""
    parsed = parse_ids(values, type_name)
    if parsed is None:
        raise ClientError("Not a valid id", ClientCode.INVALID_INPUT, field)
    return parsed


def _first(first: int) -> int:
    if not 1 <= first <= MAX_PAGE:
        raise ClientError(f"first must be 1 to {MAX_PAGE}", ClientCode.BAD_USER_INPUT)
    return first


async def checkout(
    info: Info, hold_ids: Sequence[str], contact: Contact, code: str | None = None
) -> flows.CheckoutResult:
    """Turn the viewer's holds into a pending order and a payment intent, with the
    event's discount code `code` applied if given."""
    ctx = info.context
    user_id = signed_in(info)
    holds = ids(hold_ids, HOLD, "hold_ids")
    await seen(info)
    return await flows.checkout(
        ctx.db,
        ctx.services.payments,
        ctx.clock,
        user_id=user_id,
        hold_ids=holds,
        contact=contact,
        code=code,
    )


async def refund_order(
    info: Info,
    order_id: str,
    *,
    amount_cents: int | None,
    ticket_ids: Sequence[str] | None,
    reason: RefundReason,
    note: str | None,
    idempotency_key: str | None,
) -> db.refunds.RefundOutcome:
    """Refund money, tickets or a whole order (the event's organizer or an admin)."""
    ctx = info.context
    actor = signed_in(info)
    (order,) = ids([order_id], ORDER, "order_id")
    request = _refund_request(amount_cents, ticket_ids)
    if reason not in CHOSEN_REASONS:
        raise ClientError("This reason is the platform's own", ClientCode.INVALID_INPUT, "reason")
    if note is not None and len(note) > NOTE_MAX_LENGTH:
        raise ClientError(
            f"The note is longer than {NOTE_MAX_LENGTH} characters",
            ClientCode.INVALID_INPUT,
            "note",
        )
    asked = RefundAsked(request, reason, note or None, _client_key(idempotency_key, request))
    return await flows.refund(
        ctx.db,
        ctx.services.payments,
        ctx.clock,
        order_id=order,
        actor_id=actor,
        actor_is_admin=ctx.viewer.is_admin,
        asked=asked,
    )


async def refund_preview(
    info: Info, order_id: str, *, amount_cents: int | None, ticket_ids: Sequence[str] | None
) -> RefundPlan:
    """What `refund_order` would do now: the same rule, nothing written."""
    ctx = info.context
    actor = signed_in(info)
    (order,) = ids([order_id], ORDER, "order_id")
    return await db.refunds.preview_refund(
        ctx.db,
        order_id=order,
        actor_id=actor,
        actor_is_admin=ctx.viewer.is_admin,
        request=_refund_request(amount_cents, ticket_ids),
    )


def _refund_request(amount_cents: int | None, ticket_ids: Sequence[str] | None) -> RefundRequest:
    """Money or tickets, not both; neither is the whole order."""
    if amount_cents is not None and ticket_ids is not None:
        raise ClientError(
            "Give an amount or tickets, not both", ClientCode.INVALID_INPUT, "amount_cents"
        )
    if ticket_ids is not None and not ticket_ids:
        raise ClientError("Name at least one ticket", ClientCode.INVALID_INPUT, "ticket_ids")
    tickets = None if ticket_ids is None else tuple(ids(ticket_ids, TICKET, "ticket_ids"))
    return RefundRequest(amount_cents=amount_cents, ticket_ids=tickets)


def _client_key(key: str | None, request: RefundRequest) -> str | None:
    """The client's idempotency key: 1-200 characters, and required with an amount (a
    refund of money alone has nothing else that makes a retry harmless)."""
    if key is None:
        if request.amount_cents is not None:
            raise ClientError(
                "An amount refund needs an idempotency key",
                ClientCode.INVALID_INPUT,
                "idempotency_key",
            )
        return None
    if not 1 <= len(key) <= MAX_CLIENT_KEY:
        raise ClientError(
            f"The idempotency key must be 1 to {MAX_CLIENT_KEY} characters",
            ClientCode.INVALID_INPUT,
            "idempotency_key",
        )
    return key


async def check_in(info: Info, token: str) -> db.checkin.CheckIn:
    """Admit a ticket holder at the door (the event's organizer or an admin).

    A ticket that may not enter now is refused with its code (ALREADY_CHECKED_IN,
    TICKET_REFUNDED, TICKET_VOID) and when it was admitted (``checked_in_at``).
    """
    ctx = info.context
    actor = signed_in(info)
    if not 20 <= len(token) <= 200:
        raise db.errors.OrderError("Unknown ticket", code=OrderCode.TOKEN_NOT_FOUND, field="token")
    scan = await db.checkin.check_in(
        ctx.db, token=token, actor_id=actor, actor_is_admin=ctx.viewer.is_admin, now=ctx.clock.now()
    )
    if scan.refusal is not None:
        raise db.errors.OrderError(
            CHECK_IN_REFUSALS[scan.refusal],
            code=scan.refusal,
            field="token",
            checked_in_at=scan.ticket.checked_in_at,
        )
    return scan


async def my_orders(
    info: Info, first: int = 20, after: str | None = None
) -> db.order_queries.Page[db.order_records.OrderRecord]:
    user_id = signed_in(info)
    try:
        return await db.order_queries.list_user_orders(
            info.context.db, user_id, first=_first(first), after=after
        )
    except db.errors.OrderError as exc:  # a bad cursor: a GraphQL error on a plain list
        raise ClientError(exc.message, ClientCode.BAD_USER_INPUT) from None


async def my_tickets(
    info: Info, first: int = 20, after: str | None = None
) -> db.order_queries.Page[db.order_records.TicketRecord]:
    user_id = signed_in(info)
    try:
        return await db.order_queries.list_user_tickets(
            info.context.db, user_id, first=_first(first), after=after
        )
    except db.errors.OrderError as exc:  # a bad cursor: a GraphQL error on a plain list
        raise ClientError(exc.message, ClientCode.BAD_USER_INPUT) from None


async def order(info: Info, id: str) -> db.order_records.OrderRecord | None:
    """An order visible to its buyer, its event's organizer and admins; else null."""
    user_id = signed_in(info)
    order_id = parse_id(id, ORDER)
    return await _visible_order(info, user_id, order_id) if order_id else None


async def ticket(info: Info, id: str) -> db.order_records.TicketRecord | None:
    """A ticket, for whoever may see its order (as in `Order.tickets`); else null."""
    user_id = signed_in(info)
    ticket_id = parse_id(id, TICKET)
    if ticket_id is None:
        return None
    record: db.order_records.TicketRecord | None = await info.context.loaders.get(
        db.order_queries.get_tickets
    ).load(ticket_id)
    if record is None or await _visible_order(info, user_id, record.order_id) is None:
        return None
    return record


async def _visible_order(
    info: Info, user_id: uuid.UUID, order_id: uuid.UUID
) -> db.order_records.OrderRecord | None:
    """The order if the viewer may see it: its buyer, its event's organizer, admins."""
    record: db.order_records.OrderRecord | None = await info.context.loaders.get(
        db.order_queries.get_orders
    ).load(order_id)
    if record is None:
        return None
    if record.user_id == user_id or info.context.viewer.is_admin:
        return record
    organizer = await db.order_queries.event_organizer(info.context.db, record.event_id)
    return record if organizer == user_id else None


async def event_orders(
    info: Info,
    event_id: str,
    first: int = 20,
    after: str | None = None,
    status: str | None = None,
) -> db.order_queries.Page[db.order_records.OrderRecord]:
    """An event's orders, for its organizer or an admin."""
    ctx = info.context
    actor = signed_in(info)
    (event,) = ids([event_id], EVENT, "event_id")
    if not 1 <= first <= MAX_PAGE:
        raise ClientError(f"first must be 1 to {MAX_PAGE}", ClientCode.INVALID_INPUT, "first")
    return await db.order_queries.list_event_orders(
        ctx.db,
        event_id=event,
        actor_id=actor,
        actor_is_admin=ctx.viewer.is_admin,
        first=first,
        after=after,
        status=status,
    )


# -- what an order or ticket shows ---------------------------------------------------


def qr_payload(info: Info, ticket: db.order_records.TicketRecord) -> str | None:
    """The token the door scans: shown to the ticket's owner only."""
    if info.context.viewer.user_id != ticket.owner_user_id:
        return None
    return ticket.token


async def order_items(info: Info, order_id: uuid.UUID) -> list[db.order_records.OrderItemRecord]:
    records: list[db.order_records.OrderItemRecord] = await info.context.loaders.get(
        db.order_queries.get_order_items
    ).load(order_id)
    return records


async def order_tickets(info: Info, order_id: uuid.UUID) -> list[db.order_records.TicketRecord]:
    records: list[db.order_records.TicketRecord] = await info.context.loaders.get(
        db.order_queries.get_order_tickets
    ).load(order_id)
    return records


async def order_refunds(
    info: Info, order: db.order_records.OrderRecord
) -> list[db.refunds.RefundRecord]:
    """The order's refunds. The free-text note is the organizer's record of why, not a
    message to the buyer: only those who manage the order's event read it."""
    records: list[db.refunds.RefundRecord] = await info.context.loaders.get(
        db.refunds.refunds_of_orders
    ).load(order.id)
    if not any(r.note for r in records) or await _manages_event(info, order.event_id):
        return records
    return [dataclasses.replace(r, note=None) for r in records]


async def _manages_event(info: Info, event_id: uuid.UUID) -> bool:
    viewer = info.context.viewer
    event = await info.context.loaders.get(db.events.get_events).load(event_id)
    return event is not None and db.events.manages_event(
        event.organizer_id, viewer.user_id, viewer.is_admin
    )
