"""Client-supplied IDs, parsed here only, for every resolver.

An ID that is not a UUID names nothing; each resolver says what that means for its
field (null, an empty list, a typed NOT_FOUND or INVALID_INPUT error).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable


def parse_id(value: str) -> uuid.UUID | None:
    """A UUID from a client-supplied ID, or None when it is not one."""
    try:
        return uuid.UUID(str(value))
    except ValueError:
        return None


def parse_ids(values: Iterable[str]) -> list[uuid.UUID] | None:
    """The UUIDs of client-supplied IDs, or None when any of them is not one."""
    parsed = [parse_id(value) for value in values]
    if any(value is None for value in parsed):
        return None
    return [value for value in parsed if value is not None]
