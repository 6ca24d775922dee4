"""Emails as bytes: a notification's or a digest's, from the Jinja2 templates.

Each message has HTML and plain-text alternatives (`liventix/templates/email/`), a
`Message-ID` that depends only on what it is (the notification, or the user and digest
period) so a resend is recognizably the same message, and the one-click unsubscribe
headers of RFC 8058 (`List-Unsubscribe` with a signed HTTPS link, and
`List-Unsubscribe-Post: List-Unsubscribe=One-Click`).

Messages are flattened here, not by the SMTP client: its default policy would fold the
long `List-Unsubscribe` URL into encoded words that no mail client reads as a URL. The
same bytes go to the SMTP server and to the development sink.
"""

from __future__ import annotations

import email.policy
import functools
import uuid
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from email.utils import format_datetime, parseaddr
from zoneinfo import ZoneInfo

import jinja2

from db.digests import DigestContent
from db.notification_rules import Category, Channel
from db.notifications import NotificationRecord
from liventix.mail import links
from liventix.settings import Settings

# Header objects fold at 78 characters as usual; a header set raw (the unsubscribe
# URL) is written as given, which RFC 5322 allows up to 998 characters.
_WIRE_POLICY = email.policy.SMTP.clone(refold_source="none")

CATEGORY_LABELS: dict[Category, str] = {
    Category.ORDER_PAID: "Order confirmation",
    Category.ORDER_REFUNDED: "Refund",
    Category.LATE_PAYMENT_REFUNDED: "Refund",
    Category.EVENT_CHANGED: "Event change",
    Category.EVENT_CANCELED: "Event cancellation",
    Category.MENTION: "Mention",
    Category.NEW_POST: "New post",
    Category.PRODUCT_UPDATE: "Product update",
    Category.ACCOUNT_ALERT: "Account alert",
}


@dataclass(frozen=True, slots=True)
class Outgoing:
    """A message ready for the wire: envelope sender and recipient, and its bytes."""

    sender: str
    recipient: str
    message_id: str
    data: bytes


@functools.cache
def _templates() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.PackageLoader("liventix", "templates/email"),
        autoescape=jinja2.select_autoescape(enabled_extensions=("html",), default=False),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )


def notification_message_id(notification_id: uuid.UUID, domain: str) -> str:
    return f"<notification.{notification_id}@{domain}>"


def digest_message_id(user_id: uuid.UUID, period: str, domain: str) -> str:
    # A Message-ID's left part is a dot-atom: no ':' (the period is `daily:2026-11-30`).
    return f"<digest.{period.replace(':', '.')}.{user_id}@{domain}>"


def label(category: str) -> str:
    try:
        return CATEGORY_LABELS[Category(category)]
    except ValueError:
        return category.replace("_", " ").capitalize()


def notification_email(
    settings: Settings, notification: NotificationRecord, recipient: str, now: datetime
) -> Outgoing:
    """The email of one notification; its unsubscribe link turns its category off."""
    category = Category(notification.category)
    link = links.Unsubscribe(notification.user_id, Channel.EMAIL, category)
    context = {
        "subject": _one_line(notification.title),
        "notification": notification,
        "paragraphs": [p.strip() for p in notification.body.split("\n\n") if p.strip()],
        "label": label(notification.category),
        "unsubscribe_url": links.url(settings, link, now),
    }
    message_id = notification_message_id(notification.id, settings.email_domain)
    return _build(settings, "notification", context, recipient, message_id, now)


def digest_email(
    settings: Settings,
    user_id: uuid.UUID,
    period: str,
    content: DigestContent,
    time_zone: str,
    recipient: str,
    now: datetime,
) -> Outgoing:
    """The digest of `period`; its unsubscribe link turns the digest off."""
    frequency = period.partition(":")[0]
    zone = ZoneInfo(time_zone)
    count = content.total
    noun = "notification" if count == 1 else "notifications"
    heading = f"Your {frequency} digest: {count} unread {noun}"
    items = [
        {
            "title": n.title,
            "body": _one_line(n.body)[:280],
            "when": n.created_at.astimezone(zone).strftime("%a %d %b, %H:%M"),
        }
        for n in content.notifications
    ]
    context = {
        "subject": heading,
        "heading": heading,
        "frequency": frequency,
        "items": items,
        "more": count - len(items),
        "unsubscribe_url": links.url(
            settings, links.Unsubscribe(user_id, Channel.EMAIL, None), now
        ),
    }
    message_id = digest_message_id(user_id, period, settings.email_domain)
    return _build(settings, "digest", context, recipient, message_id, now)


def _build(
    settings: Settings,
    template: str,
    context: dict[str, object],
    recipient: str,
    message_id: str,
    now: datetime,
) -> Outgoing:
    """Render both alternatives and the headers. `ValueError` if `recipient` cannot
    be an address header (the message can then never be sent)."""
    if not _plausible_address(recipient):
        raise ValueError(f"not an email address: {recipient!r}")
    templates = _templates()
    text = templates.get_template(f"{template}.txt").render(context)
    html = templates.get_template(f"{template}.html").render(context)
    message = EmailMessage()
    message["Subject"] = str(context["subject"])
    message["From"] = settings.email_from
    message["To"] = recipient
    message["Date"] = format_datetime(now)
    message.set_raw("Message-ID", message_id)  # never folded: it is compared as a whole
    message["Auto-Submitted"] = "auto-generated"  # RFC 3834: no auto-replies, please
    message.set_raw("List-Unsubscribe", f"<{context['unsubscribe_url']}>")
    message["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    message.set_content(text)
    message.add_alternative(html, subtype="html")
    sender = parseaddr(settings.email_from)[1]
    return Outgoing(sender, recipient, message_id, message.as_bytes(policy=_WIRE_POLICY))


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _plausible_address(address: str) -> bool:
    local, at, domain = address.rpartition("@")
    return bool(at and local and domain) and not any(c.isspace() for c in address)
