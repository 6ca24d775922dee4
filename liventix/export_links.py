"""Signed, short-lived download links for the producer console's CSV exports.

A link's token is a JWT signed with JWT_SECRET (HS256) whose audience is
`EXPORT_AUDIENCE` and which carries a `purpose` claim, so it can never serve as an API
token (`liventix.auth` refuses any token with a `purpose`), and an API or unsubscribe
token is refused here (wrong audience, no purpose). It names the requesting user
(`sub`), whether they were an admin when they asked (`adm`), the event (`ev`), what to
export (`kind`) and for sales the window (`from`, `to`). It expires after `TTL`: the URL
may end up in a browser's history, so it must not stay useful. The download route
(`liventix.exports`) checks again that the user manages the event.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

import jwt

from liventix.settings import Settings

ALGORITHM = "HS256"
EXPORT_AUDIENCE = "liventix:export"
PURPOSE = "export"
PATH_PREFIX = "/exports/"
TTL = timedelta(minutes=5)


class ExportKind(StrEnum):
    REGISTRATIONS = "registrations"
    SALES = "sales"


class InvalidLink(Exception):
    """A token we did not sign for an export, or one altered or cut short."""


class ExpiredLink(InvalidLink):
    """A genuine export token past its expiry."""


@dataclass(frozen=True, slots=True)
class ExportLink:
    """What a verified link lets its holder download, and for whom it was made."""

    user_id: uuid.UUID
    is_admin: bool
    event_id: uuid.UUID
    kind: ExportKind
    start: datetime | None = None
    end: datetime | None = None


@dataclass(frozen=True, slots=True)
class SignedLink:
    url: str
    expires_at: datetime


def _stamp(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def sign(settings: Settings, link: ExportLink, now: datetime) -> SignedLink:
    """The download URL for `link`, valid for `TTL` from `now`."""
    expires = now + TTL
    claims: dict[str, object] = {
        "sub": str(link.user_id),
        "aud": EXPORT_AUDIENCE,
        "purpose": PURPOSE,
        "adm": link.is_admin,
        "ev": str(link.event_id),
        "kind": link.kind.value,
        "from": _stamp(link.start),
        "to": _stamp(link.end),
        "iat": int(now.timestamp()),
        "exp": int(expires.timestamp()),
    }
    token = jwt.encode(claims, settings.jwt_secret, algorithm=ALGORITHM)
    return SignedLink(url=f"{settings.link_base}{PATH_PREFIX}{token}.csv", expires_at=expires)


def verify(settings: Settings, token: str, now: datetime) -> ExportLink:
    """The link's content; `ExpiredLink` past its expiry (as of `now`), `InvalidLink`
    for anything forged, altered or not an export token."""
    try:
        claims = jwt.decode(
            token,
            settings.jwt_secret,
            algorithms=[ALGORITHM],
            audience=EXPORT_AUDIENCE,
            options={
                "require": ["sub", "aud", "purpose", "exp", "ev", "kind"],
                # Time is judged below by the injected clock, not the system's.
                "verify_exp": False,
                "verify_iat": False,
            },
        )
    except jwt.InvalidTokenError as exc:
        raise InvalidLink(type(exc).__name__) from None
    if claims["purpose"] != PURPOSE:
        raise InvalidLink("not an export token")
    link = _link_of(claims)
    if now.timestamp() >= float(claims["exp"]):
        raise ExpiredLink("expired")
    return link


def _link_of(claims: dict[str, object]) -> ExportLink:
    try:
        return ExportLink(
            user_id=uuid.UUID(str(claims["sub"])),
            is_admin=claims.get("adm") is True,
            event_id=uuid.UUID(str(claims["ev"])),
            kind=ExportKind(str(claims["kind"])),
            start=_time(claims.get("from")),
            end=_time(claims.get("to")),
        )
    except (ValueError, TypeError):
        raise InvalidLink("names nothing of ours") from None


def _time(value: object) -> datetime | None:
    return None if value is None else datetime.fromisoformat(str(value))
