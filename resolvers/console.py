"""The producer console: registrations, sales summaries and CSV export links.

The live counts (`live_counts`) come from the process's shared reader of each event
(`resolvers.console_counter`).

The viewer must be an organizer or an admin (`resolvers.access.organizer`); whether
they manage the event is `db.console`'s to check, with the event's row. Export links
are signed here and downloaded from the shell's route (`liventix.exports`), which checks
access again when the file is fetched.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from contextlib import aclosing
from datetime import datetime

import db.console
import db.settlement
from db.order_queries import Page
from liventix import export_links
from liventix.export_links import ExportKind, ExportLink, SignedLink
from resolvers.access import organizer
from resolvers.console_counter import CountsUpdate
from resolvers.context import Info
from resolvers.errors import ClientCode, ClientError
from resolvers.ids import EVENT, TIER, parse_id
from resolvers.orders import MAX_PAGE, ids

MAX_SEARCH = 200


def _filter(
    status: str | None, tier_id: str | None, checked_in: bool | None, search: str | None
) -> db.console.RegistrationFilter:
    tier = None
    if tier_id is not None:
        tier = parse_id(tier_id, TIER)
        if tier is None:
            raise ClientError("Not a valid id", ClientCode.INVALID_INPUT, "filter.tier_id")
    if search is not None and len(search) > MAX_SEARCH:
        raise ClientError("Search is too long", ClientCode.INVALID_INPUT, "filter.search")
    return db.console.RegistrationFilter(
        status=status, tier_id=tier, checked_in=checked_in, search=search
    )


def _window(start: datetime | None, end: datetime | None) -> None:
    if start is not None and end is not None and end <= start:
        raise ClientError("`to` must be after `from`", ClientCode.INVALID_INPUT, "to")


async def registrations(
    info: Info,
    event_id: str,
    *,
    status: str | None = None,
    tier_id: str | None = None,
    checked_in: bool | None = None,
    search: str | None = None,
    first: int = 20,
    after: str | None = None,
) -> Page[db.console.RegistrationRecord]:
    """A page of the event's registrations, for its organizer or an admin."""
    actor = await organizer(info)
    (event,) = ids([event_id], EVENT, "event_id")
    if not 1 <= first <= MAX_PAGE:
        raise ClientError(f"first must be 1 to {MAX_PAGE}", ClientCode.INVALID_INPUT, "first")
    return await db.console.list_registrations(
        info.context.db,
        event_id=event,
        actor=actor,
        filter=_filter(status, tier_id, checked_in, search),
        first=first,
        after=after,
    )


async def sales_summary(
    info: Info, event_id: str, start: datetime | None, end: datetime | None
) -> db.console.SalesSummary:
    """The event's sales in [start, end), for its organizer or an admin."""
    actor = await organizer(info)
    (event,) = ids([event_id], EVENT, "event_id")
    _window(start, end)
    return await db.console.sales_summary(
        info.context.db, event_id=event, actor=actor, start=start, end=end
    )


async def export_link(
    info: Info,
    event_id: str,
    kind: ExportKind,
    start: datetime | None = None,
    end: datetime | None = None,
) -> SignedLink:
    """A short-lived signed URL downloading the event's registrations or sales as CSV."""
    actor = await organizer(info)
    (event,) = ids([event_id], EVENT, "event_id")
    ctx = info.context
    _window(start, end)
    await db.console.managed_event(ctx.db, event, actor)
    link = ExportLink(
        user_id=actor.user_id,
        is_admin=actor.is_admin,
        event_id=event,
        kind=kind,
        start=start,
        end=end,
    )
    return export_links.sign(ctx.settings, link, ctx.clock.now())


async def live_counts(info: Info, event_id: str) -> AsyncGenerator[CountsUpdate, None]:
    """The event's counts now, then after every paid order, refund and check-in (at
    most one update per `RECOMPUTE_SECONDS`), for its organizer or an admin.

    Access is checked once, before the first message, with the console's rule and
    errors; the counts themselves are read by the process's shared reader of the event.
    """
    actor = await organizer(info)
    (event_key,) = ids([event_id], EVENT, "event_id")
    event = await db.console.managed_event(info.context.db, event_key, actor)
    async with (
        info.context.services.console_counts.follow(event) as updates,
        aclosing(updates),
    ):
        async for update in updates:
            yield update


async def settlement(info: Info, event_id: str) -> db.settlement.Settlement:
    """The event's settlement and its differences, for its organizer or an admin."""
    actor = await organizer(info)
    (event,) = ids([event_id], EVENT, "event_id")
    return await db.settlement.event_settlement(info.context.db, event_id=event, actor=actor)
