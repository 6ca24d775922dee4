"""Every cursor is made and read by `db.pages`: round trips, old padded cursors, junk."""

from __future__ import annotations

import base64
import uuid
from datetime import UTC, datetime

import pytest

from db.pages import decode_cursor, decode_seq_cursor, encode_cursor, encode_seq_cursor

AT = datetime(2030, 5, 1, 20, 0, 0, 123456, tzinfo=UTC)
ROW = uuid.UUID("00000000-0000-4000-8000-0000000e0001")


def test_keyset_and_seq_cursors_round_trip_and_do_not_mix() -> None:
    keyset, seq = encode_cursor(AT, ROW), encode_seq_cursor(42)
    assert decode_cursor(keyset) == (AT, ROW)
    assert decode_seq_cursor(seq) == 42
    assert decode_seq_cursor(keyset) is None and decode_cursor(seq) is None
    assert "=" not in keyset + seq  # URL-safe and unpadded


def test_cursors_handed_out_before_the_one_module_still_decode() -> None:
    """Event and feed cursors used to be padded base64 of the same texts."""
    old_event = base64.urlsafe_b64encode(f"{AT.isoformat()}|{ROW}".encode()).decode()
    old_post = base64.urlsafe_b64encode(b"post:42").decode()
    assert old_post.endswith("=")
    assert decode_cursor(old_event) == (AT, ROW)
    assert decode_seq_cursor(old_post) == 42


@pytest.mark.parametrize(
    "junk",
    ["", "zzz", "!!!", "ö", encode_seq_cursor(-1).replace("A", "B"), "cG9zdDo=", "cG9zdDrCsg"],
)
def test_anything_else_decodes_to_none(junk: str) -> None:
    assert decode_cursor(junk) is None
    assert decode_seq_cursor(junk) is None


def test_seq_cursors_beyond_a_bigint_are_refused() -> None:
    huge = base64.urlsafe_b64encode(f"post:{2**63}".encode()).decode()
    assert decode_seq_cursor(huge) is None
    assert decode_seq_cursor(encode_seq_cursor(2**63 - 1)) == 2**63 - 1


def test_keyset_cursors_need_a_time_zone() -> None:
    naive = base64.urlsafe_b64encode(f"2030-05-01T20:00:00|{ROW}".encode()).decode()
    assert decode_cursor(naive) is None
