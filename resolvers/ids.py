"""Client-supplied IDs, parsed once for every resolver."""

from __future__ import annotations

import uuid


def parse_id(value: str) -> uuid.UUID | None:
    """A UUID from a client-supplied ID, or None when it is not one."""
    try:
        return uuid.UUID(str(value))
    except ValueError:
        return None
