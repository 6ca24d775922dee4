"""Domain exceptions raised by repository functions, and each domain's codes.

Every expected failure is a `DomainError` carrying a message, a machine-readable code
from its domain's enum, the input field it concerns (a Python/SQL name in snake_case,
e.g. ``max_per_order`` or ``media[2].duration_seconds``) and optional details::

    DomainError(message, code=..., field=None, **details)
     ├── EventError       EventCode      (events: create, edit, publish)
     ├── TicketingError   TicketingCode  (tiers, holds, discount codes, the waitlist;
     │                                     SOLD_OUT and NOT_SOLD_OUT carry
     │                                     ``available``, CAPACITY_BELOW_SOLD and
     │                                     MAX_USES_BELOW_USES ``minimum``)
     ├── OrderError       OrderCode      (checkout and its discount code, completion,
     │                                     refunds, check-in, lists; REFUND_EXCEEDS_PAID
     │                                     carries ``refundable_cents``)
     ├── FeedError        FeedCode       (posts)
     ├── NotificationError NotificationCode (the inbox and preferences)
     └── ProfileError     ProfileCode    (handles)

A code outside the domain's enum is refused when the error is made (``ValueError``), so
no code reaches the schema unmapped. Resolvers let these errors rise; the schema maps
them to its typed errors in one place (``schema/error_map.py``), which also turns the
field into its GraphQL (camelCase) name.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any, ClassVar


class EventCode(StrEnum):
    INVALID_INPUT = "INVALID_INPUT"
    EVENT_NOT_FOUND = "EVENT_NOT_FOUND"
    EVENT_CANCELED = "EVENT_CANCELED"
    NOT_ALLOWED = "NOT_ALLOWED"


class TicketingCode(StrEnum):
    SOLD_OUT = "SOLD_OUT"
    QUANTITY_INVALID = "QUANTITY_INVALID"
    MAX_PER_ORDER_EXCEEDED = "MAX_PER_ORDER_EXCEEDED"
    SALES_NOT_OPEN = "SALES_NOT_OPEN"
    SALES_ENDED = "SALES_ENDED"
    EVENT_NOT_PUBLISHED = "EVENT_NOT_PUBLISHED"
    EVENT_NOT_FOUND = "EVENT_NOT_FOUND"
    EVENT_CANCELED = "EVENT_CANCELED"
    TIER_NOT_FOUND = "TIER_NOT_FOUND"
    HOLD_NOT_FOUND = "HOLD_NOT_FOUND"
    HOLD_IN_CHECKOUT = "HOLD_IN_CHECKOUT"
    CAPACITY_BELOW_SOLD = "CAPACITY_BELOW_SOLD"
    NOT_ALLOWED = "NOT_ALLOWED"
    INVALID_INPUT = "INVALID_INPUT"
    CONFLICT = "CONFLICT"
    # Discount codes, as their organizer manages them (MAX_USES_BELOW_USES: ``minimum``).
    CODE_NOT_FOUND = "CODE_NOT_FOUND"
    CODE_TAKEN = "CODE_TAKEN"
    MAX_USES_BELOW_USES = "MAX_USES_BELOW_USES"
    # The waitlist (NOT_SOLD_OUT carries ``available``).
    NOT_SOLD_OUT = "NOT_SOLD_OUT"
    ALREADY_WAITING = "ALREADY_WAITING"
    WAITLIST_ENTRY_NOT_FOUND = "WAITLIST_ENTRY_NOT_FOUND"
    WAITLIST_ENTRY_CLOSED = "WAITLIST_ENTRY_CLOSED"
    OFFER_HELD = "OFFER_HELD"


class OrderCode(StrEnum):
    CONFLICT = "CONFLICT"
    HOLD_NOT_FOUND = "HOLD_NOT_FOUND"
    HOLD_EXPIRED = "HOLD_EXPIRED"
    MIXED_EVENTS = "MIXED_EVENTS"
    MIXED_CURRENCIES = "MIXED_CURRENCIES"
    CONTACT_INVALID = "CONTACT_INVALID"
    ORDER_NOT_FOUND = "ORDER_NOT_FOUND"
    TOKEN_NOT_FOUND = "TOKEN_NOT_FOUND"
    NOT_ALLOWED = "NOT_ALLOWED"
    INVALID_CURSOR = "INVALID_CURSOR"
    EVENT_NOT_FOUND = "EVENT_NOT_FOUND"
    # Refusals of a refund (`db.refunds.plan_refund` decides them, for the refund and
    # its preview alike; REFUND_EXCEEDS_PAID carries ``refundable_cents``).
    ORDER_NOT_PAID = "ORDER_NOT_PAID"
    REFUND_EXCEEDS_PAID = "REFUND_EXCEEDS_PAID"
    INVALID_AMOUNT = "INVALID_AMOUNT"
    TICKET_NOT_IN_ORDER = "TICKET_NOT_IN_ORDER"
    TICKET_ALREADY_VOIDED = "TICKET_ALREADY_VOIDED"
    TICKET_CHECKED_IN = "TICKET_CHECKED_IN"
    NOTE_REQUIRED = "NOTE_REQUIRED"
    IDEMPOTENCY_KEY_REUSED = "IDEMPOTENCY_KEY_REUSED"
    # Raised by `liventix.payments` when the gateway fails during checkout.
    PAYMENT_PROVIDER_ERROR = "PAYMENT_PROVIDER_ERROR"
    # A discount code given at checkout that cannot be applied.
    CODE_NOT_FOUND = "CODE_NOT_FOUND"
    CODE_EXPIRED = "CODE_EXPIRED"
    CODE_EXHAUSTED = "CODE_EXHAUSTED"
    CODE_NOT_APPLICABLE = "CODE_NOT_APPLICABLE"
    # Check-in refusals: returned in `db.checkin.CheckIn.refusal`, not raised.
    ALREADY_CHECKED_IN = "ALREADY_CHECKED_IN"
    TICKET_REFUNDED = "TICKET_REFUNDED"
    TICKET_VOID = "TICKET_VOID"


class FeedCode(StrEnum):
    TEXT_TOO_LONG = "TEXT_TOO_LONG"
    TEXT_INVALID = "TEXT_INVALID"
    EMPTY_POST = "EMPTY_POST"
    TOO_MANY_MEDIA = "TOO_MANY_MEDIA"
    MEDIA_URL_INVALID = "MEDIA_URL_INVALID"
    MEDIA_INVALID = "MEDIA_INVALID"
    VIDEO_TOO_LONG = "VIDEO_TOO_LONG"
    EVENT_NOT_FOUND = "EVENT_NOT_FOUND"
    POST_NOT_FOUND = "POST_NOT_FOUND"
    NOT_ALLOWED = "NOT_ALLOWED"


class NotificationCode(StrEnum):
    INVALID_PREFERENCES = "INVALID_PREFERENCES"
    NOT_FOUND = "NOT_FOUND"


class ProfileCode(StrEnum):
    HANDLE_INVALID = "HANDLE_INVALID"
    HANDLE_TAKEN = "HANDLE_TAKEN"


class DomainError(Exception):
    """An expected failure: a message, a code of the domain's `codes`, the input `field`."""

    codes: ClassVar[type[StrEnum]]

    def __init__(
        self,
        message: str,
        *,
        code: str,
        field: str | None = None,
        **details: Any,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code: StrEnum = self.codes(code)  # ValueError for a code of no domain's enum
        self.field = field
        self.details = details


class EventError(DomainError):
    codes = EventCode


class TicketingError(DomainError):
    codes = TicketingCode


class OrderError(DomainError):
    codes = OrderCode


class FeedError(DomainError):
    codes = FeedCode


class NotificationError(DomainError):
    codes = NotificationCode


class ProfileError(DomainError):
    codes = ProfileCode


# Every domain error class with its codes (the schema's mapping test walks this).
DOMAIN_ERRORS: tuple[type[DomainError], ...] = (
    EventError,
    TicketingError,
    OrderError,
    FeedError,
    NotificationError,
    ProfileError,
)
