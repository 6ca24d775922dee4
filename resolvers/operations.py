"""Operations views for admins: sales health, readiness, reconciliation runs."""

from __future__ import annotations

from typing import Any

import db.ops_views
from resolvers.access import admin_only
from resolvers.context import Info
from resolvers.errors import ClientCode, ClientError
from resolvers.ids import EVENT, RECONCILIATION_REPORT, parse_ids, parse_int_id


async def event_health(info: Info, event_id: str | None = None) -> list[dict[str, Any]]:
    """Sales health per event (`ticketing.event_health`), or of one event."""
    admin_only(info)
    ids = None if event_id is None else parse_ids([event_id], EVENT)
    if event_id is not None and ids is None:
        raise ClientError("Not a valid id", ClientCode.BAD_USER_INPUT)
    return await db.ops_views.event_health(info.context.db, ids)


async def event_readiness(info: Info) -> list[dict[str, Any]]:
    admin_only(info)
    return await db.ops_views.event_readiness(info.context.db)


async def reconciliation_reports(info: Info, limit: int = 20) -> list[dict[str, Any]]:
    admin_only(info)
    return await db.ops_views.reconciliation_reports(info.context.db, min(max(limit, 1), 100))


async def reconciliation_report(info: Info, id: str) -> dict[str, Any] | None:
    """One reconciliation run by global id (admins)."""
    admin_only(info)
    run_id = parse_int_id(id, RECONCILIATION_REPORT)
    if run_id is None:
        return None
    return await db.ops_views.reconciliation_report(info.context.db, run_id)
