"""JWT bearer authentication (HS256, Supabase-compatible claims).

A token's `sub` is the user id and `role` its role. Supabase's own roles
(`authenticated`, `anon`, `service_role`) map onto ours so tokens minted by Supabase
Auth work unchanged. Only HS256 is accepted: `alg: none` and asymmetric algorithms
(the classic key-confusion attack) are refused before the signature is even looked at.
"""

from __future__ import annotations

import enum
import functools
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import jwt

from liventix.settings import Settings

ALGORITHM = "HS256"


class Role(enum.StrEnum):
    ANONYMOUS = "anonymous"
    USER = "user"
    ORGANIZER = "organizer"
    ADMIN = "admin"
    PARTNER = "partner"  # integrates through the playground; otherwise a user


_SUPABASE_ROLES = {
    "authenticated": Role.USER,
    "anon": Role.ANONYMOUS,
    "service_role": Role.ADMIN,
}


class AuthError(Exception):
    """A token that cannot be trusted; `code` is `UNAUTHENTICATED` or `TOKEN_EXPIRED`."""

    def __init__(self, message: str, code: str = "UNAUTHENTICATED") -> None:
        super().__init__(message)
        self.message = message
        self.code = code


@dataclass(frozen=True, slots=True)
class Viewer:
    """Who is asking. Anonymous viewers have no `user_id`."""

    user_id: uuid.UUID | None = None
    role: Role = Role.ANONYMOUS
    expires_at: datetime | None = None

    @property
    def is_authenticated(self) -> bool:
        return self.user_id is not None

    @property
    def is_admin(self) -> bool:
        return self.role is Role.ADMIN


ANONYMOUS = Viewer()


# Verified tokens kept per process, so a client's next request costs a dictionary
# look-up instead of an HMAC and a JSON decode (a signed-in page load sends the same
# token many times). Only successes are kept; expiry is checked again on every use.
TOKEN_CACHE_SIZE = 4096
LEEWAY_SECONDS = 5


def viewer_from_token(token: str, settings: Settings) -> Viewer:
    """Verify `token` and return its viewer; raise `AuthError` with a clear reason."""
    viewer, expires = _verified(
        token, settings.jwt_secret, settings.jwt_audience, settings.jwt_issuer
    )
    if time.time() > expires + LEEWAY_SECONDS:
        raise AuthError("Token expired", code="TOKEN_EXPIRED")
    return viewer


@functools.lru_cache(maxsize=TOKEN_CACHE_SIZE)
def _verified(
    token: str, secret: str, audience: str | None, issuer: str | None
) -> tuple[Viewer, float]:
    """The token's viewer and expiry (a POSIX time). Keyed by everything verification
    depends on, so a changed secret, audience or issuer never reuses an entry; a
    failure raises, and `lru_cache` keeps nothing of it."""
    try:
        header = jwt.get_unverified_header(token)
    except jwt.DecodeError:
        raise AuthError("Malformed token") from None
    if header.get("alg") != ALGORITHM:
        raise AuthError(f"Token algorithm must be {ALGORITHM}")
    try:
        claims = jwt.decode(
            token,
            secret,
            algorithms=[ALGORITHM],
            audience=audience,
            issuer=issuer,
            options={"require": ["sub", "exp"], "verify_aud": audience is not None},
            leeway=LEEWAY_SECONDS,
        )
    except jwt.ExpiredSignatureError:
        raise AuthError("Token expired", code="TOKEN_EXPIRED") from None
    except jwt.InvalidSignatureError:
        raise AuthError("Invalid token signature") from None
    except jwt.InvalidAudienceError:
        raise AuthError("Invalid token audience") from None
    except jwt.InvalidIssuerError:
        raise AuthError("Invalid token issuer") from None
    except jwt.MissingRequiredClaimError as exc:
        raise AuthError(f"Token is missing the '{exc.claim}' claim") from None
    except jwt.InvalidTokenError:
        raise AuthError("Invalid token") from None
    if "purpose" in claims:  # a link's token (unsubscribe, ...) is never a credential
        raise AuthError("Not an API token")
    return _viewer_from_claims(claims), float(str(claims["exp"]))


def _viewer_from_claims(claims: dict[str, object]) -> Viewer:
    try:
        user_id = uuid.UUID(str(claims["sub"]))
    except ValueError:
        raise AuthError("Token subject must be a UUID") from None
    raw_role = str(claims.get("role") or "user")
    role = _SUPABASE_ROLES.get(raw_role)
    if role is None:
        try:
            role = Role(raw_role)
        except ValueError:
            raise AuthError(f"Unknown role '{raw_role}'") from None
    if role is Role.ANONYMOUS:
        return ANONYMOUS
    expires = datetime.fromtimestamp(float(str(claims["exp"])), UTC)
    return Viewer(user_id=user_id, role=role, expires_at=expires)


def bearer_token(authorization: str) -> str | None:
    """The token of a `Bearer <token>` value, or None when it is not of that form."""
    scheme, _, token = authorization.partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token else None


def viewer_from_header(authorization: str | None, settings: Settings) -> Viewer:
    """The viewer for an HTTP `Authorization` header (anonymous when absent)."""
    if not authorization:
        return ANONYMOUS
    token = bearer_token(authorization)
    if token is None:
        raise AuthError("Authorization header must be 'Bearer <token>'")
    return viewer_from_token(token, settings)


def mint_token(
    settings: Settings,
    user_id: uuid.UUID,
    role: Role,
    *,
    ttl: timedelta = timedelta(hours=12),
    now: datetime | None = None,
) -> str:
    """A signed development token (also what tests use to act as a user)."""
    issued = now or datetime.now(UTC)
    claims: dict[str, object] = {
        "sub": str(user_id),
        "role": role.value,
        "iat": int(issued.timestamp()),
        "exp": int((issued + ttl).timestamp()),
    }
    if settings.jwt_audience:
        claims["aud"] = settings.jwt_audience
    if settings.jwt_issuer:
        claims["iss"] = settings.jwt_issuer
    return jwt.encode(claims, settings.jwt_secret, algorithm=ALGORITHM)
