"""Opaque keyset cursors for lists ordered by a timestamp and a row id.

A cursor is the URL-safe base64 (unpadded) of ``"<iso timestamp>|<uuid>"``: the
position of the last row of a page, which the next page starts strictly after. It is
opaque to clients; only `decode_cursor` reads it back.
"""

from __future__ import annotations

import base64
import binascii
import uuid
from datetime import datetime


def encode_cursor(at: datetime, row_id: uuid.UUID) -> str:
    raw = f"{at.isoformat()}|{row_id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, uuid.UUID] | None:
    """The (timestamp, id) a cursor stands for, or None when `encode_cursor` did not
    make it (padded or not); callers raise their own domain error."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        stamp, _, row_id = raw.partition("|")
        at = datetime.fromisoformat(stamp)
        return (at, uuid.UUID(row_id)) if at.tzinfo is not None else None
    except (ValueError, binascii.Error):
        return None
