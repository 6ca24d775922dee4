"""Which notification goes where: categories, their lanes, the default switches, and
which categories are about money. The one owner of these rules: the enqueue SQL, the
preferences and the schema's enums all read them from here.

A category decides its lane. A user's switches (channel x category) override the
defaults below; money notifications (a payment, a refund) and waitlist offers (seats
held for an hour) are never held back by quiet hours or the daily cap, whatever the
user set, though their channels can be switched.
"""

from __future__ import annotations

from enum import StrEnum


class Lane(StrEnum):
    PRIORITY = "priority"
    SOCIAL = "social"
    SYSTEM = "system"


class Channel(StrEnum):
    IN_APP = "in_app"
    EMAIL = "email"
    PUSH = "push"
    SMS = "sms"


class Category(StrEnum):
    ORDER_PAID = "order_paid"
    ORDER_REFUNDED = "order_refunded"
    LATE_PAYMENT_REFUNDED = "late_payment_refunded"
    EVENT_CHANGED = "event_changed"
    EVENT_CANCELED = "event_canceled"
    MENTION = "mention"
    WAITLIST_OFFER = "waitlist_offer"
    NEW_POST = "new_post"
    PRODUCT_UPDATE = "product_update"
    ACCOUNT_ALERT = "account_alert"


LANES: dict[Category, Lane] = {
    Category.ORDER_PAID: Lane.PRIORITY,
    Category.ORDER_REFUNDED: Lane.PRIORITY,
    Category.LATE_PAYMENT_REFUNDED: Lane.PRIORITY,
    Category.EVENT_CHANGED: Lane.PRIORITY,
    Category.EVENT_CANCELED: Lane.PRIORITY,
    Category.MENTION: Lane.PRIORITY,
    Category.WAITLIST_OFFER: Lane.PRIORITY,
    Category.NEW_POST: Lane.SOCIAL,
    Category.PRODUCT_UPDATE: Lane.SYSTEM,
    Category.ACCOUNT_ALERT: Lane.SYSTEM,
}

MONEY: frozenset[Category] = frozenset(
    {Category.ORDER_PAID, Category.ORDER_REFUNDED, Category.LATE_PAYMENT_REFUNDED}
)

# Never held back by quiet hours or the daily cap: money, and a waitlist offer, whose
# seats are held only for the event's offer window (an hour by default).
UNDEFERRED: frozenset[Category] = MONEY | {Category.WAITLIST_OFFER}

# Channels beyond the inbox, in the order deliveries are written.
OUTBOX_CHANNELS: tuple[Channel, ...] = (Channel.EMAIL, Channel.PUSH, Channel.SMS)


def default_switch(channel: Channel, category: Category) -> bool:
    """Whether `channel` carries `category` for a user who did not say: the inbox takes
    everything; email the priority lane and account alerts; push priority and social;
    SMS nothing until switched on."""
    lane = LANES[category]
    if channel is Channel.IN_APP:
        return True
    if channel is Channel.EMAIL:
        return lane is Lane.PRIORITY or category is Category.ACCOUNT_ALERT
    if channel is Channel.PUSH:
        return lane in (Lane.PRIORITY, Lane.SOCIAL)
    return False


def switch(switches: dict[str, dict[str, bool]], channel: Channel, category: Category) -> bool:
    """The switch in effect: the user's override, else the default."""
    value = switches.get(channel.value, {}).get(category.value)
    return default_switch(channel, category) if value is None else value
