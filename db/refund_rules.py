"""What a refund may do: the one rule a refund and its preview both apply.

`plan_refund` takes an order, its tickets and what is asked (an amount of money, some
tickets, or the whole order) and answers what would be refunded and which tickets
voided, or the refusal. It is pure: `db.refunds.refund_order` applies it to rows it
has locked, `db.refunds.preview_refund` to rows it only read, so a preview and the
refund made right after it never disagree on the rule (only the data may have moved).

The rules:

* Only a paid (or partly refunded) order is refunded (ORDER_NOT_PAID otherwise).
* Money alone (`amount_cents`): at least 1 (INVALID_AMOUNT) and at most what is still
  refundable, paid less refunded (REFUND_EXCEEDS_PAID, with ``refundable_cents``). No
  ticket is voided: the buyer still attends.
* Tickets (`ticket_ids`): each must be the order's (TICKET_NOT_IN_ORDER), still issued
  (TICKET_ALREADY_VOIDED) and not checked in (TICKET_CHECKED_IN: its seat was used, so
  it cannot go back on sale; give money back with an amount instead). They are voided
  and their share of what was paid is refunded (`refund_amount`), never more than is
  still refundable.
* Neither: the whole order, i.e. every ticket still issued, as above; with none left it
  is a no-op (a repeated full refund changes nothing).
* The order is `refunded` once no ticket of it is issued, `partially_refunded` before.

A reason comes from a fixed list (`RefundReason`); OTHER needs a note (NOTE_REQUIRED).
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from db.errors import OrderCode, OrderError
from db.order_records import OrderRecord

NOTE_MAX_LENGTH = 500
REFUNDABLE_STATUSES = frozenset({"paid", "partially_refunded", "refunded"})


class RefundReason(StrEnum):
    """Why a refund was made: stored on the refund row (and the order's latest)."""

    REQUESTED_BY_CUSTOMER = "requested_by_customer"
    EVENT_CANCELED = "event_canceled"
    EVENT_CHANGED = "event_changed"
    DUPLICATE = "duplicate"
    FRAUDULENT = "fraudulent"
    OTHER = "other"
    # Written by the platform itself, never chosen by a person:
    LATE_PAYMENT = "late_payment"  # the payment came after the seats (or code) were gone
    PAYMENT_PROVIDER = "payment_provider"  # refunded at Stripe, outside this API


CHOSEN_REASONS = frozenset(
    {
        RefundReason.REQUESTED_BY_CUSTOMER,
        RefundReason.EVENT_CANCELED,
        RefundReason.EVENT_CHANGED,
        RefundReason.DUPLICATE,
        RefundReason.FRAUDULENT,
        RefundReason.OTHER,
    }
)


@dataclass(frozen=True, slots=True)
class RefundRequest:
    """What is asked: money alone, some tickets, or (neither) the whole order."""

    amount_cents: int | None = None
    ticket_ids: tuple[uuid.UUID, ...] | None = None

    @property
    def whole_order(self) -> bool:
        return self.amount_cents is None and self.ticket_ids is None


@dataclass(frozen=True, slots=True)
class TicketState:
    """A ticket of the order as the rule needs it (with its item's unit price)."""

    id: uuid.UUID
    tier_id: uuid.UUID
    status: str
    checked_in_at: datetime | None
    unit_price_cents: int


@dataclass(frozen=True, slots=True)
class RefundPlan:
    """What a request would do to the order, or why it is refused (`refusal`)."""

    refundable_cents: int
    """Paid less already refunded, before this refund."""
    amount_cents: int = 0
    tickets: tuple[TicketState, ...] = ()
    order_status: str | None = None
    """The order's status after the refund (None when refused)."""
    refusal: OrderError | None = field(default=None, compare=False)

    @property
    def ticket_ids(self) -> list[uuid.UUID]:
        return [t.id for t in self.tickets]

    @property
    def seats(self) -> Counter[uuid.UUID]:
        """Seats freed per tier by the voided tickets."""
        return Counter(t.tier_id for t in self.tickets)

    @property
    def remaining_cents(self) -> int:
        """What is still refundable after this refund."""
        return self.refundable_cents - (0 if self.refusal else self.amount_cents)

    @property
    def noop(self) -> bool:
        """Nothing to refund and nothing to void (a whole-order refund already done)."""
        return self.refusal is None and self.amount_cents == 0 and not self.tickets


def check_reason(reason: RefundReason, note: str | None) -> None:
    """OTHER needs a note saying what it is (NOTE_REQUIRED)."""
    if reason is RefundReason.OTHER and not (note and note.strip()):
        raise OrderError(
            "Say why in a note when the reason is OTHER",
            code=OrderCode.NOTE_REQUIRED,
            field="note",
        )


def plan_refund(
    order: OrderRecord,
    tickets: Sequence[TicketState],
    request: RefundRequest,
    *,
    voids_checked_in: bool = False,
) -> RefundPlan:
    """Decide what `request` refunds of `order` (see the module docstring for the rules).

    `voids_checked_in` lets a full refund made at the payment provider void admitted
    tickets too: the money is gone already, the tickets must not stay valid.
    """
    refundable = order.total_cents - order.refunded_cents
    if order.status not in REFUNDABLE_STATUSES:
        return _refused(refundable, f"A {order.status} order cannot be refunded",
                        OrderCode.ORDER_NOT_PAID, "order_id")  # fmt: skip
    if request.amount_cents is not None:
        return _plan_amount(refundable, request.amount_cents)
    return _plan_tickets(order, tickets, request, refundable, voids_checked_in)


def _plan_amount(refundable: int, amount: int) -> RefundPlan:
    if amount < 1:
        return _refused(refundable, "The amount must be at least 1",
                        OrderCode.INVALID_AMOUNT, "amount_cents")  # fmt: skip
    if amount > refundable:
        return _refused(refundable, f"At most {refundable} can still be refunded",
                        OrderCode.REFUND_EXCEEDS_PAID, "amount_cents")  # fmt: skip
    return RefundPlan(refundable, amount, (), "partially_refunded")


def _plan_tickets(
    order: OrderRecord,
    tickets: Sequence[TicketState],
    request: RefundRequest,
    refundable: int,
    voids_checked_in: bool,
) -> RefundPlan:
    issued = [t for t in tickets if t.status == "issued"]
    if request.ticket_ids is None:
        chosen = issued
    else:
        by_id = {t.id: t for t in tickets}
        wanted = list(dict.fromkeys(request.ticket_ids))
        if any(tid not in by_id for tid in wanted):
            return _refused(refundable, "A ticket is not one of the order's",
                            OrderCode.TICKET_NOT_IN_ORDER, "ticket_ids")  # fmt: skip
        chosen = [by_id[tid] for tid in wanted]
    if any(t.status != "issued" for t in chosen):
        return _refused(refundable, "A ticket was already refunded or voided",
                        OrderCode.TICKET_ALREADY_VOIDED, "ticket_ids")  # fmt: skip
    if not voids_checked_in and any(t.checked_in_at is not None for t in chosen):
        return _refused(refundable, "A ticket was checked in; refund an amount instead",
                        OrderCode.TICKET_CHECKED_IN, "ticket_ids")  # fmt: skip
    if not chosen:
        return RefundPlan(refundable, 0, (), order.status)
    last = len(chosen) == len(issued)
    amount = refund_amount(order, sum(t.unit_price_cents for t in chosen), last=last)
    status = "refunded" if last else "partially_refunded"
    return RefundPlan(refundable, amount, tuple(chosen), status)


def _refused(refundable: int, message: str, code: OrderCode, field: str) -> RefundPlan:
    details = {"refundable_cents": refundable} if code is OrderCode.REFUND_EXCEEDS_PAID else {}
    error = OrderError(message, code=code, field=field, **details)
    return RefundPlan(refundable, refusal=error)


def refund_amount(order: OrderRecord, list_price_cents: int, *, last: bool) -> int:
    """What refunding tickets worth `list_price_cents` (at their item prices) gives back.

    Without a discount, exactly that. With one, their share of what was paid (the
    discount spread over the order in proportion to price, rounded down), and the last
    tickets of the order get all that is left, so the refunds add up to the total paid
    and never exceed it. Money already refunded on its own comes off the same total:
    a ticket's share is never more than what is still refundable.
    """
    left = order.total_cents - order.refunded_cents
    if last:
        return max(left, 0)
    if order.subtotal_cents == 0:
        return 0
    share = list_price_cents * order.total_cents // order.subtotal_cents
    return min(share, left)
