"""Signed unsubscribe links: who, which channel, which category (or the digest).

A link's token is a JWT signed with JWT_SECRET (HS256) whose audience is
`UNSUBSCRIBE_AUDIENCE` and which carries a `purpose` claim; it names the user (`sub`),
the channel (`ch`, always ``email``) and the category (`cat`, or ``digest``). The two
kinds of token never stand in for each other: an API token has no such audience, so it
is refused here, and the API refuses any token with a `purpose` (`liventix.auth`), as
well as any without `exp` (these have none).

It does not expire: RFC 8058 expects the link in an old email to keep working, and all
it can do is turn one kind of email off for one user. Changing JWT_SECRET voids every
link sent before.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import urlencode

import jwt

from db.notification_rules import Category, Channel
from liventix.settings import Settings

ALGORITHM = "HS256"
UNSUBSCRIBE_AUDIENCE = "liventix:unsubscribe"
PURPOSE = "unsubscribe"
DIGEST = "digest"  # the `cat` of a digest's link: turns the digest off
PATH = "/notifications/unsubscribe"


class InvalidLink(Exception):
    """A token that was not signed by us for unsubscribing, or names nothing we know."""


@dataclass(frozen=True, slots=True)
class Unsubscribe:
    """What a verified link turns off: `category` None means the digest."""

    user_id: uuid.UUID
    channel: Channel
    category: Category | None


def sign(settings: Settings, link: Unsubscribe, now: datetime) -> str:
    claims: dict[str, object] = {
        "sub": str(link.user_id),
        "aud": UNSUBSCRIBE_AUDIENCE,
        "purpose": PURPOSE,
        "ch": link.channel.value,
        "cat": link.category.value if link.category else DIGEST,
        "iat": int(now.timestamp()),
    }
    return jwt.encode(claims, settings.jwt_secret, algorithm=ALGORITHM)


def verify(settings: Settings, token: str) -> Unsubscribe:
    """The link's content; `InvalidLink` for anything forged, altered or not ours."""
    try:
        claims = jwt.decode(
            token,
            settings.jwt_secret,
            algorithms=[ALGORITHM],
            audience=UNSUBSCRIBE_AUDIENCE,
            options={"require": ["sub", "aud", "purpose", "ch", "cat"]},
        )
    except jwt.InvalidTokenError as exc:
        raise InvalidLink(type(exc).__name__) from None
    if claims["purpose"] != PURPOSE:
        raise InvalidLink("not an unsubscribe token")
    try:
        user_id = uuid.UUID(str(claims["sub"]))
        channel = Channel(claims["ch"])
        category = None if claims["cat"] == DIGEST else Category(claims["cat"])
    except ValueError:
        raise InvalidLink("names no user, channel or category of ours") from None
    if channel is not Channel.EMAIL:
        raise InvalidLink("only email can be unsubscribed by link")
    return Unsubscribe(user_id, channel, category)


def url(settings: Settings, link: Unsubscribe, now: datetime) -> str:
    """The one-click URL (RFC 8058): GET shows a confirmation page, POST unsubscribes."""
    return f"{settings.link_base}{PATH}?{urlencode({'token': sign(settings, link, now)})}"
