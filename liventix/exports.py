"""The CSV download route of the producer console: `GET /exports/<token>.csv`.

The token is a signed, short-lived export link (`liventix.export_links`, made by the
`exportRegistrationsCsv` / `exportSalesCsv` mutations); no Authorization header is
needed, so a browser can simply open the URL. The route verifies the token, checks
again that its user manages the event (they may have lost it since), and answers:

* 400 ``EXPORT_LINK_INVALID`` for a forged, altered or foreign token, 410
  ``EXPORT_LINK_EXPIRED`` past its expiry, 404 ``EVENT_NOT_FOUND`` when the user no
  longer manages the event (GraphQL-shaped JSON bodies, as other refusals);
* otherwise a ``text/csv`` attachment. Registrations are streamed from a server-side
  cursor in chunks (`db.console.registration_rows`), so tens of thousands of rows take
  constant memory and the first bytes leave before the last row is read.

Cells are quoted as CSV needs (RFC 4180, via `csv`), and a text cell that a spreadsheet
would run as a formula (starting with = + - @, a tab or a carriage return) is prefixed
with a single quote (OWASP's CSV injection advice). Numbers are written as they are.
"""

from __future__ import annotations

import contextlib
import csv
import io
import re
import uuid
from collections.abc import AsyncGenerator, Iterable, Sequence
from datetime import datetime
from typing import Any

import anyio
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.types import Send

import db.console
from db.errors import OrderError
from db.events import Actor
from liventix import export_links
from liventix.export_links import ExportKind, ExportLink
from resolvers.context import Services
from resolvers.ids import ORDER, TIER, global_id

PATH = export_links.PATH_PREFIX + "{token}.csv"
# The token is in the URL: no caches, no referrer to other pages, no index.
HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Robots-Tag": "noindex",
}
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
SALES_COLUMNS = (
    "scope",
    "currency",
    "date",
    "tier_id",
    "tier_name",
    "orders",
    "tickets",
    "gross_cents",
    "discount_cents",
    "refund_cents",
    "net_cents",
    "fees_cents",
    "refunded_tickets",
)


def cell(value: Any) -> Any:
    """A value as a CSV cell: text that could start a formula gets a leading quote."""
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, str) and value.startswith(_FORMULA_STARTS):
        return "'" + value
    return value


def csv_lines(rows: Iterable[Sequence[Any]]) -> str:
    """`rows` as CSV text (CRLF line ends, minimal quoting), formula-safe."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerows([cell(v) for v in row] for row in rows)
    return buffer.getvalue()


def _refusal(status: int, code: str, message: str) -> Response:
    body = {"errors": [{"message": message, "extensions": {"code": code}}]}
    return JSONResponse(body, status_code=status, headers=HEADERS)


def _filename(title: str, what: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")[:60] or "event"
    return f"{slug}-{what}.csv"


class ClosingStreamingResponse(StreamingResponse):
    """A streaming response that closes its body iterator in the task that iterated it,
    even when the client goes away mid-download: the iterator holds a pooled connection
    and a transaction, which `databases` binds to that task."""

    def __init__(self, content: AsyncGenerator[str, None], **kwargs: Any) -> None:
        super().__init__(content, **kwargs)
        self.generator = content

    async def stream_response(self, send: Send) -> None:
        try:
            await super().stream_response(send)
        finally:
            with anyio.CancelScope(shield=True):
                await self.generator.aclose()


async def _registration_csv(services: Services, event_id: uuid.UUID) -> AsyncGenerator[str, None]:
    yield csv_lines([db.console.EXPORT_COLUMNS])
    async with contextlib.aclosing(db.console.registration_rows(services.db, event_id)) as chunks:
        async for chunk in chunks:
            yield csv_lines(
                [global_id(ORDER, row["order_id"]), *list(row.values())[1:]] for row in chunk
            )


def _figures(f: db.console.SalesFigures) -> dict[str, Any]:
    return {
        "currency": f.currency,
        "orders": f.orders,
        "gross_cents": f.gross_cents,
        "discount_cents": f.discount_cents,
        "refund_cents": f.refund_cents,
        "net_cents": f.net_cents,
        "fees_cents": f.fees_cents,
    }


def _sales_rows(summary: db.console.SalesSummary) -> list[list[Any]]:
    """The summary as `SALES_COLUMNS` lines: totals per currency, then days, then tiers."""
    lines: list[dict[str, Any]] = [{"scope": "total", **_figures(f)} for f in summary.totals]
    lines += [
        {"scope": "day", "date": d.day.isoformat(), **_figures(d.figures)} for d in summary.days
    ]
    lines += [
        {
            "scope": "tier",
            "currency": t.currency,
            "tier_id": global_id(TIER, t.tier_id),
            "tier_name": t.tier_name,
            "tickets": t.tickets,
            "gross_cents": t.gross_cents,
            "refunded_tickets": t.refunded_tickets,
        }
        for t in summary.tiers
    ]
    return [list(SALES_COLUMNS)] + [[line.get(c) for c in SALES_COLUMNS] for line in lines]


async def _sales_csv(services: Services, link: ExportLink, actor: Actor) -> str:
    summary = await db.console.sales_summary(
        services.db, event_id=link.event_id, actor=actor, start=link.start, end=link.end
    )
    return csv_lines(_sales_rows(summary))


async def download(request: Request) -> Response:
    services: Services = request.app.state.services
    try:
        link = export_links.verify(
            services.settings, request.path_params["token"], services.clock.now()
        )
    except export_links.ExpiredLink:
        return _refusal(410, "EXPORT_LINK_EXPIRED", "This export link has expired: export again.")
    except export_links.InvalidLink:
        return _refusal(400, "EXPORT_LINK_INVALID", "This export link is not valid.")
    actor = Actor(user_id=link.user_id, is_admin=link.is_admin)
    try:
        event = await db.console.managed_event(services.db, link.event_id, actor)
    except OrderError:
        return _refusal(404, "EVENT_NOT_FOUND", "No such event among the events you manage.")
    what = link.kind.value
    headers = {
        **HEADERS,
        "Content-Disposition": f'attachment; filename="{_filename(event.title, what)}"',
    }
    if link.kind is ExportKind.SALES:
        text = await _sales_csv(services, link, actor)
        return Response(text, media_type="text/csv; charset=utf-8", headers=headers)
    return ClosingStreamingResponse(
        _registration_csv(services, link.event_id),
        media_type="text/csv; charset=utf-8",
        headers=headers,
    )
