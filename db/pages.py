"""Every pagination cursor the API hands out, encoded and decoded here only.

A cursor is opaque to clients: the URL-safe base64 (unpadded) of a short text naming
the position of the last row of a page, which the next page starts strictly after.
Two kinds of position exist:

* a keyset ``"<iso timestamp>|<uuid>"`` (`encode_cursor` / `decode_cursor`), for lists
  ordered by a timestamp and a row id: events by start, orders and tickets by creation;
* a feed sequence ``"post:<seq>"`` (`encode_seq_cursor` / `decode_seq_cursor`), for
  feeds ordered by `feed.posts.seq`.

Decoding accepts a cursor with or without base64 padding and returns None for anything
these encoders did not make; each caller raises its own error for that.
"""

from __future__ import annotations

import base64
import binascii
import re
import uuid
from datetime import datetime

_SEQ_PREFIX = "post:"
_SEQ = re.compile(r"[0-9]{1,19}")
_MAX_SEQ = 2**63 - 1  # feed.posts.seq is a bigint


def _encode(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def _decode(cursor: str) -> str | None:
    try:
        return base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (ValueError, binascii.Error):  # UnicodeDecodeError is a ValueError
        return None


def encode_cursor(at: datetime, row_id: uuid.UUID) -> str:
    """The keyset cursor of a row ordered by (`at`, `row_id`)."""
    return _encode(f"{at.isoformat()}|{row_id}")


def decode_cursor(cursor: str) -> tuple[datetime, uuid.UUID] | None:
    """The (timestamp, id) a keyset cursor stands for, or None if it is not one."""
    raw = _decode(cursor)
    if raw is None:
        return None
    stamp, _, row_id = raw.partition("|")
    try:
        at = datetime.fromisoformat(stamp)
        return (at, uuid.UUID(row_id)) if at.tzinfo is not None else None
    except ValueError:
        return None


def encode_seq_cursor(seq: int) -> str:
    """The cursor of a post at feed position `seq`."""
    return _encode(f"{_SEQ_PREFIX}{seq}")


def decode_seq_cursor(cursor: str) -> int | None:
    """The feed position a post cursor stands for, or None if it is not one."""
    raw = _decode(cursor)
    if raw is None or not raw.startswith(_SEQ_PREFIX):
        return None
    digits = raw.removeprefix(_SEQ_PREFIX)
    if not _SEQ.fullmatch(digits) or int(digits) > _MAX_SEQ:
        return None
    return int(digits)
