"""Capacity has one owner: only `db/holds.py` writes tier counters and hold rows.

The check reads the SQL in every module of `db/` and fails on a write of
`ticket_tiers.reserved_quantity` / `issued_quantity`, or any INSERT, UPDATE or DELETE of
`ticketing.ticket_holds`, outside `db/holds.py`. A control shows it catches such a
statement, and that it does find the writes `db/holds.py` itself makes.
"""

from __future__ import annotations

import re
from pathlib import Path

DB_DIR = Path(__file__).resolve().parent.parent / "db"
OWNER = DB_DIR / "holds.py"

_HOLD_WRITE = re.compile(
    r"\b(?:UPDATE|INSERT\s+INTO|DELETE\s+FROM)\s+ticketing\.ticket_holds\b", re.IGNORECASE
)
# An UPDATE of the tiers up to the end of its SET list (where the next clause starts).
_TIER_UPDATE = re.compile(
    r"\bUPDATE\s+ticketing\.ticket_tiers\b(?P<set>.*?)(?:\bWHERE\b|\bFROM\b|\bRETURNING\b|$)",
    re.IGNORECASE | re.DOTALL,
)
_COUNTER = re.compile(r"\b(?:reserved_quantity|issued_quantity)\b|\{counter\}")


def capacity_writes(source: str) -> list[str]:
    """The statements in `source` that write tier counters or hold rows (their heads)."""
    found = [m.group(0) for m in _HOLD_WRITE.finditer(source)]
    for match in _TIER_UPDATE.finditer(source):
        if _COUNTER.search(match.group("set")):
            found.append(" ".join(match.group(0).split())[:120])
    return found


def test_only_db_holds_writes_tier_counters_and_hold_rows() -> None:
    strays = {
        path.name: writes
        for path in sorted(DB_DIR.glob("*.py"))
        if path != OWNER and (writes := capacity_writes(path.read_text()))
    }
    assert strays == {}, f"capacity written outside db/holds.py: {strays}"


def test_control_the_check_sees_capacity_writes() -> None:
    """The patterns match a stray write, the real writes in db/holds.py, and not a
    plain tier edit."""
    stray = """await conn.execute(
        "UPDATE ticketing.ticket_tiers SET issued_quantity = issued_quantity + 1 WHERE id = $1")
    await conn.execute("update ticketing.ticket_holds set status = 'released'")"""
    assert len(capacity_writes(stray)) == 2
    edit = "UPDATE ticketing.ticket_tiers SET name = $2, quantity = $3 WHERE id = $1"
    assert capacity_writes(edit) == []
    owned = capacity_writes(OWNER.read_text())
    assert any("reserved_quantity" in w for w in owned)
    assert any("issued_quantity" in w for w in owned)
    assert any(w.upper().startswith("INSERT") for w in owned)
