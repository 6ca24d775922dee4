"""Capacity has one owner: only `db/holds.py` writes tier counters and hold rows.

The check reads the SQL in every module of `db/` and fails on a write of
`ticket_tiers.reserved_quantity` / `issued_quantity`, or any INSERT, UPDATE or DELETE of
`ticketing.ticket_holds`, outside `db/holds.py`. Part of that module runs in PostgreSQL
(a hold is the function `ticketing.reserve_hold`): in the migrations, such writes may
only be in the bodies of functions that `db/holds.py` calls (or that those call), and
no other module may call them. Controls show the check catches a stray statement and
a stray function, and that it does find the writes the owner itself makes.
"""

from __future__ import annotations

import re
from pathlib import Path

DB_DIR = Path(__file__).resolve().parent.parent / "db"
OWNER = DB_DIR / "holds.py"
MIGRATIONS = DB_DIR / "migrations"

_HOLD_WRITE = re.compile(
    r"\b(?:UPDATE|INSERT\s+INTO|DELETE\s+FROM)\s+ticketing\.ticket_holds\b", re.IGNORECASE
)
# An UPDATE of the tiers up to the end of its SET list (where the next clause starts).
_TIER_UPDATE = re.compile(
    r"\bUPDATE\s+ticketing\.ticket_tiers\b(?P<set>.*?)(?:\bWHERE\b|\bFROM\b|\bRETURNING\b|$)",
    re.IGNORECASE | re.DOTALL,
)
_COUNTER = re.compile(r"\b(?:reserved_quantity|issued_quantity)\b|\{counter\}")
# A function a migration creates: its qualified name and its dollar-quoted body.
_FUNCTION = re.compile(
    r"\bCREATE\s+(?:OR\s+REPLACE\s+)?FUNCTION\s+(?P<name>\w+\.\w+)\s*\(.*?"
    r"(?P<quote>\$\w*\$)(?P<body>.*?)(?P=quote)",
    re.IGNORECASE | re.DOTALL,
)


def capacity_writes(source: str) -> list[str]:
    """The statements in `source` that write tier counters or hold rows (their heads)."""
    found = [m.group(0) for m in _HOLD_WRITE.finditer(source)]
    for match in _TIER_UPDATE.finditer(source):
        if _COUNTER.search(match.group("set")):
            found.append(" ".join(match.group(0).split())[:120])
    return found


def sql_functions(sql: str) -> tuple[dict[str, str], str]:
    """The functions a migration creates (name → body), and its SQL outside them."""
    bodies = {m.group("name").lower(): m.group("body") for m in _FUNCTION.finditer(sql)}
    return bodies, _FUNCTION.sub("", sql)


def calls(source: str, name: str) -> bool:
    return re.search(rf"\b{re.escape(name)}\s*\(", source, re.IGNORECASE) is not None


def migration_strays(migrations: dict[str, str], owner: str) -> dict[str, list[str]]:
    """Capacity writes in the migrations that `owner` (the owner's source) does not own:
    outside any function, or in a function neither `owner` nor an owned function calls."""
    functions: dict[str, str] = {}
    strays: dict[str, list[str]] = {}
    for name, sql in migrations.items():
        bodies, outside = sql_functions(sql)
        functions.update(bodies)
        if writes := capacity_writes(outside):
            strays[name] = writes
    owned = {f for f in functions if calls(owner, f)}
    while more := {
        g for g in functions if g not in owned and any(calls(functions[f], g) for f in owned)
    }:
        owned |= more
    for function, body in functions.items():
        if function not in owned and (writes := capacity_writes(body)):
            strays[function] = writes
    return strays


def _migrations() -> dict[str, str]:
    return {path.name: path.read_text() for path in sorted(MIGRATIONS.glob("*.sql"))}


def capacity_functions() -> list[str]:
    """The functions of the migrations that write capacity."""
    functions: dict[str, str] = {}
    for sql in _migrations().values():
        functions.update(sql_functions(sql)[0])
    return [name for name, body in functions.items() if capacity_writes(body)]


def test_only_db_holds_writes_tier_counters_and_hold_rows() -> None:
    strays = {
        path.name: writes
        for path in sorted(DB_DIR.glob("*.py"))
        if path != OWNER and (writes := capacity_writes(path.read_text()))
    }
    assert strays == {}, f"capacity written outside db/holds.py: {strays}"


def test_capacity_functions_in_migrations_belong_to_db_holds() -> None:
    """Every write of capacity in the migrations is in a function `db/holds.py` calls,
    and no other module calls those functions."""
    assert migration_strays(_migrations(), OWNER.read_text()) == {}
    functions = capacity_functions()
    assert "ticketing.reserve_hold" in functions
    callers = {
        path.name: [f for f in functions if calls(path.read_text(), f)]
        for path in sorted(DB_DIR.glob("*.py"))
        if path != OWNER
    }
    assert {name: found for name, found in callers.items() if found} == {}


def test_control_the_check_sees_capacity_writes() -> None:
    """The patterns match a stray write, the real writes of db/holds.py and its SQL
    functions, and not a plain tier edit."""
    stray = """await conn.execute(
        "UPDATE ticketing.ticket_tiers SET issued_quantity = issued_quantity + 1 WHERE id = $1")
    await conn.execute("update ticketing.ticket_holds set status = 'released'")"""
    assert len(capacity_writes(stray)) == 2
    edit = "UPDATE ticketing.ticket_tiers SET name = $2, quantity = $3 WHERE id = $1"
    assert capacity_writes(edit) == []
    owned = capacity_writes(OWNER.read_text())
    for sql in _migrations().values():
        for body in sql_functions(sql)[0].values():
            owned += capacity_writes(body)
    assert any("reserved_quantity" in w for w in owned)
    assert any("issued_quantity" in w for w in owned)
    assert any(w.upper().startswith("INSERT") for w in owned)


def test_control_the_check_sees_stray_functions_and_statements() -> None:
    """A migration's function that nobody in db/holds.py calls, or a plain statement of
    a migration, writing capacity is caught; a function the owner calls is not."""
    migration = """
    CREATE FUNCTION ticketing.owned(p uuid) RETURNS void LANGUAGE sql AS $$
        SELECT ticketing.helper(p) $$;
    CREATE FUNCTION ticketing.helper(p uuid) RETURNS void LANGUAGE plpgsql AS $body$
    BEGIN UPDATE ticketing.ticket_tiers SET reserved_quantity = 0 WHERE id = p; END $body$;
    CREATE OR REPLACE FUNCTION ticketing.rogue() RETURNS void LANGUAGE sql AS $$
        DELETE FROM ticketing.ticket_holds $$;
    UPDATE ticketing.ticket_tiers SET issued_quantity = 0;
    """
    owner = 'await conn.fetch("SELECT ticketing.owned($1)", tier_id)'
    strays = migration_strays({"0099_x.sql": migration}, owner)
    assert set(strays) == {"0099_x.sql", "ticketing.rogue"}
    assert set(migration_strays({"0099_x.sql": migration}, "")) == {
        "0099_x.sql",
        "ticketing.rogue",
        "ticketing.helper",
    }
