"""What each change tells whom: the notifications the platform raises, written here once.

Each function runs in the transaction of the change (an order paid, a post created),
so the notification commits with it or not at all, and goes through the one enqueue
(`db.notifications.enqueue`) with a dedupe key made from the change itself: a retried
webhook or a replayed trigger notifies nobody twice.
"""

from __future__ import annotations

import re
import uuid
from datetime import datetime

import asyncpg

from db.notification_rules import Category
from db.notifications import Draft, Recipients, enqueue

# @handle in a post: 3-30 letters, digits or underscores, not inside a word or email.
MENTION = re.compile(r"(?<![\w@])@([A-Za-z0-9_]{3,30})\b")
MAX_MENTIONS = 20

_HOLDERS = """SELECT t.owner_user_id FROM ticketing.tickets t
               WHERE t.event_id = $1 AND t.status = 'issued'"""


async def _event_title(conn: asyncpg.Connection, event_id: uuid.UUID) -> str:
    title: str | None = await conn.fetchval(
        "SELECT title FROM events.events WHERE id = $1", event_id
    )
    return title or "your event"


async def order_paid(
    conn: asyncpg.Connection,
    *,
    user_id: uuid.UUID,
    order_id: uuid.UUID,
    event_id: uuid.UUID,
    tickets: int,
    now: datetime,
) -> None:
    title = await _event_title(conn, event_id)
    plural = "ticket is" if tickets == 1 else "tickets are"
    draft = Draft(
        Category.ORDER_PAID,
        f"Payment received: your {plural} ready",
        body=f"{tickets} {plural.split()[0]} for {title}.",
        data={"orderId": str(order_id), "eventId": str(event_id)},
        dedupe_key=f"order:{order_id}:paid",
    )
    await enqueue(conn, Recipients.one(user_id), draft, now)


async def order_refunded(
    conn: asyncpg.Connection,
    *,
    user_id: uuid.UUID,
    order_id: uuid.UUID,
    event_id: uuid.UUID,
    amount_cents: int,
    currency: str,
    refund_key: str,
    now: datetime,
) -> None:
    """A refund the organizer (or an admin) made; `refund_key` names this refund, so
    each partial refund notifies once."""
    title = await _event_title(conn, event_id)
    draft = Draft(
        Category.ORDER_REFUNDED,
        "Your order was refunded",
        body=f"{amount_cents / 100:.2f} {currency.upper()} for {title} is on its way back.",
        data={"orderId": str(order_id), "eventId": str(event_id), "amountCents": amount_cents},
        dedupe_key=f"order:{order_id}:refund:{refund_key}",
    )
    await enqueue(conn, Recipients.one(user_id), draft, now)


async def late_payment_refunded(
    conn: asyncpg.Connection,
    *,
    user_id: uuid.UUID,
    order_id: uuid.UUID,
    event_id: uuid.UUID,
    reason: str,
    now: datetime,
) -> None:
    """The payment arrived after the hold lapsed and the seats were gone: say why."""
    title = await _event_title(conn, event_id)
    draft = Draft(
        Category.LATE_PAYMENT_REFUNDED,
        "Your payment was refunded",
        body=f"{title}: your hold had expired and the seats sold out before your payment "
        "arrived, so the full amount is on its way back.",
        data={"orderId": str(order_id), "eventId": str(event_id), "reason": reason},
        dedupe_key=f"order:{order_id}:late-refund",
    )
    await enqueue(conn, Recipients.one(user_id), draft, now)


async def event_changed(
    conn: asyncpg.Connection, *, event_id: uuid.UUID, title: str, canceled: bool, now: datetime
) -> None:
    """Everyone holding a ticket for the event (set-based: one statement)."""
    if canceled:
        draft = Draft(
            Category.EVENT_CANCELED,
            f"{title} is canceled",
            body="The organizer canceled the event.",
            data={"eventId": str(event_id)},
            dedupe_key=f"event:{event_id}:canceled",
        )
    else:
        draft = Draft(
            Category.EVENT_CHANGED,
            f"{title} has changed",
            body="The organizer changed the event's details: check the time and place.",
            data={"eventId": str(event_id)},
            dedupe_key=f"event:{event_id}:changed:{now.isoformat()}",
        )
    await enqueue(conn, Recipients(_HOLDERS, (event_id,)), draft, now)


async def post_created(
    conn: asyncpg.Connection,
    *,
    post_id: uuid.UUID,
    event_id: uuid.UUID,
    author_id: uuid.UUID,
    text: str,
    now: datetime,
) -> None:
    """Ticket holders of the event hear of a new post (not its author); users whose
    @handle it mentions hear of that."""
    title = await _event_title(conn, event_id)
    data = {"postId": str(post_id), "eventId": str(event_id)}
    excerpt = text[:140]
    holders = Recipients(f"{_HOLDERS} AND t.owner_user_id <> $2", (event_id, author_id))
    draft = Draft(
        Category.NEW_POST,
        f"New post in {title}",
        body=excerpt,
        data=data,
        dedupe_key=f"post:{post_id}",
    )
    await enqueue(conn, holders, draft, now)
    handles = list(dict.fromkeys(h.lower() for h in MENTION.findall(text)))[:MAX_MENTIONS]
    if handles:
        mentioned = Recipients(
            "SELECT id FROM users.profiles WHERE lower(handle) = ANY($1::text[]) AND id <> $2",
            (handles, author_id),
        )
        mention = Draft(
            Category.MENTION,
            f"You were mentioned in {title}",
            body=excerpt,
            data=data,
            dedupe_key=f"post:{post_id}:mention",
        )
        await enqueue(conn, mentioned, mention, now)


_OFFERS = """SELECT w.id, w.user_id, w.event_id, w.quantity, w.hold_id, h.expires_at,
                   t.name AS tier_name, e.title
              FROM ticketing.waitlist_entries w
              JOIN ticketing.ticket_holds h ON h.id = w.hold_id
              JOIN ticketing.ticket_tiers t ON t.id = w.tier_id
              JOIN events.events e ON e.id = w.event_id
             WHERE w.id = ANY($1::uuid[])
             ORDER BY w.id"""


async def waitlist_offered(
    conn: asyncpg.Connection, entry_ids: list[uuid.UUID], now: datetime
) -> None:
    """Each waitlist entry offered seats hears of it (priority lane, never deferred: the
    seats are held only for the offer window); one notification per offer."""
    for offer in await conn.fetch(_OFFERS, entry_ids):
        seats = "seat is" if offer["quantity"] == 1 else "seats are"
        draft = Draft(
            Category.WAITLIST_OFFER,
            f"{offer['quantity']} {seats} held for you",
            body=f"{offer['title']}, {offer['tier_name']}: check out before "
            f"{offer['expires_at']:%Y-%m-%d %H:%M} UTC or they pass to the next in line.",
            data={
                "entryId": str(offer["id"]),
                "holdId": str(offer["hold_id"]),
                "eventId": str(offer["event_id"]),
                "expiresAt": offer["expires_at"].isoformat(),
            },
            dedupe_key=f"waitlist:{offer['id']}:offer",
        )
        await enqueue(conn, Recipients.one(offer["user_id"]), draft, now)
