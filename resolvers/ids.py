"""Global object ids: written and read here only, for every type and resolver.

Every object a client may cache has an opaque global id, the base64 of
``"<TypeName>:<key>"`` (the format of Relay and of Strawberry's `relay.GlobalID`), so
one id names one object of one type, and `node(id:)` knows where to look it up. Clients
must not take ids apart; they pass them back as they got them.

Arguments also take the bare UUID an id carried before global ids (deprecated, kept so
stored links keep working). An ID that names nothing of the expected type is None here;
each resolver says what that means for its field (null, an empty list, a typed
NOT_FOUND or INVALID_INPUT error).
"""

from __future__ import annotations

import base64
import binascii
import uuid
from collections.abc import Iterable

MAX_ID_LENGTH = 200  # a global id of any type is far shorter; longer is not one of ours

# The GraphQL type names that ids are minted for, as the schema names its types.
DISCOUNT_CODE = "DiscountCode"
EVENT = "Event"
EVENT_AVAILABILITY = "EventAvailability"
HOLD = "Hold"
NOTIFICATION = "Notification"
ORDER = "Order"
POST = "Post"
RECONCILIATION_REPORT = "ReconciliationReport"
TICKET = "Ticket"
TIER = "TicketTier"
TIER_AVAILABILITY = "TierAvailability"
USER = "User"
VIEWER = "Viewer"
WAITLIST_ENTRY = "WaitlistEntry"


def global_id(type_name: str, key: uuid.UUID | int) -> str:
    """The global id of the object of `type_name` whose key is `key`."""
    return base64.b64encode(f"{type_name}:{key}".encode()).decode("ascii")


def decode_global_id(value: str) -> tuple[str, str] | None:
    """(type name, key) of a global id, or None when `value` is not one."""
    if len(value) > MAX_ID_LENGTH:
        return None
    try:
        text = base64.b64decode(value.encode("ascii"), validate=True).decode("utf-8")
    except (UnicodeError, binascii.Error, ValueError):
        return None
    type_name, separator, key = text.partition(":")
    if not separator or not type_name.isidentifier() or not key:
        return None
    return type_name, key


def parse_id(value: str, type_name: str) -> uuid.UUID | None:
    """The UUID key of a global id of `type_name` (or of a bare, deprecated UUID);
    None when it is neither."""
    decoded = decode_global_id(value)
    if decoded is not None:
        kind, key = decoded
        return _uuid(key) if kind == type_name else None
    return _uuid(value)


def parse_int_id(value: str, type_name: str) -> int | None:
    """The integer key of a global id of `type_name` (a job run's, say); None otherwise."""
    decoded = decode_global_id(value)
    if decoded is None or decoded[0] != type_name or not decoded[1].isdigit():
        return None
    return int(decoded[1])


def parse_ids(values: Iterable[str], type_name: str) -> list[uuid.UUID] | None:
    """The UUID keys of client-supplied ids of `type_name`, or None when any is not one."""
    parsed = [parse_id(value, type_name) for value in values]
    if any(value is None for value in parsed):
        return None
    return [value for value in parsed if value is not None]


def _uuid(value: str) -> uuid.UUID | None:
    if len(value) > MAX_ID_LENGTH:
        return None
    try:
        return uuid.UUID(value)
    except ValueError:
        return None
